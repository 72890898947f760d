"""The budgeted importance sampling report: claims decided seed by seed (paired 95 %
intervals), tables that cover every cell and mark missing ones, and the experiment's plan
of runs (length and seeds per dataset)."""

import math

import pytest

from configs.papers import budgeted_importance_sampling as paper
from experiments import budgeted_importance_sampling as experiment
from experiments import budgeted_importance_sampling_claims as claims
from experiments import budgeted_importance_sampling_report as report
from experiments import paired

SEEDS = (0, 1, 2)


def _results(accuracy, entropy=None, jitter=None, seeds=SEEDS, epochs=None):
  """Every seed of each label in ``accuracy``: its value plus the same offsets in every
  cell (0.1 · (i − middle) for the i-th seed), so paired differences between cells are
  exact (an interval of width 0) unless ``jitter`` ({label: one offset per seed}) makes
  the seeds of a cell disagree. ``entropy``: {label: H(c)}, the same for every seed."""
  results = []
  for label, value in accuracy.items():
    for i, seed in enumerate(seeds):
      summary = {"test_accuracy": value + 0.1 * (i - (len(seeds) - 1) / 2)
                                  + (jitter or {}).get(label, [0.0] * len(seeds))[i],
                 "test_ece": 1.0, "num_train_examples_seen": 300, "examples_forwarded": 300,
                 "train_seconds": 2.0}
      if label in (entropy or {}):
        summary["coverage_entropy"] = entropy[label]
      if epochs is not None:
        summary["num_epochs"] = epochs
      results.append({"arg": label, "seed": seed, "summary": summary,
                      "command": f"run {label} {seed}", "wall_seconds": 1.0})
  return results


def _cells(accuracy, **kwargs):
  return report._cells(_results(accuracy, **kwargs))  # pylint: disable=protected-access


def _finding(findings, start):
  (finding,) = [f for f in findings if f.text.startswith(start)]
  return finding


def _importance(findings, method):
  return _finding(findings, f"Importance sampling does not beat uniform sampling: {method} ")


def test_labels_parse_with_and_without_an_ablation():
  assert report.parse("mnist1d,p,standard,0.3") == ("mnist1d", "p", "standard", 0.3, "")
  assert report.parse("fashion_mnist,p,ricap,0.3,reference_ricap_scores")[4] == (
      "reference_ricap_scores")


BASE = {"mnist1d,sgd,standard,1": 98.0, "mnist1d,unif,standard,0.3": 97.0,
        "mnist1d,unif,mixup,0.3": 97.5}


def test_importance_sampling_claim_follows_the_paired_intervals():
  # p-SGD − unif-SGD: +0.5 in every seed with standard augmentation (p-SGD beats uniform
  # there: the claim does not hold), −1.5 with mixup.
  # c-SGD − unif-SGD with standard: per seed −0.4, +0.1, +0.6: mean +0.10, sd 0.5,
  # half-width t_{0.975,2} · sd / √3 = 4.303 · 0.5 / 1.732 = 1.24: [−1.14, +1.34], which
  # spans 0; with mixup −0.5 in every seed. One part open, one holding: inconclusive.
  findings = claims.claims(_cells(
      {**BASE, "mnist1d,p,standard,0.3": 97.5, "mnist1d,p,mixup,0.3": 96.0,
       "mnist1d,c,standard,0.3": 97.1, "mnist1d,c,mixup,0.3": 97.0},
      jitter={"mnist1d,c,standard,0.3": (-0.5, 0.0, 0.5)}), "mnist1d")
  p_sgd = _importance(findings, "p-SGD")
  assert p_sgd.verdict == paired.DOES_NOT_HOLD
  assert p_sgd.evidence == ("accuracy difference (points), p-SGD − unif-SGD: standard 30 % "
                            "+0.50 [+0.50, +0.50]; mixup 30 % -1.50 [-1.50, -1.50]")
  c_sgd = _importance(findings, "c-SGD")
  assert c_sgd.verdict == paired.UNDECIDED
  assert "standard 30 % +0.10 [-1.14, +1.34]; mixup 30 % -0.50 [-0.50, -0.50]" in (
      c_sgd.evidence)
  # "Does not beat" is tested as "worse": inconclusive is not evidence for it, and says so.
  assert c_sgd.evidence.endswith("(inconclusive: consistent with the claim, but not "
                                 "evidence for it)")
  # Worse than uniform in every cell: the claim holds.
  worse = claims.claims(_cells({**BASE, "mnist1d,p,standard,0.3": 96.5,
                                "mnist1d,p,mixup,0.3": 97.0}), "mnist1d")
  assert _importance(worse, "p-SGD").verdict == paired.HOLDS


