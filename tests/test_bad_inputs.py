"""Malformed input of every kind is refused in one line that names the field, flag or file.

Each case asserts a ``UserError`` (the CLI: exit status 2, one stderr line, no traceback)
whose one-line message names what is wrong, and that the workdir is left as it was: absent
or empty for a new run, unchanged for a resume. Most cases run in-process (a refused config
never loads data or compiles, so each costs milliseconds); the cases whose point is the exit
path run the CLI in a subprocess.
"""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxsel import artifacts, data, train
from jaxsel.config_errors import UserError
from tests.conftest import override, with_method
from tests.test_artifacts import MALFORMED

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree_digest(directory: str) -> dict[str, str]:
  """relative path -> sha256 of every file under ``directory`` ({} when absent)."""
  digest = {}
  for root, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        digest[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
  return digest


def assert_refused(call, *mentions: str, workdir: str | None = None,
                   before: dict | None = None) -> str:
  """``call()`` raises a one-line UserError mentioning every string in ``mentions``, and
  leaves ``workdir`` as ``before`` (default: holding no file). Returns the message."""
  with pytest.raises(UserError) as info:
    call()
  message = str(info.value)
  assert "\n" not in message, message
  for mention in mentions:
    assert mention in message, (mention, message)
  if workdir is not None:
    assert tree_digest(workdir) == (before or {}), message
  return message


def run_cli(*args: str, module: str = "jaxsel.main", cwd: str = _REPO,
            env: dict | None = None) -> subprocess.CompletedProcess:
  """Runs ``python -m module args`` and returns the finished process (text output)."""
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, text=True,
                        capture_output=True, timeout=300,
                        env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})


def assert_cli_refused(process: subprocess.CompletedProcess, *mentions: str) -> str:
  """Exit status 2, one stderr line mentioning ``mentions``, no traceback."""
  lines = process.stderr.strip().splitlines()
  assert process.returncode == 2, (process.returncode, process.stderr[-3000:])
  assert len(lines) == 1, process.stderr[-3000:]
  assert "Traceback" not in process.stderr
  for mention in mentions:
    assert mention in lines[0], (mention, lines[0])
  return lines[0]


# --- malformed score files named by a run's config ------------------------------------------
#
# A target model's scores (prioritization), a coreset's training-dynamics scores and a
# removal ordering are all read by ``artifacts.load``: whatever is wrong with the file, the
# run stops before training in one line naming the config field and the file, and the
# workdir stays empty. The broken files are MALFORMED's of tests/testartifacts.py.

def _reading_target(config, path: str):
  return with_method(config, "prioritization", **{
      "method.subset_fraction": 0.1, "method.warmup_epochs": 1, "method.target.path": path})


def _reading_coreset_scores(config, path: str):
  return with_method(config, "coreset", **{
      "method.scores_path": path, "method.pruning_rate": 0.9, "method.beta": 0.1,
      "train.num_epochs": 0, "train.num_train_steps": 20, "schedule.unit": "step",
      "eval.every_epochs": 0, "eval.every_steps": 10})


def _reading_ordering(config, path: str):
  return override(config, **{"removal.ordering_path": path, "removal.remove_n": 10})


_SCORE_FIELDS = {
    "method.target.path": _reading_target,
    "method.scores_path": _reading_coreset_scores,
    "removal.ordering_path": _reading_ordering,
}


@pytest.mark.parametrize("field, case", [
    ("method.target.path", "missing"),
    ("method.target.path", "garbage"),
    ("method.target.path", "truncated_at_half"),
    ("method.target.path", "metadata_not_json"),
    ("method.target.path", "pickled_table"),
    ("method.scores_path", "directory_without_scores"),
    ("method.scores_path", "empty"),
    ("method.scores_path", "metadata_a_json_list"),
    ("method.scores_path", "no_example_ids"),
    ("method.scores_path", "format_version_2"),
    ("removal.ordering_path", "npy_not_npz"),
    ("removal.ordering_path", "corrupt_member"),
    ("removal.ordering_path", "metadata_lacks_keys"),
    ("removal.ordering_path", "table_of_float64"),
    ("removal.ordering_path", "pickled_metadata"),
])
def test_a_malformed_score_file_named_by_the_config_is_refused_before_anything_is_written(
    tiny_config, tmp_path, field, case):
  build, mention = MALFORMED[case]
  path = build(tmp_path)
  config = _SCORE_FIELDS[field](tiny_config, path)
  workdir = str(tmp_path / "workdir")
  message = assert_refused(lambda: train.train_and_evaluate(config, workdir), mention,
                           workdir=workdir)
  assert message.startswith(f"config.{field} '{path}"), message


