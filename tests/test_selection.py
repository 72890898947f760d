"""Tests for jaxsel.selection: hand fixtures, seeded tie-breaks, a numpy oracle, diagnostics."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import selection

KEY = jax.random.key(0)


def _select(selector, scores, k, key=KEY):
  return np.asarray(selector(key, jnp.asarray(scores, jnp.float32), k=k))


# --- top_k -------------------------------------------------------------------------------


def test_top_k_hand_fixture():
  scores = [0.1, 0.9, 0.5, 0.9, 0.2]
  two = _select(selection.top_k, scores, 2)
  assert two.dtype == np.int32 and two.shape == (2,)
  assert set(two) == {1, 3}
  three = _select(selection.top_k, scores, 3)
  assert set(three[:2]) == {1, 3} and three[2] == 2


def test_top_k_nan_is_lowest_priority_and_signed_zeros_tie():
  # Descending: 0.5 (3), then 0.0 and -0.0 (1, 4) tied, then -inf (2), then NaN (0).
  scores = [np.nan, 0.0, -np.inf, 0.5, -0.0]
  order = _select(selection.top_k, scores, 5)
  assert order[0] == 3 and set(order[1:3]) == {1, 4}
  np.testing.assert_array_equal(order[3:], [2, 0])


def test_ties_same_key_same_subset_different_keys_differ():
  scores = np.zeros(20)
  keys = jax.random.split(jax.random.key(1), 8)
  subsets = [_select(selection.top_k, scores, 5, key=k) for k in keys]
  np.testing.assert_array_equal(_select(selection.top_k, scores, 5, key=keys[0]), subsets[0])
  assert len({frozenset(s.tolist()) for s in subsets}) > 1


def test_ties_are_broken_only_within_a_score_level():
  # One top candidate (6), then three tied at 1.0; k = 3 takes 6 and two of {0, 1, 2}.
  scores = np.asarray([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0] + [-1.0] * 13)
  picked = set()
  for key in jax.random.split(jax.random.key(2), 8):
    subset = _select(selection.top_k, scores, 5, key=key)
    assert subset[0] == 6
    assert set(subset[1:4]) == {0, 1, 2}
    assert set(subset[4:]) <= {3, 4, 5}
    picked.add(int(subset[4]))
  assert len(picked) > 1  # which 0.0 comes fifth depends on the key


@pytest.mark.parametrize("k", [1, 7, 50])
def test_top_k_agrees_with_numpy_oracle(k):
  scores = np.random.default_rng(k).normal(size=50).astype(np.float32)
  assert len(np.unique(scores)) == 50  # tie-free, so the order is unique
  expected = np.argsort(-scores, kind="stable")[:k]
  np.testing.assert_array_equal(_select(selection.top_k, scores, k), expected)


def test_invalid_k_raises():
  for k in (0, 6):
    with pytest.raises(ValueError, match=r"k must be in \[1, 5\]"):
      selection.top_k(KEY, jnp.zeros(5), k=k)


# --- uniform -----------------------------------------------------------------------------


def test_uniform_hand_fixture():
  # Descending order: 0.9 (1), 0.8 (6), 0.7 (3), 0.6 (8), 0.5 (4), 0.4 (9), 0.3 (0),
  # 0.2 (7), 0.1 (2), 0.0 (5). M = 10, k = 3 -> q = 3 -> ranks 0, 3, 6 -> positions 1, 8, 0.
  # Ranks 7-9 (positions 7, 2, 5) are never selected, as in the reference.
  scores = [0.3, 0.9, 0.1, 0.7, 0.5, 0.0, 0.8, 0.2, 0.6, 0.4]
  np.testing.assert_array_equal(_select(selection.uniform, scores, 3), [1, 8, 0])


def test_uniform_takes_every_tenth_rank_of_45000():
  scores = np.random.default_rng(0).permutation(45000).astype(np.float32)
  order = np.argsort(-scores, kind="stable")
  subset = _select(selection.uniform, scores, 4500)
  np.testing.assert_array_equal(subset, order[::10])


# --- random_subset -----------------------------------------------------------------------


def test_random_subset_distinct_in_range_and_deterministic_per_key():
  scores = np.zeros(20)
  subset = _select(selection.random_subset, scores, 5)
  assert subset.dtype == np.int32 and len(set(subset.tolist())) == 5
  assert subset.min() >= 0 and subset.max() < 20
  np.testing.assert_array_equal(_select(selection.random_subset, scores, 5), subset)
  # The scores are ignored.
  np.testing.assert_array_equal(_select(selection.random_subset, np.arange(20.0), 5), subset)
  other = _select(selection.random_subset, scores, 5, key=jax.random.key(1))
  assert set(other.tolist()) != set(subset.tolist())


def test_random_subset_is_roughly_uniform():
  # 200 keys, M = 20, k = 5: each position is chosen Binomial(200, 1/4) times,
  # mean 50, standard deviation ~6.1; 50 ± 25 is a four-sigma band.
  keys = jax.random.split(jax.random.key(3), 200)
  subsets = np.asarray(jax.vmap(
      lambda key: selection.random_subset(key, jnp.zeros(20), k=5))(keys))
  assert all(len(set(row)) == 5 for row in subsets.tolist())
  counts = np.bincount(subsets.ravel(), minlength=20)
  assert counts.sum() == 1000
  assert np.all(np.abs(counts - 50) <= 25), counts


# --- registry and subset size ------------------------------------------------------------


def test_get_selector():
  assert selection.get_selector("random") is selection.random_subset
  assert selection.get_selector("top_k") is selection.top_k
  assert selection.get_selector("uniform") is selection.uniform
  with pytest.raises(ValueError) as error:
    selection.get_selector("x")
  assert str(error.value) == "unknown selection.method 'x'; valid: random, top_k, uniform"


def test_subset_size_from_fraction():
  assert selection.subset_size(45000, fraction=0.1) == 4500
  assert selection.subset_size(45000, fraction=1.0) == 45000
  assert selection.subset_size(10, fraction=0.25) == 2  # floor of 2.5
  assert selection.subset_size(45000, fraction=1e-9) == 1  # at least one
  # The reference's int(N · b) floors the float product: 0.29 · 100 = 28.999999999999996.
  assert selection.subset_size(100, fraction=0.29) == int(0.29 * 100) == 28


def test_subset_size_from_count():
  assert selection.subset_size(45000, count=1) == 1
  assert selection.subset_size(45000, count=45000) == 45000
  assert selection.subset_size(45000, count=np.int64(7)) == 7


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, math.nan, True])
def test_subset_size_bad_fraction(fraction):
  with pytest.raises(ValueError, match=r"selection\.subset_fraction must be in \(0, 1\]"):
    selection.subset_size(45000, fraction=fraction)


def test_subset_size_error_messages():
  with pytest.raises(ValueError) as error:
    selection.subset_size(45000, fraction=1.5)
  assert str(error.value) == "selection.subset_fraction must be in (0, 1], got 1.5"
  with pytest.raises(ValueError) as error:
    selection.subset_size(45000, count=50000)
  assert str(error.value) == "selection.subset_size must be in [1, 45000], got 50000"


@pytest.mark.parametrize("count", [0, -3, 45001, 2.5, True])
def test_subset_size_bad_count(count):
  with pytest.raises(ValueError, match=r"selection\.subset_size must be in \[1, 45000\]"):
    selection.subset_size(45000, count=count)


def test_subset_size_needs_exactly_one_of_fraction_and_count():
  for kwargs in ({}, {"fraction": 0.5, "count": 10}):
    with pytest.raises(ValueError, match="exactly one of selection.subset_fraction"):
      selection.subset_size(100, **kwargs)


# --- diagnostics -------------------------------------------------------------------------


def test_class_histogram():
  hist = selection.class_histogram(np.asarray([0, 0, 1, 3]), 4)
  np.testing.assert_allclose(hist, [50.0, 25.0, 0.0, 25.0])
  hist = selection.class_histogram(np.asarray([2, 2, 2]), 3)
  np.testing.assert_allclose(hist, [0.0, 0.0, 100.0])
  np.testing.assert_array_equal(selection.class_histogram(np.asarray([], np.int32), 3),
                                [0.0, 0.0, 0.0])
  with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
    selection.class_histogram(np.asarray([0, 3]), 3)


def test_overlap_percent():
  assert selection.overlap_percent(None, np.asarray([1, 2])) is None
  # {3, 4} of {3, 4, 5} were selected last epoch: 2 / 3.
  assert selection.overlap_percent(np.asarray([1, 2, 3, 4]), np.asarray([3, 4, 5])) == (
      pytest.approx(200 / 3))
  assert selection.overlap_percent(np.asarray([5, 3, 4]), np.asarray([3, 4, 5])) == 100.0
  assert selection.overlap_percent(np.asarray([1, 2]), np.asarray([3, 4])) == 0.0
  # Only |S_e| is the denominator: a larger previous subset does not dilute the overlap.
  assert selection.overlap_percent(np.arange(100), np.asarray([7])) == 100.0
  # Unsorted, repeated current ids count once each: {2, 3} of {2, 3, 9}.
  assert selection.overlap_percent([3, 2], np.asarray([9, 3, 3, 2, 9])) == (
      pytest.approx(200 / 3))
  assert selection.overlap_percent(np.asarray([], np.int32), np.asarray([1])) == 0.0
  assert selection.overlap_percent(np.asarray([1]), np.asarray([], np.int32)) == 0.0


def test_overlap_percent_agrees_with_python_sets():
  rng = np.random.default_rng(4)
  for _ in range(20):
    previous = rng.integers(0, 500, rng.integers(1, 300))
    current = rng.integers(0, 500, rng.integers(1, 300))
    if rng.uniform() < 0.5:
      current = np.unique(current)  # the sorted, unique fast path
    expected = 100.0 * len(set(current) & set(previous)) / len(set(current))
    assert selection.overlap_percent(previous, current) == pytest.approx(expected)


@pytest.mark.parametrize("k", [1, 13, 100, 299])
def test_top_k_with_many_ties_takes_the_top_scores_in_descending_order(k):
  # Five score levels over 300 candidates: the k-th place almost always falls in a tie.
  scores = np.random.default_rng(k).integers(0, 5, size=300).astype(np.float32)
  picked = _select(selection.top_k, scores, k)
  assert len(set(picked.tolist())) == k
  np.testing.assert_array_equal(scores[picked], np.sort(scores)[::-1][:k])
  # The same set as the full-sort ranking would pick, up to which tied ones.
  reference = np.asarray(selection.descending_order(KEY, jnp.asarray(scores)))[:k]
  np.testing.assert_array_equal(np.sort(scores[picked]), np.sort(scores[reference]))


def test_epoch_selection_in_one_compiled_call_matches_the_eager_composition():
  """The jitted key + select + map-to-ids of epoch_selection equals doing each by hand."""
  from jaxsel import epoch_selection  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(3)
  table = jnp.asarray(rng.uniform(size=300), jnp.float32)
  train_ids = jnp.asarray(np.sort(rng.choice(300, size=200, replace=False)), jnp.int32)
  for method in ("top_k", "uniform", "random"):
    for seed, epoch in ((0, 0), (5, 17), (2**31 - 1, 199)):
      key = epoch_selection.selection_key(seed, epoch)
      eager = np.sort(np.asarray(train_ids)[np.asarray(
          selection.get_selector(method)(key, table[train_ids], k=37))])
      jitted = epoch_selection._select_ids_from_table(  # pylint: disable=protected-access
          np.int32(seed), np.int32(epoch), table, train_ids, method=method, k=37)
      np.testing.assert_array_equal(np.asarray(jitted), eager)
      assert len(np.unique(eager)) == 37


@pytest.mark.parametrize("method", sorted(selection.SELECTORS))
@pytest.mark.parametrize("levels", [None, 3])  # continuous scores, or 3 heavily tied levels
def test_unordered_selection_is_the_same_subset(method, levels):
  rng = np.random.default_rng(8)
  scores = rng.uniform(size=500)
  if levels:
    scores = np.floor(scores * levels)
  scores[rng.choice(500, 20, replace=False)] = np.nan
  scores = jnp.asarray(scores, jnp.float32)
  selector = selection.get_selector(method)
  for k in (1, 37, 480, 500):
    key = jax.random.PRNGKey(k)
    ordered = np.asarray(selector(key, scores, k=k))
    unordered = np.asarray(selector(key, scores, k=k, ordered=False))
    np.testing.assert_array_equal(np.sort(unordered), np.sort(ordered))
    assert len(np.unique(unordered)) == k