def test_selective_backprop_is_held_to_the_same_claim():
  # Selective backprop − unif-SGD: +0.4 with standard augmentation in every seed: it beats
  # uniform there, so "does not beat uniform" does not hold for it.
  findings = claims.claims(_cells({**BASE, "mnist1d,sb,standard,0.3": 97.4}), "mnist1d")
  sb = _importance(findings, "Selective backprop")
  assert sb.verdict == paired.DOES_NOT_HOLD and "standard 30 % +0.40" in sb.evidence


def test_augmentation_claim_holds_when_some_augmentation_beats_the_full_budget():
  # unif-SGD + mixup at 30 % − SGD at 100 %: per seed +0.2, +0.3, +0.4: mean +0.30,
  # sd 0.1, half-width 4.303 · 0.1 / √3 = 0.25: [+0.05, +0.55], above 0. RICAP is 2 points
  # below, but the claim asks for a suitable augmentation: one is enough.
  accuracy = {**BASE, "mnist1d,unif,mixup,0.3": 98.3, "mnist1d,unif,ricap,0.3": 96.0}
  findings = claims.claims(_cells(accuracy, jitter={"mnist1d,unif,mixup,0.3": (-0.1, 0, 0.1)}),
                           "mnist1d")
  claim = _finding(findings, "With a 30 % budget, uniform sampling")
  assert claim.verdict == paired.HOLDS
  assert claim.evidence == ("accuracy difference (points), unif-SGD 30 % − SGD 100 % "
                            "standard: mixup +0.30 [+0.05, +0.55]; RICAP -2.00 [-2.00, -2.00]")
  below = claims.claims(_cells({**accuracy, "mnist1d,unif,mixup,0.3": 97.5}), "mnist1d")
  assert _finding(below, "With a 30 % budget").verdict == paired.DOES_NOT_HOLD


def test_augmentation_matters_more_than_the_sampler_by_the_per_seed_spread():
  # Samplers at 30 %, standard: 97.0 / 97.2 / 97.1, a spread of 0.2 in every seed; unif-SGD
  # with standard / mixup: 97.0 / 95.0, a spread of 2.0: +1.80, and all of it a loss.
  findings = claims.claims(_cells(
      {**BASE, "mnist1d,unif,mixup,0.3": 95.0, "mnist1d,p,standard,0.3": 97.2,
       "mnist1d,c,standard,0.3": 97.1}), "mnist1d")
  claim = _finding(findings, "Data augmentation matters more than the sampler")
  assert claim.verdict == paired.HOLDS
  assert claim.evidence.startswith("accuracy spread (max − min, points) over augmentations − "
                                   "over samplers +1.80 [+1.80, +1.80]; each augmentation − "
                                   "standard (unif-SGD): mixup -2.00 [-2.00, -2.00]")
  assert claim.evidence.endswith("so the larger spread is a loss, not a gain")


