"""experiments/paired.py: paired differences and their Student-t interval, by hand."""

import math

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
