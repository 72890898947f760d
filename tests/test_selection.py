"""Tests for jaxsel.selection: hand fixtures, the ranking rule against a Python oracle,
top_k/uniform agreement with descending_order, tie-break ranks, diagnostics."""

import functools
import math

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from jaxsel import selection

KEY = jax.random.key(0)


def _select(selector, scores, k, key=KEY, tie_break=None, ordered=True):
  if tie_break is not None:
    tie_break = jnp.asarray(tie_break)
  return np.asarray(selector(key, jnp.asarray(scores, jnp.float32), k=k, tie_break=tie_break,
                             ordered=ordered))


def _rule_order(scores, tie_break):
  """The ranking rule written out in Python: descending score, NaN after every number
  (-inf included), 0.0 == -0.0 (Python compares them equal), then ascending tie-break."""
  scores = [float(s) for s in scores]
  return np.asarray(sorted(
      range(len(scores)),
      key=lambda i: (math.isnan(scores[i]), 0.0 if math.isnan(scores[i]) else -scores[i],
                     int(tie_break[i]))), np.int32)


# --- tie_break_ranks ---------------------------------------------------------------------


def test_tie_break_ranks_is_a_permutation_fixed_by_the_key():
  ranks = np.asarray(selection.tie_break_ranks(jax.random.key(5), 1000))
  assert ranks.dtype == np.int32 and ranks.shape == (1000,)
  np.testing.assert_array_equal(np.sort(ranks), np.arange(1000))
  assert not np.array_equal(ranks, np.arange(1000))  # shuffled (1 chance in 1000!)
  np.testing.assert_array_equal(selection.tie_break_ranks(jax.random.key(5), 1000), ranks)
  others = [np.asarray(selection.tie_break_ranks(jax.random.key(seed), 1000))
            for seed in range(6, 11)]
  assert all(not np.array_equal(other, ranks) for other in others)
  assert len({other.tobytes() for other in others}) == 5


def test_tie_break_ranks_by_index_is_the_id():
  for key in (jax.random.key(0), jax.random.key(1)):
    ranks = selection.tie_break_ranks(key, 7, by_index=True)
    assert ranks.dtype == jnp.int32
    np.testing.assert_array_equal(ranks, np.arange(7))


def test_tie_break_ranks_needs_an_id():
  with pytest.raises(ValueError, match="num_ids must be at least 1, got 0"):
    selection.tie_break_ranks(KEY, 0)


def test_ranks_of_the_candidates_break_ties_in_every_epoch_alike():
  # The caller's pattern: ranks over all ids once per run, candidates' ranks each epoch.
  # Only the ids' ranks matter, not the candidates' positions or the epoch key.
  ranks = np.asarray(selection.tie_break_ranks(jax.random.key(9), 50))
  candidate_ids = np.asarray([3, 17, 40, 8, 25, 11])
  scores = np.asarray([1.0, 0.0, 0.0, 0.0, 0.0, 2.0])
  expected_ids = [11, 3] + sorted([17, 40, 8, 25], key=lambda i: ranks[i])[:2]
  for epoch_key in jax.random.split(jax.random.key(1), 4):
    positions = _select(selection.top_k, scores, 4, key=epoch_key,
                        tie_break=ranks[candidate_ids])
    np.testing.assert_array_equal(candidate_ids[positions], expected_ids)


# --- top_k -------------------------------------------------------------------------------


def test_top_k_hand_fixture():
  scores = [0.1, 0.9, 0.5, 0.9, 0.2]
  two = _select(selection.top_k, scores, 2)
  assert two.dtype == np.int32 and two.shape == (2,)
  np.testing.assert_array_equal(two, [1, 3])  # by position: the 0.9 at 1 before the one at 3
  np.testing.assert_array_equal(_select(selection.top_k, scores, 3), [1, 3, 2])
  np.testing.assert_array_equal(
      _select(selection.top_k, scores, 3, tie_break=[0, 4, 1, 3, 2]), [3, 1, 2])