def test_unif_against_a_fixed_subset_with_five_seeds():
  # unif-SGD − Random at 20 %: per seed +0.1, +0.3, +0.5, +0.7, +0.9: mean +0.50, sd
  # √(0.4 / 4) = 0.316, half-width t_{0.975,4} · sd / √5 = 2.776 · 0.316 / 2.236 = 0.39:
  # [+0.11, +0.89], above 0.
  seeds = paper.SEED_POOL[:5]
  accuracy = {"mnist1d,unif,standard,0.2": 97.5, "mnist1d,random,standard,0.2": 97.0}
  jitter = {"mnist1d,unif,standard,0.2": (-0.4, -0.2, 0.0, 0.2, 0.4)}
  claim = _finding(claims.claims(_cells(accuracy, jitter=jitter, seeds=seeds), "mnist1d"),
                   "unif-SGD beats a fixed random subset")
  assert claim.verdict == paired.HOLDS
  assert claim.evidence == ("accuracy difference (points), unif-SGD − Random: "
                            "20 % +0.50 [+0.11, +0.89]")
  # Every budget must hold: the random subset 0.3 points ahead at 50 % turns it.
  accuracy.update({"mnist1d,unif,standard,0.5": 97.7, "mnist1d,random,standard,0.5": 98.0})
  claim = _finding(claims.claims(_cells(accuracy, jitter=jitter, seeds=seeds), "mnist1d"),
                   "unif-SGD beats a fixed random subset")
  assert claim.verdict == paired.DOES_NOT_HOLD
  assert claim.evidence.endswith("; 50 % -0.30 [-0.30, -0.30]")


ABLATION_LABELS = {a: "mnist1d,p,standard,0.3" + (f",{a}" if a else "")
                   for a in report.ABLATION_ORDER}


def test_entropy_claim_checks_each_step_of_the_ablation_order():
  accuracy = {label: 97.0 for label in ABLATION_LABELS.values()}
  rising = dict(zip(ABLATION_LABELS.values(), (10.0, 10.2, 10.5, 10.6)))
  findings = claims.claims(_cells(accuracy, entropy=rising), "mnist1d")
  entropy = _finding(findings, "Each ingredient that brings p-SGD closer to uniform")
  assert entropy.verdict == paired.HOLDS
  assert entropy.evidence == ("H(c) difference (nats): linear − step LR +0.200 [+0.200, "
                              "+0.200]; average − last value +0.300 [+0.300, +0.300]; "
                              "ε − no ε +0.100 [+0.100, +0.100]")
  # Equal accuracy in every seed: an interval [0, 0] decides nothing.
  assert _finding(findings, "...and each one raises accuracy").verdict == paired.UNDECIDED
  falling = {**rising, ABLATION_LABELS[""]: 10.1}
  worse = {**accuracy, ABLATION_LABELS[""]: 96.0}
  findings = claims.claims(_cells(worse, entropy=falling), "mnist1d")
  assert _finding(findings, "Each ingredient").verdict == paired.DOES_NOT_HOLD
  accuracy_claim = _finding(findings, "...and each one raises accuracy")
  assert accuracy_claim.verdict == paired.DOES_NOT_HOLD
  assert accuracy_claim.evidence.endswith("ε − no ε -1.00 [-1.00, -1.00]")


def test_a_partial_grid_leaves_out_the_claims_it_cannot_check():
  findings = claims.claims(_cells({"mnist1d,unif,standard,0.3": 97.0,
                                   "mnist1d,p,standard,0.3": 96.0}), "mnist1d")
  assert [f.text.split(":")[0] for f in findings] == [
      "Importance sampling does not beat uniform sampling"]


