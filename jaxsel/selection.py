"""Epoch-level selectors: which k of the M candidate examples to train on next.

A selector is a pure function ``(key, scores, *, k, tie_break=None, ordered=True) -> positions``:

  key: a PRNG key (the caller derives one per epoch from the run key). Only the random
    baseline draws from it; the score-based selectors ignore it.
  scores: float ``[M]``, one per candidate; higher means more worth training on.
  k: static subset size, 1 <= k <= M.
  tie_break: int ``[M]`` of distinct values, or None for ``arange(M)`` (by position). Among
    equal scores the lower value comes first.
  ordered: static; False returns the same subset in an unspecified order, for callers
    that only need the set (cheaper for ``top_k``).
  positions: int32 ``[k]``, distinct indices into ``scores``. The caller maps them back
    to example ids (``candidate_ids[positions]``).

All selectors take the same arguments, so that the registry's entries are interchangeable.
Each is jitted with ``k`` and ``ordered`` static, so a run compiles it once per (M, k).

Ranking rule, the same in ``descending_order`` and every score-based selector: descending
score; NaN after every number, -inf included, so NaN scores are chosen last; 0.0 and -0.0
tie; equal scores by ascending ``tie_break``. The order is thus a function of the inputs
alone, not of the sorting algorithm (the reference implementations used unstable sorts).
In particular ``top_k(key, s, k=k, tie_break=t)`` is ``descending_order(s, t)[:k]`` and
``uniform`` is ``descending_order(s, t)[::M // k][:k]``, element for element.

Tie-break policy (spec section 0.1): ``tie_break_ranks`` gives every example id a rank, by
default one random permutation drawn from the run seed, or the id itself ("tie-break by
index"). The caller computes it once per run and passes ``ranks[candidate_ids]``, so ties
are broken the same way by every selector and in every epoch.

The module also holds the host-side (numpy) diagnostics of a selected subset, computed
once per epoch: its class histogram and its overlap with the previous epoch's subset.
"""

import functools
import hashlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel.config_errors import UserError

Selector = Callable[..., jax.Array]

# float32 has a 24-bit significand: it holds every integer in [-2**24, 2**24] exactly, and
# no wider run of consecutive integers. top_k's tie-break priorities live in that range.
_EXACT_FLOAT32_INTS = 2**24


def _check_k(k: int, num_candidates: int) -> None:
  # Runs at trace time (k and the shape of scores are static), so it costs nothing per call.
  if not 1 <= k <= num_candidates:
    raise ValueError(f"k must be in [1, {num_candidates}] for {num_candidates} candidates, "
                     f"got {k}")


def _check_tie_break(scores: jax.Array, tie_break: jax.Array | None) -> jax.Array:
  """``tie_break``, or ``arange(M)`` for None, after trace-time checks of its shape and dtype."""
  if scores.ndim != 1:
    raise ValueError(f"scores must be one-dimensional [M], got shape {scores.shape}")
  if tie_break is None:
    return jnp.arange(scores.shape[0], dtype=jnp.int32)
  if tie_break.shape != scores.shape:
    raise ValueError(f"tie_break must have the shape of scores {scores.shape}, "
                     f"got {tie_break.shape}")
  if not jnp.issubdtype(tie_break.dtype, jnp.integer):
    # Float tie-breaks could hold equal values (or NaN), and then the order would again
    # depend on the sort.
    raise TypeError(f"tie_break must be an integer array, got {tie_break.dtype}")
  return tie_break


@functools.partial(jax.jit, static_argnames=("num_ids", "by_index"))
def tie_break_ranks(key: jax.Array, num_ids: int, *, by_index: bool = False) -> jax.Array:
  """The tie-break rank of every example id: int32 ``[num_ids]``, a permutation of 0..num_ids-1.

  Among candidates with equal scores, the lower rank comes first. By default ``ranks`` is a
  uniformly random permutation drawn from ``key``; ``by_index`` gives ``ranks[i] = i`` and
  ignores ``key``. Compute it once per run from a key derived from the run seed, and pass
  ``ranks[candidate_ids]`` as every selector's ``tie_break``: one fixed order of the ids then
  breaks the ties in every epoch, whichever selector runs. (``top_k`` stays on its fast path
  for ranks below 2**24, i.e. for up to 16,777,216 ids.)
  """
  if num_ids < 1:
    raise ValueError(f"num_ids must be at least 1, got {num_ids}")
  if by_index:
    return jnp.arange(num_ids, dtype=jnp.int32)
  return jax.random.permutation(key, num_ids).astype(jnp.int32)