def test_the_tie_break_decides_which_tied_candidates_enter():
  # 0.9 (position 1) is in; three candidates tie at 0.5 (positions 0, 2, 3) for the two
  # remaining places, which go to the lowest tie-breaks: 5 (position 3), then 12 (2).
  # The tie-break values need not be 0..M-1, only distinct.
  scores = [0.5, 0.9, 0.5, 0.5, 0.1]
  tie_break = [30, 7, 12, 5, 0]
  np.testing.assert_array_equal(_select(selection.top_k, scores, 3, tie_break=tie_break),
                                [1, 3, 2])
  assert set(_select(selection.top_k, scores, 3, tie_break=tie_break, ordered=False)) == {
      1, 2, 3}
  # Reversing the tie-break lets position 0 in and leaves position 3 out.
  np.testing.assert_array_equal(
      _select(selection.top_k, scores, 3, tie_break=[0, 7, 12, 30, 5]), [1, 0, 2])
  # By position (None): positions 0 and 2.
  np.testing.assert_array_equal(_select(selection.top_k, scores, 3), [1, 0, 2])


def test_top_k_nan_is_lowest_priority_and_signed_zeros_tie():
  # Descending: 0.5 (3), then 0.0 and -0.0 (1, 4) tied, then -inf (2), then NaN (0).
  scores = [np.nan, 0.0, -np.inf, 0.5, -0.0]
  np.testing.assert_array_equal(_select(selection.top_k, scores, 5), [3, 1, 4, 2, 0])
  # The signed zeros tie, so the tie-break alone orders them.
  np.testing.assert_array_equal(
      _select(selection.top_k, scores, 5, tie_break=[4, 3, 2, 1, 0]), [3, 4, 1, 2, 0])
  np.testing.assert_array_equal(
      _select(selection.top_k, scores, 2, tie_break=[4, 3, 2, 1, 0]), [3, 4])


def test_nan_below_minus_inf_even_when_the_threshold_is_minus_inf():
  # k = 3 reaches the -inf/NaN level; the -inf (position 4) goes before both NaN, whatever
  # their tie-breaks, and the NaN with the lower tie-break (position 0) comes next.
  scores = [np.nan, 1.0, np.nan, 2.0, -np.inf]
  tie_break = [1, 3, 2, 4, 9]
  np.testing.assert_array_equal(_select(selection.top_k, scores, 3, tie_break=tie_break),
                                [3, 1, 4])
  np.testing.assert_array_equal(_select(selection.top_k, scores, 4, tie_break=tie_break),
                                [3, 1, 4, 0])


def test_ties_follow_the_tie_break_not_the_key():
  scores = np.zeros(20)
  tie_break = np.asarray(selection.tie_break_ranks(jax.random.key(1), 20))
  expected = np.argsort(tie_break)[:5]  # the five lowest ranks, lowest first
  for key in jax.random.split(jax.random.key(2), 4):
    np.testing.assert_array_equal(
        _select(selection.top_k, scores, 5, key=key, tie_break=tie_break), expected)
  subsets = {frozenset(_select(selection.top_k, scores, 5, tie_break=selection.tie_break_ranks(
      key, 20)).tolist()) for key in jax.random.split(jax.random.key(3), 8)}
  assert len(subsets) > 1  # other ranks, other tied candidates


def test_ties_are_broken_only_within_a_score_level():
  # One top candidate (6), then three tied at 1.0; k = 5 takes 6, all of {0, 1, 2} and one of
  # the three 0.0 (3, 4, 5): the one of lowest tie-break.
  scores = np.asarray([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0] + [-1.0] * 13)
  picked = set()
  for key in jax.random.split(jax.random.key(2), 8):
    tie_break = np.asarray(selection.tie_break_ranks(key, 20))
    subset = _select(selection.top_k, scores, 5, tie_break=tie_break)
    assert subset[0] == 6
    np.testing.assert_array_equal(subset[1:4], sorted([0, 1, 2], key=lambda i: tie_break[i]))
    assert subset[4] == min([3, 4, 5], key=lambda i: tie_break[i])
    picked.add(int(subset[4]))
  assert len(picked) > 1  # which 0.0 comes fifth depends on the ranks