def test_of_several_coreset_score_files_the_malformed_one_is_named(tiny_config, mnist1d_dir,
                                                                   tmp_path):
  dataset = data.load_dataset("mnist1d", data_dir=mnist1d_dir)
  num_train = len(dataset.train_ids)
  margins = np.linspace(-1, 1, num_train, dtype=np.float32)
  good = artifacts.save(str(tmp_path / "seed0"), artifacts.ScoreFile(
      example_ids=dataset.train_ids, tables={"accumulated_margin": margins},
      fingerprint=dataset.fingerprint, dataset_name=dataset.name, num_epochs=3, seeds=(0,),
      config={}))
  broken = MALFORMED["truncated_at_half"][0](tmp_path)
  config = _reading_coreset_scores(tiny_config, f"{good},{broken}")
  workdir = str(tmp_path / "workdir")
  message = assert_refused(
      lambda: train.train_and_evaluate(config, workdir, dataset=dataset),
      "is damaged or truncated", workdir=workdir)
  assert message.startswith(f"config.method.scores_path '{broken}'"), message
  assert good not in message


# --- every config field: bad values refused before anything is written --------------------
# Each case runs the tiny config with one field made bad; the run must stop with a one-line
# UserError naming the field and leave the workdir empty. Most are refused by
# config_checks.check_config before the data is read; the last ones need the data (the
# removal's size, the inputs' shape, a run given in steps) and are refused by
# variants.apply, check_against_data or make_schedule, still before the first write.

_NAN, _INF = float("nan"), float("inf")
_MULTISTEP = {"schedule.name": "multistep", "schedule.unit": "epoch"}


