"""The budgeted importance sampling report: verdicts follow the numbers; tables cover every
cell and mark missing ones."""

import math

import pytest

from experiments import budgeted_importance_sampling_report as report


def _results(accuracy, entropy=None):
  """Two seeds (±0.1) of each label in ``accuracy``."""
  entropy = entropy or {}
  results = []
  for label, value in accuracy.items():
    for seed in (0, 1):
      summary = {"test_accuracy": value + (0.1 if seed else -0.1), "test_ece": 1.0,
                 "num_train_examples_seen": 300, "examples_forwarded": 300,
                 "train_seconds": 2.0}
      if label in entropy:
        summary["coverage_entropy"] = entropy[label]
      results.append({"arg": label, "seed": seed, "summary": summary,
                      "command": f"run {label} {seed}", "wall_seconds": 1.0})
  return results


def _cells(accuracy, entropy=None):
  return report._cells(_results(accuracy, entropy))  # pylint: disable=protected-access


def test_labels_parse_with_and_without_an_ablation():
  assert report.parse("mnist1d,p,standard,0.3") == ("mnist1d", "p", "standard", 0.3, "")
  assert report.parse("fashion_mnist,p,ricap,0.3,reference_ricap_scores")[4] == (
      "reference_ricap_scores")


def test_importance_sampling_verdict_counts_gaps_beyond_the_seed_std():
  base = {"mnist1d,sgd,standard,1": 98.0, "mnist1d,unif,standard,0.3": 97.0,
          "mnist1d,unif,mixup,0.3": 97.5}
  # p-SGD 0.5 better than uniform with standard, c-SGD 0.05 (within the std of 0.1).
  cells = _cells({**base, "mnist1d,p,standard,0.3": 97.5, "mnist1d,c,standard,0.3": 97.05,
                  "mnist1d,p,mixup,0.3": 96.0, "mnist1d,c,mixup,0.3": 97.45})
  claims = report.claims(cells, "mnist1d", ["standard", "mixup"])
  first = claims[0]
  assert "p-SGD better in 1, worse in 1, within the std in 0 of 2" in first
  assert "c-SGD better in 0, worse in 0, within the std in 2 of 2" in first
  assert first.endswith("Holds.")
  # Augmentation at 30 %: unif + mixup 97.5 against 98.0 at 100 %: -0.50, does not hold.
  assert "97.50 % against 98.00 % (-0.50 points). Does not hold here." in claims[1]
  # p-SGD better in both comparisons: the claim does not hold, and says which sampler.
  cells = _cells({**base, "mnist1d,p,standard,0.3": 97.5, "mnist1d,p,mixup,0.3": 98.0})
  assert report.claims(cells, "mnist1d", ["standard", "mixup"])[0].endswith(
      "Does not hold here: p-SGD beats uniform in most comparisons.")


def test_entropy_claim_checks_the_ablation_order():
  accuracy = {f"mnist1d,p,standard,0.3{suffix}": 97.0 for suffix in
              ("", ",no_eps", ",no_eps_last", ",no_eps_last_step_lr")}
  rising = {"mnist1d,p,standard,0.3,no_eps_last_step_lr": 10.0,
            "mnist1d,p,standard,0.3,no_eps_last": 10.2, "mnist1d,p,standard,0.3,no_eps": 10.5,
            "mnist1d,p,standard,0.3": 10.6}
  claims = report.claims(_cells(accuracy, rising), "mnist1d", ["standard"])
  assert claims[-2].endswith("10.000 → 10.200 → 10.500 → 10.600. Holds.")
  assert claims[-1].endswith("97.00 → 97.00 → 97.00 → 97.00 %. Holds.")
  falling = {**rising, "mnist1d,p,standard,0.3": 10.1}
  worse = {**accuracy, "mnist1d,p,standard,0.3": 96.0}
  claims = report.claims(_cells(worse, falling), "mnist1d", ["standard"])
  assert claims[-2].endswith("Not monotone here.")
  assert claims[-1].endswith("97.00 → 97.00 → 97.00 → 96.00 %. Does not hold here.")


def test_tables_mark_missing_cells_and_the_random_subsets_entropy():
  cells = _cells({"mnist1d,random,standard,0.3": 96.0, "mnist1d,sgd,standard,1": 98.0})
  table = report._budget_table(cells, "mnist1d")  # pylint: disable=protected-access
  assert "| Random (fixed subset) | – | 96.00 ± 0.10 | – | – |  |" in table
  assert table[2].endswith("| 98.00 ± 0.10 |")  # budgeted SGD row carries the 100 % cell
  cost = report._cost_table(cells, "mnist1d", 1000, 10)  # pylint: disable=protected-access
  row = next(line for line in cost if line.startswith("| Random"))
  # 300 of 10 epochs × 1,000 examples = 3 %; H(c) = ln 300.
  assert row.startswith("| Random (fixed subset) | 3.0 | 3.0 |")
  assert f"{math.log(300):.3f}" in row


def test_rows_hold_every_cell_with_its_command():
  rows = report.rows(_results({"mnist1d,unif,standard,0.3": 97.0}))
  assert len(rows) == 1
  assert rows[0]["test_accuracy_mean"] == pytest.approx(97.0)
  assert rows[0]["command_first_seed"] == "run mnist1d,unif,standard,0.3 0"
