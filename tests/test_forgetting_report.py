"""The forgetting / MLI report: verdicts follow the numbers; tables cover every cell."""

import numpy as np
import pytest

from experiments import forgetting_mli_report as report

NUM_TRAIN = 1000
SIZES = (100, 300, 500)
WINDOW = 100


def _runs(accuracy):
  """Two seeds (±0.1) of each (ordering, removed, k) in ``accuracy``."""
  runs = []
  for (name, removed, k), value in accuracy.items():
    label = f"{name}_r{removed}_k{k}"
    for seed in (0, 1):
      runs.append({"arg": label, "seed": seed, "ordering": name, "removed": removed, "k": k,
                   "command": f"run {label} {seed}", "wall_seconds": 1.0,
                   "summary": {"test_accuracy": value + (0.1 if seed else -0.1)}})
  return runs


def _accuracy(forgetting=(96.2, 96.1, 94.0), random=(95.9, 95.0, 93.0), windows=None):
  accuracy = {("none", 0, 0): 96.2}
  for name, values in (("forgetting", forgetting), ("random", random),
                       ("max_loss_increase", (96.0, 95.5, 93.5))):
    accuracy.update({(name, r, 0): v for r, v in zip(SIZES, values)})
  windows = windows or {0: 96.2, 400: 95.8, 900: 95.2}
  accuracy.update({("forgetting", WINDOW, k): v for k, v in windows.items()})
  return accuracy


def _analysis(noisy_share=70.0):
  return {"unforgettable_all_seeds": 40.0,
          "noise": [{"shares": {"forgetting": {"k": noisy_share}}, "noise_rate": 20.0}] * 2,
          # Window means rise with k: the first window holds the least-forgotten.
          "window_scores": {"forgetting": np.linspace(0, 10, NUM_TRAIN),
                            "max_loss_increase": np.linspace(-1, 1, NUM_TRAIN)},
          "spearman": {"max_loss_increase": 0.6}, "overlap_lowest_30": {"max_loss_increase": 55}}


def _claims(accuracy, analysis=None):
  cells = report._cells(_runs(accuracy))  # pylint: disable=protected-access
  return report.claims(cells, analysis or _analysis(), sizes=list(SIZES), num_train=NUM_TRAIN,
                       window=WINDOW)


def _line(claims, start):
  (line,) = [c for c in claims if c.startswith(start)]
  return line


def test_the_papers_shape_satisfies_its_claims():
  claims = _claims(_accuracy())
  removal = _line(claims, "A large fraction can be removed")
  # 10 % and 30 % stay within 0.2 of 96.2; 50 % does not.
  assert "**holds**" in removal and "up to 30 % removed" in removal
  random = _line(claims, "Random removal costs more")
  assert "**holds**" in random and "10 % +0.30, 30 % +1.10, 50 % +1.00" in random
  noise = _line(claims, "Noisy labels are forgotten most")
  assert "**holds**" in noise and "70.0 ± 0.0 % have a changed label" in noise
  window = _line(claims, "Removing more-forgotten examples costs more")
  assert "**holds**" in window and "96.20 %, from the highest: 95.20 %" in window
  mli = _line(claims, "Max loss increase against forgetting")
  assert "-0.43 points" in mli and "least favourable size 30 %: -0.60" in mli


def test_verdicts_turn_when_the_numbers_do():
  claims = _claims(_accuracy(forgetting=(95.9, 94.0, 93.0), random=(96.0, 95.0, 93.5),
                             windows={0: 95.0, 400: 95.8, 900: 96.0}),
                   _analysis(noisy_share=25.0))
  assert "**does not hold**" in _line(claims, "A large fraction can be removed")
  assert "up to 0 % removed" in _line(claims, "A large fraction can be removed")
  assert "**does not hold**" in _line(claims, "Random removal costs more")
  assert "**does not hold**" in _line(claims, "Noisy labels are forgotten most")
  assert "**does not hold**" in _line(claims, "Removing more-forgotten examples costs more")


def test_tables_cover_every_cell():
  cells = report._cells(_runs(_accuracy()))  # pylint: disable=protected-access
  table = report._removal_table(cells, list(SIZES), NUM_TRAIN)  # pylint: disable=protected-access
  # Header, rule, no removal, one row per size; columns: the orderings present everywhere.
  assert len(table) == 3 + len(SIZES)
  assert table[0] == "| removed | Forgetting | Max loss increase | Random |"
  assert table[3] == "| 10 % (100) | 96.20 ± 0.10 | 96.00 ± 0.10 | 95.90 ± 0.10 |"
  window = report._window_table(cells, _analysis(), WINDOW, NUM_TRAIN)  # pylint: disable=protected-access
  # Three starts, then the random reference; the 10 % curve cells are the k = 0 windows.
  assert len(window) == 2 + 3 + 1
  assert window[2] == "| 0 % | 0.495 / 96.20 ± 0.10 | -0.901 / 96.00 ± 0.10 |"
  assert window[3] == "| 40 % | 4.5 / 95.80 ± 0.10 | — |"


def test_average_ranks_and_spearman():
  np.testing.assert_array_equal(report.average_ranks(np.asarray([3.0, 1.0, 3.0, 2.0])),
                                [3.5, 1.0, 3.5, 2.0])
  assert report.spearman(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)
  assert report.spearman(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)
