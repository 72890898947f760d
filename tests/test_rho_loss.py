"""RHO-LOSS (jaxsel/methods/rho_loss.py): the reducible-loss selection by hand, the step
against the standard step on the selected rows, the irreducible-loss run's score file, exact
cost counts, resume, compilation and refusals."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from jaxsel import artifacts, compilation, losses, models, optim, steps, train
from jaxsel.config_errors import UserError
from jaxsel.methods import rho_loss
from jaxsel.state import create_train_state
from tests.conftest import with_method
from tests.test_train import _records, assert_killed_run_resumes_to


def test_the_largest_reducible_losses_of_the_real_rows_are_selected():
  # Reducible: 0.5, 0.1, 1.9 and a padding row (its 4.0 must not count).
  rows = rho_loss.select_reducible(jnp.asarray([1.0, 3.0, 2.0, 5.0]),
                                   jnp.asarray([0.5, 2.9, 0.1, 1.0]),
                                   jnp.asarray([True, True, True, False]), 2)
  np.testing.assert_array_equal(rows, [2, 0])
  # Fewer real rows than n_b: all of them first, then padding.
  rows = rho_loss.select_reducible(jnp.asarray([1.0, 3.0, 2.0, 5.0]), jnp.zeros(4),
                                   jnp.asarray([False, True, False, False]), 2)
  assert int(rows[0]) == 1


def test_the_step_is_the_standard_step_on_the_selected_rows():
  """``_rho_step`` on a big batch of 8 equals: eval-mode losses, minus the irreducible
  ones, the top 3 rows picked by hand, then the standard train step on just those rows."""
  model = models.get_model("mlp", num_classes=3, hidden_sizes=(6,))
  config = default.get_config()
  rng = np.random.default_rng(0)
  irreducible = rng.uniform(0, 1, 10).astype(np.float32)
  state = create_train_state(model, optim.make_optimizer(config), seed=0, input_shape=(4,),
                             method_state={"irreducible": irreducible,
                                           "backprop_counts": np.zeros(10, np.int32),
                                           "epoch_backpropagated": np.zeros((), np.int32)})
  ids = np.asarray([9, 2, 4, 0, 7, 1, 3, 5], np.int32)
  batch = {"inputs": jnp.asarray(rng.normal(size=(8, 4)), jnp.float32),
           "labels": jnp.asarray(rng.integers(0, 3, 8), jnp.int32),
           "example_ids": jnp.asarray(ids), "mask": jnp.ones(8, bool)}
  schedule = dict(learning_rate_fn=lambda step: 0.1, schedule_unit="step")
  after, sums = jax.jit(functools.partial(
      rho_loss._rho_step, loss_fn=losses.cross_entropy, augment_fn=None, num_selected=3,
      **schedule))(state, batch, jnp.int32(0))

  eval_losses = np.asarray(losses.cross_entropy(
      steps.predict(state, batch["inputs"], batch["mask"]), batch["labels"]))
  chosen = np.argsort(-(eval_losses - irreducible[ids]), kind="stable")[:3]
  small = {name: values[chosen] for name, values in batch.items()}
  expected, _ = jax.jit(steps.make_train_step(loss_fn=losses.cross_entropy, **schedule))(
      state, small, jnp.int32(0))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               after.params, expected.params)
  counts = np.zeros(10, np.int32)
  counts[ids[chosen]] = 1
  np.testing.assert_array_equal(after.method_state["backprop_counts"], counts)
  assert int(after.method_state["epoch_backpropagated"]) == 3
  # The epoch's loss line is the scoring pass over all 8.
  assert float(sums["count"]) == 8
  assert float(sums["loss"]) == pytest.approx(eval_losses.sum(), rel=1e-5)


def _irreducible_run(tiny_config, tmp_path, **fields):
  config = with_method(tiny_config, "irreducible_loss", **{"train.num_epochs": 2, **fields})
  workdir = str(tmp_path / "irreducible")
  return config, workdir, train.train_and_evaluate(config, workdir)


def _rho_config(tiny_config, path, **fields):
  return with_method(tiny_config, "rho_loss", **{
      "method.irreducible_loss_path": path, "method.selected_fraction": 0.25,
      "checkpoint.every_epochs": 1, **fields})


@pytest.fixture
def irreducible(tiny_config, tmp_path):
  return _irreducible_run(tiny_config, tmp_path)


def test_the_irreducible_run_trains_on_the_holdout_and_scores_the_training_ids(
    tiny_config, tmp_path, irreducible):
  config, workdir, summary = irreducible
  dataset = train.load_data(config)
  # It trained on the 400 validation ids and validated on the 3,600 training ids.
  assert summary["num_train"] == len(dataset.validation_ids) == 400
  assert summary["num_validation"] == len(dataset.train_ids) == 3600
  assert all(r["num_selected"] == 400 for r in _records(workdir))
  scores = artifacts.load(workdir, fingerprint=dataset.fingerprint,
                          example_ids=dataset.train_ids, required=(rho_loss.TABLE,))
  values = scores.table(rho_loss.TABLE)
  assert values.shape == (3600,) and np.all(np.isfinite(values)) and np.all(values > 0)
  # The file's losses are the final model's eval-mode cross-entropies on those ids: their
  # mean is the validation NLL the run logged after its last epoch.
  assert float(values.mean()) == pytest.approx(_records(workdir)[-1]["val_nll"], rel=1e-4)


def test_a_run_counts_exactly_compiles_once_and_resumes(tiny_config, tmp_path,
                                                        irreducible):
  config = _rho_config(tiny_config, irreducible[1])
  compilations = {}

  def count(epoch, record):
    del record
    compilations[epoch] = compilation.CompileClock.compilations()

  reference = train.train_and_evaluate(config, str(tmp_path / "reference"),
                                       on_epoch_end=count)
  # 3,600 ids in big batches of 64: 56 full ones and one of 16, n_b = 16 of each.
  per_epoch = 57 * 16
  records = _records(str(tmp_path / "reference"))
  assert [r["num_backpropagated"] for r in records] == [per_epoch] * 3
  assert reference["examples_backpropagated"] == 3 * per_epoch
  assert reference["examples_forwarded"] == 3 * (3600 + per_epoch)
  assert reference["num_train_steps"] == 3 * 57  # one optimizer step per big batch
  counts = artifacts.load(os.path.join(str(tmp_path / "reference"),
                                       "selection_counts.npz")).table("selection_count")
  assert counts.sum() == 3 * per_epoch
  assert compilations[2] == compilations[1]

  assert_killed_run_resumes_to(config, str(tmp_path / "reference"), str(tmp_path / "killed"))


def test_refusals_name_the_field(tiny_config, tmp_path, irreducible):
  with pytest.raises(UserError, match="method.irreducible_loss_path"):
    train.train_and_evaluate(_rho_config(tiny_config, ""), str(tmp_path / "a"))
  with pytest.raises(UserError, match="mixing.name"):
    train.train_and_evaluate(_rho_config(tiny_config, irreducible[1],
                                         **{"mixing.name": "mixup"}), str(tmp_path / "b"))
  with pytest.raises(UserError, match="method.selected_fraction"):
    train.train_and_evaluate(_rho_config(tiny_config, irreducible[1],
                                         **{"method.selected_fraction": 0.0}),
                             str(tmp_path / "c"))
  # A file made on another split is refused (its fingerprint differs).
  with pytest.raises(UserError, match="method.irreducible_loss_path"):
    train.train_and_evaluate(_rho_config(tiny_config, irreducible[1],
                                         **{"dataset.split_seed": 7}), str(tmp_path / "d"))
  with pytest.raises(UserError, match="train_fraction"):
    _irreducible_run(tiny_config, tmp_path / "e", **{"dataset.train_fraction": 1.0})
  for name in "abcd":
    assert not os.path.exists(tmp_path / name / "config.json")
