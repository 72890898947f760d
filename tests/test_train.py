"""End to end: a tiny run writes its outputs, resumes exactly, rejects bad input."""

import json
import os

import numpy as np
import pytest

from jaxsel import steps, train
from tests.conftest import override

_TIMING_KEYS = {"seconds", "train_seconds", "scoring_seconds", "selection_seconds"}


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _without_timings(record):
  return {k: v for k, v in record.items() if k not in _TIMING_KEYS}


def test_tiny_run_writes_metrics_summary_figures_and_checkpoints(tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  summary = train.train_and_evaluate(tiny_config, workdir)
  records = _records(workdir)
  assert [r["epoch"] for r in records] == [0, 1, 2]
  for key in ("lr", "train_loss", "val_accuracy", "val_ece", "seconds"):
    assert all(np.isfinite(r[key]) for r in records), key
  assert records[-1]["train_loss"] < records[0]["train_loss"]
  assert records[0]["lr"] > records[1]["lr"] > records[2]["lr"]  # cosine, per epoch
  assert summary["num_train_examples_seen"] == 3 * 3600
  assert summary["num_test"] == 1000
  assert 10.0 < summary["test_accuracy"] <= 100.0  # better than chance after 3 epochs
  for key in ("test_ece", "test_nll", "train_seconds"):
    assert np.isfinite(summary[key]) and summary[key] >= 0
  for name in ("summary.json", "reliability_test.png", "curves.png", "config.json"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2"]
  assert not [n for n in os.listdir(workdir) if n.startswith(".tmp")]


SELECTION = {"selection.method": "top_k", "selection.subset_fraction": 0.1,
             "selection.warmup_epochs": 1}


@pytest.mark.parametrize("fields", [{}, {**SELECTION, "calibration.method": "mixup"}],
                         ids=["full_data", "top_k_mixup"])
def test_resumed_run_ends_with_the_uninterrupted_metrics(tiny_config, tmp_path, fields):
  tiny_config = override(tiny_config, **fields)
  reference_dir = str(tmp_path / "uninterrupted")
  reference = train.train_and_evaluate(tiny_config, reference_dir)

  class Interrupt(Exception):
    pass

  def stop_after_first_epoch(epoch, record):
    del record
    if epoch == 0:
      raise Interrupt

  workdir = str(tmp_path / "interrupted")
  with pytest.raises(Interrupt):
    train.train_and_evaluate(tiny_config, workdir, on_epoch_end=stop_after_first_epoch)
  assert len(_records(workdir)) == 1
  resumed = train.train_and_evaluate(tiny_config, workdir)

  assert ([_without_timings(r) for r in _records(workdir)]
          == [_without_timings(r) for r in _records(reference_dir)])
  assert _without_timings(resumed) == _without_timings(reference)
  # A finished workdir is reported, not trained again.
  assert _without_timings(train.train_and_evaluate(tiny_config, workdir)) == \
      _without_timings(reference)


def test_selection_run_trains_on_subsets_without_recompiling(tiny_config, tmp_path):
  config = override(tiny_config, **SELECTION)
  traces_before = steps.TRACE_COUNTS["train_chunk"]
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert steps.TRACE_COUNTS["train_chunk"] - traces_before == 1  # one compile, 2 sizes
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
  config = override(tiny_config, **SELECTION, **{"selection.score_source": "full_pass"})
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert summary["examples_backpropagated"] == 3600 + 2 * 360
  assert summary["examples_forwarded"] == summary["examples_backpropagated"] + 2 * 3600
  assert summary["scoring_seconds"] > 0


def test_target_artifact_guides_selection_and_rejects_other_data(tiny_config, tmp_path):
  target_dir = tmp_path / "target"
  train.train_and_evaluate(override(tiny_config, **{"target.save_artifact": True}),
                           str(target_dir))
  with np.load(target_dir / "target.npz") as artifact:
    assert artifact["trajectory"].shape == (3600, 3)
    assert artifact["final_entropy"].shape == (3600,)
    assert np.all(np.isfinite(artifact["trajectory"]))
    # Entropies after training are lower than after the first epoch, on average.
    assert artifact["trajectory"][:, 2].mean() < artifact["trajectory"][:, 0].mean()
  guided = override(tiny_config, **SELECTION, **{"target.path": str(target_dir)})
  summary = train.train_and_evaluate(guided, str(tmp_path / "guided"))
  assert summary["num_selected"] == 360
  other_split = override(guided, **{"dataset.split_seed": 7})
  with pytest.raises(ValueError, match="target.path .* was made on other data"):
    train.train_and_evaluate(other_split, str(tmp_path / "other"))


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
    ("model.name", "vgg", "valid: cnn1d, cnn2d, mlp, resnet18"),
    ("calibration.method", "temperature", "valid: focal, label_smoothing, mixup, none"),
    ("selection.method", "coreset", "valid: none, random, top_k, uniform"),
    ("selection.subset_fraction", 0.0, r"selection.subset_fraction must be in \(0, 1\]"),
    ("selection.subset_size", 3601, "selection.subset_size must be at most the number"),
    ("selection.warmup_epochs", 3, "selection.warmup_epochs must be in"),
    ("selection.score_source", "eval", "valid: full_pass, train_step"),
    ("optimizer.name", "rmsprop", "valid: adam, adamw, sgd"),
    ("dataset.train_fraction", 0.0, r"dataset.train_fraction must be in \(0, 1\]"),
    ("dataset.train_fraction", 1.5, r"dataset.train_fraction must be in \(0, 1\]"),
    ("train.num_epochs", 0, "train.num_epochs must be a positive integer"),
    ("train.batch_size", -4, "train.batch_size must be a positive integer"),
    ("train.batch_size", 5000, r"train.batch_size must be at most the number of training"),
    ("schedule.lr_warmup_epochs", 3.0, "schedule.lr_warmup_epochs must be in"),
    ("seed", 2**31, r"config.seed must be an integer in \[0, 2\*\*31\)"),
])
def test_bad_config_fails_before_training_naming_the_field(tiny_config, tmp_path, field,
                                                          value, message):
  config = override(tiny_config, **{field: value})
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(config, str(workdir))
  assert not (workdir / "metrics.jsonl").exists()
  assert not (workdir / "config.json").exists()  # a corrected rerun is not refused


def test_unknown_dataset_lists_valid_names(tiny_config, tmp_path):
  config = override(tiny_config, **{"dataset.name": "mnist2d"})
  with pytest.raises(ValueError, match="mnist1d"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_diverging_loss_stops_with_a_clear_message(tiny_config, tmp_path):
  config = override(tiny_config, **{"optimizer.learning_rate": 1e30})
  with pytest.raises(FloatingPointError, match="optimizer.learning_rate"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
