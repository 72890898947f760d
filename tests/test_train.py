"""End to end: a tiny run writes its outputs, resumes exactly, rejects bad input."""

import json
import os

import numpy as np
import pytest

from jaxsel import artifacts, compilation, files, train
from tests.conftest import override, with_method

_TIMING_KEYS = {"seconds", "train_seconds", "scoring_seconds", "selection_seconds",
                "eval_seconds", "checkpoint_seconds", "timings"}


def _records(workdir):
  return files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))


def _without_timings(record):
  return {k: v for k, v in record.items() if k not in _TIMING_KEYS}


def test_tiny_run_writes_metrics_summary_figures_and_checkpoints(tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  summary = train.train_and_evaluate(tiny_config, workdir)
  records = _records(workdir)
  assert [r["epoch"] for r in records] == [0, 1, 2]
  assert [r["step"] for r in records] == [57, 114, 171]  # 3,600 examples, batches of 64
  for key in ("lr", "train_loss", "val_accuracy", "val_ece", "seconds"):
    assert all(np.isfinite(r[key]) for r in records), key
  assert records[-1]["train_loss"] < records[0]["train_loss"]
  assert records[0]["lr"] > records[1]["lr"] > records[2]["lr"]  # cosine, per epoch
  assert summary["num_train_examples_seen"] == 3 * 3600
  assert summary["num_train_steps"] == 171 and summary["num_epochs"] == 3
  assert summary["num_test"] == 1000
  assert 10.0 < summary["test_accuracy"] <= 100.0  # better than chance after 3 epochs
  for key in ("test_ece", "test_nll", "train_seconds"):
    assert np.isfinite(summary[key]) and summary[key] >= 0
  # The best-validation model (lowest validation NLL) is tested too, as a second number.
  best = min(records, key=lambda r: r["val_nll"])
  assert summary["best_val_epoch"] == best["epoch"]
  if best["epoch"] == 2:
    assert summary["best_val_test_accuracy"] == summary["test_accuracy"]
  for name in ("summary.json", "reliability_test.png", "curves.png", "config.json"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2"]
  assert not [n for n in os.listdir(workdir) if n.startswith(".tmp")]
  assert set(summary["timings"]) >= {"data_seconds", "setup_seconds", "test_seconds",
                                     "figures_seconds", "run_seconds"}


PRIORITIZATION = {"method.subset_fraction": 0.1, "method.warmup_epochs": 1}


def _prioritization(config, **fields):
  return with_method(config, "prioritization", **{**PRIORITIZATION, **fields})


def _run_until_killed(config, workdir, *, after_epoch):
  """Runs ``config`` in ``workdir`` and stops it, as Ctrl-C would, after ``after_epoch``."""

  def kill(epoch, record):
    del record
    if epoch == after_epoch:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, workdir, on_epoch_end=kill)


def assert_killed_run_resumes_to(config, reference_dir: str, workdir: str, *,
                                 after_epoch: int = 1) -> dict:
  """Runs ``config`` in ``workdir``, kills it after ``after_epoch``, resumes it, and asserts
  its records and summary equal those of the uninterrupted run in ``reference_dir``
  (timings aside); returns the resumed summary."""
  _run_until_killed(config, workdir, after_epoch=after_epoch)
  assert len(_records(workdir)) == after_epoch + 1
  resumed = train.train_and_evaluate(config, workdir)
  assert ([_without_timings(r) for r in _records(workdir)]
          == [_without_timings(r) for r in _records(reference_dir)])
  with open(os.path.join(reference_dir, "summary.json")) as f:
    assert _without_timings(resumed) == _without_timings(json.load(f))
  return resumed


@pytest.mark.parametrize("kind", ["full_data", "top_k_mixup"])
def test_resumed_run_ends_with_the_uninterrupted_metrics(tiny_config, tmp_path, kind):
  if kind == "top_k_mixup":
    tiny_config = _prioritization(tiny_config, **{"mixing.name": "mixup"})
  reference_dir = str(tmp_path / "uninterrupted")
  reference = train.train_and_evaluate(tiny_config, reference_dir)

  workdir = str(tmp_path / "interrupted")
  _run_until_killed(tiny_config, workdir, after_epoch=1)
  assert len(_records(workdir)) == 2
  resumed = train.train_and_evaluate(tiny_config, workdir)

  assert ([_without_timings(r) for r in _records(workdir)]
          == [_without_timings(r) for r in _records(reference_dir)])
  assert _without_timings(resumed) == _without_timings(reference)
  # A finished workdir is reported, not trained again.
  assert _without_timings(train.train_and_evaluate(tiny_config, workdir)) == \
      _without_timings(reference)


def test_sparser_evaluation_leaves_training_and_the_last_numbers_unchanged(tiny_config,
                                                                          tmp_path):
  # Long grids evaluate every k epochs to save time; evaluation must not touch training,
  # and the last epoch is always evaluated.
  every = train.train_and_evaluate(tiny_config, str(tmp_path / "every"))
  sparse_config = override(tiny_config, **{"eval.every_epochs": 2})
  sparse = train.train_and_evaluate(sparse_config, str(tmp_path / "sparse"))
  every_records, sparse_records = _records(str(tmp_path / "every")), _records(
      str(tmp_path / "sparse"))
  assert ["val_accuracy" in r for r in sparse_records] == [False, True, True]
  assert [r["train_loss"] for r in sparse_records] == [r["train_loss"] for r in every_records]
  assert _without_timings(sparse_records[-1]) == _without_timings(every_records[-1])
  assert sparse["test_accuracy"] == every["test_accuracy"]
  assert sparse["test_ece"] == every["test_ece"]


def test_time_checkpoints_resume_from_scratch_to_the_same_numbers(tiny_config, tmp_path):
  # With the default trigger (every 60 s) a short run checkpoints only at its end, so a
  # run killed before then starts again from epoch 0, and still ends the same.
  config = override(tiny_config, **{"checkpoint.every_epochs": 0})
  reference = train.train_and_evaluate(config, str(tmp_path / "reference"))
  assert os.listdir(tmp_path / "reference" / "checkpoints") == ["2"]

  workdir = str(tmp_path / "killed")
  _run_until_killed(config, workdir, after_epoch=1)
  assert not os.listdir(os.path.join(workdir, "checkpoints"))
  resumed = train.train_and_evaluate(config, workdir)
  assert _without_timings(resumed) == _without_timings(reference)
  assert [r["epoch"] for r in _records(workdir)] == [0, 1, 2]


def test_selection_run_trains_on_subsets_without_recompiling(tiny_config, tmp_path):
  config = _prioritization(tiny_config)
  compilations = {}

  def count(epoch, record):
    del record
    compilations[epoch] = compilation.CompileClock.compilations()

  summary = train.train_and_evaluate(config, str(tmp_path / "run"), on_epoch_end=count)
  # After the first selection epoch, a new subset compiles nothing.
  assert compilations[2] == compilations[1]
  records = _records(str(tmp_path / "run"))
  assert [r["selection_epoch"] for r in records] == [False, True, True]
  assert [r["num_selected"] for r in records] == [3600, 360, 360]
  assert [r["num_train_examples"] for r in records] == [3600, 360, 360]
  assert records[0]["overlap_with_previous"] is None
  assert records[1]["overlap_with_previous"] == 100.0  # the subset lies inside all data
  assert 0.0 <= records[2]["overlap_with_previous"] <= 100.0
  for record in records:
    assert sum(record["class_histogram"]) == pytest.approx(100.0, abs=0.01)
  assert summary["examples_backpropagated"] == 3600 + 2 * 360
  assert summary["examples_forwarded"] == summary["examples_backpropagated"]
  assert summary["num_selected"] == 360
  assert os.path.getsize(tmp_path / "run" / "scores_final.png") > 0


def test_full_pass_scores_cost_one_forward_per_training_example(tiny_config, tmp_path):
  config = _prioritization(tiny_config, **{"method.score_source": "full_pass"})
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert summary["examples_backpropagated"] == 3600 + 2 * 360
  assert summary["examples_forwarded"] == summary["examples_backpropagated"] + 2 * 3600
  assert summary["scoring_seconds"] > 0


@pytest.mark.parametrize("mode", ["trajectory", "fixed"])
def test_score_file_guides_selection_and_rejects_other_data(tiny_config, tmp_path, mode):
  target_dir = tmp_path / "target"
  target_config = with_method(tiny_config, "prioritization", **{
      "method.subset_fraction": 1.0, "method.save_scores": True,
      "method.save_selection_matrix": True})
  train.train_and_evaluate(target_config, str(target_dir))
  scores = artifacts.load(str(target_dir))
  trajectory = scores.table("entropy_trajectory")
  assert trajectory.shape == (3600, 3) and np.all(np.isfinite(trajectory))
  # Entropies after training are lower than after the first epoch, on average.
  assert trajectory[:, 2].mean() < trajectory[:, 0].mean()
  assert scores.table("final_entropy").shape == (3600,)
  np.testing.assert_array_equal(scores.table("selection_matrix"), 1)  # all data, 3 epochs
  assert scores.num_epochs == 3 and scores.seeds == (0,)

  guided = _prioritization(tiny_config, **{"method.target.path": str(target_dir),
                                           "method.target.mode": mode,
                                           "method.save_selection_matrix": True})
  summary = train.train_and_evaluate(guided, str(tmp_path / "guided"))
  assert summary["num_selected"] == 360
  matrix = artifacts.load(str(tmp_path / "guided")).table("selection_matrix")
  np.testing.assert_array_equal(matrix.sum(axis=0), [3600, 360, 360])
  # The target's ranking chose the subsets: epoch e took the top 360 of its column
  # (trajectory: column e; fixed: the final entropies).
  for epoch in (1, 2):
    column = scores.column("entropy_trajectory" if mode == "trajectory" else
                           "final_entropy", epoch)
    chosen = matrix[:, epoch].astype(bool)
    assert column[chosen].min() >= column[~chosen].max()

  other_split = override(guided, **{"dataset.split_seed": 7})
  with pytest.raises(ValueError, match="config.method.target.path .* was made on dataset"):
    train.train_and_evaluate(other_split, str(tmp_path / "other"))


def test_run_of_a_fixed_number_of_steps_stops_exactly(tiny_config, tmp_path):
  config = override(tiny_config, **{"train.num_epochs": 0, "train.num_train_steps": 130,
                                    "schedule.unit": "step", "eval.every_epochs": 0,
                                    "eval.every_steps": 100})
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  records = _records(str(tmp_path / "run"))
  # 57 steps an epoch: 57 + 57 + 16.
  assert [r["num_steps"] for r in records] == [57, 57, 16]
  assert summary["num_train_steps"] == 130 and summary["num_epochs"] == 3
  assert summary["num_train_examples_seen"] == 2 * 3600 + 16 * 64
  # Validation after the epoch in which step 100 falls, and after the last.
  assert ["val_accuracy" in r for r in records] == [False, True, True]
  # The per-step cosine reaches its end exactly at the last step: lr(129) = lr·(1 + cos(π·129/130))/2.
  assert records[-1]["lr"] == pytest.approx(0.05 * (1 + np.cos(np.pi * 129 / 130)) / 2,
                                            rel=1e-4)


def test_target_variant_without_a_target_path_is_refused(tiny_config, tmp_path):
  config = _prioritization(tiny_config, **{"method.target.required": True})
  with pytest.raises(ValueError, match="config.method.target.path must name a score file"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_workdir_with_another_config_is_refused_and_kept(tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump({"seed": 123}, f)
  with pytest.raises(ValueError, match="different config"):
    train.train_and_evaluate(tiny_config, workdir)
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f) == {"seed": 123}


@pytest.mark.parametrize("field,value,message", [
    ("model.name", "vgg", "unknown config.model.name 'vgg'; valid: .*cnn1d"),
    ("method.name", "coreset_typo", "unknown config.method.name 'coreset_typo'; valid: "
                                    ".*prioritization"),
    ("loss.name", "temperature", "unknown config.loss.name 'temperature'; valid: .*focal"),
    ("loss", {"name": "focal", "focal_gamma": -1.0}, "config.loss.focal_gamma: .* >= 0"),
    ("mixing.name", "cutmix", "unknown config.mixing.name 'cutmix'; valid: .*mixup"),
    ("mixing", {"name": "mixup", "alpha": 0.0}, "config.mixing.alpha must be > 0"),
    ("augmentation.name", "crop_flip", "config.augmentation.name='crop_flip' needs images"),
    ("augmentation.pad_mode", "zero", "unknown config.augmentation.pad_mode 'zero'"),
    ("optimizer.name", "rmsprop", "unknown config.optimizer.name 'rmsprop'; valid: .*sgd"),
    ("dataset.train_fraction", 0.0, r"config.dataset.train_fraction must be in \(0, 1\]"),
    ("dataset.train_fraction", 1.5, r"config.dataset.train_fraction must be in \(0, 1\]"),
    ("dataset.normalization_std", (0.0,), "dataset.normalization"),
    ("train.num_epochs", -1, "config.train.num_epochs must be an integer >= 0"),
    ("train.num_epochs", 0, "exactly one positive|one positive and the other 0"),
    ("train.batch_size", -4, "config.train.batch_size must be a positive integer"),
    ("train.batch_size", 5000, "config.train.batch_size must be at most the number of"),
    ("schedule.lr_warmup_epochs", 3.0, "config.schedule.lr_warmup_epochs must be in"),
    ("eval.every_steps", -1, "config.eval.every_steps must be an integer >= 0"),
    ("checkpoint.every_seconds", -5.0, "config.checkpoint.every_seconds must be >= 0"),
    ("seed", 2**31, r"config.seed must be an integer in \[0, 2\*\*31\)"),
])
def test_bad_config_fails_before_training_naming_the_field(tiny_config, tmp_path, field,
                                                          value, message):
  if isinstance(value, dict):  # several fields of one section
    config = override(tiny_config, **{f"{field}.{k}": v for k, v in value.items()})
  else:
    config = override(tiny_config, **{field: value})
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(config, str(workdir))
  assert not (workdir / "metrics.jsonl").exists()
  assert not (workdir / "config.json").exists()  # a corrected rerun is not refused


@pytest.mark.parametrize("field,value,message", [
    ("method.selector", "coreset", "unknown config.method.selector 'coreset'; valid: "
                                   ".*top_k"),
    ("method.subset_fraction", 0.0, r"config.method.subset_fraction must be in \(0, 1\]"),
    ("method.subset_size", 3601, "config.method.subset_size must be at most the number"),
    ("method.warmup_epochs", 3, r"config.method.warmup_epochs must be in \[0, "),
    ("method.score_source", "eval", "unknown config.method.score_source 'eval'"),
    ("method.tie_break", "first", "unknown config.method.tie_break 'first'"),
    ("method.target.mode", "final", "unknown config.method.target.mode 'final'"),
    ("method.target.path", "/no/such/dir", "config.method.target.path '/no/such/dir/scores.npz' does "
                                          "not exist"),
])
def test_bad_method_config_fails_naming_the_field(tiny_config, tmp_path, field, value,
                                                  message):
  config = _prioritization(tiny_config, **{field: value})
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run" / "config.json").exists()


def test_unknown_dataset_lists_valid_names(tiny_config, tmp_path):
  config = override(tiny_config, **{"dataset.name": "mnist2d"})
  with pytest.raises(ValueError, match="mnist1d"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_diverging_loss_stops_with_a_clear_message(tiny_config, tmp_path):
  config = override(tiny_config, **{"optimizer.learning_rate": 1e30})
  with pytest.raises(FloatingPointError, match="optimizer.learning_rate"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
