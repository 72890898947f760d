"""One-shot coreset selection on the host: random, monotonic (optionally class-balanced) and
coverage-centric stratified (CCS; Zheng et al., ICLR 2023; ALGORITHMS.md C.4); and the
removals of ALGORITHMS.md D.6 (a window of an ordering, random, a random part of the
lowest-ranked block), which return the positions *kept*.

Every selector returns *positions* into the score arrays it was given (the caller maps them
to example ids), exactly ``size`` of them, distinct, and the same for the same inputs and
generator. Sorting is stable with an explicit tie-break: ``tie_break`` ranks (lower first
among equal scores), typically one random permutation per run, so the many ties of integer
scores such as forgetting counts are broken reproducibly rather than by the sort algorithm.
Selection happens once per run, on numpy arrays: no compilation, and the 45,000-example
CCS selection takes milliseconds.
"""

import numpy as np

from jaxsel.config_errors import UserError

RULES = ("random", "monotonic", "ccs")


def _order(scores: np.ndarray, tie_break: np.ndarray, *, descending: bool) -> np.ndarray:
  """Positions by ascending (or descending) score, equal scores by ascending tie_break.
  NaN scores come last either way."""
  scores = np.asarray(scores, np.float64)
  key = -scores if descending else scores
  return np.lexsort((tie_break, np.where(np.isnan(key), np.inf, key), np.isnan(key)))


def random_coreset(rng: np.random.Generator, num_candidates: int, size: int) -> np.ndarray:
  """``size`` positions drawn uniformly without replacement."""
  return np.sort(rng.permutation(num_candidates)[:size])


def remove_window(order: np.ndarray, *, start: int, size: int) -> np.ndarray:
  """The positions kept when the window ``order[start : start + size]`` is removed
  (ALGORITHMS.md D.6 step 1): ``order`` lists all N positions by ascending score, so this
  removes ``size`` examples from rank ``start`` on. ``size = 0`` keeps everything. A window
  past the end is refused, not truncated. Sorted, N − size of them."""
  order = np.asarray(order)
  if start < 0 or size < 0 or start + size > len(order):
    raise ValueError(f"the removal window [{start}, {start + size}) does not fit in the "
                     f"{len(order)} ranks of the ordering")
  kept = np.ones(len(order), bool)
  kept[order[start:start + size]] = False
  return np.flatnonzero(kept)


def remove_random(rng: np.random.Generator, num_candidates: int, size: int) -> np.ndarray:
  """The positions kept when ``size`` of ``num_candidates`` are removed uniformly at random
  (D.6 step 2): the first ``num_candidates − size`` of one permutation, sorted."""
  if not 0 <= size <= num_candidates:
    raise ValueError(f"cannot remove {size} of {num_candidates} examples")
  return random_coreset(rng, num_candidates, num_candidates - size)


def remove_from_lowest(order: np.ndarray, *, lowest: int, size: int,
                       rng: np.random.Generator) -> np.ndarray:
  """The positions kept when ``size`` of the ``lowest`` first-ranked are removed at random
  (D.6 step 3): a uniform ``lowest − size`` of ``order[:lowest]`` (without replacement)
  plus all of ``order[lowest:]``. Sorted, N − size of them."""
  order = np.asarray(order)
  if not 0 <= size <= lowest <= len(order):
    raise ValueError(f"cannot remove {size} of the lowest {lowest} of {len(order)} ranks")
  block = rng.choice(order[:lowest], lowest - size, replace=False)
  return np.sort(np.concatenate([block, order[lowest:]]))


def monotonic(scores: np.ndarray, size: int, *, descending: bool,
              tie_break: np.ndarray) -> np.ndarray:
  """The first ``size`` positions of the score order (C.4 rule 2: the reference's
  ``score_monotonic_selection``)."""
  return np.sort(_order(scores, tie_break, descending=descending)[:size])


def class_quotas(class_sizes: np.ndarray, size: int) -> np.ndarray:
  """How many of each class a class-balanced coreset of ``size`` keeps: the same fraction
  of every class, ⌊n_c · size / N⌋, and the ``size − Σ`` left over to the classes with the
  largest remainders (ties: lower class first), so the coreset has exactly ``size``."""
  class_sizes = np.asarray(class_sizes, np.int64)
  total = int(class_sizes.sum())
  exact = class_sizes * size
  quotas = exact // total
  left = size - int(quotas.sum())
  by_remainder = np.lexsort((np.arange(len(class_sizes)), -(exact % total)))
  quotas[by_remainder[:left]] += 1
  return quotas


def class_balanced_monotonic(scores: np.ndarray, labels: np.ndarray, size: int, *,
                             descending: bool, tie_break: np.ndarray) -> np.ndarray:
  """``monotonic`` within every class, keeping ``class_quotas`` of each (the reference's
  ``--class-balanced``, without its bug of using the last class's count for all)."""
  labels = np.asarray(labels)
  classes = np.unique(labels)
  quotas = class_quotas(np.asarray([np.sum(labels == c) for c in classes]), size)
  chosen = []
  for label, quota in zip(classes, quotas):
    members = np.flatnonzero(labels == label)
    order = _order(scores[members], tie_break[members], descending=descending)
    chosen.append(members[order[:quota]])
  return np.sort(np.concatenate(chosen))


