"""One-shot coreset selectors: the worked CCS allocation, strata edges, exact sizes,
property tests over random strata, class balance, seeded tie-breaks."""

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from jaxsel import coresets


def test_worked_allocation_example_of_the_spec():
  # ALGORITHMS.md C.4: sizes (3, 50, 10, 200, 7), budget 60 -> sorted 3, 7, 10, 50, 200 ->
  # 3 (60/5 = 12), 7 (57/4 = 14), 10 (50/3 = 16), 20 (40/2), 20 (20/1).
  np.testing.assert_array_equal(coresets.allocate(np.asarray([3, 50, 10, 200, 7]), 60),
                                [3, 20, 10, 20, 7])


@hypothesis.given(sizes=st.lists(st.integers(0, 60), min_size=1, max_size=12),
                  budget=st.integers(0, 800))
@hypothesis.settings(max_examples=300, deadline=None)
def test_allocation_sums_to_the_budget_and_never_exceeds_a_stratum(sizes, budget):
  sizes = np.asarray(sizes)
  allocation = coresets.allocate(sizes, budget)
  assert allocation.sum() == min(budget, sizes.sum())
  assert np.all((allocation >= 0) & (allocation <= sizes))
  # Water-filling: a stratum gets less than another (larger) one only if it is full.
  for i in range(len(sizes)):
    for j in range(len(sizes)):
      if allocation[i] < allocation[j] - 1:
        assert allocation[i] == sizes[i]


def test_strata_are_equal_width_with_the_last_one_closed():
  scores = np.asarray([0.0, 0.24, 0.25, 0.5, 0.99, 1.0])
  np.testing.assert_array_equal(coresets.strata(scores, 4), [0, 0, 1, 2, 3, 3])
  # Non-positive maxima (where the reference's 1.0001 · max loses the top) and constants.
  np.testing.assert_array_equal(coresets.strata(np.asarray([-2.0, -1.0, 0.0]), 2), [0, 1, 1])
  np.testing.assert_array_equal(coresets.strata(np.full(4, -3.0), 50), [0, 0, 0, 0])


