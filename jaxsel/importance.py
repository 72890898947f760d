"""Pure pieces of budgeted importance sampling (Arazo et al., BMVC 2021; ALGORITHMS.md B.3-B.4).

- ``difficulty_tracker``: per example, from the training forward pass, the running mean over
  every presentation of ``1 − p_y`` (p_y = softmax probability of the example's own label)
  and its latest value; ``−1`` marks an example not seen yet.
- ``sampling_weights``: an epoch's sampling probabilities P over the candidates for
  ``unif`` (uniform), ``p`` (p-SGD: the difficulty) and ``c`` (c-SGD: ŝ(1 − ŝ), closeness to
  the decision threshold), with the reference's handling of unseen examples and its
  smoothing constant ε = mean of the raw weights; both ablations of B.8 (no ε; the last
  value instead of the historical average) are switches.

The subset itself is drawn with ``selection.weighted_without_replacement`` (successive
sampling, as the reference's ``numpy.random.choice(replace=False, p=P)``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel.trackers import StepOutputs, Tracker, scatter_set

UNSEEN = -1.0
SAMPLERS = ("unif", "p", "c")
ATTRIBUTIONS = ("own", "area")


def _own_difficulty(outputs: StepOutputs) -> tuple[jax.Array, jax.Array]:
  """1 − p(y_i) of row i's prediction at its own label, for every real row."""
  probs = jax.nn.softmax(outputs.logits.astype(jnp.float32))
  value = 1.0 - jnp.take_along_axis(probs, outputs.labels[:, None], axis=-1)[:, 0]
  return value, outputs.mask


def _area_difficulty(outputs: StepOutputs) -> tuple[jax.Array, jax.Array]:
  """Per source example, the area-weighted mean of 1 − p(y_source) over the mixed rows it
  is part of: the fix of ALGORITHMS.md B.9.1 for RICAP (each real row is a source once per
  patch, with weights summing to 1 over its patches)."""
  from jaxsel import ricap  # the attribution lives with the mixing that needs it
  probs = jax.nn.softmax(outputs.logits.astype(jnp.float32))
  source_labels = outputs.labels[outputs.positions]  # [B, M]
  values = 1.0 - jnp.take_along_axis(probs, source_labels, axis=-1)
  value, total = ricap.area_attribution(values, outputs.positions, outputs.weights,
                                        outputs.mask)
  return value, outputs.mask & (total > 0)


def difficulty_tracker(*, attribution: str = "own") -> Tracker:
  """Tables ``difficulty`` (the running mean of 1 − p_y), ``last_difficulty`` (its latest
  value), both float32 [N] and −1 until seen, and ``difficulty_count`` (int32 [N]).

  ``attribution``: ``own``: row i's prediction at row i's label (B.3; under mixup, the
  mixed image at the un-permuted label, and under RICAP the reference's bug B.9.1);
  ``area``: each source example gets the area-weighted predictions of the mixed rows it
  is part of, at its own label (RICAP's correct attribution; without mixing it is ``own``).
  """
  if attribution not in ATTRIBUTIONS:
    raise ValueError(f"unknown attribution {attribution!r}; valid: {', '.join(ATTRIBUTIONS)}")
  per_row = _own_difficulty if attribution == "own" else _area_difficulty

  def init(num_ids: int) -> dict[str, jax.Array]:
    return {"difficulty": jnp.full((num_ids,), UNSEEN, jnp.float32),
            "last_difficulty": jnp.full((num_ids,), UNSEEN, jnp.float32),
            "difficulty_count": jnp.zeros((num_ids,), jnp.int32)}

  def update(tables, outputs: StepOutputs):
    ids = outputs.example_ids
    value, mask = per_row(outputs)
    count = tables["difficulty_count"][ids]
    mean = jnp.where(count > 0, tables["difficulty"][ids], 0.0)
    new_mean = (count * mean + value) / (count + 1)
    return {"difficulty": scatter_set(tables["difficulty"], ids, new_mean, mask),
            "last_difficulty": scatter_set(tables["last_difficulty"], ids, value, mask),
            "difficulty_count": scatter_set(tables["difficulty_count"], ids, count + 1, mask)}

  return Tracker(init=init, update=update)


def sampling_weights(difficulty: jax.Array, *, sampler: str,
                     smoothing: bool = True) -> jax.Array:
  """Sampling probabilities P [M] of the candidates (ALGORITHMS.md B.4 steps 1-3).

  ``difficulty``: [M] per-candidate scores, ``UNSEEN`` (< 0) where not seen yet (pass the
  historical mean or the last value). Raw weights: ``unif`` 1; ``p`` the difficulty, unseen
  candidates the largest seen one, all 1 when none is seen; ``c`` ŝ(1 − ŝ) of that p-SGD
  vector ŝ. With ``smoothing`` each weight gets ε = the mean raw weight added. Then
  normalised; weights that sum to 0 (every raw weight 0: every difficulty 0, or every ŝ 0
  or 1, since ε is then 0 too) get 1e-10 added to each before normalising, as the
  reference does, so the epoch is drawn uniformly instead of from an all-zero P.
  """
  if sampler not in SAMPLERS:
    raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
  difficulty = difficulty.astype(jnp.float32)
  if sampler == "unif":
    raw = jnp.ones_like(difficulty)
  else:
    seen = difficulty >= 0
    any_seen = jnp.any(seen)
    largest = jnp.max(jnp.where(seen, difficulty, -jnp.inf))
    filled = jnp.where(seen, difficulty, largest)
    raw = jnp.where(any_seen, filled, 1.0)
    if sampler == "c":
      # The reference builds the p-SGD vector first, then maps it (unseen included).
      raw = jnp.where(any_seen, raw * (1.0 - raw), 1.0)
  weights = raw + jnp.mean(raw) if smoothing else raw
  # The raw weights are >= 0, so a zero sum means every weight is 0. Adding 1e-10 to each
  # (not only to the sum) is the reference's guard: P is then 1/M, not 0 everywhere.
  weights = jnp.where(jnp.sum(weights) > 0, weights, weights + 1e-10)
  return weights / jnp.sum(weights)


def coverage_entropy(counts: np.ndarray) -> float:
  """H(c) in nats of the distribution c_i / Σ c of per-example selection counts (B.8):
  ln N when every example was selected equally often, lower the more the selection
  concentrated on some examples; 0 for no selection at all."""
  counts = np.asarray(counts, np.float64)
  total = counts.sum()
  if total <= 0:
    return 0.0
  p = counts[counts > 0] / total
  return float(-np.sum(p * np.log(p)))


def budget_size(num_examples: int, budget: float) -> int:
  """n_b = ⌊b · N⌋ examples per epoch (B.2), at least 1. The product is rounded to 6
  decimals before the floor so float error does not lose an example (0.7 · 45,000 is
  31,499.999999999996 in floating point). The reference floors it unrounded,
  ``int(N · b)``, so at such sizes it trains on one example fewer per epoch: 31,499
  against 31,500 here for (45,000, 0.7), 125,999 against 126,000 for (180,000, 0.7)."""
  return max(1, math.floor(round(budget * num_examples, 6)))