@pytest.mark.parametrize("k", [1, 7, 50])
def test_top_k_agrees_with_numpy_oracle(k):
  scores = np.random.default_rng(k).normal(size=50).astype(np.float32)
  assert len(np.unique(scores)) == 50  # tie-free, so the order is unique
  expected = np.argsort(-scores, kind="stable")[:k]
  np.testing.assert_array_equal(_select(selection.top_k, scores, k), expected)
  tie_break = np.random.default_rng(0).permutation(50)
  np.testing.assert_array_equal(_select(selection.top_k, scores, k, tie_break=tie_break),
                                expected)


def test_tie_breaks_beyond_float32s_exact_integers_are_still_exact():
  # Tie-breaks outside [0, 2**24) would give priorities float32 rounds together (2**25 + 1
  # and 2**25 are the same float32; the priority 2**24 - (-1) rounds to 2**24 - 0): top_k
  # sorts instead, and the lower tie-break still comes first.
  zeros = np.zeros(3)
  for tie_break, expected in (([2**25 + 1, 2**25, 2**25 + 2], [1, 0]),
                              ([0, -1, 5], [1, 0]),
                              ([2**31 - 1, 2**31 - 2, -2**31], [2, 1])):
    np.testing.assert_array_equal(
        _select(selection.top_k, zeros, 2, tie_break=np.asarray(tie_break, np.int32)),
        expected)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint32])
def test_narrow_and_unsigned_tie_breaks(dtype):
  scores = [1.0, 0.0, 0.0, 0.0, 1.0]
  tie_break = np.asarray([4, 3, 0, 2, 1], dtype)
  np.testing.assert_array_equal(_select(selection.top_k, scores, 3, tie_break=tie_break),
                                [4, 0, 2])
  np.testing.assert_array_equal(selection.descending_order(jnp.asarray(scores), tie_break),
                                [4, 0, 2, 3, 1])


def test_invalid_k_raises():
  for k in (0, 6):
    with pytest.raises(ValueError, match=r"k must be in \[1, 5\]"):
      selection.top_k(KEY, jnp.zeros(5), k=k)


def test_invalid_tie_break_raises():
  for selector in (selection.top_k, selection.uniform):
    with pytest.raises(ValueError, match=r"tie_break must have the shape of scores \(5,\), "
                                         r"got \(4,\)"):
      selector(KEY, jnp.zeros(5), k=2, tie_break=jnp.arange(4))
    with pytest.raises(TypeError, match="tie_break must be an integer array, got float32"):
      selector(KEY, jnp.zeros(5), k=2, tie_break=jnp.arange(5.0))


def test_top_k_candidate_limit_is_checked_at_trace_time():
  # eval_shape only traces: the error comes before any array of 2**24 + 1 scores exists.
  def trace(num_candidates):
    return jax.eval_shape(lambda s: selection.top_k(KEY, s, k=3),
                          jax.ShapeDtypeStruct((num_candidates,), jnp.float32))
  assert trace(2**24).shape == (3,)
  with pytest.raises(ValueError, match=r"top_k supports at most 2\*\*24 = 16,777,216 "
                                       r"candidates .* got M = 16,777,217"):
    trace(2**24 + 1)


# --- agreement of top_k and uniform with descending_order --------------------------------

# Few distinct values, so most draws tie heavily, with both NaN signs, both infinities and
# both zeros among them.
_SCORE_POOL = np.asarray([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 3.0],
                         np.float32)