@jax.jit
def descending_order(scores: jax.Array, tie_break: jax.Array | None = None) -> jax.Array:
  """All M positions in ranking order: descending score, NaN last, ties by ``tie_break``.

  Args:
    scores: float ``[M]``.
    tie_break: int ``[M]``, distinct values; among equal scores the lower comes first.
      None: by position (``arange(M)``).

  Returns:
    int32 ``[M]``: ``order[r]`` is the position of the candidate of rank r (rank 0 = highest
    score).
  """
  if tie_break is None:
    _check_tie_break(scores, None)
    # Position is the tie-break: a stable sort on the score alone gives it, with one key.
    return jnp.argsort(-scores, stable=True).astype(jnp.int32)
  tie_break = _check_tie_break(scores, tie_break)
  # XLA's sort (as lax.sort canonicalizes float keys) treats -0.0 and 0.0 as equal and puts
  # NaN of either sign after every number, so ascending -scores is the rule's descending
  # score with NaN last. Distinct tie-breaks make every composite key distinct, so the
  # result does not depend on the sort's own handling of equal keys.
  return jnp.lexsort((tie_break, -scores)).astype(jnp.int32)


def _largest(values: jax.Array, k: int) -> jax.Array:
  """Positions of the k largest float32 ``values`` (equal values: lower position first).

  Only the float32, indices-only form of ``lax.top_k`` is used: on XLA:CPU it is several
  times faster than ``top_k`` of integers or than asking for the values too (measured:
  1.7 ms against 9-11 ms for k = 4,500 of 45,000), and both are far cheaper than a sort.
  """
  return jax.lax.top_k(values.astype(jnp.float32), k)[1]


def _in_exact_range(tie_break: jax.Array) -> jax.Array:
  """Whether every value is in [0, 2**24), compared in ``tie_break``'s own integer dtype."""
  # Bounds that fit the dtype: an int16 is always below 2**24, and comparing it with the
  # Python int 2**24 would overflow.
  upper = min(int(jnp.iinfo(tie_break.dtype).max), _EXACT_FLOAT32_INTS - 1)
  return jnp.all((tie_break >= 0) & (tie_break <= upper))


@functools.partial(jax.jit, static_argnames=("k", "ordered"))
def top_k(key: jax.Array, scores: jax.Array, *, k: int, tie_break: jax.Array | None = None,
          ordered: bool = True) -> jax.Array:
  """The k highest-score candidates, highest first: ranks 0, 1, …, k − 1.

  With entropy scores this is the max-entropy subset of calibrated sample prioritization.
  ``scores: [M], tie_break: int [M] | None -> int32 [k]``, exactly
  ``descending_order(scores, tie_break)[:k]`` (as a set when not ``ordered``); ``key`` is
  ignored. Found with partial selections and a sort of only the k winners instead: a full
  sort of M = 45,000 scores costs more on CPU than training a 10 % epoch.

  Limit: M <= 2**24 = 16,777,216 (a ValueError at trace time beyond), because the tie-break
  enters a float32 partial selection as integer priorities, exact only up to 2**24. Tie-break
  values outside [0, 2**24) (not produced by ``tie_break_ranks`` below that many ids) are
  still handled exactly, by a full sort when the k-th score ties.
  """
  del key  # Ties are broken by tie_break, so the subset is a function of the scores.
  num_candidates = scores.shape[0]
  _check_k(k, num_candidates)
  if num_candidates > _EXACT_FLOAT32_INTS:
    raise ValueError(
        f"top_k supports at most 2**24 = {_EXACT_FLOAT32_INTS:,} candidates (its tie-break "
        f"priorities are integers exact in float32), got M = {num_candidates:,}; "
        "use descending_order(scores, tie_break)[:k] instead")
  known_in_range = tie_break is None  # arange(M), M <= 2**24
  tie_break = _check_tie_break(scores, tie_break)
  is_nan = jnp.isnan(scores)
  finite_or_inf = jnp.where(is_nan, -jnp.inf, scores)
  first = _largest(finite_or_inf, k)
  threshold = jnp.min(finite_or_inf[first])  # the k-th highest score
  at_threshold = finite_or_inf == threshold  # 0.0 == -0.0; NaN too when threshold is -inf

  def break_ties_in_float32():
    # Everything above the threshold is in and everything below it out; the rest of the k
    # places go to candidates at the threshold, numbers before NaN, then by ascending
    # tie-break t. For t in [0, 2**24) the priorities 2**24 - t (numbers: [1, 2**24]) and
    # -1 - t (NaN: [-2**24, -1]) are integers that float32 holds exactly, so they are all
    # distinct and order exactly as the rule does. The +inf and -inf bands may tie within
    # themselves, but fewer than k candidates are above the threshold and at least k at or
    # above it, so ties there never decide anything.
    t = tie_break.astype(jnp.int32)
    at_threshold_priority = jnp.where(is_nan, -1 - t, _EXACT_FLOAT32_INTS - t)
    priority = jnp.where(finite_or_inf > threshold, jnp.inf,
                         jnp.where(at_threshold, at_threshold_priority.astype(jnp.float32),
                                   -jnp.inf))
    return _largest(priority, k)

  def break_ties():
    if known_in_range:
      return break_ties_in_float32()
    # Tie-breaks out of float32's exact range would round to equal priorities: sort instead.
    return jax.lax.cond(_in_exact_range(tie_break), break_ties_in_float32,
                        lambda: descending_order(scores, tie_break)[:k])

  # When every candidate at the threshold is already among the first k (scores that do
  # not tie at the k-th place, the usual case), those k are the subset and the second
  # partial selection is skipped.
  no_choice = jnp.sum(at_threshold) == jnp.sum(at_threshold[first])
  winners = jax.lax.cond(no_choice, lambda: first, break_ties)
  if not ordered:
    return winners.astype(jnp.int32)
  # Highest first, ties by tie-break (NaN sorts after every number).
  order = jnp.lexsort((tie_break[winners], -scores[winners]))
  return winners[order].astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("k", "ordered"))
