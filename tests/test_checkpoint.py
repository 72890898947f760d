"""Checkpoint round trips: every leaf of the run state, empty containers and the host record
come back exactly; old checkpoints are pruned; an unfinished save is invisible; a broken
latest checkpoint (any of ten ways) is set aside and the previous one restored; a save
that fails in the background raises in the main thread."""

import glob
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


# ---- Verification and fallback: a broken latest checkpoint is set aside, never used. ----

def _two_checkpoints(directory):
  """Checkpoints after epochs 1 and 2 (0-based 0 and 1) of distinct states."""
  ckpt = checkpoint.Checkpointer(directory, max_to_keep=3)
  states = [_run_state(seed=seed, use_batchnorm=True) for seed in (1, 2)]
  for epoch, saved in enumerate(states):
    ckpt.save(epoch, saved, {"next_epoch": epoch + 1, "records": [{"epoch": epoch}]})
  ckpt.wait()
  ckpt.close()
  return states


def _largest_file(directory):
  paths = [os.path.join(root, name) for root, _, names in os.walk(directory)
           for name in names]
  return max(paths, key=os.path.getsize)


def _flip_bit(path):
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    data[len(data) // 2] ^= 0x10
    f.seek(0)
    f.write(data)


def _truncate(path):
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _zero(path):
  size = os.path.getsize(path)
  with open(path, "wb") as f:
    f.write(bytes(size))


def _empty(path):
  open(path, "wb").close()


def _edit_host_record(checkpoint_dir):
  path = os.path.join(checkpoint_dir, "host", "metadata")
  with open(path) as f:
    host = json.load(f)
  host["next_epoch"] += 3  # would skip three epochs
  with open(path, "w") as f:
    json.dump(host, f)


CORRUPTIONS = {
    "flipped bit in array data": lambda d: _flip_bit(_largest_file(os.path.join(d, "state"))),
    "truncated array data": lambda d: _truncate(_largest_file(os.path.join(d, "state"))),
    "zeroed array data": lambda d: _zero(_largest_file(os.path.join(d, "state"))),
    "emptied array data": lambda d: _empty(_largest_file(os.path.join(d, "state"))),
    "broken state manifest": lambda d: _zero(os.path.join(d, "state", "manifest.ocdbt")),
    "broken array metadata": lambda d: _truncate(os.path.join(d, "state", "_METADATA")),
    "missing state": lambda d: shutil.rmtree(os.path.join(d, "state")),
    "missing digests": lambda d: shutil.rmtree(os.path.join(d, "digests")),
    "edited host record": _edit_host_record,
    "host record of another epoch": lambda d: _swap_host_record(d),
}


def _swap_host_record(checkpoint_dir):
  # The older checkpoint's host record (with its own valid digest) in the newer one.
  other = os.path.join(os.path.dirname(checkpoint_dir), "0")
  for item in ("host", "digests"):
    shutil.rmtree(os.path.join(checkpoint_dir, item))
    shutil.copytree(os.path.join(other, item), os.path.join(checkpoint_dir, item))


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_broken_latest_checkpoint_is_set_aside_and_the_previous_one_restored(
    tmp_path, capsys, corruption):
  directory = str(tmp_path / "checkpoints")
  states = _two_checkpoints(directory)
  CORRUPTIONS[corruption](os.path.join(directory, "1"))
  epoch, restored, host = checkpoint.Checkpointer(directory).restore_latest(
      _run_state(seed=9))
  assert epoch == 0 and host == {"next_epoch": 1, "records": [{"epoch": 0}]}
  _assert_same(restored, states[0])
  warning = capsys.readouterr().err.strip().splitlines()
  assert len(warning) == 1 and "after epoch 2 is unusable" in warning[0], warning
  # Moved, never deleted, and out of orbax's sight.
  assert os.path.isdir(tmp_path / checkpoint.SET_ASIDE_DIRNAME / "1")
  assert sorted(os.listdir(directory)) == ["0"]


def test_no_single_flipped_bit_is_ever_restored_as_a_value(tmp_path, capsys):
  # A flipped bit either lands in bytes nothing reads (the checkpoint restores to exactly
  # what was saved) or is caught (the previous checkpoint is restored): never a changed
  # value. Flips at spread offsets of every array data file of the latest checkpoint.
  directory = str(tmp_path / "checkpoints")
  states = _two_checkpoints(directory)
  pristine = str(tmp_path / "pristine")
  shutil.copytree(directory, pristine)
  # Data files: state/d/ and state/ocdbt.process_0/d/ (where a value lands varies).
  data = sorted(os.path.relpath(p, directory) for p in glob.glob(
      os.path.join(directory, "1", "state", "**", "d", "*"), recursive=True))
  assert data
  caught = 0
  for name in data:
    for fraction in (0.1, 0.5, 0.9):
      shutil.rmtree(directory)
      shutil.rmtree(tmp_path / checkpoint.SET_ASIDE_DIRNAME, ignore_errors=True)
      shutil.copytree(pristine, directory)
      path = os.path.join(directory, name)
      with open(path, "r+b") as f:
        blob = bytearray(f.read())
        blob[int(len(blob) * fraction)] ^= 0x04
        f.seek(0)
        f.write(blob)
      epoch, restored, _ = checkpoint.Checkpointer(directory).restore_latest(
          _run_state(seed=9))
      _assert_same(restored, states[epoch])
      caught += epoch == 0
  capsys.readouterr()
  assert caught > 0


def test_an_intact_latest_checkpoint_restores_without_warning(tmp_path, capsys):
  directory = str(tmp_path / "checkpoints")
  states = _two_checkpoints(directory)
  epoch, restored, _ = checkpoint.Checkpointer(directory).restore_latest(_run_state(seed=9))
  assert epoch == 1
  _assert_same(restored, states[1])
  assert capsys.readouterr().err == ""


def test_an_emptied_checkpoint_metadata_file_is_harmless(tmp_path):
  # Orbax restores without its _CHECKPOINT_METADATA (timestamps); the arrays and the host
  # record still verify, so the checkpoint is used.
  directory = str(tmp_path / "checkpoints")
  states = _two_checkpoints(directory)
  _empty(os.path.join(directory, "1", "_CHECKPOINT_METADATA"))
  epoch, restored, _ = checkpoint.Checkpointer(directory).restore_latest(_run_state(seed=9))
  assert epoch == 1
  _assert_same(restored, states[1])


def test_every_checkpoint_broken_means_a_new_run(tmp_path, capsys):
  directory = str(tmp_path / "checkpoints")
  _two_checkpoints(directory)
  for epoch in ("0", "1"):
    _flip_bit(_largest_file(os.path.join(directory, epoch, "state")))
  assert checkpoint.Checkpointer(directory).restore_latest(_run_state(seed=9)) is None
  assert len(capsys.readouterr().err.strip().splitlines()) == 2
  assert sorted(os.listdir(tmp_path / checkpoint.SET_ASIDE_DIRNAME)) == ["0", "1"]


_FAILING_SAVE = """
import os, shutil, sys
from jaxsel import checkpoint
from tests.test_checkpoint import _run_state
directory = sys.argv[1]
ckpt = checkpoint.Checkpointer(directory)
shutil.rmtree(directory)
open(directory, "w").write("x")
try:
  ckpt.save(0, _run_state(use_batchnorm=False), {"next_epoch": 1})
  ckpt.wait()
  print("no error")
except checkpoint.CheckpointError as e:
  print("CheckpointError:", e)
sys.stdout.flush()
os._exit(0)  # orbax's signalling threads would wait minutes for the failed save
"""


def test_a_save_failing_in_the_background_surfaces_in_the_main_thread(tmp_path):
  # The checkpoint directory replaced by a file after the manager opened it: orbax fails
  # to create the save's directory. In a subprocess, because orbax's threads of a failed
  # save keep the interpreter from exiting for minutes (the CLI exits with os._exit).
  process = subprocess.run(
      [sys.executable, "-c", _FAILING_SAVE, str(tmp_path / "checkpoints")], text=True,
      capture_output=True, timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)),
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert process.returncode == 0, process.stderr[-2000:]
  assert process.stdout.startswith("CheckpointError: saving the checkpoint after epoch 1 "
                                   "into "), process.stdout
  assert "failed: " in process.stdout and "\n" not in process.stdout.strip()


def test_digests_change_with_any_bit():
  values = np.arange(12, dtype=np.float32)
  flipped = values.copy()
  flipped.view(np.uint32)[5] ^= 1
  assert checkpoint.array_digest(values) != checkpoint.array_digest(flipped)
  # dtype and shape are part of the digest, not just the bytes.
  assert checkpoint.array_digest(values) != checkpoint.array_digest(values.view(np.int32))
  assert checkpoint.array_digest(values) != checkpoint.array_digest(values.reshape(3, 4))
  assert checkpoint.host_digest({"a": 1, "b": [2]}) == checkpoint.host_digest({"b": [2], "a": 1})
