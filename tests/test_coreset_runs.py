"""End to end, the two coreset stages: a training-dynamics run writes its score file, coreset
runs train on a subset chosen from it for an exact number of steps, resume on the same
coreset, and refuse bad input naming the field."""

import os

import numpy as np
import pytest

from jaxsel import artifacts, coresets, files, train
from jaxsel.methods import coreset as coreset_method
from tests.conftest import override, with_method

TABLES = ("correctness", "forgetting", "never_learned", "accumulated_margin", "aum", "el2n",
          "last_loss", "max_loss_increase", "presentations", "entropy", "loss", "label")


@pytest.fixture(scope="module")
def scores_dir(tmp_path_factory, mnist1d_dir):
  """A 3-epoch training-dynamics run on MNIST-1D (3,600 training examples)."""
  from configs import default  # pylint: disable=import-outside-toplevel
  config = with_method(default.get_config(), "training_dynamics", **{
      "dataset.data_dir": mnist1d_dir, "model.kwargs": {"channels": 8, "conv_impl": "auto"},
      "train.num_epochs": 3, "train.batch_size": 64, "progress_bar": "off",
      "method.el2n_epochs": 2, "method.per_epoch": True})
  workdir = str(tmp_path_factory.mktemp("dynamics"))
  summary = train.train_and_evaluate(config, workdir)
  assert 0 <= summary["unforgettable_fraction"] <= 1
  return workdir


def test_training_dynamics_writes_every_score(scores_dir):
  scores = artifacts.load(scores_dir)
  assert set(TABLES) <= set(scores.tables)
  assert len(scores.example_ids) == 3600
  np.testing.assert_array_equal(scores.table("presentations"), 3)  # every epoch, once
  correct = scores.table("correct_by_epoch")
  assert correct.shape == (3600, 3)
  np.testing.assert_array_equal(scores.table("correctness"), correct.sum(axis=1))
  # Forgetting events are 1 -> 0 transitions of the per-epoch correctness.
  events = np.sum((correct[:, :-1] == 1) & (correct[:, 1:] == 0), axis=1)
  np.testing.assert_array_equal(scores.table("forgetting"), events)
  losses = scores.table("loss_by_epoch")
  np.testing.assert_allclose(scores.table("max_loss_increase"),
                             np.max(np.diff(losses, axis=1), axis=1), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(scores.table("last_loss"), losses[:, -1])
  assert np.all(scores.table("el2n") <= 2 * np.sqrt(2) + 1e-5)  # two epochs of at most √2
  assert np.all(np.abs(scores.table("accumulated_margin")) <= 3 + 1e-5)
  assert np.all(scores.table("entropy") >= 0) and np.all(scores.table("loss") >= 0)


def _coreset_config(tiny_config, scores_dir, **fields):
  return with_method(tiny_config, "coreset", **{
      "method.scores_path": scores_dir, "method.pruning_rate": 0.9, "method.beta": 0.1,
      "train.num_epochs": 0, "train.num_train_steps": 20, "schedule.unit": "step",
      "eval.every_epochs": 0, "eval.every_steps": 10, **fields})


def test_coreset_run_trains_on_the_coreset_for_exactly_the_steps(tiny_config, scores_dir,
                                                                 tmp_path):
  config = _coreset_config(tiny_config, scores_dir)
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  # 360 examples in batches of 64: 6 steps an epoch; 20 steps = 3 epochs + 2 steps.
  records = files.read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))
  assert [r["num_steps"] for r in records] == [6, 6, 6, 2]
  assert summary["num_train_steps"] == 20 and summary["coreset_size"] == 360
  # Validation after the epochs in which steps 10 and 20 fall (epochs end at 6, 12, 18, 20).
  assert ["val_accuracy" in r for r in records] == [False, True, False, True]
  chosen = artifacts.load(str(tmp_path / "run" / coreset_method.CORESET_FILE))
  assert len(chosen.example_ids) == 360 and len(np.unique(chosen.example_ids)) == 360
  assert all(r["overlap_with_previous"] in (None, 100.0) for r in records)
  # The coreset is the CCS selection of the score file's margins, for this seed.
  scores = artifacts.load(scores_dir)
  margins = scores.table("accumulated_margin").astype(np.float64)
  lowest = np.sort(scores.example_ids[np.argsort(margins, kind="stable")[:360]])
  assert not set(chosen.example_ids) & set(lowest)  # the cut-off 10 % lie among the lowest
  assert sum(summary["coreset_class_histogram"]) == pytest.approx(100.0, abs=0.01)
  for name in ("coreset_scores.png", "coreset_strata.png"):
    assert os.path.getsize(tmp_path / "run" / name) > 0


