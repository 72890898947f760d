"""The selection comparison grid: every config it runs is valid, every method's planned
back-propagations land at its budget, and the report's tables, time-to-target, paired
verdicts and Pareto front follow hand-made numbers. No training."""

import csv
import math
import os

import pytest

from configs.papers import selection_comparison as paper
from experiments import grid, paired, selection_comparison_claims
from experiments import selection_comparison as experiment
from experiments import selection_comparison_report as report
from jaxsel import config_checks, importance, selection
from jaxsel.methods.coreset import coreset_size

ROOT = "/nonexistent/selection_comparison"
ASSUMED_INFOBATCH_FRACTION = 0.7  # any f: E' follows from it


def _grid_config(arg: str, seed: int = 0):
  """The config the grid runs for ``arg``: the paper argument plus the grid's overrides."""
  dataset, method, budget = report.parse(arg)
  epochs = experiment.infobatch_epochs(budget, paper.EPOCHS[dataset],
                                       ASSUMED_INFOBATCH_FRACTION)
  return grid.config_of(paper.get_config, arg, seed, experiment.overrides(
      ROOT, dataset, method, budget, seed, epochs=epochs))


ARGS = [a for d in paper.DATASETS for a in paper.grid_args(d)]


@pytest.mark.parametrize("arg", ARGS)
def test_every_config_of_the_grid_passes_the_checks(arg):
  config = _grid_config(arg)
  config_checks.check_config(config)
  assert config.dataset.train_subset_size == paper.TRAIN_SUBSET_SIZE[arg.split(",")[0]]
  assert config.train.batch_size == paper.BATCH_SIZE and not config.train.drop_remainder


def test_bad_arguments_name_the_part():
  for arg, words in (("fashion_mnist,full,0.3", "BUDGET must be 1"),
                     ("fashion_mnist,p,1", "budget below 1"), ("cifar,p,0.3", "dataset"),
                     ("mnist1d,nope,0.3", "method"), ("mnist1d,p", "DATASET,METHOD,BUDGET")):
    with pytest.raises(ValueError, match=words):
      paper.get_config(arg)


def planned_backprops(config, num_train: int) -> float:
  """Back-propagations a run of ``config`` plans, from its fields alone (selective
  backprop: the expectation for uniform percentiles; InfoBatch is data-dependent)."""
  method, train = config.method, config.train
  epochs, batch = train.num_epochs, train.batch_size
  steps_per_epoch = math.ceil(num_train / batch)
  if method.name == "full_data":
    if train.num_train_steps:
      full, rest = divmod(train.num_train_steps, steps_per_epoch)
      return full * num_train + rest * batch
    return epochs * (num_train - config.removal.remove_n)
  if method.name == "coreset":
    return epochs * coreset_size(num_train, method.pruning_rate)
  if method.name == "prioritization":
    k = selection.subset_size(num_train, fraction=method.subset_fraction)
    return method.warmup_epochs * num_train + (epochs - method.warmup_epochs) * k
  if method.name == "budgeted":
    return epochs * importance.budget_size(num_train, method.budget)
  if method.name == "selective_backprop":
    primed = method.priming_epochs
    return primed * num_train + (epochs - primed) * num_train / (method.beta + 1)
  if method.name == "rho_loss":
    return epochs * steps_per_epoch * max(1, math.floor(batch * method.selected_fraction))
  raise AssertionError(f"no plan for {method.name}")


@pytest.mark.parametrize("dataset", paper.DATASETS)
@pytest.mark.parametrize("budget", paper.BUDGETS)
def test_every_method_plans_its_budget_of_back_propagations(dataset, budget):
  num_train, epochs = paper.NUM_TRAIN[dataset], paper.EPOCHS[dataset]
  wanted = budget * epochs * num_train
  for method in paper.METHODS:
    if method in ("full", "infobatch"):
      continue
    planned = planned_backprops(paper.get_config(f"{dataset},{method},{budget:g}"), num_train)
    assert abs(planned - wanted) / wanted < 0.03, (method, planned, wanted)
  assert planned_backprops(paper.get_config(f"{dataset},full,1"), num_train) == (
      epochs * num_train)


@pytest.mark.parametrize("fraction", [0.45, 0.6, 0.72, 0.9])
def test_infobatch_epochs_land_at_the_budget_up_to_rounding(fraction):
  for budget in paper.BUDGETS:
    for epochs in paper.EPOCHS.values():
      chosen = experiment.infobatch_epochs(budget, epochs, fraction)
      # Whole epochs: at most half an epoch's f away from b · E, unless 2 is the floor.
      assert abs(chosen * fraction - budget * epochs) <= fraction / 2 or chosen == 2
  assert experiment.infobatch_epochs(0.3, 10, 0.6) == 5
  summaries = [{"examples_backpropagated": 60}, {"examples_backpropagated": 80}]
  assert experiment.backprop_fraction(summaries, 10, 10) == pytest.approx(0.7)


