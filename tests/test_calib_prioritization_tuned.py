"""The validation-tuned calibrated-prioritization grid: what it runs, how it chooses, and
the files it writes, on a fake runner (no training)."""

import json
import os

import pytest

from configs.papers import calib_prioritization as paper
from experiments import calib_prioritization_tuned as tuned
from experiments import calib_prioritization_tuned_report as report
from experiments import grid, paired

SEEDS, TUNING = [0, 1, 2, 3, 4], [0, 1, 2]
MNIST1D = report.REGIMES["mnist1d_small"]
_RELIABILITY = {"bin_lower": [0.0, 0.5], "bin_upper": [0.5, 1.0], "count": [10, 90],
                "accuracy": [0.3, 0.9], "confidence": [0.4, 0.95]}


def _values(regime, cell):
  return (regime.target_alphas if cell.arg.endswith("target_model")
          else regime.values.get(cell.calibration, ()))


class FakeRunner:
  """Validation ECE of a fake run is lowest at the second value of each grid; test ECE is
  lowest at the first, so a choice that read test numbers would pick differently."""

  def __init__(self, regime=MNIST1D, root="runs/t"):
    self.calls, self.results, self.target_alpha = [], [], None
    self.regime, self.root = regime, root

  def __call__(self, cell, seed, stage):
    extra = tuned.overrides(self.root, cell, seed, self.target_alpha)
    self.calls.append((cell, seed, stage, extra))
    values = _values(self.regime, cell)
    val_ece = 3.0 if cell.value is None else 1.0 + abs(values.index(cell.value) - 1)
    first = cell.value is not None and values.index(cell.value) == 0
    summary = {"val_ece": val_ece, "val_accuracy": 90.0,
               "test_ece": 0.5 if first else 2.0 + 0.1 * seed,
               "test_accuracy": 90.0 + 0.1 * seed + (0.2 if "mixup" in cell.arg else 0.0),
               "test_oe": 1.0, "test_reliability": _RELIABILITY,
               "num_train": 3600, "num_validation": 400, "num_test": 1000,
               **{k: 1.0 for k in ("test_mce", "test_nll", "test_brier", "train_seconds",
                                   "scoring_seconds", "selection_seconds",
                                   "examples_backpropagated", "examples_forwarded")}}
    result = {"arg": cell.arg, "calibration": cell.calibration, "value": cell.value,
              "seed": seed, "stage": stage, "summary": summary,
              "command": f"run {cell.label} {seed}", "wall_seconds": 6.0}
    self.results.append(result)
    return result


@pytest.fixture(name="ran")
def _ran():
  runner = FakeRunner()
  return runner, tuned.run_grid(runner, MNIST1D, SEEDS, TUNING)


def test_the_grid_runs_what_it_counts_and_chooses_by_validation(ran):
  runner, choices = ran
  # Target: 5 α × 3 tuning seeds + 2; untuned 10 cells × 5; 7 sizes × 3 calibrations × 17.
  assert len(runner.calls) == tuned.jobs_total(MNIST1D, SEEDS, TUNING) == \
      5 * 3 + 2 + 50 + 7 * 3 * 17
  assert len({(c.label, s) for c, s, _, _ in runner.calls}) == len(runner.calls)  # no repeat
  assert len(choices) == 1 + 7 * 3
  for choice in choices:  # the second value of each grid has the lowest validation ECE
    values = _values(MNIST1D, tuned.Cell(choice["arg"], choice["calibration"]))
    assert choice["chosen"] == values[1] and list(choice["val_ece"]) == list(values)
  # Tuning seeds run every value; the other seeds only the chosen one.
  mixup_10 = [(c.value, s) for c, s, _, _ in runner.calls
              if c.arg == "mnist1d_small,mixup,10"]
  second = paper.TUNING_VALUES["mixup"][1]
  assert sorted(mixup_10) == sorted([(v, s) for v in paper.TUNING_VALUES["mixup"]
                                     for s in TUNING] + [(second, 3), (second, 4)])


def test_table_2_ranks_by_the_same_seeds_target_at_the_chosen_alpha(ran):
  runner, choices = ran
  alpha = choices[0]["chosen"]
  table2 = [(c, s, extra) for c, s, stage, extra in runner.calls if stage == "table 2"]
  assert len(table2) == 3 * 5 + 3 * 3 * 17
  for cell, seed, extra in table2:
    assert extra["method.target.path"] == tuned.run_dir(
        "runs/t", tuned.Cell("mnist1d_small,target_model", "mixup", alpha), seed)
  # Every target model the grid ranks by has run before the first Table 2 run.
  first_table2 = next(i for i, call in enumerate(runner.calls) if call[2] == "table 2")
  targets = {(c.value, s) for c, s, _, _ in runner.calls[:first_table2]
             if c.arg == "mnist1d_small,target_model"}
  assert {(alpha, s) for s in SEEDS} <= targets


def test_overrides_set_the_tuned_field():
  cell = tuned.Cell("mnist1d_small,focal,20", "focal", 2.0)
  assert tuned.overrides("runs/t", cell, 3, None) == {"loss.focal_gamma": 2.0}
  config = paper.get_config(cell.arg)
  assert config.loss.name == "focal" and config.dataset.name == "mnist1d"
  assert config.optimizer.learning_rate == 0.01 and config.train.num_epochs == 200


