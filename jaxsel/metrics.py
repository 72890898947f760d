"""Calibration and classification metrics computed from mergeable sums.

Every metric here is a function of a few per-bin and global *sums* (``CalibrationSums``).
Sums over disjoint sets of examples add, so batches, evaluation steps and devices are
combined with ``merge`` (or ``jax.tree.map(jnp.add, a, b)``, or a ``psum``) and the metrics
are read off once at the end with ``summarize``. Nothing is averaged per batch, so the
result does not depend on how the examples were split up.

Notation, for an example i with predictive distribution p_i over K classes and label y_i:

  confidence  c_i = max_k p_ik
  prediction  ŷ_i = argmax_k p_ik        (ties go to the lowest class index)
  correct     a_i = 1[ŷ_i = y_i]

Confidences are sorted into M equal-width bins on [0, 1] (M = 15 by default). With n_b
the number of examples in bin b, acc_b their mean correctness and conf_b their mean
confidence (both 0 for an empty bin), and N = Σ_b n_b:

  ECE = Σ_b (n_b / N) · |acc_b − conf_b|
  MCE = max_b |acc_b − conf_b|                        (empty bins contribute 0)
  OE  = Σ_b (n_b / N) · conf_b · max(conf_b − acc_b, 0)

and, over all examples,

  accuracy = mean_i a_i
  NLL      = mean_i −log p_{i, y_i}
  Brier    = mean_i Σ_k (p_ik − 1[k = y_i])²

Brier is summed over classes and *not* divided by K, so it lies in [0, 2].

Accuracy, ECE, MCE and OE are fractions in [0, 1]; multiply by 100 to report percent.
Every metric of an empty set of examples is 0.0 (never NaN).

Binning
-------
Bin b holds b/M ≤ c < (b+1)/M, with the edges b/M taken in exact arithmetic (see "Exact
boundaries" below). By default the last bin is closed, so c = 1.0 is counted in bin M − 1
and c = 0.0 in bin 0; confidences outside [0, 1] are clipped into bins 0 and M − 1.

With ``reference_binning=True`` every bin is half-open, [b/M, (b+1)/M), as in the
reference implementation, so an example with c = 1.0 (or above, which softmax cannot
produce) falls in no bin: it is left out of both the numerator and the denominator N of
ECE / MCE / OE. It still counts towards accuracy, NLL and Brier.

Exact boundaries. ``floor(c · M)`` in float32 is not used: the product is rounded, and a
confidence just under an edge can round up into the upper bin (float32(0.7) =
0.699999988... < 7/10 would land in bin 7 of 10 instead of 6). Instead, for each interior
edge b/M (b = 1, ..., M − 1) the host precomputes, with exact rational arithmetic, e_b =
the smallest float32 with e_b ≥ b/M; the bin of c is the number of edges e_b ≤ c, which
lies in [0, M − 1] by construction. For a float32 c, c ≥ e_b exactly when c ≥ b/M, so
every float32 confidence gets its exact-arithmetic bin (checked in the tests for every
float32 within 50 ulps of every edge, M = 7, 10, 15, 20). Values such as float32(1/15) =
0.0666666701... > 1/15 are therefore in bin 1, and float32(0.7) is in bin 6 of 10.

Precision. Sums are float32, so counts are exact up to 2**24 examples per bin.
"""

import fractions
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_NUM_BINS = 15


class CalibrationSums(NamedTuple):
  """Sufficient statistics for every metric in this module; add to merge.

  All leaves are float32. ``count`` includes examples that fell in no bin (only possible
  with ``reference_binning=True``), whereas ``bin_count.sum()`` does not.

  Note: ``a + b`` on NamedTuples concatenates; use ``merge(a, b)`` to add.
  """

  bin_count: jax.Array  # [M] examples per bin, n_b
  bin_confidence: jax.Array  # [M] Σ c_i over the bin
  bin_correct: jax.Array  # [M] Σ a_i over the bin
  count: jax.Array  # [] unmasked examples
  correct: jax.Array  # [] Σ a_i
  nll: jax.Array  # [] Σ −log p_{i, y_i}
  brier: jax.Array  # [] Σ_i Σ_k (p_ik − 1[k = y_i])²

  @property
  def num_bins(self) -> int:
    return self.bin_count.shape[-1]


