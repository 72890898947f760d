"""Paired differences between two methods run with the same seeds, with a 95 % confidence
interval.

Runs with the same seed share the split, the initialisation and the data order, so the
comparison is seed by seed: d_s = a_s − b_s, and the interval is Student's t over the n
seeds, mean(d) ± t_{0.975, n−1} · sd(d) / √n (sd with n − 1 in the denominator). A claim
"a beats b" holds when the interval lies above 0, does not hold when it lies below, and is
inconclusive otherwise. With 3 seeds t is 4.30: only gaps large against their seed-to-seed
spread decide anything.
"""

import math
import statistics
from typing import NamedTuple

# t_{0.975, df} for df = 1..30 (two-sided 95 %); beyond 30 the normal 1.96 is within 4 %.
_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
          2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074,
          2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
BETTER, WORSE, INCONCLUSIVE = "better", "worse", "inconclusive"


def t_975(df: int) -> float:
  """Student's t quantile 0.975 with ``df`` degrees of freedom (a table; 1.96 past 30)."""
  if df < 1:
    raise ValueError(f"degrees of freedom must be >= 1, got {df}")
  return _T_975[df - 1] if df <= len(_T_975) else 1.96


class PairedDifference(NamedTuple):
  mean: float
  std: float  # sample std of the per-seed differences (NaN for one seed)
  n: int
  low: float  # the 95 % interval of the mean difference (NaN for one seed)
  high: float
  verdict: str  # BETTER / WORSE / INCONCLUSIVE, or "one seed: no interval"


def paired_difference(values: dict, baseline: dict) -> PairedDifference | None:
  """``values[seed] − baseline[seed]`` over the seeds both have; None if they share none."""
  seeds = sorted(set(values) & set(baseline))
  if not seeds:
    return None
  differences = [values[s] - baseline[s] for s in seeds]
  mean = statistics.fmean(differences)
  if len(seeds) == 1:
    return PairedDifference(mean, math.nan, 1, math.nan, math.nan, "one seed: no interval")
  std = statistics.stdev(differences)
  half = t_975(len(seeds) - 1) * std / math.sqrt(len(seeds))
  low, high = mean - half, mean + half
  verdict = BETTER if low > 0 else WORSE if high < 0 else INCONCLUSIVE
  return PairedDifference(mean, std, len(seeds), low, high, verdict)