def test_claim_records_carry_each_datasets_regime():
  accuracy = {**BASE, "mnist1d,p,standard,0.3": 96.0,
              "fashion_mnist,unif,standard,0.3": 85.0, "fashion_mnist,p,standard,0.3": 84.0}
  results = _results(accuracy, epochs=30)
  cells = report._cells(results)  # pylint: disable=protected-access
  records = report.claim_records(cells, ["fashion_mnist", "mnist1d"],
                                 table="budgeted_importance_sampling.md")
  assert [r.regime for r in records] == [
      "Fashion-MNIST (54,000 train), example-forgetting MNIST CNN, 30 epochs, lr 0.05, "
      "linear decay per step; 3 seeds"] + [
      "MNIST-1D large (45,000 train), MNIST-1D CNN, 30 epochs, lr 0.05, linear decay per "
      "step; 3 seeds"] * (len(records) - 1)
  assert {r.paper for r in records} == {report.PAPER_NAME}
  assert {r.command for r in records} == {"python -m experiments.budgeted_importance_sampling"}
  page = report.markdown(results, figure_paths={}, minutes=1.0,
                         csv_name="budgeted_importance_sampling.csv")
  assert "- Fashion-MNIST: Importance sampling does not beat uniform sampling: p-SGD" in page
  assert "(3 seeds: 0, 1, 2): the mean paired difference" in page
  assert page.rstrip().splitlines()[-1].startswith("- MNIST-1D: ")


def test_tables_mark_missing_cells_and_the_random_subsets_entropy():
  cells = _cells({"mnist1d,random,standard,0.3": 96.0, "mnist1d,sgd,standard,1": 98.0})
  table = report._budget_table(cells, "mnist1d")  # pylint: disable=protected-access
  # Seeds 95.9, 96.0, 96.1: population std 0.08.
  assert "| Random (fixed subset) | – | 96.00 ± 0.08 | – | – |  |" in table
  assert table[2].endswith("| 98.00 ± 0.08 |")  # budgeted SGD row carries the 100 % cell
  cost = report._cost_table(cells, "mnist1d", 1000, 10)  # pylint: disable=protected-access
  row = next(line for line in cost if line.startswith("| Random"))
  # 300 of 10 epochs × 1,000 examples = 3 %; H(c) = ln 300.
  assert row.startswith("| Random (fixed subset) | 3.0 | 3.0 |")
  assert f"{math.log(300):.3f}" in row


def test_rows_hold_every_cell_with_its_command():
  rows = report.rows(_results({"mnist1d,unif,standard,0.3": 97.0}))
  assert len(rows) == 1
  assert rows[0]["test_accuracy_mean"] == pytest.approx(97.0)
  assert rows[0]["seeds"] == "0 1 2"
  assert rows[0]["command_first_seed"] == "run mnist1d,unif,standard,0.3 0"


def test_the_default_plan_runs_as_before_and_a_longer_one_elsewhere():
  default = experiment.plan("mnist1d", "runs/b")
  assert default == experiment.Plan("mnist1d", 30, paper.SEED_POOL[:3], "runs/b")
  runs = experiment.planned_runs(default)
  assert runs[0] == ("mnist1d,sgd,standard,1", "mnist1d,sgd,standard,1", {})
  coreset = next(r for r in runs if r[0] == "mnist1d,coreset,standard,0.3")
  assert coreset[2]["method.scores_path"] == ",".join(
      f"runs/b/mnist1d_scores_standard_1/seed{s}" for s in paper.SEED_POOL[:3])
  longer = experiment.plan("fashion_mnist", "runs/b", epochs=30, seeds=paper.SEED_POOL[:5])
  assert longer.root == "runs/b/epochs30" and len(longer.seeds) == 5
  overrides = dict((label, o) for label, _, o in experiment.planned_runs(longer))
  assert overrides["fashion_mnist,p,ricap,0.3"] == {"train.num_epochs": 30}
  # Budgeted SGD: 30 epochs' worth of ⌊⌊0.3 · 54,000⌋ / 128⌋ = 126 steps.
  assert overrides["fashion_mnist,sgd,standard,0.3"] == {"train.num_train_steps": 30 * 126}
  assert overrides["fashion_mnist,unif,standard,0.3,step_lr"][
      "schedule.milestone_epochs"] == (15, 22)


def test_per_dataset_values_name_one_dataset_or_all():
  both = ["fashion_mnist", "mnist1d"]
  assert experiment.per_dataset(["5"], both) == {"fashion_mnist": 5, "mnist1d": 5}
  assert experiment.per_dataset(["3", "fashion_mnist=5"], both) == {"fashion_mnist": 5,
                                                                   "mnist1d": 3}
  assert experiment.per_dataset(["fashion_mnist=5"], ["mnist1d"]) == {}
  with pytest.raises(ValueError, match="unknown dataset 'cifar10'"):
    experiment.per_dataset(["cifar10=5"], both)