def _reference_strata(scores: np.ndarray, num_strata: int) -> np.ndarray:
  """The reference's edges (``stratified_sampling``): width (1.0001 · max − min) / k and
  stratum j = [min + j · width, min + (j + 1) · width), every edge open at the top. For
  max > 0 the top edge lies 1e-4 · max above the maximum, so every score is in a stratum."""
  low = scores.min()
  width = (1.0001 * scores.max() - low) / num_strata
  edges = low + np.arange(num_strata + 1) * width  # as the reference forms them
  index = np.searchsorted(edges, scores, side="right") - 1
  # Never changes anything for max > 0 (the top edge is far above float64 rounding of it).
  return np.minimum(index, num_strata - 1).astype(np.int64)


def strata(scores: np.ndarray, num_strata: int, *, reference_edges: bool = False) -> np.ndarray:
  """The stratum of each score (C.4 step 3). int64 [M].

  Default: ``num_strata`` equal-width ranges from min to max, width (max − min) / k, the
  last one closed, so the maximum is in stratum ``num_strata − 1``. All scores equal: all in
  stratum 0.

  ``reference_edges``: the reference's width (1.0001 · max − min) / k with open top edges.
  The strata are wider by 1e-4 · max / k, so edge j moves up by j · 1e-4 · max / k and the
  scores just above it drop into the stratum below; stratum sizes and allocations then
  differ by ±1 here and there. Measured on 1,000 scores in 50 strata, 2,000 draws each
  from ``np.random.default_rng(0)`` (a uniform draw on [0, 1), then a standard normal one,
  in turn): 2.48 scores change stratum on average for uniform scores and 1.23 for normal
  ones, every one of them one stratum down (``tests/test_coresets.py`` checks the range).
  Only for max > 0: there the factor does what it is meant to (include the maximum), while
  for max ≤ 0 it leaves the top scores out of every stratum (all of them for a constant
  score), the reference's bug, so max ≤ 0 falls back to the default edges. Computed in
  float64; the reference works in its score tensor's dtype, which can move a score that
  lies within rounding of an edge.
  """
  scores = np.asarray(scores, np.float64)
  low, high = scores.min(), scores.max()
  if reference_edges and high > 0:
    return _reference_strata(scores, num_strata)
  if high == low:
    return np.zeros(len(scores), np.int64)
  index = np.floor((scores - low) / ((high - low) / num_strata)).astype(np.int64)
  return np.minimum(index, num_strata - 1)


def allocate(stratum_sizes: np.ndarray, budget: int) -> np.ndarray:
  """Water-filling of C.4 step 4: visit the strata from the smallest; the j-th smallest of
  k gets min(n_j, ⌊remaining / (k − j)⌋), so what a small stratum cannot take flows to the
  larger ones. Exactly ``min(budget, Σ n)`` in all, never more than a stratum holds.
  Equal sizes are visited in stratum order."""
  stratum_sizes = np.asarray(stratum_sizes, np.int64)
  num = len(stratum_sizes)
  allocation = np.zeros(num, np.int64)
  remaining = int(budget)
  for j, stratum in enumerate(np.argsort(stratum_sizes, kind="stable")):
    allocation[stratum] = min(int(stratum_sizes[stratum]), remaining // (num - j))
    remaining -= int(allocation[stratum])
  return allocation


def ccs(importance: np.ndarray, cutoff_scores: np.ndarray, size: int, *, beta: float,
        num_strata: int, rng: np.random.Generator, tie_break: np.ndarray,
        reference_strata: bool = False) -> tuple[np.ndarray, dict]:
  """Coverage-centric coreset selection (C.4 rule 3), returning (positions, details).

  1. Drop the ⌊β · M⌋ candidates of lowest ``cutoff_scores`` (the accumulated margin: the
     hardest, likely mislabeled examples; ties by ``tie_break``).
  2. Split the rest into ``num_strata`` equal-width strata of ``importance`` (the
     reference's edges with ``reference_strata``: ``strata(reference_edges=True)``).
  3. Allocate ``size`` over the strata by water-filling from the smallest.
  4. Draw each stratum's share uniformly without replacement with ``rng``.

  ``details``: the strata of the kept candidates, their sizes and allocations, the positions
  cut off (for figures and the run directory). Raises ValueError if the cutoff leaves
  fewer candidates than ``size``.
  """
  num_candidates = len(importance)
  num_cut = int(beta * num_candidates)
  order = _order(cutoff_scores, tie_break, descending=False)
  cut, kept = np.sort(order[:num_cut]), np.sort(order[num_cut:])
  if len(kept) < size:
    raise UserError(
        f"config.method.beta={beta} removes {num_cut} of {num_candidates} examples, leaving "
        f"{len(kept)}, fewer than the coreset of {size}: use a beta of at most "
        f"{1 - size / num_candidates:.3g} (1 − coreset fraction)")
  stratum = strata(importance[kept], num_strata, reference_edges=reference_strata)
  sizes = np.bincount(stratum, minlength=num_strata)
  allocation = allocate(sizes, size)
  chosen = [rng.choice(kept[stratum == j], allocation[j], replace=False)
            for j in range(num_strata) if allocation[j]]
  positions = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
  return positions, {"stratum_sizes": sizes, "allocation": allocation, "cut": cut,
                     "kept": kept, "kept_strata": stratum}
