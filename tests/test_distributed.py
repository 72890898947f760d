"""Data parallelism: the same config on 1 device, on 4, and on 2 processes x 2 devices
gives the same selections and the same numbers.

JAX fixes its device count when it starts, so the multi-device runs are processes of their
own (``JAX_NUM_CPU_DEVICES``): ``tests/device_runs.py`` runs every family on 1 device and on
4 in one process, once for the session; the multi-host runs are ``python -m jaxsel.main``
processes joined by ``jax.distributed`` on localhost (gloo collectives on CPU).

Tolerance: ``tests/equivalence.py`` (selections identical, floats within float32 drift).
"""

import json
import os
import signal
import time

import jax
import numpy as np
import pytest

from benchmarks import run_comparison
from jaxsel import distributed, train
from jaxsel.config_errors import UserError
from tests import device_runs
from tests.equivalence import assert_same_selections_and_numbers
from tests.equivalence import records as _records, summary as _summary
from tests.multihost import config_file_of as _config_file, free_port as _free_port
from tests.multihost import launch as _launch, run_lines as _run_lines, wait as _wait

# With pytest-xdist, every test of the 4-device runs on one worker, which makes them once.
pytestmark = pytest.mark.xdist_group("device_runs")


# --- the single-device path -------------------------------------------------------------

def test_one_device_is_the_single_device_path_with_nothing_placed():
  placement = distributed.placement_for(1)
  assert placement.mesh is None and placement.num_devices == 1
  assert distributed.placement_for(0).mesh is None  # this process sees one device
  ids, mask = np.arange(6, dtype=np.int32).reshape(2, 3), np.ones((2, 3), bool)
  placed_ids, placed_mask = placement.batch(ids, mask)
  assert placed_ids is ids and placed_mask is mask
  tree = {"a": np.zeros(3)}
  assert placement.replicate(tree) is tree
  assert placement.is_writer


def test_more_devices_than_there_are_is_refused_naming_the_field():
  with pytest.raises(UserError, match=r"config.num_devices is 5, but JAX sees 1 device"):
    distributed.placement_for(5)


@pytest.mark.parametrize("batch_size, devices, padded", [(64, 4, 64), (62, 4, 64),
                                                         (1, 8, 8), (9, 8, 16)])
def test_a_batch_is_padded_to_a_multiple_of_the_device_count(batch_size, devices, padded):
  assert distributed.padded_batch_size(batch_size, devices) == padded


# --- 1 device against 4, every family --------------------------------------------------

@pytest.mark.parametrize("family", list(device_runs.FAMILIES))
def test_four_devices_choose_the_same_examples_and_give_the_numbers_of_one(
    device_runs_dir, family):
  one = os.path.join(device_runs_dir, family, "1")
  four = os.path.join(device_runs_dir, family, "all")
  assert_same_selections_and_numbers(one, four)
  with open(os.path.join(four, "config.json")) as f:
    assert json.load(f)["num_devices"] == 0
  assert (_summary(one)["num_devices"], _summary(four)["num_devices"]) == (1, 4)
  for workdir in (one, four):
    with open(workdir + device_runs.COMPILATIONS_SUFFIX) as f:
      compilations = json.load(f)
    # The last epoch trains, scores and selects with the shapes of the one before.
    assert compilations[-1] == compilations[-2], (workdir, compilations)


# --- 2 processes x 2 devices against 1 process x 4 --------------------------------------

@pytest.fixture(scope="module")
def two_process_run(device_runs_dir, tmp_path_factory):
  tmp = tmp_path_factory.mktemp("hosts")
  reference = os.path.join(device_runs_dir, "prioritization", "all")
  config_file = _config_file(tmp, reference)
  workdir, logs = str(tmp / "run"), str(tmp / "run")
  processes = _launch(config_file, workdir, str(tmp / "cache"), _free_port(), logs)
  _wait(processes, logs)
  return {"reference": reference, "workdir": workdir, "logs": logs,
          "config_file": config_file, "cache": str(tmp / "cache"), "tmp": tmp}


def test_two_processes_give_the_selections_and_numbers_of_one_with_four_devices(
    two_process_run):
  assert_same_selections_and_numbers(two_process_run["reference"],
                                     two_process_run["workdir"])


def test_only_process_zero_writes_and_prints(two_process_run):
  workdir, logs = two_process_run["workdir"], two_process_run["logs"]
  # Two writers would append every epoch's record twice.
  assert [r["epoch"] for r in _records(workdir)] == list(range(device_runs.EPOCHS))
  assert run_comparison.litter(workdir) == []
  assert "4 cpu devices in 2 processes" in _run_lines(f"{logs}.0.out")[0]
  summary = _summary(workdir)
  assert (summary["num_devices"], summary["num_processes"]) == (4, 2)
  assert _run_lines(f"{logs}.1.out") == []
  assert sorted(run_comparison.output_files(workdir)) == sorted(
      run_comparison.output_files(two_process_run["reference"]))


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_numbers(two_process_run):
  tmp = two_process_run["tmp"]
  workdir, logs = str(tmp / "killed"), str(tmp / "killed")
  processes = _launch(two_process_run["config_file"], workdir, two_process_run["cache"],
                      _free_port(), logs)
  deadline = time.monotonic() + 300
  while not run_comparison.committed_epochs(workdir):
    assert time.monotonic() < deadline, "no checkpoint within 300 s"
    assert all(p.poll() is None for p in processes), "a process ended before its first checkpoint"
    time.sleep(0.005)
  for process in processes:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
  assert not os.path.exists(os.path.join(workdir, "summary.json")), (
      "the run finished before it was killed: nothing was resumed")
  processes = _launch(two_process_run["config_file"], workdir, two_process_run["cache"],
                      _free_port(), logs + ".resumed")
  _wait(processes, logs + ".resumed")
  assert "resuming after epoch" in _run_lines(f"{logs}.resumed.0.out")[0]
  assert run_comparison.workdir_difference(two_process_run["workdir"], workdir) is None


# --- what the replicated tables cost (README, "Scaling out") ----------------------------

def _table_bytes_per_example(config, dataset) -> float:
  """Bytes per example of a method's per-example device state: trackers and method state
  leaves with an axis of the pool's size."""
  method, plan = train._method_and_plan(config, dataset)  # pylint: disable=protected-access
  num_ids = len(dataset.pool)
  tree = ({name: t.init(num_ids) for name, t in method.trackers().items()},
          method.initial_method_state(plan))
  return sum(np.asarray(leaf).nbytes for leaf in jax.tree.leaves(tree)
             if num_ids in np.shape(leaf)) / num_ids


@pytest.mark.parametrize("method, fields, expected", [
    ("full_data", {}, 0), ("prioritization", {}, 4),
    ("prioritization", {"method.save_scores": True}, 4 + 4 * 3),
    ("training_dynamics", {}, 56),
    ("training_dynamics", {"method.per_epoch": True}, 56 + 5 * 3),
    ("budgeted", {}, 16), ("selective_backprop", {}, 4)])
def test_the_replicated_tables_take_the_bytes_the_readme_states(mnist1d_dir, method, fields,
                                                                expected):
  config = device_runs.with_method(device_runs.tiny_run_config(mnist1d_dir), method,
                                   **fields)  # 3 epochs
  assert _table_bytes_per_example(config, train.load_data(config)) == expected
