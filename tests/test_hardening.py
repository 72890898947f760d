"""A run around its failures: a damaged workdir resumes to the uninterrupted numbers or is
refused in one line; a held workdir is refused; nothing hangs; Ctrl-C and a full disk are
one line each.

One uninterrupted run and one run stopped after its second epoch are made once for the
module; each test damages a copy of the stopped run and resumes it.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from jaxsel import checkpoint, files, train
from jaxsel import workdir as workdir_lib
from jaxsel.config_errors import UserError
from tests.conftest import override, tiny_run_config
from tests.test_bad_inputs import assert_cli_refused, assert_refused, run_cli, tree_digest
from tests.test_train import _without_timings

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _records(workdir):
  return [_without_timings(r) for r in files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))]


@pytest.fixture(scope="module")
def config(mnist1d_dir):
  return tiny_run_config(mnist1d_dir, **{"checkpoint.max_to_keep": 3})


@pytest.fixture(scope="module")
def runs(config, tmp_path_factory):
  """(uninterrupted workdir, its summary, workdir stopped after epoch 2 of 3)."""
  root = tmp_path_factory.mktemp("hardening")
  reference = str(root / "uninterrupted")
  summary = train.train_and_evaluate(config, reference)

  def stop(epoch, record):
    del record
    if epoch == 1:
      raise KeyboardInterrupt

  stopped = str(root / "stopped")
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, stopped, on_epoch_end=stop)
  # The second save was still being written in the background when the run stopped.
  checkpoints = os.path.join(stopped, "checkpoints")
  deadline = time.monotonic() + 60
  while sorted(os.listdir(checkpoints)) != ["0", "1"] and time.monotonic() < deadline:
    time.sleep(0.05)
  assert sorted(os.listdir(checkpoints)) == ["0", "1"]
  return reference, summary, stopped


def _copy(path, tmp_path):
  target = str(tmp_path / "run")
  shutil.copytree(path, target)
  return target


def _assert_resumes_to_the_reference(config, workdir, runs):
  reference, summary, _ = runs
  resumed = train.train_and_evaluate(config, workdir)
  assert _without_timings(resumed) == _without_timings(summary)
  assert _records(workdir) == _records(reference)


def _truncate_mid_line(path):
  with open(path, "r+") as f:
    f.truncate(os.path.getsize(path) * 2 // 3)


@pytest.mark.parametrize("damage", ["deleted", "cut mid-line", "first record only",
                                    "garbage"])
def test_a_damaged_metrics_log_is_rewritten_whole_from_the_checkpoint(config, runs,
                                                                      tmp_path, damage):
  workdir = _copy(runs[2], tmp_path)
  path = os.path.join(workdir, "metrics.jsonl")
  if damage == "deleted":
    os.remove(path)
  elif damage == "cut mid-line":
    _truncate_mid_line(path)
  elif damage == "first record only":
    with open(path) as f:
      first = f.readline()
    files.write_text(path, first)
  else:
    files.write_text(path, "not json\n{\n")
  _assert_resumes_to_the_reference(config, workdir, runs)


@pytest.mark.parametrize("damage", ["flipped bits", "edited next_epoch"])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(config, runs, tmp_path,
                                                                    capfd, damage):
  workdir = _copy(runs[2], tmp_path)
  latest = os.path.join(workdir, "checkpoints", "1")
  if damage == "flipped bits":
    # One bit in each data file: a single flip may land in bytes nothing reads
    # (tests/test_checkpoint.py fuzzes single flips).
    data = glob.glob(os.path.join(latest, "state", "**", "d", "*"), recursive=True)
    assert data
    for path in data:
      with open(path, "r+b") as f:
        blob = bytearray(f.read())
        blob[len(blob) // 2] ^= 0x01
        f.seek(0)
        f.write(blob)
  else:
    path = os.path.join(latest, "host", "metadata")
    with open(path) as f:
      host = json.load(f)
    host["next_epoch"] = 3  # would skip the last epoch
    with open(path, "w") as f:
      json.dump(host, f)
  capfd.readouterr()
  _assert_resumes_to_the_reference(config, workdir, runs)
  # One line on stderr: the warning, nothing of orbax's or TensorStore's.
  warnings = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
  assert len(warnings) == 1 and "after epoch 2 is unusable" in warnings[0], warnings
  assert os.listdir(os.path.join(workdir, checkpoint.SET_ASIDE_DIRNAME)) == ["1"]


def test_temporary_files_of_a_killed_process_are_removed_on_resume(config, runs, tmp_path):
  workdir = _copy(runs[2], tmp_path)
  for name in (".tmp-abc123.png", ".tmp-x.json"):
    with open(os.path.join(workdir, name), "w") as f:
      f.write("half a figure")
  _assert_resumes_to_the_reference(config, workdir, runs)
  assert not [n for n in os.listdir(workdir) if n.startswith(".tmp-")]


def test_a_cut_summary_is_finished_again_not_reported_complete(config, runs, tmp_path,
                                                              capfd):
  workdir = _copy(runs[0], tmp_path)
  _truncate_mid_line(os.path.join(workdir, "summary.json"))
  capfd.readouterr()
  _assert_resumes_to_the_reference(config, workdir, runs)
  out = capfd.readouterr()
  assert "summary.json is unreadable" in out.err and "is complete" not in out.out


def test_an_invalid_config_json_is_one_line_and_changes_nothing(config, runs, tmp_path):
  workdir = _copy(runs[2], tmp_path)
  files.write_text(os.path.join(workdir, "config.json"), '{"seed": ')
  before = tree_digest(workdir)
  assert_refused(lambda: train.train_and_evaluate(config, workdir), "config.json",
                 "not valid JSON", workdir=workdir, before=before)


def test_a_checkpoints_file_is_refused_at_once_not_a_hang(tmp_path):
  # It used to fail on orbax's background thread while the main thread waited forever.
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "checkpoints").write_text("x")
  before = tree_digest(str(workdir))
  started = time.monotonic()
  process = run_cli("--config=configs/default.py", f"--workdir={workdir}",
                    "--config.train.num_epochs=5", "--config.checkpoint.every_epochs=1")
  assert_cli_refused(process, "checkpoints must be a directory")
  assert time.monotonic() - started < 60
  assert tree_digest(str(workdir)) == before


_HOLD = """
import sys, time
from jaxsel import workdir
with workdir.held(sys.argv[1]):
  print("held", flush=True)
  time.sleep(60)