@pytest.mark.parametrize("fields, field", [
    ({"optimizer.learning_rate": _INF}, "config.optimizer.learning_rate"),
    ({"optimizer.learning_rate": _NAN}, "config.optimizer.learning_rate"),
    ({"optimizer.momentum": 1.0}, "config.optimizer.momentum"),
    ({"optimizer.momentum": _NAN}, "config.optimizer.momentum"),
    ({"optimizer.nesterov": True, "optimizer.momentum": 0.0}, "config.optimizer.momentum"),
    ({"optimizer.weight_decay": _INF}, "config.optimizer.weight_decay"),
    # The tiny run has epochs 0..2: a milestone at 3 would never decay.
    ({**_MULTISTEP, "schedule.milestone_epochs": (1, 3)}, "config.schedule.milestone_epochs"),
    ({**_MULTISTEP, "schedule.milestone_epochs": (2, 1)}, "config.schedule.milestone_epochs"),
    ({**_MULTISTEP, "schedule.milestone_epochs": (-1,)}, "config.schedule.milestone_epochs"),
    ({**_MULTISTEP, "schedule.decay_factor": _NAN}, "config.schedule.decay_factor"),
    ({"schedule.lr_warmup_epochs": _NAN}, "config.schedule.lr_warmup_epochs"),
    ({"schedule.end_learning_rate": -1.0}, "config.schedule.end_learning_rate"),
    ({"loss.name": "focal", "loss.focal_gamma": _INF}, "config.loss.focal_gamma"),
    ({"loss.label_smoothing": _NAN}, "config.loss.label_smoothing"),
    ({"mixing.name": "mixup", "mixing.alpha": _NAN}, "config.mixing.alpha"),
    ({"train.num_epochs": True}, "config.train.num_epochs"),
    ({"train.batch_size": True}, "config.train.batch_size"),
    ({"dataset.normalization_mean": (0.0,), "dataset.normalization_std": (0.0,)},
     "config.dataset.normalization_std"),
    ({"dataset.normalization_mean": (_NAN,), "dataset.normalization_std": (1.0,)},
     "config.dataset.normalization_mean"),
    ({"dataset.split_seed": -1}, "config.dataset.split_seed"),
    ({"noise.value_percent": 10.0, "noise.value_std": _NAN}, "config.noise.value_std"),
    ({"seed": -1}, "config.seed"),
    ({"model.kwargs.channels": 0}, "config.model.kwargs.channels"),
    ({"model.kwargs": {"depth": 2}}, "config.model.kwargs.depth"),
    ({"model.kwargs.conv_impl": "bogus"}, "config.model.kwargs.conv_impl"),
    ({"model.kwargs.dtype": "float16"}, "config.model.kwargs.dtype"),
    ({"model.name": "mnist_cnn", "model.kwargs": {"dropout_rate": 1.0}},
     "config.model.kwargs.dropout_rate"),
    # With the data: removing all 3,600 training examples at random (it used to blame
    # train.batch_size), or all but fewer than one batch of 64.
    ({"removal.keep_lowest_n": -1, "removal.remove_n": 3600}, "config.removal.remove_n"),
    ({"removal.keep_lowest_n": -1, "removal.remove_n": 3590}, "config.removal.remove_n"),
    ({"model.name": "mnist_cnn", "model.kwargs": {}}, "config.model.name"),
    # 40 positions -> 19 -> 10: the third conv layer's kernel of 50 does not fit.
    ({"model.kwargs.kernel_sizes": (5, 3, 50)}, "config.model.kwargs.kernel_sizes"),
    ({"dataset.name": "mnist2d"}, "config.dataset.name"),
    ({"dataset.normalization_mean": (0.0, 0.0, 0.0),
      "dataset.normalization_std": (1.0, 1.0, 1.0)}, "config.dataset.normalization_mean"),
    ({"dataset.train_subset_size": -5}, "config.dataset.train_subset_size"),
    # Known once the split is: 3,600 training ids.
    ({"dataset.train_subset_size": 4000}, "config.dataset.train_subset_size"),
    ({"schedule.name": "onecycle", "schedule.onecycle_pct_start": 0.0},
     "config.schedule.onecycle_pct_start"),
    ({"schedule.name": "onecycle", "schedule.onecycle_div_factor": _NAN},
     "config.schedule.onecycle_div_factor"),
    ({"method": "infobatch", "method.prune_ratio": 0.95}, "config.method.prune_ratio"),
    ({"method": "infobatch", "method.anneal_fraction": _NAN},
     "config.method.anneal_fraction"),
    ({"method": "infobatch", "train.num_epochs": 0, "train.num_train_steps": 100},
     "config.train.num_train_steps"),
    ({"method": "rho_loss"}, "config.method.irreducible_loss_path"),
    ({"method": "rho_loss", "method.irreducible_loss_path": "nowhere"},
     "config.method.irreducible_loss_path"),
    ({"method": "rho_loss", "method.irreducible_loss_path": "x",
      "method.selected_fraction": 1.5}, "config.method.selected_fraction"),
    ({"method": "irreducible_loss", "dataset.train_fraction": 1.0},
     "config.dataset.train_fraction"),
    ({"method": "irreducible_loss", "noise.label_percent": 10.0}, "config.noise"),
    # 100 steps of 57 + 43: a run of 2 epochs, known once the data is loaded.
    ({"train.num_epochs": 0, "train.num_train_steps": 100, "schedule.name": "multistep",
      "schedule.unit": "step", "schedule.milestone_epochs": (5,)},
     "config.schedule.milestone_epochs"),
])
def test_a_bad_config_value_is_refused_naming_the_field_before_anything_is_written(
    tiny_config, tmp_path, fields, field):
  fields = dict(fields)
  if "method" in fields:  # a method family's own section first, then its fields
    tiny_config = with_method(tiny_config, fields.pop("method"))
  config = override(tiny_config, **fields)
  workdir = str(tmp_path / "run")
  assert_refused(lambda: train.train_and_evaluate(config, workdir), field,
                 workdir=workdir)


