"""Shared fixtures: one prepared MNIST-1D for the whole session, tiny run configs."""

import subprocess
import sys

import pytest

from configs import default
from jaxsel import data, methods
from tests import equivalence


@pytest.fixture(scope="session")
def mnist1d_dir(tmp_path_factory) -> str:
  """A TFDS data dir with mnist1d (standard, 4,000 / 1,000) prepared once (~3 s)."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  data.load_dataset("mnist1d", data_dir=data_dir)
  return data_dir


def override(config, **fields):
  """Sets dotted fields (``'train.num_epochs': 3``) on a copy of a locked config."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for dotted, value in fields.items():
      node = config
      *parents, leaf = dotted.split(".")
      for name in parents:
        node = node[name]
      node[leaf] = value
  return config


def with_method(config, name, **fields):
  """A copy of ``config`` running method ``name`` (its default section), plus ``fields``
  (dotted, relative to the config root)."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.method = methods.default_config(name)
  return override(config, **fields)


def tiny_run_config(data_dir: str, **fields):
  """Three short epochs of a small CNN on MNIST-1D (compiles and runs in seconds), plus
  ``fields`` (dotted)."""
  return override(default.get_config(), **{
      "dataset.data_dir": data_dir,
      "model.kwargs": {"channels": 8, "conv_impl": "auto"},
      "train.num_epochs": 3,
      "train.batch_size": 64,
      "checkpoint.every_epochs": 1,
      "progress_bar": "off",
      **fields,
  })


@pytest.fixture
def tiny_config(mnist1d_dir):
  """``tiny_run_config`` on the session's MNIST-1D."""
  return tiny_run_config(mnist1d_dir)


@pytest.fixture(scope="session")
def device_runs_dir(tmp_path_factory, mnist1d_dir):
  """Every family's tiny runs on 1 and 4 CPU devices, in memory and streaming
  (``tests/device_runs.py``, a process of its own), once for the session."""
  out = str(tmp_path_factory.mktemp("devices"))
  process = subprocess.run([sys.executable, "-m", "tests.device_runs", out, mnist1d_dir],
                           cwd=equivalence.REPO, env=equivalence.environment(4), text=True,
                           capture_output=True, timeout=900)
  assert process.returncode == 0, process.stderr[-4000:]
  return out