"""


def test_a_held_workdir_is_refused_naming_the_holder_and_freed_when_it_dies(config,
                                                                         tmp_path):
  workdir = str(tmp_path / "run")
  holder = subprocess.Popen([sys.executable, "-c", _HOLD, workdir], cwd=_REPO, text=True,
                            stdout=subprocess.PIPE)
  try:
    assert holder.stdout.readline().strip() == "held"
    before = tree_digest(workdir)
    assert_refused(lambda: train.train_and_evaluate(config, workdir),
                   f"in use by process {holder.pid}", workdir=workdir, before=before)
  finally:
    holder.kill()  # SIGKILL: no cleanup runs, and the lock dies with the process
    holder.wait()
  with workdir_lib.held(workdir):
    assert open(os.path.join(workdir, workdir_lib.LOCK_FILENAME)).read() == f"{os.getpid()}\n"
  assert not os.path.exists(os.path.join(workdir, workdir_lib.LOCK_FILENAME))


def test_two_processes_on_one_workdir_one_runs_the_other_is_refused(tmp_path):
  workdir = str(tmp_path / "run")
  args = ["--config=configs/default.py", f"--workdir={workdir}", "--config.train.num_epochs=4",
          "--config.model.kwargs.channels=8", "--config.progress_bar=off"]
  first = subprocess.Popen([sys.executable, "-m", "jaxsel.main", *args], cwd=_REPO,
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  while not os.path.exists(os.path.join(workdir, workdir_lib.LOCK_FILENAME)):
    assert first.poll() is None, first.communicate()
    time.sleep(0.01)
  first.send_signal(signal.SIGSTOP)  # paused while holding the workdir, however fast it is
  try:
    assert_cli_refused(run_cli(*args), f"in use by process {first.pid}")
  finally:
    first.send_signal(signal.SIGCONT)
  out, err = first.communicate(timeout=300)
  assert first.returncode == 0, err
  assert [r["epoch"] for r in files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))] == \
      [0, 1, 2, 3]
  # It said what it would do, first, and what it wrote, last.
  lines = out.strip().splitlines()
  assert lines[0].startswith("full_data on mnist1d (3600 train / 400 val / 1000 test), "
                             "cnn1d (858 params), 4 epochs x 113 steps (452 steps), 1 cpu "
                             "device, workdir "), lines[0]
  assert lines[0].endswith(": new run")
  assert lines[-1] == (f"wrote {workdir}: config.json, curves.png, metrics.jsonl, "
                       "reliability_test.png, summary.json (and checkpoints/)")


@pytest.mark.parametrize("inputs, mention", [
    ([[0.5, np.nan]], "the inputs are non-finite"),
    ([[0.5, 3e7]], "the inputs are as large as 3e+07"),
    ([[0.5, -2.0]], "lower config.optimizer.learning_rate (now 0.05)"),
])
def test_the_non_finite_loss_message_blames_the_fields_the_inputs_point_to(config, inputs,
                                                                         mention):
  dataset = types.SimpleNamespace(uint8_inputs=False, streamed=False,
                                  pool=types.SimpleNamespace(
                                      inputs=np.asarray(inputs, np.float32)))
  cause = train._nonfinite_cause(config, dataset)  # pylint: disable=protected-access
  assert mention in cause
  if "inputs are" in mention and "moderate" not in cause:
    assert "learning_rate" not in cause and "config.dataset.normalization_std" in cause


def test_streamed_float_inputs_are_not_claimed_to_be_moderate(config):
  dataset = types.SimpleNamespace(uint8_inputs=False, streamed=True)  # no inputs to read
  cause = train._nonfinite_cause(config, dataset)  # pylint: disable=protected-access
  assert "were not inspected" in cause and "moderate" not in cause
  assert "config.dataset.normalization_std" in cause and "learning_rate" in cause


def test_a_non_finite_loss_from_a_huge_rate_names_the_rate(config, tmp_path):
  config = override(config, **{"optimizer.learning_rate": 1e30})
  message = assert_refused(lambda: train.train_and_evaluate(config, str(tmp_path / "run")),
                           "config.optimizer.learning_rate (now 1e+30)")
  assert "good" not in message


# ``python -m jaxsel.main ARGS`` with SIGINT unblocked and at its default first, as in a
# terminal: a child inherits an ignored or blocked SIGINT from its parent (a test worker, a
# CI runner started in the background), and then Ctrl-C never reaches it.
_AS_FROM_A_TERMINAL = ("import runpy, signal, sys; "
                       "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT]); "
                       "signal.signal(signal.SIGINT, signal.default_int_handler); "
                       "sys.argv = ['jaxsel.main', *sys.argv[1:]]; "
                       "runpy.run_module('jaxsel.main', run_name='__main__', alter_sys=True)")


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
  workdir = str(tmp_path / "run")
  process = subprocess.Popen(
      [sys.executable, "-c", _AS_FROM_A_TERMINAL, "--config=configs/default.py",
       # Far longer than the test waits (~0.05 s an epoch): a parent starved of CPU on a
       # loaded machine must still find the run under way when its signal lands.
       f"--workdir={workdir}", "--config.train.num_epochs=5000", "--config.progress_bar=off",
       "--config.eval.every_epochs=1"],
      cwd=_REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  while "epoch   2/" not in process.stdout.readline():  # training is under way
    assert process.poll() is None, process.communicate()
  process.send_signal(signal.SIGINT)
  _, err = process.communicate(timeout=60)
  assert process.returncode == 130
  assert err.strip().splitlines() == ["interrupted; run the same command to resume"]


_DISK_FULL = """
import sys
from jaxsel import cli, files
def main(argv):
  files.append_text("/dev/full", "x" * 100000)