def test_resumed_coreset_run_uses_the_same_coreset_and_ends_the_same(tiny_config,
                                                                     scores_dir, tmp_path):
  config = _coreset_config(tiny_config, scores_dir, **{"checkpoint.every_epochs": 1,
                                                       "method.rule": "monotonic",
                                                       "method.key": "forgetting",
                                                       "method.descending": True})
  reference = train.train_and_evaluate(config, str(tmp_path / "reference"))

  def kill(epoch, record):
    del record
    if epoch == 1:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, str(tmp_path / "resumed"), on_epoch_end=kill)
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  np.testing.assert_array_equal(
      artifacts.load(str(tmp_path / "resumed" / coreset_method.CORESET_FILE)).example_ids,
      artifacts.load(str(tmp_path / "reference" / coreset_method.CORESET_FILE)).example_ids)
  for key in ("test_accuracy", "test_ece", "test_nll", "num_train_examples_seen"):
    assert resumed[key] == reference[key]


@pytest.mark.parametrize("fields,error,message", [
    ({"method.pruning_rate": 1.0}, ValueError, r"config.method.pruning_rate must be in \[0, 1\)"),
    ({"method.beta": -0.1}, ValueError, r"config.method.beta must be in \[0, 1\)"),
    ({"method.beta": 0.5, "method.pruning_rate": 0.3}, ValueError,
     "config.method.beta=0.5 removes 1800 of 3600 examples, leaving 1800, fewer than the "
     "coreset of 2520"),
    ({"method.rule": "top_k"}, ValueError, "unknown config.method.rule 'top_k'"),
    # (ConfigDict refuses other types for a bool field, but lets None through.)
    ({"method.reference_strata": None}, ValueError,
     "config.method.reference_strata must be True or False, got None"),
    ({"method.key": "margin"}, ValueError,
     "config.method.scores_path .* lacks the required tables margin"),
    ({"method.scores_path": ""}, ValueError, "config.method.scores_path must be a score file"),
    ({"method.scores_path": "/no/such/run"}, FileNotFoundError, "config.method.scores_path"),
    ({"method.rule": "monotonic", "method.class_balanced": True,
      "method.pruning_rate": 0.999}, ValueError, "class-balanced coreset keeps one example"),
    ({"train.num_train_steps": 0}, ValueError, "one positive and the other 0"),
    ({"dataset.split_seed": 7}, ValueError, "config.method.scores_path .* was made on"),
])
def test_bad_coreset_input_fails_before_training(tiny_config, scores_dir, tmp_path, fields,
                                                 error, message):
  config = _coreset_config(tiny_config, scores_dir, **fields)
  with pytest.raises(error, match=message):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run" / "config.json").exists()


def test_reference_strata_reaches_the_ccs_selection(tiny_config, scores_dir):
  # The coreset method built in-process on the score file's 3,600 margins (β = 0.1 cuts
  # 360, 3,240 are stratified in 50 strata): each setting of method.reference_strata gives
  # the stratum sizes of its edge rule, and on these margins the two rules differ.
  built = {}
  for reference in (False, True):
    config = _coreset_config(tiny_config, scores_dir, **{"method.reference_strata": reference})
    coreset_method.Coreset.check_config(config)
    dataset = train.load_data(config)
    built[reference] = coreset_method.Coreset(config, dataset)
  margins = artifacts.load(scores_dir).for_ids("accumulated_margin", dataset.train_ids)
  kept = built[False].details["kept"]
  np.testing.assert_array_equal(built[True].details["kept"], kept)  # the same cutoff
  expected = {reference: np.bincount(
      coresets.strata(margins[kept].astype(np.float64), 50, reference_edges=reference),
      minlength=50) for reference in (False, True)}
  assert margins[kept].max() > 0 and not np.array_equal(expected[False], expected[True])
  for reference in (False, True):
    np.testing.assert_array_equal(built[reference].details["stratum_sizes"],
                                  expected[reference])
    assert len(built[reference].coreset_ids) == 360


def test_coreset_size_rounds_the_ratio_not_the_rate():
  # 1 − 0.9 = 0.09999999999999998 in floating point; the coreset still keeps 10 %.
  assert coreset_method.coreset_size(45000, 0.9) == 4500
  # 0.7 · 45,000 = 31499.999999999996: rounded first, 31,500 here; the reference's
  # int(0.7 · 45000) keeps 31,499 (and 125,999 of 180,000 where this keeps 126,000).
  assert coreset_method.coreset_size(45000, 0.3) == 31500
  assert int(0.7 * 45000) == 31499 and int(0.7 * 180000) == 125999
  assert coreset_method.coreset_size(180000, 0.3) == 126000
  assert coreset_method.coreset_size(10, 0.0) == 10
  assert coreset_method.coreset_size(10, 0.99) == 1


def test_rules_are_listed():
  assert {"random", "monotonic", "ccs"} <= set(coresets.RULES)