def _result(arg, seed, *, accuracy, val, seconds=1.0, backprop=1000, forward=None,
            run_seconds=10.0, extra=0.0):
  """A hand-made result: one record per entry of ``val`` (validation accuracies)."""
  summary = {"test_accuracy": accuracy, "test_ece": 2.0, "num_epochs": len(val),
             "examples_backpropagated": backprop, "examples_forwarded": forward or backprop,
             "timings": {"run_seconds": run_seconds}, "num_train": 100,
             "num_validation": 20, "num_test": 30}
  records = [{"epoch": i, "val_accuracy": v, "seconds": seconds} for i, v in enumerate(val)]
  return {"arg": arg, "seed": seed, "summary": summary, "records": records,
          "command": f"run {arg} {seed}", "wall_seconds": run_seconds,
          "extra_scoring_seconds": extra}


def _results():
  """Three seeds of full data (last val 90: target 89.1), a scores run, and at 30 %: random
  (80, 81, 82), p-SGD (+1, +1.5, +2 over random), CCS (−1, +0.5, +2: noisy) which reaches
  the target at epoch 4, and fewer steps (−2, −2.5, −3: worse)."""
  out = []
  for seed in (0, 1, 2):
    out += [
        _result("mnist1d,full,1", seed, accuracy=90.0, val=[50, 80, 90, 90]),
        _result("mnist1d,scores,1", seed, accuracy=90.0, val=[50, 80, 90, 90],
                run_seconds=7.0),
        _result("mnist1d,random,0.3", seed, accuracy=80.0 + seed, val=[40, 60, 70, 75],
                backprop=300, run_seconds=4.0),
        _result("mnist1d,p,0.3", seed, accuracy=81.0 + 1.5 * seed, val=[40, 60, 70, 75],
                backprop=310, forward=400, run_seconds=5.0),
        _result("mnist1d,ccs,0.3", seed, accuracy=79.0 + 2.5 * seed,
                val=[50, 80, 89.0, 89.2, 95], seconds=2.0, backprop=300, run_seconds=6.0,
                extra=0.0),
        _result("mnist1d,fewer_steps,0.3", seed, accuracy=78.0 + 0.5 * seed,
                val=[40, 60, 70], backprop=300, run_seconds=3.0),
    ]
  return out


def test_time_to_target_is_the_first_epoch_reaching_it_plus_scoring():
  records = [{"val_accuracy": v, "seconds": s} for v, s in ((50, 1), (89.0, 2), (89.2, 3))]
  assert report.time_to_target(records, 89.1) == (3, 6)
  assert report.time_to_target(records, 89.1, offset=7.0) == (3, 13)
  assert report.time_to_target(records, 95.0) is None
  assert report.time_to_target([{"seconds": 1.0}], 10.0) is None  # never evaluated
  cells = report.cells(_results())
  ccs = cells[("mnist1d", "ccs", 0.3)]["runs"][0]
  # Epoch 4 (89.2 >= 0.99 · 90), 4 epochs of 2 s, plus the scores run's 7 s.
  assert (ccs["epochs_to_target"], ccs["seconds_to_target"]) == (4, 15.0)
  # 95 % of 90 = 85.5: epoch 3.
  assert (ccs["epochs_to_low_target"], ccs["seconds_to_low_target"]) == (3, 13.0)
  assert (ccs["scoring_seconds"], ccs["total_seconds"]) == (7.0, 13.0)
  p = cells[("mnist1d", "p", 0.3)]["runs"][0]
  assert not p["reached"] and p["scoring_seconds"] == 0.0
  assert (p["backprop_pct"], p["forward_pct"]) == (31.0, 40.0)


def test_paired_difference_verdicts():
  base = {0: 90.0, 1: 90.5, 2: 91.0}
  better = report.paired_difference({0: 91.0, 1: 92.0, 2: 93.0}, base)
  assert (better["mean"], better["std"], better["n"]) == (1.5, 0.5, 3)
  assert better["verdict"] == "better"
  noisy = report.paired_difference({0: 89.0, 1: 91.0, 2: 93.0}, base)
  assert noisy["mean"] == pytest.approx(0.5) and noisy["verdict"] == "inconclusive"
  # Differences 1, 1.5, 2: mean 1.5, sd 0.5, half-width t(2) · 0.5 / √3 = 4.303 · 0.2887.
  assert (better["low"], better["high"]) == pytest.approx((1.5 - 1.2422, 1.5 + 1.2422),
                                                          abs=1e-4)
  worse = report.paired_difference({0: 88.0, 1: 88.4, 2: 88.9}, base)
  assert worse["verdict"] == "worse"
  assert report.paired_difference({0: 91.0, 5: 1.0}, base)["verdict"].startswith("one seed")
  assert report.paired_difference({7: 1.0}, base) is None


