"""experiments/paired.py: paired differences and their Student-t interval, by hand."""

import math
import statistics

import pytest

from experiments import paired


def test_t_quantiles_are_the_table_values():
  assert paired.t_975(1) == 12.706 and paired.t_975(2) == 4.303
  assert paired.t_975(4) == 2.776 and paired.t_975(30) == 2.042
  assert paired.t_975(100) == 1.96
  with pytest.raises(ValueError):
    paired.t_975(0)


def test_interval_and_verdicts_on_hand_made_numbers():
  base = {0: 80.0, 1: 81.0, 2: 82.0, 3: 79.0, 4: 80.0}
  # Differences 1, 2, 1, 2, 1.5 (seed 9 unpaired): mean 1.5, sd √0.25 = 0.5,
  # half-width 2.776 · 0.5 / √5 = 0.6207.
  diff = paired.paired_difference({0: 81.0, 1: 83.0, 2: 83.0, 3: 81.0, 4: 81.5, 9: 0.0},
                                  base)
  assert (diff.mean, diff.n) == (1.5, 5) and diff.std == pytest.approx(0.5)
  assert (diff.low, diff.high) == pytest.approx((1.5 - 0.6207, 1.5 + 0.6207), abs=1e-4)
  assert diff.verdict == paired.BETTER
  assert paired.paired_difference(base, {k: v + 1.5 for k, v in base.items()}).verdict == \
      paired.WORSE  # all differences −1.5: sd 0, interval [−1.5, −1.5]
  mixed = paired.paired_difference({0: 81.0, 1: 80.0, 2: 83.0}, base)  # +1, −1, +1
  assert mixed.verdict == paired.INCONCLUSIVE and mixed.low < 0 < mixed.high
  one = paired.paired_difference({0: 81.0}, base)
  assert one.n == 1 and math.isnan(one.low) and one.verdict.startswith("one seed")
  assert paired.paired_difference({7: 1.0}, base) is None


def _diff(low, high, n=5):
  return paired.PairedDifference((low + high) / 2, 1.0, n, low, high, "")


def test_claim_verdicts_follow_the_claimed_direction():
  above, below, across = _diff(0.5, 2.0), _diff(-2.0, -0.5), _diff(-0.5, 1.0)
  assert paired.claim_verdict(above, +1) == paired.HOLDS
  assert paired.claim_verdict(above, -1) == paired.DOES_NOT_HOLD
  assert paired.claim_verdict(below, -1) == paired.HOLDS
  assert paired.claim_verdict(below, +1) == paired.DOES_NOT_HOLD
  assert paired.claim_verdict(across, +1) == paired.claim_verdict(across, -1) == \
      paired.UNDECIDED
  assert paired.claim_verdict(None, 1) == paired.UNDECIDED
  assert paired.claim_verdict(_diff(1.0, 1.0, n=1), 1) == paired.UNDECIDED
  with pytest.raises(ValueError, match="direction"):
    paired.claim_verdict(above, 0)


def test_all_hold_combines_parts():
  h, n, u = paired.HOLDS, paired.DOES_NOT_HOLD, paired.UNDECIDED
  assert paired.all_hold([h, h]) == h
  assert paired.all_hold([h, u]) == u
  assert paired.all_hold([h, u, n]) == n
  with pytest.raises(ValueError):
    paired.all_hold([])


def test_mean_paired_difference_averages_cells_within_each_seed():
  # Two cells; per-seed differences (1, 3) and (3, 1): averaged 2 and 2, so sd 0.
  a1, b1 = {0: 2.0, 1: 4.0}, {0: 1.0, 1: 1.0}
  a2, b2 = {0: 5.0, 1: 2.0, 7: 9.0}, {0: 2.0, 1: 1.0}
  diff = paired.mean_paired_difference([(a1, b1), (a2, b2)])
  assert (diff.mean, diff.std, diff.n, diff.low, diff.high) == (2.0, 0.0, 2, 2.0, 2.0)
  # The per-cell intervals would each be wide; pooling within seeds is the point.
  assert paired.paired_difference(a1, b1).low < 0
  assert paired.mean_paired_difference([(a1, {5: 0.0})]) is None


def test_format_and_cell_difference():
  cell = {"seeds": [0, 1, 2], "summaries": [{"acc": 81.0}, {"acc": 83.0}, {"acc": 82.0}]}
  base = {"seeds": [0, 1, 2], "summaries": [{"acc": 80.0}, {"acc": 81.0}, {"acc": 81.5}]}
  diff = paired.cell_difference(cell, base, "acc")  # differences 1, 2, 0.5
  assert diff.mean == pytest.approx(7 / 6)
  half = 4.303 * statistics.stdev([1, 2, 0.5]) / math.sqrt(3)
  assert paired.format_difference(diff) == \
      f"{7 / 6:+.2f} [{7 / 6 - half:+.2f}, {7 / 6 + half:+.2f}]"
  assert paired.format_difference(None) == "—"
  assert paired.format_difference(paired.paired_difference({0: 2.0}, {0: 1.0})) == \
      "+1.00 (one seed)"


def test_a_margin_moves_the_line_the_interval_is_judged_against():
  cost = _diff(-0.8, -0.2)  # "costs at most 1 point": a − b > −1
  assert paired.claim_verdict(cost, +1, margin=-1.0) == paired.HOLDS
  assert paired.claim_verdict(cost, +1) == paired.DOES_NOT_HOLD
  assert paired.claim_verdict(_diff(-1.5, -1.2), +1, margin=-1.0) == paired.DOES_NOT_HOLD
  assert paired.claim_verdict(_diff(-1.5, -0.5), +1, margin=-1.0) == paired.UNDECIDED
  assert paired.claim_verdict(_diff(0.2, 0.4), -1, margin=0.5) == paired.HOLDS


def test_some_hold_needs_one_alternative():
  assert paired.some_hold([paired.UNDECIDED, paired.HOLDS]) == paired.HOLDS
  assert paired.some_hold([paired.DOES_NOT_HOLD, paired.UNDECIDED]) == paired.UNDECIDED
  assert paired.some_hold([paired.DOES_NOT_HOLD] * 2) == paired.DOES_NOT_HOLD


def test_differences_of_cells_by_key():
  cells = {"a": {0: 2.0, 1: 3.0}, "b": {0: 1.0, 1: 1.0}, "c": {0: 0.0, 1: 4.0}}
  compare = [("a − b", "a", "b"), ("c − b", "c", "b"), ("a − missing", "a", "zz")]
  with_all = compare[:2]
  diffs = paired.differences(cells.get, with_all)
  assert list(diffs) == ["a − b", "c − b"]
  assert diffs["a − b"].mean == pytest.approx(1.5)  # differences 1 and 2
  assert diffs["c − b"].mean == pytest.approx(1.0)  # differences −1 and 3
  # A missing cell: nothing at all, unless partial, which leaves that pair out.
  assert paired.differences(cells.get, compare) is None
  assert list(paired.differences(cells.get, compare, partial=True)) == ["a − b", "c − b"]
  assert paired.differences(cells.get, [("x", "zz", "a")], partial=True) is None
  assert paired.differences(cells.get, []) is None
