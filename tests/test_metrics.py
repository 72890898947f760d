"""Tests for jaxsel.metrics: hand-computed fixtures, boundaries, merging and an oracle."""

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import metrics

METRIC_KEYS = ("accuracy", "nll", "brier", "ece", "mce", "oe", "count")


def _logits(probs):
  """Logits whose softmax is ``probs`` (up to float32 rounding)."""
  return jnp.log(jnp.asarray(probs, jnp.float32))


def _summary(logits, labels, mask=None, **kwargs):
  sums = metrics.calibration_sums(logits, labels, mask, **kwargs)
  return {k: float(v) for k, v in metrics.summarize(sums).items()}


def _assert_summary(actual, expected, atol=1e-6):
  for key, value in expected.items():
    np.testing.assert_allclose(actual[key], value, atol=atol, rtol=0, err_msg=key)


# Four examples, K = 3.
#   i  p_i                 y  c     ŷ  correct
#   0  (0.90, 0.05, 0.05)  0  0.90  0  1
#   1  (0.10, 0.85, 0.05)  0  0.85  1  0
#   2  (0.30, 0.50, 0.20)  1  0.50  1  1
#   3  (0.25, 0.45, 0.30)  2  0.45  1  0
PROBS_A = [
    [0.90, 0.05, 0.05],
    [0.10, 0.85, 0.05],
    [0.30, 0.50, 0.20],
    [0.25, 0.45, 0.30],
]
LABELS_A = [0, 0, 1, 2]
# accuracy = 2/4 = 0.5
# NLL = −(log 0.9 + log 0.1 + log 0.5 + log 0.3) / 4
#     = (0.1053605 + 2.3025851 + 0.6931472 + 1.2039728) / 4 = 1.0762664
# Brier, summed over classes:
#   0: 0.1² + 0.05² + 0.05²  = 0.01 + 0.0025 + 0.0025  = 0.015
#   1: 0.9² + 0.85² + 0.05²  = 0.81 + 0.7225 + 0.0025  = 1.535
#   2: 0.3² + 0.5² + 0.2²    = 0.09 + 0.25 + 0.04      = 0.38
#   3: 0.25² + 0.45² + 0.7²  = 0.0625 + 0.2025 + 0.49  = 0.755
#   mean = 2.685 / 4 = 0.67125
COMMON_A = {"accuracy": 0.5, "nll": 1.0762664, "brier": 0.67125, "count": 4.0}


def test_hand_computed_five_bins():
  # M = 5, width 0.2: c = 0.90, 0.85 -> bin 4; c = 0.50, 0.45 -> bin 2.
  #   bin 4: n = 2, acc = 1/2 = 0.5, conf = (0.9 + 0.85)/2 = 0.875, gap 0.375 (over)
  #   bin 2: n = 2, acc = 1/2 = 0.5, conf = (0.5 + 0.45)/2 = 0.475, gap 0.025 (under)
  # ECE = 2/4 · 0.375 + 2/4 · 0.025 = 0.1875 + 0.0125 = 0.2
  # MCE = max(0.375, 0.025) = 0.375
  # OE  = 2/4 · 0.875 · 0.375 + 2/4 · 0.475 · 0 = 0.1640625
  summary = _summary(_logits(PROBS_A), jnp.asarray(LABELS_A), num_bins=5)
  _assert_summary(summary, {**COMMON_A, "ece": 0.2, "mce": 0.375, "oe": 0.1640625})


def test_hand_computed_default_bins():
  # M = 15: c·15 = 13.5, 12.75, 7.5, 6.75 -> bins 13, 12, 7, 6, one example each, so
  # each gap is |a_i − c_i| = 0.10, 0.85, 0.50, 0.45.
  # ECE = (0.10 + 0.85 + 0.50 + 0.45) / 4 = 1.9 / 4 = 0.475
  # MCE = 0.85
  # OE  = (0.85 · 0.85 + 0.45 · 0.45) / 4 = (0.7225 + 0.2025) / 4 = 0.23125
  sums = metrics.calibration_sums(_logits(PROBS_A), jnp.asarray(LABELS_A))
  summary = {k: float(v) for k, v in metrics.summarize(sums).items()}
  _assert_summary(summary, {**COMMON_A, "ece": 0.475, "mce": 0.85, "oe": 0.23125})
  expected_count = np.zeros(15)
  expected_count[[6, 7, 12, 13]] = 1
  np.testing.assert_array_equal(sums.bin_count, expected_count)
  np.testing.assert_array_equal(np.nonzero(sums.bin_correct)[0], [7, 13])