def uniform(key: jax.Array, scores: jax.Array, *, k: int, tie_break: jax.Array | None = None,
            ordered: bool = True) -> jax.Array:
  """A rank-stratified subset: every q-th candidate by descending score, q = ⌊M / k⌋.

  Takes ranks 0, q, 2q, …, (k − 1)q of ``descending_order(scores, tie_break)``, so the
  subset spans the score distribution instead of its top. As in the reference, q is floored
  and the first k ranks are kept: when k does not divide M, the last M − kq ranks (the
  lowest scores) are never selected. ``scores: [M], tie_break: int [M] | None -> int32 [k]``,
  in rank order whatever ``ordered``; ``key`` is ignored.
  """
  del key, ordered
  num_candidates = scores.shape[0]
  _check_k(k, num_candidates)
  stride = num_candidates // k
  return descending_order(scores, tie_break)[::stride][:k]


@functools.partial(jax.jit, static_argnames=("k", "ordered"))
def random_subset(key: jax.Array, scores: jax.Array, *, k: int,
                  tie_break: jax.Array | None = None, ordered: bool = True) -> jax.Array:
  """A uniformly random k-subset of the candidates, drawn from ``key``.

  The baseline every selection method has to beat. ``scores`` is taken only for M and
  ``tie_break`` is ignored, so that all selectors share one signature.
  ``scores: [M] -> int32 [k]``. The k candidates with the largest of M independent uniform
  draws (a partial selection, cheaper on CPU than permuting all M); the rare equal draws go
  to the lower position. ``ordered`` changes nothing: the order is that of the draws.
  """
  del tie_break, ordered
  num_candidates = scores.shape[0]
  _check_k(k, num_candidates)
  return _largest(jax.random.uniform(key, (num_candidates,)), k).astype(jnp.int32)


def weighted_without_replacement(key: jax.Array, weights: jax.Array, *, k: int) -> jax.Array:
  """k distinct positions drawn with probability proportional to ``weights``, without
  replacement: ``weights: [M] (>= 0) -> int32 [k]``, in the order drawn.

  Successive sampling (the first draw ∝ w, the next ∝ w among the rest, ...: the
  Plackett–Luce distribution that importance-sampling methods such as p-SGD / c-SGD mean by
  sampling without replacement, ALGORITHMS.md B.4), computed in one pass as the Gumbel-top-k
  trick: the k largest of ``log w_i + G_i`` with G_i i.i.d. Gumbel(0, 1). k must not
  exceed M.

  Zero weights follow the reference's ``numpy.random.choice(replace=False, p=P)`` and its
  fallback. With at least k positive weights a zero weight is never drawn (numpy draws
  from P as it is). With fewer (all zero included), numpy refuses and the reference retries
  with every zero set to 1e-10: all the positive weights are drawn, essentially surely,
  and the places left go to zero-weight positions uniformly at random. Here exactly so:
  the positive weights in their drawn order, then zero weights in a uniform random order
  (never "the first positions", which would make an all-zero draw the same every epoch).
  """
  num_candidates = weights.shape[0]
  _check_k(k, num_candidates)
  weights = weights.astype(jnp.float32)
  gumbel = jax.random.gumbel(key, (num_candidates,), jnp.float32)
  positive = weights > 0
  # log 0 = -inf: zero weights come after every positive one, but among themselves in
  # position order, so when they are needed their places are filled below instead.
  drawn = _largest(jnp.log(weights) + gumbel, k)
  num_positive = jnp.sum(positive)

  def fill_with_zero_weights():
    # The zero weights by their own Gumbel noise alone: a uniformly random order of them.
    # Two top-k's rather than one key mixing both tiers, which would cost the noise its
    # float32 resolution; the second runs only when fewer than k weights are positive.
    zeros_drawn = _largest(jnp.where(positive, -jnp.inf, gumbel), k)
    place = jnp.arange(k)
    return jnp.where(place < num_positive, drawn,
                     zeros_drawn[jnp.maximum(place - num_positive, 0)])

  return jax.lax.cond(num_positive >= k, lambda: drawn,
                      fill_with_zero_weights).astype(jnp.int32)