cli.run(main, sys.argv)
"""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_one_line_naming_the_path():
  process = subprocess.run([sys.executable, "-c", _DISK_FULL], cwd=_REPO, text=True,
                           capture_output=True, timeout=60)
  assert process.returncode == 1
  assert process.stderr.strip().splitlines() == [
      "error: no space left on device writing /dev/full"]


def test_a_user_error_keeps_its_traceback_on_request(tmp_path):
  process = run_cli("--config=configs/default.py", "--workdir=", "--traceback")
  assert process.returncode == 2
  assert "Traceback" in process.stderr
  assert process.stderr.strip().splitlines()[-1] == "error: --workdir must name a " \
      "directory, got ''"


def test_a_programming_error_keeps_its_traceback_and_exits_1():
  process = subprocess.run(
      [sys.executable, "-c", "import sys\nfrom jaxsel import cli\n"
       "def main(argv):\n  raise KeyError('bug')\ncli.run(main, sys.argv)"],
      cwd=_REPO, text=True, capture_output=True, timeout=60)
  assert process.returncode == 1
  assert "Traceback" in process.stderr and "KeyError: 'bug'" in process.stderr


def test_user_error_is_a_value_error_for_library_callers():
  assert issubclass(UserError, ValueError)
  assert issubclass(train.NonFiniteLossError, UserError)


def test_the_cli_reports_a_fallback_in_exactly_one_stderr_line(runs, tmp_path):
  # Through the command line: a restore that fails inside TensorStore must not print the
  # tracebacks of its reads still in flight around the warning.
  workdir = _copy(runs[2], tmp_path)
  for path in glob.glob(os.path.join(workdir, "checkpoints", "1", "state", "**", "d", "*"),
                        recursive=True):
    with open(path, "r+b") as f:
      blob = bytearray(f.read())
      blob[len(blob) // 2] ^= 0x01
      f.seek(0)
      f.write(blob)
  # The module's config as a config file: the one its config.json records.
  config_file = tmp_path / "same_config.py"
  config_file.write_text(
      "import json\nimport ml_collections\n\n\ndef get_config():\n"
      f"  with open({os.path.join(workdir, 'config.json')!r}) as f:\n"
      "    return ml_collections.ConfigDict(json.load(f))\n")
  process = run_cli(f"--config={config_file}", f"--workdir={workdir}")
  assert process.returncode == 0, process.stderr[-3000:]
  lines = process.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("warning: the checkpoint after epoch 2 is "
                                                 "unusable"), process.stderr[-3000:]
  assert "resuming after epoch 1" in process.stdout.splitlines()[0]
  assert _records(workdir) == _records(runs[0])