# Two examples with confidence exactly 1.0: a logit margin of 200 makes the other
# probabilities exp(−200) ≈ 1e−87, which underflows to 0 in float32, so c = 1.0.
#   i  c    y  ŷ  correct
#   0  1.0  0  0  1
#   1  1.0  1  0  0
#   2  0.7  0  0  1
#   3  0.7  0  1  0
LOGITS_ONE = jnp.concatenate([
    jnp.asarray([[0.0, -200.0, -200.0], [0.0, -200.0, -200.0]]),
    _logits([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1]]),
])
LABELS_ONE = jnp.asarray([0, 1, 0, 0])


def test_confidence_one_is_exactly_one():
  probs = jax.nn.softmax(LOGITS_ONE[:2])
  np.testing.assert_array_equal(probs.max(axis=-1), [1.0, 1.0])


def test_confidence_one_counted_in_last_bin_by_default():
  # c·15 = 15 -> clipped to bin 14; c = 0.7 -> 10.5 -> bin 10.
  #   bin 14: n = 2, acc = 0.5, conf = 1.0, gap 0.5
  #   bin 10: n = 2, acc = 0.5, conf = 0.7, gap 0.2
  # ECE = 0.5 · 0.5 + 0.5 · 0.2 = 0.35; MCE = 0.5
  # OE  = 0.5 · 1.0 · 0.5 + 0.5 · 0.7 · 0.2 = 0.25 + 0.07 = 0.32
  sums = metrics.calibration_sums(LOGITS_ONE, LABELS_ONE)
  summary = {k: float(v) for k, v in metrics.summarize(sums).items()}
  _assert_summary(
      summary,
      {"ece": 0.35, "mce": 0.5, "oe": 0.32, "accuracy": 0.5, "count": 4.0},
  )
  assert float(sums.bin_count[14]) == 2.0
  assert float(sums.bin_count.sum()) == 4.0


def test_confidence_one_dropped_under_reference_binning():
  # Both c = 1.0 examples fall in no bin; only bin 10 remains, N = 2:
  # ECE = 1 · 0.2 = 0.2; MCE = 0.2; OE = 1 · 0.7 · 0.2 = 0.14.
  # Accuracy still counts all four examples: 2/4.
  sums = metrics.calibration_sums(LOGITS_ONE, LABELS_ONE, reference_binning=True)
  summary = {k: float(v) for k, v in metrics.summarize(sums).items()}
  _assert_summary(
      summary,
      {"ece": 0.2, "mce": 0.2, "oe": 0.14, "accuracy": 0.5, "count": 4.0},
  )
  assert float(sums.bin_count[14]) == 0.0
  assert float(sums.bin_count.sum()) == 2.0
  # NLL and Brier do not depend on binning.
  default = metrics.summarize(metrics.calibration_sums(LOGITS_ONE, LABELS_ONE))
  for key in ("nll", "brier"):
    np.testing.assert_allclose(summary[key], default[key], rtol=1e-7)


def test_direct_api_confidence_one_and_zero():
  conf = jnp.asarray([1.0, 0.0, 0.5])
  correct = jnp.asarray([False, True, True])
  # Default: bins 14, 0, 7 with gaps 1, 1, 0.5 -> ECE = 2.5 / 3; MCE = 1.
  np.testing.assert_allclose(
      metrics.expected_calibration_error(conf, correct), 2.5 / 3, atol=1e-6
  )
  np.testing.assert_allclose(metrics.maximum_calibration_error(conf, correct), 1.0)
  # OE: only bin 14 is over-confident: 1/3 · 1.0 · 1.0.
  np.testing.assert_allclose(
      metrics.overconfidence_error(conf, correct), 1 / 3, atol=1e-6
  )
  # Reference: c = 1.0 dropped; bins 0 and 7 with N = 2 -> ECE = 1.5 / 2; OE = 0.
  np.testing.assert_allclose(
      metrics.expected_calibration_error(conf, correct, reference_binning=True),
      0.75,
      atol=1e-6,
  )
  np.testing.assert_allclose(
      metrics.overconfidence_error(conf, correct, reference_binning=True), 0.0
  )


def test_bin_indices_boundaries():
  below_one = np.nextafter(np.float32(1), np.float32(0))
  conf = jnp.asarray([0.0, 1 / 15, 0.5, below_one, 1.0], jnp.float32)
  index, in_bin = metrics.bin_indices(conf)
  # float32(1/15) = 0.0666666701... > 1/15, so it is in bin 1 (not 0).
  np.testing.assert_array_equal(index, [0, 1, 7, 14, 14])
  np.testing.assert_array_equal(in_bin, [True] * 5)
  index, in_bin = metrics.bin_indices(conf, reference_binning=True)
  np.testing.assert_array_equal(index, [0, 1, 7, 14, 14])
  np.testing.assert_array_equal(in_bin, [True, True, True, True, False])