# --- the command line and the workdir --------------------------------------------------------
# Through the CLI where the exit path is the point (each case is a process: ~3 s), in-process
# for the workdir's own checks.

_DEFAULT = "--config=configs/default.py"


@pytest.mark.parametrize("args, mention", [
    (("--config=configs/no_such_config.py",), "--config: no config file"),
    ((_DEFAULT, "--config.modl.name=mlp"), "did you mean 'model'"),
    ((_DEFAULT, "--config.model.kwargs.chanels=8"), "did you mean 'channels'"),
    ((_DEFAULT, "--config.train.num_epochs=ten"), "--config.train.num_epochs=ten"),
    ((_DEFAULT, "--workdi=x"), "did you mean --workdir"),
    (("--config=configs/default.py:no_such_method",), "config.method.name"),
    ((_DEFAULT, "--config.model.kwargs.channels=0"), "config.model.kwargs.channels"),
])
def test_a_bad_command_line_is_one_line_and_exit_2(tmp_path, args, mention):
  workdir = tmp_path / "run"
  if not any(a.startswith("--workdi") for a in args):
    args = (*args, f"--workdir={workdir}")
  assert_cli_refused(run_cli(*args), mention)
  assert not workdir.exists()


def test_an_empty_workdir_flag_is_refused_not_the_current_directory(tmp_path):
  config = os.path.join(_REPO, "configs", "default.py")
  assert_cli_refused(run_cli(f"--config={config}", "--workdir=", cwd=str(tmp_path)),
                     "--workdir must name a directory")
  assert not os.listdir(tmp_path)


def test_a_missing_workdir_flag_is_refused():
  assert_cli_refused(run_cli(_DEFAULT), "--workdir is required")


def test_a_workdir_that_is_a_file_is_refused(tiny_config, tmp_path):
  path = tmp_path / "run"
  path.write_text("x")
  assert_refused(lambda: train.train_and_evaluate(tiny_config, str(path)), "is a file")
  assert path.read_text() == "x"


@pytest.mark.parametrize("name", ["checkpoints", "checkpoints_set_aside"])
def test_a_file_where_the_checkpoints_go_is_refused(tiny_config, tmp_path, name):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / name).write_text("x")
  before = tree_digest(str(workdir))
  assert_refused(lambda: train.train_and_evaluate(tiny_config, str(workdir)),
                 f"{name} must be a directory", workdir=str(workdir), before=before)


def test_a_workdir_of_another_config_is_refused_and_left_alone(tiny_config, tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text('{"seed": 12345}\n')
  before = tree_digest(str(workdir))
  assert_refused(lambda: train.train_and_evaluate(tiny_config, str(workdir)),
                 "different config", workdir=str(workdir), before=before)


@pytest.mark.parametrize("text", ["", "{", "[1, 2]x", "\xff\xfe", "[1, 2]"])
def test_an_unreadable_config_json_is_refused_naming_it(tiny_config, tmp_path, text):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_bytes(text.encode("latin-1"))
  before = tree_digest(str(workdir))
  assert_refused(lambda: train.train_and_evaluate(tiny_config, str(workdir)),
                 "config.json", workdir=str(workdir), before=before)


def test_a_catalog_dataset_not_prepared_is_refused_naming_the_fields(tiny_config, tmp_path):
  config = override(tiny_config, **{"dataset.name": "cifar10",
                                    "dataset.data_dir": str(tmp_path / "empty_tfds")})
  (tmp_path / "empty_tfds").mkdir()
  workdir = str(tmp_path / "run")
  assert_refused(lambda: train.train_and_evaluate(config, workdir), "config.dataset.name",
                 "config.dataset.data_dir", workdir=workdir)