def test_report_files_show_the_choices_and_decide_the_claims(ran, tmp_path):
  runner, choices = ran
  prefix = str(tmp_path / "out")
  report.write(runner.results, choices, regime=MNIST1D, prefix=prefix, seeds=SEEDS,
               tuning_seeds=TUNING)
  text = open(prefix + ".md").read()
  assert "**α=0.05: 1.00**" in text and "α=0.02: 2.00" in text  # the mixup choice
  assert "| mixup, 10 %, target-guided |" in text
  assert "over-confidence error" in text and "5 seeds (0, 1, 2, 3, 4)" in text
  claims = json.load(open(prefix + "_claims.json"))
  assert len(claims) == 9 and all(c["verdict"] in (paired.HOLDS, paired.DOES_NOT_HOLD,
                                                   paired.UNDECIDED) for c in claims)
  # Fake test ECE: 2.0 + 0.1·seed for every chosen cell, so calibration never lowers it.
  ece = next(c for c in claims if c["text"].startswith("Calibration during training"))
  assert ece["verdict"] == paired.UNDECIDED and "+0.00" in ece["evidence"]
  # Mixup runs are +0.2 points in accuracy: the target-guidance claim compares guided to
  # self-scored mixup, equal here.
  rows = open(prefix + ".csv").read().splitlines()
  assert len(rows) == 1 + len({(r["arg"], r["value"]) for r in runner.results})
  assert os.path.exists(prefix + "_vs_subset.png")


def test_the_fashion_regime_tunes_fewer_values_on_two_seeds_and_two_sizes(tmp_path):
  regime = report.REGIMES["fashion_mnist_small"]
  runner = FakeRunner(regime)
  choices = tuned.run_grid(runner, regime, SEEDS, list(regime.tuning_seeds))
  # Target: 3 α × 2 seeds + 3; untuned: (1 + 3 · 2) · 5; tuned: 5 cells × 3 × (3 · 2 + 3).
  assert len(runner.calls) == tuned.jobs_total(regime, SEEDS, regime.tuning_seeds) == \
      9 + 35 + 5 * 3 * 9
  assert {c.arg.split(",")[2] for c, _, _, _ in runner.calls if "," in c.arg
          and c.arg.split(",")[1] != "target_model"} == {"100", "30", "10"}
  config = paper.get_config("fashion_mnist_small,target_model")
  assert config.model.name == "cnn2d" and config.model.kwargs.use_batchnorm
  prefix = str(tmp_path / "fashion")
  report.write(runner.results, choices, regime=regime, prefix=prefix, seeds=SEEDS,
               tuning_seeds=list(regime.tuning_seeds))
  text = open(prefix + ".md").read()
  assert "(Fashion-MNIST, validation-tuned)" in text and "--dataset=fashion_mnist_small" in text
  assert "| calibration | 100 % | 30 % | 10 % |" in text
  claims = json.load(open(prefix + "_claims.json"))
  assert any("averaged over 30/10 %" in c["text"] for c in claims)
  assert all("12,000 train" in c["regime"] for c in claims)


def test_the_overrides_apply_to_the_config_nested_fields_too():
  cell = tuned.Cell("mnist1d_small,mixup,10,target", "mixup", 0.2)
  extra = tuned.overrides("runs/t", cell, 3, 0.05)
  config = grid.config_of(paper.get_config, cell.arg, 3, extra)
  assert (config.seed, config.mixing.alpha) == (3, 0.2)
  assert config.method.target.path == "runs/t/mnist1d_small_target_model_0.05/seed3"
  assert config.method.target.required and config.method.subset_fraction == 0.1


def test_choices_at_the_end_of_a_grid_are_named():
  choices = [{"arg": "mnist1d_small,mixup,10", "calibration": "mixup",
              "val_ece": {0.05: 1.0, 0.1: 2.0}, "chosen": 0.05},
             {"arg": "mnist1d_small,focal,30,target", "calibration": "focal",
              "val_ece": {0.5: 3.0, 1.0: 2.0, 2.0: 1.0}, "chosen": 2.0},
             {"arg": "mnist1d_small,label_smoothing,20", "calibration": "label_smoothing",
              "val_ece": {0.01: 2.0, 0.03: 1.0, 0.1: 3.0}, "chosen": 0.03}]
  note = report.edge_note(choices)
  assert note.startswith("1 of 3 choices are the grid's smallest value (mixup, 10 %); 1 of 3 "
                         "choices are the grid's largest value (focal, 30 %, target-guided)")
  assert report.edge_note(choices[2:]) == "Every choice lies inside its grid."


def test_a_target_guided_run_lives_under_its_targets_alpha():
  cell = tuned.Cell("mnist1d_small,mixup,10,target", "mixup", 0.2)
  assert tuned.run_dir("r", cell, 1, 0.01) == "r/mnist1d_small_mixup_10_target_0.2_by0.01/seed1"
  assert tuned.run_dir("r", cell, 1, 0.01) != tuned.run_dir("r", cell, 1, 0.02)
  plain = tuned.Cell("mnist1d_small,mixup,10", "mixup", 0.2)
  assert tuned.run_dir("r", plain, 1, 0.01) == tuned.run_dir("r", plain, 1) == \
      "r/mnist1d_small_mixup_10_0.2/seed1"
  with pytest.raises(ValueError, match="target model's α"):
    tuned.run_dir("r", cell, 1)