def test_bin_indices_every_default_edge_lands_in_its_bin():
  # Each float32 value nearest b/15 is in bin b, and every float32 within 1000 ulps of
  # an edge gets the exact-arithmetic bin (float32 · 15 is exact in float64).
  edges = np.float32(np.arange(16) / 15)
  index, _ = metrics.bin_indices(jnp.asarray(edges[:15]))
  np.testing.assert_array_equal(index, np.arange(15))
  bits = edges.view(np.int32)[:, None] + np.arange(-1000, 1000, dtype=np.int32)
  conf = bits.ravel().view(np.float32)
  conf = conf[(conf >= 0) & (conf <= 1)]
  exact = np.minimum(np.floor(conf.astype(np.float64) * 15), 14).astype(np.int32)
  index, _ = metrics.bin_indices(jnp.asarray(conf))
  np.testing.assert_array_equal(index, exact)


def test_bin_indices_float32_point_seven_with_ten_bins():
  # float32(0.7) = 0.699999988079071 < 7/10, so it is in bin 6; the next float32,
  # 0.700000047683716, is the first one ≥ 7/10 and is in bin 7. The float32 product
  # 0.699999988 · 10 rounds to 7.0, which is why floor(c · M) in float32 gets this wrong.
  point_seven = np.float32(0.7)
  above = np.nextafter(point_seven, np.float32(1))
  assert Fraction(float(point_seven)) < Fraction(7, 10) <= Fraction(float(above))
  assert point_seven * np.float32(10) == np.float32(7)
  for reference_binning in (False, True):
    index, in_bin = metrics.bin_indices(jnp.asarray([point_seven, above]), num_bins=10,
                                        reference_binning=reference_binning)
    np.testing.assert_array_equal(index, [6, 7])
    np.testing.assert_array_equal(in_bin, [True, True])


@pytest.mark.parametrize("num_bins", [10, 15, 20, 7])
def test_bin_indices_agree_with_exact_arithmetic_near_every_edge(num_bins):
  # Every float32 within ±50 ulps of every interior edge b/M gets floor(c · M) computed
  # with exact rationals. For M = 10 and 20 the float32 product gets 2 and 7 of these
  # wrong (measured), so this fixture does exercise the fix.
  nearest = np.float32(np.arange(1, num_bins) / num_bins)
  bits = nearest.view(np.int32)[:, None] + np.arange(-50, 51, dtype=np.int32)
  conf = bits.ravel().view(np.float32)
  exact = [int(Fraction(float(c)) * num_bins) for c in conf]  # int() floors a c ≥ 0
  index, _ = metrics.bin_indices(jnp.asarray(conf), num_bins=num_bins)
  np.testing.assert_array_equal(index, exact)


def test_bin_indices_one_bin_and_out_of_range():
  # M = 1 has no interior edge; everything is bin 0. Values outside [0, 1] are clipped.
  conf = jnp.asarray([-0.5, 0.0, 0.3, 1.0, 1.5], jnp.float32)
  index, _ = metrics.bin_indices(conf, num_bins=1)
  np.testing.assert_array_equal(index, [0, 0, 0, 0, 0])
  index, in_bin = metrics.bin_indices(conf, num_bins=4, reference_binning=True)
  np.testing.assert_array_equal(index, [0, 0, 1, 3, 3])
  np.testing.assert_array_equal(in_bin, [True, True, True, False, False])


def test_bin_indices_under_jit():
  bins = jax.jit(lambda c: metrics.bin_indices(c, num_bins=10)[0])
  point_seven = np.float32(0.7)
  conf = jnp.asarray([0.0, point_seven, np.nextafter(point_seven, np.float32(1)), 1.0])
  np.testing.assert_array_equal(bins(conf), [0, 6, 7, 9])