def test_the_augmentation_grid_runs_five_seeds_only_where_a_claim_is_decided():
  run_plan = experiment.plan("fashion_mnist_small", "runs/b", epochs=100,
                             seeds=paper.SEED_POOL[:5])
  counts = {label: len(experiment.cell_seeds(run_plan, label, only_augmentation=True))
            for label, _, _ in experiment.planned_runs(run_plan, only_augmentation=True)}
  few = {label for label, n in counts.items() if n == experiment.FEW_SEEDS == 3}
  assert few == {f"fashion_mnist_small,sgd,{a},0.3" for a in paper.AUGMENTATIONS} | {
      f"fashion_mnist_small,sgd,{a},1" for a in ("mixup", "ricap", "randaugment")}
  assert counts["fashion_mnist_small,sgd,standard,1"] == 5  # the claims' 100 % baseline
  assert {counts[f"fashion_mnist_small,{m},ricap,0.3"] for m in ("unif", "p", "sb")} == {5}
  # The whole grid keeps every seed in every cell.
  assert experiment.cell_seeds(run_plan, "fashion_mnist_small,sgd,ricap,0.3",
                               only_augmentation=False) == paper.SEED_POOL[:5]


class _Flag:
  def __init__(self, name, value, default):
    self.name, self.value, self.default = name, value, default

  def serialize(self):
    return f"--{self.name}={','.join(self.value) if isinstance(self.value, list) else self.value}"


def test_the_command_line_names_only_the_flags_that_were_changed():
  values = {"datasets": (["fashion_mnist_small"], ["fashion_mnist", "mnist1d"]),
            "seeds": (["1"], ["1"]), "num_seeds": (["5"], []), "epochs": ([], []),
            "cells": ("augmentation", "all"), "workdir": ("runs/b", "runs/b"),
            "output": ("out/x", "experiments/results/budgeted_importance_sampling")}
  args = {name: _Flag(name, *pair) for name, pair in values.items()}
  assert experiment.command_line(args) == (
      "python -m experiments.budgeted_importance_sampling --datasets=fashion_mnist_small "
      "--num_seeds=5 --cells=augmentation --output=out/x")


def test_the_augmentation_grids_page_names_its_command_scope_and_fewer_seeds():
  five = (0, 1, 2, 3, 4)
  results = (_results({"fashion_mnist_small,sgd,standard,1": 88.0,
                       "fashion_mnist_small,unif,ricap,0.3": 84.0,
                       "fashion_mnist_small,p,ricap,0.3": 84.5}, seeds=five, epochs=100)
             + _results({"fashion_mnist_small,sgd,ricap,0.3": 83.0,
                         "fashion_mnist_small,sgd,ricap,1": 86.0}, epochs=100))
  command = "python -m experiments.budgeted_importance_sampling --cells=augmentation"
  page = report.markdown(results, figure_paths={}, minutes=1.0, csv_name="x.csv",
                         command=command, augmentation_grid=True)
  assert page.startswith("# Budgeted importance sampling: Fashion-MNIST, 12,000 images\n")
  assert f"    {command}   # the whole grid, resumable" in page
  assert "The long augmentation grid (`--cells=augmentation`)" in page
  assert "validate every 5 epochs" in page and "The default lengths" not in page
  assert ("Fewer seeds (no claim is decided on these cells): SGD RICAP 30 % (3), "
          "SGD RICAP 100 % (3).") in page
  assert "100 epochs; 5 seeds: 0, 1, 2, 3, 4." in page
  cells = report._cells(results)  # pylint: disable=protected-access
  (record, *_) = report.claim_records(cells, ["fashion_mnist_small"], table="x.md",
                                      command=command)
  assert record.command == command