def test_pareto_front_drops_dominated_points():
  points = [(1, 80), (2, 85), (3, 84), (4, 90), (2.5, 85), (5, 90)]
  # (3, 84) and (2.5, 85) are beaten by (2, 85); (5, 90) by (4, 90).
  assert report.pareto_front(points) == [0, 1, 3]
  assert report.pareto_front([(2, 1), (2, 1)]) == [0, 1]  # equal points: neither dominates


def test_report_tables_sorted_with_verdicts_and_files(tmp_path):
  results = _results()
  cells = report.cells(results)
  table = report.budget_table(cells, "mnist1d", 0.3)
  order = [line.split(" | ")[0].lstrip("| ") for line in table[2:]]
  assert order == ["p-SGD", "CCS coreset", "Random subset (fixed)", "Full data, fewer steps",
                   "*Full data (reference)*"]
  assert table[3].startswith("| CCS coreset | 81.50 ± 2.04 | 2.00 ± 0.00 | 30.0 ± 0.0 |")
  # To 95 % of 90 (85.5): epoch 3, 3 · 2 s + 7 s; to 99 % (89.1): epoch 4, 15 s.
  assert ("| 7.0 ± 0.0 | 6.0 ± 0.0 | 13.0 ± 0.0 | 3.0 ± 0.0 | 13.0 ± 0.0 | 4.0 ± 0.0 | "
          "15.0 ± 0.0 |") in table[3]
  assert table[2].endswith("| not reached | not reached |")
  section = "\n".join(report.versus_random_section(cells, "mnist1d", 0.3))
  assert "| p-SGD | +1.50 [+0.26, +2.74] | 0.50 | 3 | better |" in section
  assert "| CCS coreset | +0.50 [-3.23, +4.23] | 1.50 | 3 | inconclusive |" in section
  assert "| Full data, fewer steps | -2.50 [-3.74, -1.26] | 0.50 | 3 | worse |" in section
  # Against fewer steps (78 + 0.5 s): p-SGD's differences 3, 4, 5, so 4 ± 4.303 / √3.
  fewer = "\n".join(report.versus_random_section(cells, "mnist1d", 0.3, "fewer_steps"))
  assert "| p-SGD | +4.00 [+1.52, +6.48] | 1.00 | 3 | better |" in fewer
  assert "Beat full data with fewer steps (interval above 0): p-SGD (+4.00)" in fewer
  advice = report.recommendation(cells, "mnist1d", 0.3)
  assert advice.startswith("**MNIST-1D, 30 %**: p-SGD is the most accurate, 82.50 %, +1.50 "
                           "points over a random subset (95 % interval above 0) and +4.00")
  output = str(tmp_path / "out" / "comparison")
  report.write(results, output, seeds=[0, 1, 2], ordering_command="make ordering")
  text = open(output + ".md").read()
  assert "### 30 % budget (sorted by test accuracy)" in text and "make ordering" in text
  assert os.path.getsize(output + "_pareto.png") > 1000
  with open(output + ".csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 6
  ccs = next(r for r in rows if r["method"] == "ccs")
  assert (ccs["vs_random_verdict"], ccs["target_reached"]) == ("inconclusive", "3")
  assert ccs["command_first_seed"] == "run mnist1d,ccs,0.3 0"


def test_claims_lossless_infobatch_and_rho_loss_against_uniform():
  results = _results()
  for seed in (0, 1, 2):
    # InfoBatch − full: −0.2, −0.3, −0.1 (mean −0.2, sd 0.1, half 4.303 · 0.1 / √3 = 0.248):
    # the interval [−0.45, +0.05] lies above −0.5, so "lossless" holds.
    results.append(_result("mnist1d,infobatch,1", seed, accuracy=90.0 - (0.2, 0.3, 0.1)[seed],
                           val=[50, 80, 90, 90]))
    # RHO-LOSS − fewer steps (78 + 0.5 s): +1, +1, +4: mean 2, sd 1.73, half 4.30: spans 0.
    results.append(_result("mnist1d,rho,0.3", seed, accuracy=78.0 + 0.5 * seed
                           + (1.0, 1.0, 4.0)[seed], val=[40, 60, 70], backprop=300))
  found = selection_comparison_claims.collect(report.cells(results))
  lossless, rho = found
  assert lossless.verdict == paired.HOLDS and "-0.20 [-0.45, +0.05]" in lossless.evidence
  assert rho.verdict == paired.UNDECIDED and "+2.00 [-2.30, +6.30]" in rho.evidence
  assert "MNIST-1D, all training data" in rho.regime and "30 %" in rho.regime
  assert {lossless.table, rho.table} == {"selection_comparison.md"}