def test_empty_bins_are_finite_and_zero():
  sums = metrics.calibration_sums(_logits(PROBS_A), jnp.asarray(LABELS_A))
  data = metrics.reliability_diagram_data(sums)
  for key, value in data.items():
    assert np.all(np.isfinite(value)), key
  empty = data["count"] == 0
  assert empty.sum() == 11
  np.testing.assert_array_equal(data["accuracy"][empty], 0.0)
  np.testing.assert_array_equal(data["confidence"][empty], 0.0)
  np.testing.assert_allclose(data["bin_lower"][1], 1 / 15)
  np.testing.assert_allclose(data["bin_upper"][-1], 1.0)
  np.testing.assert_allclose(data["bin_center"][0], 1 / 30)
  np.testing.assert_allclose(data["confidence"][13], 0.9, atol=1e-6)
  np.testing.assert_array_equal(data["accuracy"][[12, 13]], [0.0, 1.0])


def test_zero_examples_give_zero():
  all_masked = metrics.calibration_sums(
      _logits(PROBS_A), jnp.asarray(LABELS_A), jnp.zeros(4, bool)
  )
  no_rows = metrics.calibration_sums(
      jnp.zeros((0, 3)), jnp.zeros((0,), jnp.int32)
  )
  for sums in (metrics.empty_sums(), all_masked, no_rows):
    summary = metrics.summarize(sums)
    assert set(summary) == set(METRIC_KEYS)
    for key, value in summary.items():
      assert float(value) == 0.0, key
  assert float(metrics.expected_calibration_error(jnp.zeros(0), jnp.zeros(0))) == 0.0
  assert float(metrics.maximum_calibration_error(jnp.zeros(0), jnp.zeros(0))) == 0.0
  assert float(metrics.overconfidence_error(jnp.zeros(0), jnp.zeros(0))) == 0.0


def test_summarize_on_host_numpy():
  sums = metrics.calibration_sums(_logits(PROBS_A), jnp.asarray(LABELS_A), num_bins=5)
  host = jax.tree.map(np.asarray, jax.device_get(sums))
  summary = metrics.summarize(host)
  for key, value in summary.items():
    assert not isinstance(value, jax.Array), key
  _assert_summary(summary, {**COMMON_A, "ece": 0.2, "mce": 0.375, "oe": 0.1640625})
  zero = metrics.summarize(jax.tree.map(np.asarray, metrics.empty_sums()))
  assert all(float(v) == 0.0 for v in zero.values())


def test_perfectly_calibrated_toy():
  # K = 2. Bin 11 (c = 0.75): four examples, three correct -> acc 0.75 = conf.
  # Bin 7 (c = 0.5, a tie; argmax takes class 0): two examples, one correct.
  probs = [[0.75, 0.25]] * 4 + [[0.5, 0.5]] * 2
  labels = jnp.asarray([0, 0, 0, 1, 0, 1])
  summary = _summary(_logits(probs), labels)
  _assert_summary(summary, {"ece": 0.0, "mce": 0.0, "oe": 0.0, "accuracy": 4 / 6})
  conf = jnp.asarray([0.75] * 4 + [0.5] * 2)
  correct = jnp.asarray([1, 1, 1, 0, 1, 0])
  assert float(metrics.expected_calibration_error(conf, correct)) == 0.0


def _random_batch(seed, batch=1000, num_classes=10):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(batch, num_classes)) * rng.uniform(0.1, 6, size=(batch, 1))
  # Some rows with confidence exactly 1.0, where the two binning modes differ.
  saturated = rng.choice(batch, size=batch // 20, replace=False)
  logits[saturated] = -50.0
  logits[saturated, rng.integers(num_classes, size=saturated.size)] = 0.0
  labels = rng.integers(num_classes, size=batch)
  return jnp.asarray(logits, jnp.float32), jnp.asarray(labels, jnp.int32)


def test_merge_of_halves_equals_whole():
  logits, labels = _random_batch(0)
  whole = metrics.calibration_sums(logits, labels)
  first = metrics.calibration_sums(logits[:400], labels[:400])
  second = metrics.calibration_sums(logits[400:], labels[400:])
  merged = metrics.merge(first, second)
  tree_added = jax.tree.map(jnp.add, first, second)
  expected = metrics.summarize(whole)
  for candidate in (merged, tree_added):
    summary = metrics.summarize(candidate)
    for key in METRIC_KEYS:
      np.testing.assert_allclose(summary[key], expected[key], atol=1e-6, err_msg=key)
  np.testing.assert_array_equal(merged.bin_count, whole.bin_count)
  # Merging with the identity changes nothing.
  same = metrics.merge(whole, metrics.zeros_like_sums(whole))
  jax.tree.map(np.testing.assert_array_equal, same, whole)


def test_masked_rows_contribute_nothing():
  logits, labels = _random_batch(1, batch=64)
  mask = np.random.default_rng(2).uniform(size=64) < 0.6
  # Garbage in the padded rows must not leak (0 · NaN would).
  padded_logits = jnp.where(jnp.asarray(mask)[:, None], logits, jnp.nan)
  padded_labels = jnp.where(jnp.asarray(mask), labels, -1)
  for reference_binning in (False, True):
    kwargs = dict(num_bins=15, reference_binning=reference_binning)
    masked = metrics.calibration_sums(
        padded_logits, padded_labels, jnp.asarray(mask), **kwargs
    )
    real = metrics.calibration_sums(logits[mask], labels[mask], **kwargs)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
        masked,
        real,
    )
    assert float(masked.count) == mask.sum()