def test_reference_edges_are_wider_and_open_at_the_top():
  scores = np.arange(11.0)  # 0, 1, ..., 10
  # Default: width (10 − 0) / 5 = 2, floor(s / 2), 10 into the closed last stratum.
  np.testing.assert_array_equal(coresets.strata(scores, 5), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4])
  # Reference: width (1.0001 · 10 − 0) / 5 = 2.0002, edges 0, 2.0002, 4.0004, 6.0006,
  # 8.0008, 10.001: 2, 4, 6 and 8 now lie below an edge and drop a stratum; 10 < 10.001.
  np.testing.assert_array_equal(coresets.strata(scores, 5, reference_edges=True),
                                [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
  # (0, 5, 10) in 2 strata: 5 is the default's edge, below the reference's 5.0005.
  three = np.asarray([0.0, 5.0, 10.0])
  np.testing.assert_array_equal(coresets.strata(three, 2), [0, 1, 1])
  np.testing.assert_array_equal(coresets.strata(three, 2, reference_edges=True), [0, 0, 1])
  # A negative minimum: width (1.0001 · 2 + 2) / 2 = 2.0001, edge 0.0001, so 0 is in 0.
  np.testing.assert_array_equal(
      coresets.strata(np.asarray([-2.0, 0.0, 1.0, 2.0]), 2, reference_edges=True), [0, 0, 1, 1])
  np.testing.assert_array_equal(coresets.strata(np.asarray([-2.0, 0.0, 1.0, 2.0]), 2),
                                [0, 1, 1, 1])
  # A positive constant: width 1e-4 · 3 / 50 > 0, all in stratum 0 (as the default).
  np.testing.assert_array_equal(coresets.strata(np.full(3, 3.0), 50, reference_edges=True), 0)


@pytest.mark.parametrize("scores,expected", [
    # The reference: 1.0001 · 0 = 0, width 1, edges -2, -1, 0: the maximum 0 is in no stratum.
    ((-2.0, -1.0, 0.0), (0, 1, 1)),
    # The reference: width (−1.0001 + 4) / 2 = 1.49995, top edge −1.0001 < −1: −1 is out.
    ((-4.0, -2.0, -1.0), (0, 1, 1)),
    # Constants ≤ 0: width 0 (or negative) in the reference, every stratum empty.
    ((-3.0, -3.0, -3.0), (0, 0, 0)),
    ((0.0, 0.0), (0, 0)),
])
def test_reference_edges_keep_the_fix_when_the_maximum_is_not_positive(scores, expected):
  scores = np.asarray(scores)
  np.testing.assert_array_equal(coresets.strata(scores, 2, reference_edges=True), expected)
  np.testing.assert_array_equal(coresets.strata(scores, 2), expected)


def test_ccs_reference_strata_changes_the_strata_sizes_and_allocation():
  # Scores 0..10 in 5 strata (as above), a coreset of 9, no cutoff. Default sizes
  # (2, 2, 2, 2, 3): water-filling from stratum 0 gives ⌊9/5⌋ = 1, then ⌊8/4⌋ = 2, 2, 2, 2.
  # Reference sizes (3, 2, 2, 2, 2): strata 1..4 first get 1, 2, 2, 2 and stratum 0 the 2
  # left.
  scores = np.arange(11.0)
  _, fixed = _ccs(scores, scores, 9, beta=0.0, num_strata=5)
  np.testing.assert_array_equal(fixed["stratum_sizes"], [2, 2, 2, 2, 3])
  np.testing.assert_array_equal(fixed["allocation"], [1, 2, 2, 2, 2])
  positions, reference = coresets.ccs(scores, scores, 9, beta=0.0, num_strata=5,
                                      rng=np.random.default_rng(0), tie_break=_tie_break(11),
                                      reference_strata=True)
  np.testing.assert_array_equal(reference["stratum_sizes"], [3, 2, 2, 2, 2])
  np.testing.assert_array_equal(reference["allocation"], [2, 1, 2, 2, 2])
  # Two of {0, 1, 2}, one of {3, 4}, and all of 5..10 (strata 2-4 get their 2 each).
  assert len(set(positions) & {0, 1, 2}) == 2 and len(set(positions) & {3, 4}) == 1
  assert set(range(5, 11)) <= set(positions) and len(positions) == 9


def _tie_break(n, seed=0):
  return np.random.default_rng(seed).permutation(n)


def test_monotonic_keeps_the_first_of_the_order_with_seeded_ties():
  scores = np.asarray([3.0, 1.0, 2.0, 1.0, np.nan, 0.0])
  ties = np.asarray([5, 4, 3, 2, 1, 0])
  # Ascending: 0.0 (5), then the tied 1.0s by tie rank (3 before 1), then 2.0 (2).
  np.testing.assert_array_equal(
      coresets.monotonic(scores, 3, descending=False, tie_break=ties), [1, 3, 5])
  np.testing.assert_array_equal(
      coresets.monotonic(scores, 2, descending=False, tie_break=ties), [3, 5])
  # Descending: 3.0 (0), 2.0 (2); NaN is last either way.
  np.testing.assert_array_equal(
      coresets.monotonic(scores, 2, descending=True, tie_break=ties), [0, 2])
  np.testing.assert_array_equal(
      coresets.monotonic(scores, 5, descending=True, tie_break=ties), [0, 1, 2, 3, 5])


@pytest.mark.parametrize("sizes,size,expected", [
    ((10, 10, 10), 6, (2, 2, 2)),
    ((10, 10, 10), 7, (3, 2, 2)),  # one left over: equal remainders, lowest class first
    # 0.5, 2, 7.5: floors 0, 2, 7; the one left goes to the lower of the two tied
    # remainders, class 0.
    ((5, 20, 75), 10, (1, 2, 7)),
    ((3, 3), 6, (3, 3)),
])
def test_class_quotas_keep_the_same_fraction_and_the_exact_size(sizes, size, expected):
  quotas = coresets.class_quotas(np.asarray(sizes), size)
  assert quotas.sum() == size
  np.testing.assert_array_equal(quotas, expected)


def test_class_balanced_monotonic_takes_each_class_quota_from_its_own_order():
  labels = np.asarray([0, 0, 0, 0, 1, 1, 1, 1])
  scores = np.asarray([0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.6])
  picked = coresets.class_balanced_monotonic(scores, labels, 4, descending=True,
                                             tie_break=np.arange(8))
  np.testing.assert_array_equal(picked, [1, 2, 4, 6])  # top 2 of each class


def _ccs(importance, cutoff, size, beta, seed=0, num_strata=50):
  return coresets.ccs(importance, cutoff, size, beta=beta, num_strata=num_strata,
                      rng=np.random.default_rng(seed), tie_break=_tie_break(len(importance)))


def test_ccs_cuts_the_lowest_margins_then_samples_every_stratum():
  rng = np.random.default_rng(1)
  aum = rng.normal(size=1000)
  positions, details = _ccs(aum, aum, 100, beta=0.3, num_strata=10)
  assert len(positions) == 100 and len(np.unique(positions)) == 100
  # The 300 lowest margins are gone, and nothing chosen comes from them.
  np.testing.assert_array_equal(details["cut"], np.sort(np.argsort(aum)[:300]))
  assert not set(positions) & set(details["cut"])
  # Every stratum got what water-filling gave it.
  chosen_strata = details["kept_strata"][np.searchsorted(details["kept"], positions)]
  np.testing.assert_array_equal(np.bincount(chosen_strata, minlength=10),
                                details["allocation"])
  # Coverage: the sparse high-margin tail keeps all of its few examples.
  assert details["allocation"][-1] == details["stratum_sizes"][-1]


def test_ccs_is_deterministic_for_a_seed_and_random_across_seeds():
  aum = np.random.default_rng(2).normal(size=500)
  first = _ccs(aum, aum, 50, beta=0.1, seed=7)[0]
  np.testing.assert_array_equal(_ccs(aum, aum, 50, beta=0.1, seed=7)[0], first)
  assert not np.array_equal(_ccs(aum, aum, 50, beta=0.1, seed=8)[0], first)


@hypothesis.given(num=st.integers(5, 300), fraction=st.floats(0.01, 1.0),
                  beta=st.floats(0.0, 0.99), levels=st.integers(1, 8), seed=st.integers(0, 99))
@hypothesis.settings(max_examples=150, deadline=None)
def test_ccs_has_the_exact_size_or_refuses(num, fraction, beta, levels, seed):
  rng = np.random.default_rng(seed)
  scores = rng.integers(0, levels, size=num).astype(np.float64)  # heavy ties
  size = max(1, int(fraction * num))
  if num - int(beta * num) < size:
    with pytest.raises(ValueError, match="config.method.beta"):
      _ccs(scores, scores, size, beta)
    return
  positions, _ = _ccs(scores, scores, size, beta, seed=seed)
  assert len(positions) == size and len(np.unique(positions)) == size
  assert positions.min() >= 0 and positions.max() < num


def test_random_coreset_is_a_seeded_uniform_subset():
  picked = coresets.random_coreset(np.random.default_rng(0), 100, 10)
  assert len(np.unique(picked)) == 10 and picked.max() < 100
  np.testing.assert_array_equal(coresets.random_coreset(np.random.default_rng(0), 100, 10),
                                picked)


def test_reference_edges_move_a_few_continuous_scores_per_thousand_one_stratum_down():
  # The figure strata()'s docstring gives (2.48 of 1,000 uniform scores over 2,000 draws),
  # here over 200 draws of the same stream: about 1-3 per 1,000, never more than one down.
  rng = np.random.default_rng(0)
  moved = {"uniform": [], "normal": []}
  for _ in range(200):
    for kind, scores in (("uniform", rng.random(1000)), ("normal", rng.standard_normal(1000))):
      ours = coresets.strata(scores, 50)
      reference = coresets.strata(scores, 50, reference_edges=True)
      changed = ours != reference
      assert np.all(ours[changed] - reference[changed] == 1)
      moved[kind].append(int(changed.sum()))
  assert 2.0 < np.mean(moved["uniform"]) < 3.0
  assert 0.8 < np.mean(moved["normal"]) < 1.8