def _check_num_bins(num_bins: int) -> None:
  # A static Python int: it fixes array shapes, so it cannot be traced.
  if not isinstance(num_bins, (int, np.integer)) or isinstance(num_bins, bool):
    raise TypeError(f"num_bins must be an int, got {num_bins!r}.")
  if num_bins < 1:
    raise ValueError(f"num_bins must be positive, got {num_bins}.")


def empty_sums(num_bins: int = DEFAULT_NUM_BINS) -> CalibrationSums:
  """Sums of zero examples: the identity of ``merge``.

  Host (numpy) zeros: usable as jit inputs and in ``summarize`` without compiling an eager
  device op.
  """
  _check_num_bins(num_bins)
  bins = np.zeros((num_bins,), np.float32)
  scalar = np.zeros((), np.float32)
  return CalibrationSums(bins, bins, bins, scalar, scalar, scalar, scalar)


def zeros_like_sums(sums: CalibrationSums) -> CalibrationSums:
  """Zero sums with the same structure (number of bins) as ``sums``."""
  return jax.tree.map(jnp.zeros_like, sums)


def merge(a: CalibrationSums, b: CalibrationSums) -> CalibrationSums:
  """Sums of the union of two disjoint sets of examples."""
  return jax.tree.map(jnp.add, a, b)


@functools.lru_cache(maxsize=None)
def _float32_bin_edges(num_bins: int) -> np.ndarray:
  """Interior edges rounded up to float32: [M − 1], e_b = min{f float32 : f ≥ b/M}.

  Computed on the host with ``fractions.Fraction``, so the comparison with b/M is exact.
  For float32 c, ``c >= e_b`` if and only if c ≥ b/M. The returned array is read-only
  (it is cached per M).
  """
  _check_num_bins(num_bins)
  edges = []
  for b in range(1, num_bins):
    edge = fractions.Fraction(b, num_bins)
    # float32(float64(b/M)) is within an ulp or two of the edge (two roundings); step to
    # the exact answer from there.
    e = np.float32(b / num_bins)
    while fractions.Fraction(float(e)) < edge:
      e = np.nextafter(e, np.float32(np.inf))
    below = np.nextafter(e, np.float32(-np.inf))
    while fractions.Fraction(float(below)) >= edge:
      e, below = below, np.nextafter(below, np.float32(-np.inf))
    edges.append(e)
  edges = np.asarray(edges, np.float32)
  edges.flags.writeable = False
  return edges


