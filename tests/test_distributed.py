"""Data parallelism: the same config on 1 device, on 4, and on 2 processes x 2 devices
gives the same selections and the same numbers.

JAX fixes its device count when it starts, so the multi-device runs are processes of their
own (``JAX_NUM_CPU_DEVICES``): ``tests/device_runs.py`` runs every family on 1 device and on
4 in one process, once for the module; the multi-host runs are ``python -m jaxsel.main``
processes joined by ``jax.distributed`` on localhost (gloo collectives on CPU).

Tolerance. Selections must be identical: every epoch's subset digest, every epoch's count of
back-propagated examples, every integer table. Float results may differ in their last bits:
4 devices sum a batch's gradients, BatchNorm moments and metrics as 4 partial sums and an
all-reduce, 1 device in one pass, and float32 addition is not associative. A few float32
ulps per step, compounded over a tiny run's ~170 steps, stay far below 1e-4 (the largest
measured differences: 7e-6 in a table scaled ~7, 3e-4 points of ECE); the test allows
1e-4 relative for tables and NLL and 0.01 points for accuracy and ECE.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from benchmarks import run_comparison
from jaxsel import distributed, files, train
from jaxsel.config_errors import UserError
from tests import device_runs

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL = 1e-4
POINTS = 0.01  # accuracy and ECE are in percent


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

def _records(workdir):
  return files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))


def _summary(workdir):
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)


def _env(devices: int, **extra) -> dict:
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices),
         "PYTHONPATH": _REPO, **extra}
  env.pop("XLA_FLAGS", None)
  return env


@pytest.fixture(scope="module")
def device_runs_dir(tmp_path_factory, mnist1d_dir):
  out = str(tmp_path_factory.mktemp("devices"))
  process = subprocess.run([sys.executable, "-m", "tests.device_runs", out, mnist1d_dir],
                           cwd=_REPO, env=_env(4), text=True, capture_output=True,
                           timeout=900)
  assert process.returncode == 0, process.stderr[-4000:]
  return out


def _without_devices(metadata: np.ndarray) -> dict:
  value = json.loads(str(metadata))
  value["config"].pop("num_devices")
  return value


def assert_same_selections_and_numbers(reference: str, run: str) -> None:
  """Identical selections and integer tables; float results within the tolerance."""
  ref_records, run_records = _records(reference), _records(run)
  assert [r["epoch"] for r in run_records] == [r["epoch"] for r in ref_records]
  for key in ("subset_digest", "num_selected", "num_backpropagated", "num_steps"):
    assert [r[key] for r in run_records] == [r[key] for r in ref_records], key
  ref, got = _summary(reference), _summary(run)
  for key in ("test_accuracy", "test_ece", "val_accuracy", "val_ece"):
    assert abs(got[key] - ref[key]) <= POINTS, (key, ref[key], got[key])
  assert got["test_nll"] == pytest.approx(ref["test_nll"], rel=RTOL)
  assert got["num_train_examples_seen"] == ref["num_train_examples_seen"]
  names = sorted(n for n in os.listdir(reference) if n.endswith(".npz"))
  assert names == sorted(n for n in os.listdir(run) if n.endswith(".npz"))
  for name in names:
    with np.load(os.path.join(reference, name)) as a, np.load(os.path.join(run, name)) as b:
      assert sorted(a.files) == sorted(b.files), name
      for key in a.files:
        if key == "metadata":  # the config that made the file: its num_devices differs
          assert _without_devices(b[key]) == _without_devices(a[key])
        elif a[key].dtype.kind == "f":
          scale = max(float(np.abs(a[key]).max(initial=0.0)), 1.0)
          np.testing.assert_allclose(b[key], a[key], rtol=0, atol=RTOL * scale,
                                     err_msg=f"{name} {key}")
        else:
          np.testing.assert_array_equal(b[key], a[key], err_msg=f"{name} {key}")


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

def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _config_file(tmp_path, reference_dir: str) -> str:
  """A config file whose config is the one ``reference_dir`` ran (its config.json)."""
  path = tmp_path / "same_config.py"
  path.write_text("import json\nimport ml_collections\n\n\ndef get_config():\n"
                  f"  with open({os.path.join(reference_dir, 'config.json')!r}) as f:\n"
                  "    return ml_collections.ConfigDict(json.load(f))\n")
  return str(path)


def _launch(config_file: str, workdir: str, cache: str, port: int, logs: str):
  """Two processes of one run, 2 CPU devices each; their stdout/stderr go to ``logs``."""
  processes = []
  for process_id in range(2):
    out = open(f"{logs}.{process_id}.out", "w")
    err = open(f"{logs}.{process_id}.err", "w")
    processes.append(subprocess.Popen(
        [sys.executable, "-m", "jaxsel.main", f"--config={config_file}",
         f"--workdir={workdir}", f"--compilation_cache={cache}",
         f"--coordinator_address=localhost:{port}", "--num_processes=2",
         f"--process_id={process_id}", "--distributed_timeout=60"],
        cwd=_REPO, env=_env(2), stdout=out, stderr=err))
  return processes


def _run_lines(path: str) -> list[str]:
  """The run's lines on a process's stdout: gloo prints its connections there too, from
  several threads, so that its lines may come cut and interleaved."""
  with open(path) as f:
    return [line for line in f.read().splitlines()
            if "[Gloo]" not in line and "peer ranks" not in line and line.strip()]


def _wait(processes, logs: str) -> None:
  """Waits for both; if one fails or hangs, the other is killed, not left waiting."""
  try:
    for process in processes:
      process.wait(timeout=300)
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  for process_id, process in enumerate(processes):
    with open(f"{logs}.{process_id}.err") as f:
      assert process.returncode == 0, f.read()[-4000:]


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