def _check_agreement(scores, tie_break, k):
  num_candidates = len(scores)
  scores = jnp.asarray(scores, jnp.float32)
  if tie_break is not None:
    tie_break = jnp.asarray(tie_break)
  order = np.asarray(selection.descending_order(scores, tie_break))
  reference = np.arange(num_candidates) if tie_break is None else np.asarray(tie_break)
  np.testing.assert_array_equal(order, _rule_order(np.asarray(scores), reference))
  ordered = np.asarray(selection.top_k(KEY, scores, k=k, tie_break=tie_break))
  np.testing.assert_array_equal(ordered, order[:k])
  unordered = np.asarray(selection.top_k(KEY, scores, k=k, tie_break=tie_break, ordered=False))
  np.testing.assert_array_equal(np.sort(unordered), np.sort(order[:k]))
  np.testing.assert_array_equal(
      np.asarray(selection.uniform(KEY, scores, k=k, tie_break=tie_break)),
      order[::num_candidates // k][:k])


# Small M, so that every k in 1..M is tried (each (M, k) compiles its own selector).
_SMALL_M = (1, 2, 3, 6)


def _random_tie_break(rng, num_candidates):
  """Distinct values: a permutation, spread and shifted, sometimes out of [0, 2**24) so that
  top_k's sorting path for such tie-breaks is exercised too."""
  spread = rng.choice([1, 7, 2**20])
  offset = rng.choice([0, 100, -3, 2**24 - num_candidates, 2**24, 2**30])
  return (rng.permutation(num_candidates) * spread + offset).astype(np.int32)


@st.composite
def _selection_problems(draw):
  num_candidates = draw(st.sampled_from(_SMALL_M))
  k = draw(st.integers(1, num_candidates))
  scores = _SCORE_POOL[draw(st.lists(st.integers(0, len(_SCORE_POOL) - 1),
                                     min_size=num_candidates, max_size=num_candidates))]
  tie_break = None
  if draw(st.booleans()):
    tie_break = _random_tie_break(np.random.default_rng(draw(st.integers(0, 2**32 - 1))),
                                  num_candidates)
  return scores, tie_break, k


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(_selection_problems())
def test_top_k_and_uniform_agree_with_descending_order(problem):
  _check_agreement(*problem)


@pytest.mark.parametrize("num_candidates", _SMALL_M)
def test_agreement_with_descending_order_for_every_k(num_candidates):
  rng = np.random.default_rng(num_candidates)
  for k in range(1, num_candidates + 1):
    for _ in range(8):
      scores = rng.choice(_SCORE_POOL, num_candidates)
      _check_agreement(scores, _random_tie_break(rng, num_candidates), k)
      _check_agreement(scores, None, k)


@pytest.mark.parametrize("k", [1, 100, 299])  # strides 301, 3 and 1
def test_agreement_with_descending_order_on_a_larger_tied_vector(k):
  rng = np.random.default_rng(k)
  # The caller's pattern: ranks of a larger id set, indexed by the candidate ids.
  ranks = np.asarray(selection.tie_break_ranks(jax.random.key(k), 1500))
  for levels in (2, 4, len(_SCORE_POOL)):
    scores = rng.choice(_SCORE_POOL[:levels], 301)
    _check_agreement(scores, ranks[rng.choice(1500, 301, replace=False)], k)


# --- uniform -----------------------------------------------------------------------------


def test_uniform_hand_fixture():
  # Descending order: 0.9 (1), 0.8 (6), 0.7 (3), 0.6 (8), 0.5 (4), 0.4 (9), 0.3 (0),
  # 0.2 (7), 0.1 (2), 0.0 (5). M = 10, k = 3 -> q = 3 -> ranks 0, 3, 6 -> positions 1, 8, 0.
  # Ranks 7-9 (positions 7, 2, 5) are never selected, as in the reference.
  scores = [0.3, 0.9, 0.1, 0.7, 0.5, 0.0, 0.8, 0.2, 0.6, 0.4]
  np.testing.assert_array_equal(_select(selection.uniform, scores, 3), [1, 8, 0])


def test_uniform_hand_fixture_with_ties():
  # Descending: 0.9 (4); 0.5 at 0, 2, 3 by tie-break 2, 0, 1 -> 2, 3, 0; 0.1 (1); NaN (5).
  # Order [4, 2, 3, 0, 1, 5]; M = 6, k = 3 -> q = 2 -> ranks 0, 2, 4 -> 4, 3, 1.
  scores = [0.5, 0.1, 0.5, 0.5, 0.9, np.nan]
  tie_break = [2, 5, 0, 1, 4, 3]
  for key in (KEY, jax.random.key(7)):  # the key is ignored
    np.testing.assert_array_equal(
        _select(selection.uniform, scores, 3, key=key, tie_break=tie_break), [4, 3, 1])
  np.testing.assert_array_equal(selection.descending_order(jnp.asarray(scores),
                                                           jnp.asarray(tie_break)),
                                [4, 2, 3, 0, 1, 5])


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
  # The scores and the tie-break are ignored.
  np.testing.assert_array_equal(_select(selection.random_subset, np.arange(20.0), 5), subset)
  np.testing.assert_array_equal(
      _select(selection.random_subset, scores, 5, tie_break=np.arange(20)[::-1]), subset)
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
  for kwargs, field in (({}, "config.method.selector"),
                        ({"field": "selection.fallback_method"}, "selection.fallback_method")):
    with pytest.raises(ValueError) as error:
      selection.get_selector("x", **kwargs)
    message = str(error.value)
    # Other selectors may be registered; the known ones must be listed.
    assert message.startswith(f"unknown {field} 'x'; valid: ")
    valid = message.split("valid: ")[1].split(", ")
    assert {"random", "top_k", "uniform"} <= set(valid)
    assert valid == sorted(selection.SELECTORS)


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
  with pytest.raises(ValueError, match=r"config\.method\.subset_fraction must be in \(0, 1\]"):
    selection.subset_size(45000, fraction=fraction)


def test_subset_size_error_messages():
  with pytest.raises(ValueError) as error:
    selection.subset_size(45000, fraction=1.5)
  assert str(error.value) == "config.method.subset_fraction must be in (0, 1], got 1.5"
  with pytest.raises(ValueError) as error:
    selection.subset_size(45000, count=50000)
  assert str(error.value) == "config.method.subset_size must be in [1, 45000], got 50000"


@pytest.mark.parametrize("count", [0, -3, 45001, 2.5, True])
def test_subset_size_bad_count(count):
  with pytest.raises(ValueError, match=r"config\.method\.subset_size must be in \[1, 45000\]"):
    selection.subset_size(45000, count=count)


def test_subset_size_needs_exactly_one_of_fraction_and_count():
  for kwargs in ({}, {"fraction": 0.5, "count": 10}):
    with pytest.raises(ValueError, match="exactly one of config.method.subset_fraction"):
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
  tie_break = np.asarray(selection.tie_break_ranks(jax.random.key(k), 300))
  picked = _select(selection.top_k, scores, k, tie_break=tie_break)
  assert len(set(picked.tolist())) == k
  np.testing.assert_array_equal(scores[picked], np.sort(scores)[::-1][:k])
  # Exactly the full sort's ranking, ties included.
  np.testing.assert_array_equal(picked, np.lexsort((tie_break, -scores))[:k])


@pytest.mark.parametrize("method", sorted(selection.SELECTORS))
@pytest.mark.parametrize("levels", [None, 3])  # continuous scores, or 3 heavily tied levels
def test_unordered_selection_is_the_same_subset(method, levels):
  rng = np.random.default_rng(8)
  scores = rng.uniform(size=500)
  if levels:
    scores = np.floor(scores * levels)
  scores[rng.choice(500, 20, replace=False)] = np.nan
  scores = jnp.asarray(scores, jnp.float32)
  tie_break = selection.tie_break_ranks(jax.random.key(4), 500)
  selector = selection.get_selector(method)
  for k in (1, 37, 480, 500):
    key = jax.random.PRNGKey(k)
    ordered = np.asarray(selector(key, scores, k=k, tie_break=tie_break))
    unordered = np.asarray(selector(key, scores, k=k, tie_break=tie_break, ordered=False))
    np.testing.assert_array_equal(np.sort(unordered), np.sort(ordered))
    assert len(np.unique(unordered)) == k


def _inclusion_probabilities(weights, k):
  """Exact P(i in the sample) of successive sampling without replacement, by enumerating
  every ordered draw: P(i1, ..., ik) = Π_j w_ij / (W − Σ_{l<j} w_il)."""
  import itertools  # pylint: disable=import-outside-toplevel
  weights = np.asarray(weights, np.float64)
  inclusion = np.zeros(len(weights))
  for draw in itertools.permutations(range(len(weights)), k):
    probability, left = 1.0, weights.sum()
    for i in draw:
      probability *= weights[i] / left
      left -= weights[i]
    inclusion[list(draw)] += probability
  return inclusion


@pytest.mark.parametrize("weights,k", [((1.0, 2.0, 3.0, 4.0), 2), ((0.5, 0.1, 5.0, 1.0, 1.0), 3),
                                       ((1.0, 0.0, 2.0, 1.0), 2), ((0.0, 2.0, 0.0, 1.0), 2)])
def test_weighted_without_replacement_matches_exact_inclusion_probabilities(weights, k):
  draws = 40_000
  keys = jax.random.split(jax.random.PRNGKey(0), draws)
  samples = np.asarray(jax.jit(jax.vmap(functools.partial(
      selection.weighted_without_replacement, weights=jnp.asarray(weights), k=k)))(keys))
  assert samples.shape == (draws, k)
  assert all(len(set(row)) == k for row in samples[:1000])  # without replacement
  observed = np.bincount(samples.ravel(), minlength=len(weights)) / draws
  expected = _inclusion_probabilities(weights, k)
  # Binomial standard error of each frequency; 5 of them leaves no room for a wrong law.
  error = np.sqrt(expected * (1 - expected) / draws)
  np.testing.assert_array_less(np.abs(observed - expected), 5 * error + 1e-12)
  # The first draw is proportional to the weights.
  first = np.bincount(samples[:, 0], minlength=len(weights)) / draws
  target = np.asarray(weights) / np.sum(weights)
  np.testing.assert_array_less(np.abs(first - target),
                               5 * np.sqrt(target * (1 - target) / draws) + 1e-12)


def _weighted_draws(weights, k, draws, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), draws)
  return np.asarray(jax.jit(jax.vmap(functools.partial(
      selection.weighted_without_replacement, weights=jnp.asarray(weights, jnp.float32),
      k=k)))(keys))


def test_all_zero_weights_draw_a_uniform_subset_not_the_first_k():
  # M = 20, k = 5 from all-zero weights: each position is in a draw with probability 1/4,
  # so over 4,000 draws Binomial(4000, 1/4): mean 1,000, standard deviation √750 ≈ 27.4.
  samples = _weighted_draws(np.zeros(20), 5, 4000)
  assert all(len(set(row)) == 5 for row in samples.tolist())
  counts = np.bincount(samples.ravel(), minlength=20)
  np.testing.assert_array_less(np.abs(counts - 1000), 5 * math.sqrt(750))
  # Unbatched (the lax.cond path, not vmap's select): a draw from all-zero weights is not
  # positions 0..4 (chance 1 / C(20, 5) = 1 / 15,504), and another key draws another set.
  draw = jax.jit(functools.partial(selection.weighted_without_replacement, k=5))
  first = np.asarray(draw(jax.random.PRNGKey(1), jnp.zeros(20)))
  second = np.asarray(draw(jax.random.PRNGKey(2), jnp.zeros(20)))
  assert set(first.tolist()) != set(range(5))
  assert set(first.tolist()) != set(second.tolist())


def test_fewer_positive_weights_than_k_are_all_drawn_first_then_zeros_uniformly():
  # Weights (0, 3, 0, 0, 1, 0), k = 4: the two positive ones fill the first two places
  # (id 1 first with probability 3/4), the two places left go to two of the four zeros,
  # so each zero is in a draw with probability 1/2: Binomial(4000, 1/2), std √1000.
  weights = (0.0, 3.0, 0.0, 0.0, 1.0, 0.0)
  samples = _weighted_draws(weights, 4, 4000, seed=5)
  assert all(sorted(row[:2]) == [1, 4] for row in samples.tolist())
  assert all(len(set(row)) == 4 for row in samples.tolist())
  first_is_1 = np.mean(samples[:, 0] == 1)
  assert abs(first_is_1 - 0.75) < 5 * math.sqrt(0.75 * 0.25 / 4000)
  counts = np.bincount(samples[:, 2:].ravel(), minlength=6)
  np.testing.assert_array_equal(counts[[1, 4]], 0)
  np.testing.assert_array_less(np.abs(counts[[0, 2, 3, 5]] - 2000), 5 * math.sqrt(1000))
  # Unbatched, the same rule.
  row = np.asarray(jax.jit(functools.partial(selection.weighted_without_replacement, k=4))(
      jax.random.PRNGKey(0), jnp.asarray(weights)))
  assert sorted(row[:2].tolist()) == [1, 4] and set(row[2:].tolist()) <= {0, 2, 3, 5}