def bin_indices(
    confidences: jax.Array,
    *,
    num_bins: int = DEFAULT_NUM_BINS,
    reference_binning: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """Bin of each confidence, see the module docstring for the boundary rules.

    index_i = #{b ∈ 1..M − 1 : e_b ≤ c_i},   e_b = smallest float32 ≥ b/M,

  which is the exact-arithmetic bin of the float32 value c_i (``floor(c_i · M)`` computed
  exactly), clipped to [0, M − 1].

  Args:
    confidences: float [B] in [0, 1]; converted to float32 first.
    num_bins: M, a static Python int.
    reference_binning: if True, bins are [b/M, (b+1)/M) and c >= 1 is in no bin.

  Returns:
    index: int32 [B] in [0, M − 1]; NaN goes to bin 0.
    in_bin: bool [B]; False only for c >= 1 under ``reference_binning``.
  """
  _check_num_bins(num_bins)
  c = jnp.asarray(confidences, jnp.float32)
  edges = _float32_bin_edges(int(num_bins))
  # Counting the edges at or below c is searchsorted(edges, c, side="right"); with
  # M − 1 ≤ a few dozen edges the [B, M − 1] comparison is as cheap and plainly exact.
  # The count is in [0, M − 1] by construction, which is the clipping.
  index = jnp.sum(c[..., None] >= edges, axis=-1, dtype=jnp.int32)
  if reference_binning:
    # The upper edge M/M = 1 is exact in float32, so c < 1 is exactly "below the last
    # bin's open upper edge".
    in_bin = c < 1.0
  else:
    in_bin = jnp.ones(c.shape, bool)
  return index, in_bin


def _binned_sums(
    confidences: jax.Array,
    correct: jax.Array,
    mask: jax.Array | None,
    *,
    num_bins: int,
    reference_binning: bool,
) -> CalibrationSums:
  """Sums of the confidence-only statistics; ``nll`` and ``brier`` are left at 0."""
  c = jnp.asarray(confidences, jnp.float32)
  a = jnp.asarray(correct).astype(jnp.float32)
  if c.ndim != 1 or a.shape != c.shape:
    raise ValueError(
        f"confidences and correct must both be [B], got {c.shape} and {a.shape}."
    )
  valid = jnp.ones(c.shape, bool) if mask is None else jnp.asarray(mask, bool)
  index, in_bin = bin_indices(
      c, num_bins=num_bins, reference_binning=reference_binning
  )
  binned = valid & in_bin

  # `where`, not multiplication by the mask: padded rows may hold NaN or inf, and
  # 0 · NaN would leak into the sums.
  def bin_sum(values):
    return jax.ops.segment_sum(
        jnp.where(binned, values, 0.0), index, num_segments=num_bins
    )

  return CalibrationSums(
      bin_count=bin_sum(jnp.ones_like(c)),
      bin_confidence=bin_sum(c),
      bin_correct=bin_sum(a),
      count=jnp.sum(valid, dtype=jnp.float32),
      correct=jnp.sum(jnp.where(valid, a, 0.0)),
      nll=jnp.zeros((), jnp.float32),
      brier=jnp.zeros((), jnp.float32),
  )


# Compiled as a whole so that eager callers (e.g. a host-side evaluation loop) pay one
# dispatch per batch instead of one per primitive; inside an outer jit this is inlined.
@functools.partial(jax.jit, static_argnames=("num_bins", "reference_binning"))
def calibration_sums(
    logits: jax.Array,
    labels: jax.Array,
    mask: jax.Array | None = None,
    *,
    num_bins: int = DEFAULT_NUM_BINS,
    reference_binning: bool = False,
) -> CalibrationSums:
  """Sums of one batch of predictions.

  Args:
    logits: float [B, K] unnormalised log-probabilities (computed in float32).
    labels: int [B] in [0, K).
    mask: bool [B] or None; rows with False contribute nothing, whatever their values.
    num_bins: M, number of equal-width confidence bins.
    reference_binning: drop c = 1.0 from the bins, see the module docstring.

  Returns:
    ``CalibrationSums`` with [M] bin leaves and scalar totals.

  Jit-compiled, with ``num_bins`` and ``reference_binning`` static.
  """
  logits = jnp.asarray(logits, jnp.float32)
  labels = jnp.asarray(labels)
  if logits.ndim != 2 or labels.shape != logits.shape[:1]:
    raise ValueError(
        f"Expected logits [B, K] and labels [B], got {logits.shape} and {labels.shape}."
    )
  # log_softmax keeps −log p finite where exp(logits) would underflow or overflow.
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  probs = jnp.exp(log_probs)
  confidences = jnp.max(probs, axis=-1)
  correct = jnp.argmax(probs, axis=-1) == labels
  label_log_prob = jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
  one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
  brier = jnp.sum(jnp.square(probs - one_hot), axis=-1)

  sums = _binned_sums(
      confidences,
      correct,
      mask,
      num_bins=num_bins,
      reference_binning=reference_binning,
  )
  valid = jnp.ones(labels.shape, bool) if mask is None else jnp.asarray(mask, bool)
  return sums._replace(
      nll=jnp.sum(jnp.where(valid, -label_log_prob, 0.0)),
      brier=jnp.sum(jnp.where(valid, brier, 0.0)),
  )


def _namespace(sums: CalibrationSums) -> Any:
  """numpy for host arrays (no device round trip when logging), else jax.numpy."""
  host_types = (np.ndarray, np.generic, float, int)
  if all(isinstance(leaf, host_types) for leaf in jax.tree.leaves(sums)):
    return np
  return jnp


def _safe_divide(numerator, denominator, xp):
  """numerator / denominator, and 0 where the denominator is 0 (no NaN, no warning)."""
  positive = denominator > 0
  return xp.where(positive, numerator / xp.where(positive, denominator, 1), 0)


def _bin_means(sums: CalibrationSums, xp) -> tuple[Any, Any]:
  """acc_b and conf_b, [M] each, 0 for empty bins."""
  accuracy = _safe_divide(sums.bin_correct, sums.bin_count, xp)
  confidence = _safe_divide(sums.bin_confidence, sums.bin_count, xp)
  return accuracy, confidence


def calibration_errors(sums: CalibrationSums) -> dict[str, Any]:
  """ECE, MCE and OE (fractions in [0, 1]) from the bin sums; 0 if no example is binned."""
  xp = _namespace(sums)
  accuracy, confidence = _bin_means(sums, xp)
  weight = _safe_divide(sums.bin_count, xp.sum(sums.bin_count), xp)  # n_b / N
  gap = confidence - accuracy
  return {
      "ece": xp.sum(weight * xp.abs(gap)),
      "mce": xp.max(xp.abs(gap)),
      "oe": xp.sum(weight * confidence * xp.maximum(gap, 0)),
  }


def summarize(sums: CalibrationSums) -> dict[str, Any]:
  """All metrics from the sums; host numpy sums give numpy scalars, jax sums jax scalars.

  Returns:
    dict with ``accuracy``, ``nll``, ``brier``, ``ece``, ``mce``, ``oe`` (means over the
    examples; accuracy / ECE / MCE / OE are fractions, ×100 for percent) and ``count``.
  """
  xp = _namespace(sums)
  return {
      "accuracy": _safe_divide(sums.correct, sums.count, xp),
      "nll": _safe_divide(sums.nll, sums.count, xp),
      "brier": _safe_divide(sums.brier, sums.count, xp),
      **calibration_errors(sums),
      "count": sums.count,
  }


def reliability_diagram_data(sums: CalibrationSums) -> dict[str, np.ndarray]:
  """Per-bin host arrays for a reliability diagram, each [M].

  Keys: ``bin_lower``, ``bin_upper``, ``bin_center`` (edges b/M, (b+1)/M and their
  midpoint), ``count`` (n_b), ``accuracy`` (acc_b) and ``confidence`` (conf_b); the
  last two are 0 for empty bins.
  """
  host = jax.tree.map(np.asarray, jax.device_get(sums))
  accuracy, confidence = _bin_means(host, np)
  edges = np.arange(host.num_bins + 1) / host.num_bins
  return {
      "bin_lower": edges[:-1],
      "bin_upper": edges[1:],
      "bin_center": (edges[:-1] + edges[1:]) / 2,
      "count": host.bin_count,
      "accuracy": accuracy,
      "confidence": confidence,
  }


@functools.partial(jax.jit, static_argnames=("num_bins", "reference_binning"))
def _confidence_calibration_errors(
    confidences, correct, mask, *, num_bins, reference_binning
) -> dict[str, Any]:
  sums = _binned_sums(
      confidences,
      correct,
      mask,
      num_bins=num_bins,
      reference_binning=reference_binning,
  )
  return calibration_errors(sums)


def expected_calibration_error(
    confidences: jax.Array,
    correct: jax.Array,
    mask: jax.Array | None = None,
    *,
    num_bins: int = DEFAULT_NUM_BINS,
    reference_binning: bool = False,
) -> jax.Array:
  """ECE of confidences c [B] in [0, 1] and 0/1 (or bool) correctness [B]."""
  return _confidence_calibration_errors(
      confidences,
      correct,
      mask,
      num_bins=num_bins,
      reference_binning=reference_binning,
  )["ece"]


def maximum_calibration_error(
    confidences: jax.Array,
    correct: jax.Array,
    mask: jax.Array | None = None,
    *,
    num_bins: int = DEFAULT_NUM_BINS,
    reference_binning: bool = False,
) -> jax.Array:
  """MCE of confidences c [B] in [0, 1] and 0/1 (or bool) correctness [B]."""
  return _confidence_calibration_errors(
      confidences,
      correct,
      mask,
      num_bins=num_bins,
      reference_binning=reference_binning,
  )["mce"]


def overconfidence_error(
    confidences: jax.Array,
    correct: jax.Array,
    mask: jax.Array | None = None,
    *,
    num_bins: int = DEFAULT_NUM_BINS,
    reference_binning: bool = False,
) -> jax.Array:
  """OE of confidences c [B] in [0, 1] and 0/1 (or bool) correctness [B]."""
  return _confidence_calibration_errors(
      confidences,
      correct,
      mask,
      num_bins=num_bins,
      reference_binning=reference_binning,
  )["oe"]