def _oracle(logits, labels, num_bins, reference_binning):
  """Straightforward float64 loop over examples and bins."""
  logits = np.asarray(logits, np.float64)
  labels = np.asarray(labels)
  shifted = logits - logits.max(axis=1, keepdims=True)
  probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
  conf = probs.max(axis=1)
  correct = (probs.argmax(axis=1) == labels).astype(np.float64)
  n = len(labels)
  nll = brier = 0.0
  for i in range(n):
    nll -= np.log(probs[i, labels[i]])
    for k in range(probs.shape[1]):
      brier += (probs[i, k] - (k == labels[i])) ** 2
  ece = mce = oe = 0.0
  binned = 0
  bins = []
  for b in range(num_bins):
    lower, upper = b / num_bins, (b + 1) / num_bins
    members = [
        i
        for i in range(n)
        if lower <= conf[i] < upper
        or (not reference_binning and b == num_bins - 1 and conf[i] == 1.0)
    ]
    if members:
      acc_b = sum(correct[i] for i in members) / len(members)
      conf_b = sum(conf[i] for i in members) / len(members)
      bins.append((len(members), acc_b, conf_b))
      binned += len(members)
  for n_b, acc_b, conf_b in bins:
    ece += n_b / binned * abs(acc_b - conf_b)
    mce = max(mce, abs(acc_b - conf_b))
    oe += n_b / binned * conf_b * max(conf_b - acc_b, 0.0)
  return {
      "accuracy": correct.mean(),
      "nll": nll / n,
      "brier": brier / n,
      "ece": ece,
      "mce": mce,
      "oe": oe,
      "count": n,
  }


@pytest.mark.parametrize("reference_binning", [False, True])
@pytest.mark.parametrize("num_bins", [15, 10])
def test_agrees_with_numpy_oracle(reference_binning, num_bins):
  logits, labels = _random_batch(3 + num_bins)
  summary = _summary(
      logits, labels, num_bins=num_bins, reference_binning=reference_binning
  )
  expected = _oracle(logits, labels, num_bins, reference_binning)
  for key in METRIC_KEYS:
    np.testing.assert_allclose(
        summary[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key
    )


def test_binning_modes_differ_on_random_data():
  # Guards the oracle test: the saturated rows must actually change the result.
  logits, labels = _random_batch(18)
  default = _summary(logits, labels)
  reference = _summary(logits, labels, reference_binning=True)
  assert abs(default["ece"] - reference["ece"]) > 1e-3


def test_works_under_jit():
  logits, labels = _random_batch(4, batch=128)
  mask = jnp.arange(128) < 100

  @jax.jit
  def evaluate(logits, labels, mask):
    sums = metrics.calibration_sums(logits, labels, mask, reference_binning=True)
    return metrics.summarize(metrics.merge(sums, metrics.empty_sums()))

  jitted = evaluate(logits, labels, mask)
  eager = metrics.summarize(
      metrics.calibration_sums(logits, labels, mask, reference_binning=True)
  )
  for key in METRIC_KEYS:
    np.testing.assert_allclose(jitted[key], eager[key], rtol=1e-6, atol=1e-7)

  ece = jax.jit(metrics.expected_calibration_error, static_argnames="num_bins")
  conf = jnp.asarray([0.9, 0.85, 0.5, 0.45])
  correct = jnp.asarray([1, 0, 1, 0])
  np.testing.assert_allclose(ece(conf, correct, num_bins=5), 0.2, atol=1e-6)


def test_invalid_arguments():
  with pytest.raises(ValueError):
    metrics.empty_sums(0)
  with pytest.raises(TypeError):
    metrics.empty_sums(15.0)
  with pytest.raises(ValueError):
    metrics.calibration_sums(jnp.zeros((4,)), jnp.zeros((4,), jnp.int32))
  with pytest.raises(ValueError):
    metrics.expected_calibration_error(jnp.zeros(3), jnp.zeros(4))