SELECTORS: dict[str, Selector] = {
    "top_k": top_k,
    "uniform": uniform,
    "random": random_subset,
}


def get_selector(name: str, *, field: str = "config.method.selector") -> Selector:
  """Looks up a selector by name; ``field`` is the config field the name came from, which
  the error for an unknown name reports."""
  if name not in SELECTORS:
    raise UserError(f"unknown {field} {name!r}; valid: {', '.join(sorted(SELECTORS))}")
  return SELECTORS[name]


def subset_size(num_candidates: int, *, fraction: float | None = None,
                count: int | None = None,
                fraction_field: str = "config.method.subset_fraction",
                count_field: str = "config.method.subset_size") -> int:
  """k, from exactly one of a fraction of the candidates or an absolute count.

  ``fraction`` in (0, 1] gives ``max(1, int(fraction · num_candidates))``: the reference's
  ``int(N · b)``, floored, including its float rounding (``int(0.29 · 100)`` is 28), so
  that subset sizes match it exactly; at least 1 so a tiny fraction still trains.
  ``count`` must be an integer in [1, num_candidates]. Errors name ``fraction_field`` /
  ``count_field``, the config fields the values came from.
  """
  if num_candidates < 1:
    raise ValueError(f"there must be at least one candidate, got {num_candidates}")
  if (fraction is None) == (count is None):
    raise UserError(f"set exactly one of {fraction_field} and {count_field}, got "
                    f"{fraction!r} and {count!r}")
  if fraction is not None:
    if isinstance(fraction, bool) or not 0 < fraction <= 1:
      raise UserError(f"{fraction_field} must be in (0, 1], got {fraction!r}")
    return max(1, int(fraction * num_candidates))
  if (isinstance(count, bool) or not isinstance(count, (int, np.integer))
      or not 1 <= count <= num_candidates):
    raise UserError(f"{count_field} must be in [1, {num_candidates}], got {count!r}")
  return int(count)


def class_histogram(labels_of_selected: np.ndarray, num_classes: int) -> np.ndarray:
  """Percent of the selected examples in each class: int ``[n]`` -> float64 ``[num_classes]``.

  Sums to 100, or is all zeros when nothing is selected.
  """
  labels = np.asarray(labels_of_selected).reshape(-1)
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must be in [0, {num_classes}), got values in "
                     f"[{labels.min()}, {labels.max()}]")
  counts = np.bincount(labels.astype(np.int64), minlength=num_classes).astype(np.float64)
  if not labels.size:
    return counts
  return counts * (100.0 / labels.size)


def overlap_percent(previous_ids: np.ndarray | None, current_ids: np.ndarray) -> float | None:
  """|S_e ∩ S_{e−1}| / |S_e| · 100: how much of this epoch's subset was also in the last.

  Ids are compared as sets. Returns ``None`` when there is no previous selection (the first
  selection epoch), rather than NaN, so the value stays valid JSON in the metrics log and
  is clearly "not applicable" rather than a computation that went wrong. An empty current
  selection gives 0.0.
  """
  if previous_ids is None:
    return None
  current = np.asarray(current_ids).reshape(-1)
  previous = np.asarray(previous_ids).reshape(-1)
  if not current.size or not previous.size:
    return 0.0
  # Subsets arrive sorted and unique, so the sort inside np.unique is usually skipped; and
  # ids are small integers, so membership is a table lookup. A full-data epoch's 45,000 ids
  # cost 0.3 ms this way against 28 ms with np.unique + np.intersect1d.
  if current.size > 1 and not np.all(current[1:] > current[:-1]):
    current = np.unique(current)
  shared = np.count_nonzero(np.isin(current, previous, kind="table"))
  return 100.0 * shared / current.size


def subset_diagnostics(ids: np.ndarray, previous_ids: np.ndarray | None, labels: np.ndarray,
                       num_classes: int) -> dict:
  """What an epoch's examples look like: count, class mix (%), overlap with the last (%),
  and a digest of the ids (two runs chose the same examples iff their digests agree)."""
  overlap = None if previous_ids is None else overlap_percent(previous_ids, ids)
  return {
      "num_selected": int(len(ids)),
      "subset_digest": hashlib.blake2b(np.asarray(ids, np.int32).tobytes(),
                                       digest_size=8).hexdigest(),
      "class_histogram": [round(float(p), 3) for p in
                          class_histogram(labels[ids], num_classes)],
      "overlap_with_previous": overlap,
  }
