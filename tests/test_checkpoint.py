"""Checkpoint round trips: every leaf of the run state, empty containers and the host record
come back exactly; old checkpoints are pruned; an unfinished save is invisible."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import default
from jaxsel import checkpoint, evaluation, models, optim
from jaxsel.state import create_train_state


def _run_state(seed=0, use_batchnorm=True, trackers=None, method_state=None):
  model = models.get_model("cnn1d", num_classes=10, channels=8, use_batchnorm=use_batchnorm)
  state = create_train_state(model, optim.make_optimizer(default.get_config()), seed=seed,
                             input_shape=(40,), trackers=trackers, method_state=method_state)
  return {"state": state, "best": evaluation.snapshot(state)}


def _assert_same(a, b):
  # Leaf paths and values; the static parts (optimizer closures) are per-object.
  leaves_a, leaves_b = (jax.tree_util.tree_flatten_with_path(t)[0] for t in (a, b))
  assert [path for path, _ in leaves_a] == [path for path, _ in leaves_b]
  for (path, x), (_, y) in zip(leaves_a, leaves_b):
    assert np.asarray(x).dtype == np.asarray(y).dtype, path
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))


def test_round_trip_of_the_whole_run_state(tmp_path):
  tables = {"last_entropy": jnp.linspace(0, 1, 17), "count": jnp.arange(17, dtype=jnp.int32)}
  saved = _run_state(seed=3, trackers=tables,
                     method_state={"matrix": jnp.ones((2, 17), jnp.uint8)})
  # A state that has trained a step: step count, momentum and BN statistics are non-trivial.
  state = saved["state"]
  grads = jax.tree.map(jnp.ones_like, state.params)
  saved["state"] = state.apply_gradients(grads=grads)
  host = {"next_epoch": 4, "previous_ids": [1, 5, 9], "best_val": {"epoch": 2, "nll": 0.5}}
  ckpt = checkpoint.Checkpointer(str(tmp_path), max_to_keep=2)
  ckpt.save(3, saved, host)
  ckpt.wait()
  assert ckpt.latest_epoch() == 3

  template = _run_state(seed=0, trackers={k: jnp.zeros_like(v) for k, v in tables.items()},
                        method_state={"matrix": jnp.zeros((2, 17), jnp.uint8)})
  restored, restored_host = checkpoint.Checkpointer(str(tmp_path)).restore(3, template)
  _assert_same(restored, saved)
  assert int(restored["state"].step) == 1
  assert restored_host == host
  # The static parts come from the template: the restored state trains like the saved one.
  assert restored["state"].model == saved["state"].model


def test_empty_containers_survive(tmp_path):
  # No BatchNorm (batch_stats {}), no trackers, no method state: orbax drops empty dicts,
  # which the placeholder leaf prevents.
  saved = _run_state(use_batchnorm=False)
  assert saved["state"].batch_stats == {} and saved["state"].trackers == {}
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  ckpt.save(0, saved, {"next_epoch": 1})
  ckpt.wait()
  restored, _ = ckpt.restore(0, _run_state(seed=5, use_batchnorm=False))
  _assert_same(restored, saved)
  assert restored["state"].method_state == {}


def test_only_the_newest_are_kept(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), max_to_keep=2)
  saved = _run_state(use_batchnorm=False)
  for epoch in (0, 4, 9):
    ckpt.save(epoch, saved, {"next_epoch": epoch + 1})
  ckpt.wait()
  assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [4, 9]
  assert ckpt.latest_epoch() == 9


def test_a_temporary_directory_of_an_unfinished_save_is_not_a_checkpoint(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  ckpt.save(2, _run_state(use_batchnorm=False), {"next_epoch": 3})
  ckpt.wait()
  # What an interrupted save leaves: orbax's temporary directory for step 7.
  (tmp_path / "7.orbax-checkpoint-tmp-1234").mkdir()
  assert checkpoint.Checkpointer(str(tmp_path)).latest_epoch() == 2


def test_the_host_record_is_saved_as_it_was_when_save_was_called(tmp_path):
  # The loop keeps updating its host record while an asynchronous save is still being
  # written; the checkpoint must hold the record of its own epoch.
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  saved = _run_state(use_batchnorm=False)
  host = {"next_epoch": 1, "previous_ids": [3, 4], "train_seconds": 0.5}
  for epoch in range(3):
    host["next_epoch"] = epoch + 1
    ckpt.save(epoch, saved, host)
    host["previous_ids"].append(99)  # the next epoch's bookkeeping, right away
    host["train_seconds"] += 1.0
  ckpt.wait()
  _, restored = ckpt.restore(2, _run_state(use_batchnorm=False))
  assert restored == {"next_epoch": 3, "previous_ids": [3, 4, 99, 99],
                      "train_seconds": 2.5}
