"""Comparisons of two runs of one config that differ only in how they ran (device count,
processes, storage): the same selections, the same numbers within float32 tolerance.

Tolerance. Selections must be identical: every epoch's subset digest, every epoch's count of
back-propagated examples, every integer table. Float results may differ in their last bits:
4 devices sum a batch's gradients, BatchNorm moments and metrics as 4 partial sums and an
all-reduce, 1 device in one pass, and float32 addition is not associative. A few float32
ulps per step, compounded over a tiny run's ~170 steps, stay far below 1e-4 (the largest
measured differences: 7e-6 in a table scaled ~7, 3e-4 points of ECE); the comparison allows
1e-4 relative for tables and NLL and 0.01 points for accuracy and ECE.
"""

import json
import os

import numpy as np
import pytest

from jaxsel import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL = 1e-4
POINTS = 0.01  # accuracy and ECE are in percent


def records(workdir: str) -> list[dict]:
  return files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))


def summary(workdir: str) -> dict:
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)


def environment(devices: int, **extra) -> dict:
  """The environment of a subprocess whose JAX sees ``devices`` CPU devices."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices),
         "PYTHONPATH": REPO, **extra}
  env.pop("XLA_FLAGS", None)
  return env


def _metadata_without(metadata: np.ndarray, *, fingerprint: bool) -> dict:
  """A score file's metadata less what says how the run ran: its config's device count and
  storage, and (``fingerprint``, for runs on differently stored data) the fingerprint and
  the paths of the score files it read (those of runs on the same storage)."""
  value = json.loads(str(metadata))
  value["config"].pop("num_devices")
  value["config"]["dataset"].pop("storage")
  if fingerprint:
    value.pop("fingerprint")
    method = value["config"]["method"]
    method.pop("scores_path", None)
    method.pop("irreducible_loss_path", None)
    method.get("target", {}).pop("path", None)
  return value


def assert_same_selections_and_numbers(reference: str, run: str, *,
                                       same_fingerprint: bool = True) -> None:
  """Identical selections and integer tables; float results within the tolerance.

  ``same_fingerprint`` False: the runs read differently stored data (in memory, streamed),
  whose dataset fingerprints differ by design.
  """
  ref_records, run_records = records(reference), records(run)
  assert [r["epoch"] for r in run_records] == [r["epoch"] for r in ref_records]
  for key in ("subset_digest", "num_selected", "num_backpropagated", "num_steps"):
    assert [r[key] for r in run_records] == [r[key] for r in ref_records], key
  ref, got = summary(reference), summary(run)
  for key in ("test_accuracy", "test_ece", "val_accuracy", "val_ece"):
    assert abs(got[key] - ref[key]) <= POINTS, (key, ref[key], got[key])
  assert got["test_nll"] == pytest.approx(ref["test_nll"], rel=RTOL)
  assert got["num_train_examples_seen"] == ref["num_train_examples_seen"]
  assert (got["dataset_fingerprint"] == ref["dataset_fingerprint"]) == same_fingerprint
  names = sorted(n for n in os.listdir(reference) if n.endswith(".npz"))
  assert names == sorted(n for n in os.listdir(run) if n.endswith(".npz"))
  for name in names:
    with np.load(os.path.join(reference, name)) as a, np.load(os.path.join(run, name)) as b:
      assert sorted(a.files) == sorted(b.files), name
      for key in a.files:
        if key == "metadata":  # the config that made the file
          assert (_metadata_without(b[key], fingerprint=not same_fingerprint)
                  == _metadata_without(a[key], fingerprint=not same_fingerprint))
        elif a[key].dtype.kind == "f":
          scale = max(float(np.abs(a[key]).max(initial=0.0)), 1.0)
          np.testing.assert_allclose(b[key], a[key], rtol=0, atol=RTOL * scale,
                                     err_msg=f"{name} {key}")
        else:
          np.testing.assert_array_equal(b[key], a[key], err_msg=f"{name} {key}")
