"""Tests for jaxsel.plotting: each figure is written as a complete PNG, atomically."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import metrics
from jaxsel import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
  assert path.is_file()
  data = path.read_bytes()
  assert len(data) > len(PNG_MAGIC)
  assert data.startswith(PNG_MAGIC)


def _assert_no_leftovers(directory, expected_names):
  assert sorted(p.name for p in directory.iterdir()) == sorted(expected_names)


def _diagram_data(num_bins=15):
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(200, 5)) * 3, jnp.float32)
  labels = jnp.asarray(rng.integers(5, size=200))
  sums = metrics.calibration_sums(logits, labels, num_bins=num_bins)
  return metrics.reliability_diagram_data(sums), metrics.summarize(sums)["ece"]


def test_reliability_diagram(tmp_path):
  data, ece = _diagram_data()
  path = tmp_path / "reliability.png"
  returned = plotting.reliability_diagram(data, path, title="test", ece=ece)
  assert returned == str(path)
  _assert_png(path)
  _assert_no_leftovers(tmp_path, ["reliability.png"])


def test_reliability_diagram_of_no_examples(tmp_path):
  data = metrics.reliability_diagram_data(metrics.empty_sums(10))
  path = tmp_path / "empty.png"
  plotting.reliability_diagram(data, path)
  _assert_png(path)


def test_reliability_diagram_overwrites_and_creates_directory(tmp_path):
  data, _ = _diagram_data(num_bins=5)
  path = tmp_path / "figures" / "reliability.png"
  path.parent.mkdir()
  path.write_bytes(b"stale")
  plotting.reliability_diagram(data, path)
  _assert_png(path)
  _assert_no_leftovers(path.parent, ["reliability.png"])
  nested = tmp_path / "new" / "dir" / "r.png"
  plotting.reliability_diagram(data, nested)
  _assert_png(nested)


def test_training_curves(tmp_path):
  records = [
      {"epoch": 0, "train_loss": 2.3},  # no validation this epoch
      {"epoch": 1, "train_loss": 1.1, "val_accuracy": 0.6, "val_ece": 0.08},
      {"epoch": 2, "train_loss": 0.7, "val_accuracy": 0.7, "val_ece": float("nan")},
  ]
  path = tmp_path / "curves.png"
  plotting.training_curves(
      records, path, keys=("train_loss", "val_accuracy", "val_ece", "missing")
  )
  _assert_png(path)
  _assert_no_leftovers(tmp_path, ["curves.png"])


def test_training_curves_without_data(tmp_path):
  path = tmp_path / "curves.png"
  plotting.training_curves([], path)
  _assert_png(path)


def test_score_histogram(tmp_path):
  scores = np.random.default_rng(1).normal(size=1000)
  scores[:10] = np.nan
  path = tmp_path / "scores.png"
  plotting.score_histogram(scores, path, title="scores", bins=20)
  _assert_png(path)
  plotting.score_histogram(np.full(5, np.nan), tmp_path / "nan.png")
  _assert_png(tmp_path / "nan.png")
  _assert_no_leftovers(tmp_path, ["scores.png", "nan.png"])


def test_failed_save_leaves_no_temp_file(tmp_path):
  with pytest.raises(ValueError):
    # Unknown image format: savefig fails after the temp file was created.
    plotting.score_histogram(np.arange(10), tmp_path / "scores.notaformat")
  _assert_no_leftovers(tmp_path, [])


def test_reliability_grid_and_metric_vs_subset(tmp_path):
  data, ece = _diagram_data()
  plotting.reliability_grid([("a", data, ece), ("b", data, None)], tmp_path / "grid.png")
  _assert_png(tmp_path / "grid.png")
  series = [{"label": name, "percent": [10, 30, 100], "linestyle": style,
             "mean": {"test_accuracy": [90, 92, 95], "test_ece": [3, 2, 1]},
             "std": {"test_accuracy": [1, 0.5, 0.2], "test_ece": [0.3, 0.2, 0.1]}}
            for name, style in (("top_k", "-"), ("random", ":"))]
  plotting.metric_vs_subset(series, tmp_path / "curves.png")
  _assert_png(tmp_path / "curves.png")
  _assert_no_leftovers(tmp_path, {"grid.png", "curves.png"})
