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


# What a claim's test says, from the interval and the direction the claim states.
HOLDS, DOES_NOT_HOLD, UNDECIDED = "holds", "does not hold", "inconclusive"


def claim_verdict(diff: PairedDifference | None, direction: int,
                  margin: float = 0.0) -> str:
  """The verdict of a claim that ``diff`` (a − b) is > ``margin`` (``direction`` +1) or
  < ``margin`` (−1); a margin states a tolerance, e.g. "costs at most 1 point" is
  direction +1 with margin −1.

  It holds when the 95 % interval lies entirely on the claimed side of the margin, does
  not hold when it lies entirely on the other side, and is inconclusive otherwise (also
  with one seed, or none). A "no better than" claim is written with the direction of
  "worse": an inconclusive verdict is then consistent with it, but not evidence for it.
  """
  if direction not in (1, -1):
    raise ValueError(f"direction must be +1 or -1, got {direction}")
  if diff is None or diff.n < 2:
    return UNDECIDED
  low, high = diff.low - margin, diff.high - margin
  low, high = (low, high) if direction == 1 else (-high, -low)
  return HOLDS if low > 0 else DOES_NOT_HOLD if high < 0 else UNDECIDED


def all_hold(verdicts) -> str:
  """A claim made of several (one per cell): holds if every part holds, does not hold if
  any part does not, inconclusive otherwise."""
  verdicts = list(verdicts)
  if not verdicts:
    raise ValueError("no verdicts to combine")
  if DOES_NOT_HOLD in verdicts:
    return DOES_NOT_HOLD
  return HOLDS if all(v == HOLDS for v in verdicts) else UNDECIDED


def some_hold(verdicts) -> str:
  """``all_hold``'s dual, for a claim that one of several alternatives holds ("a suitable
  augmentation"): holds if any part holds, does not hold if every part does not,
  inconclusive otherwise. Accepting any one of k tests is lenient: a chance "holds" is
  about k times likelier than with one."""
  verdicts = list(verdicts)
  if not verdicts:
    raise ValueError("no verdicts to combine")
  if HOLDS in verdicts:
    return HOLDS
  return DOES_NOT_HOLD if all(v == DOES_NOT_HOLD for v in verdicts) else UNDECIDED


def mean_paired_difference(pairs) -> PairedDifference | None:
  """The paired difference of averages: d_s = mean over the pairs (values, baseline) of
  values[s] − baseline[s], on the seeds every pair has. One interval for a claim about an
  average over cells (e.g. over subset sizes), keeping each seed's cells together."""
  pairs = list(pairs)
  seeds = set.intersection(*(set(a) & set(b) for a, b in pairs)) if pairs else set()
  if not seeds:
    return None
  averaged = {s: statistics.fmean(a[s] - b[s] for a, b in pairs) for s in seeds}
  return paired_difference(averaged, {s: 0.0 for s in seeds})


def format_difference(diff: PairedDifference | None, decimals: int = 2) -> str:
  """'+1.50 [+0.88, +2.12]' (mean and 95 % interval), or the mean alone for one seed."""
  if diff is None:
    return "—"
  if diff.n < 2:
    return f"{diff.mean:+.{decimals}f} (one seed)"
  return f"{diff.mean:+.{decimals}f} [{diff.low:+.{decimals}f}, {diff.high:+.{decimals}f}]"


def format_differences(differences: dict, decimals: int = 2) -> str:
  """'label +1.50 [+0.88, +2.12]; …' for {label: PairedDifference}: a claim's evidence."""
  return "; ".join(f"{label} {format_difference(d, decimals)}"
                   for label, d in differences.items())


def differences(seeds_of, compare, *, partial: bool = False) -> dict | None:
  """{label: paired difference a − b} for each (label, a, b) of ``compare``, where
  ``seeds_of(key)`` gives a cell's {seed: value} or None when the grid lacks it. A missing
  cell makes the whole result None, unless ``partial``: then its pair is left out (and an
  empty result is None too)."""
  out = {}
  for label, a, b in compare:
    values, baseline = seeds_of(a), seeds_of(b)
    if values is None or baseline is None:
      if not partial:
        return None
      continue
    out[label] = paired_difference(values, baseline)
  return out or None


def by_seed(cell: dict, key: str) -> dict:
  """{seed: summary[key]} of a grid cell ({'seeds', 'summaries'})."""
  return {seed: summary[key] for seed, summary in zip(cell["seeds"], cell["summaries"])}


def cell_difference(cell: dict, baseline: dict, key: str) -> PairedDifference | None:
  """``paired_difference`` of one summary key between two grid cells, seed by seed."""
  return paired_difference(by_seed(cell, key), by_seed(baseline, key))
