"""Whether a finished run's workdir holds the same results as another's, and what it holds.

Two finished workdirs of one config are *identical* when they hold:

- the same output files (relative paths), leaving out the checkpoint directories
  (``checkpoints*/``) and the temporary files of writes a kill cut short;
- the same ``summary.json`` and the same ``metrics.jsonl`` records in the same order, epochs
  0, 1, ... with none missing or repeated, once their wall-clock fields are left out
  (``TIMING_KEYS`` and every ``*_seconds`` key, at any depth): the same fields, and equal
  values of the same JSON type (no tolerance; NaN equal to NaN);
- in every ``.npz`` file the same arrays: the same names, dtypes (a string array's width
  follows its longest string, so any width), shapes and exactly equal values (no
  tolerance; NaN equal to NaN).

Where a run lies is not one of its results: a workdir's own path, in any string of its
results, reads as ``<workdir>`` (``portable``). A difference is described in one line, the
first one found; None means identical. Nothing here runs, changes or deletes anything.
"""

import json
import os
import re

import numpy as np

from jaxsel import files

# Wall-clock fields of summary.json and metrics.jsonl; every "*_seconds" key is one too.
TIMING_KEYS = ("seconds", "timings")
# jaxsel.files.atomic_output's temporary files: ".tmp-<random><suffix>" beside the target.
JAXSEL_TMP = ".tmp-"
# orbax 0.12 writes a checkpoint into "<epoch>.orbax-checkpoint-tmp-<timestamp>" (and its
# items into "<item>.orbax-checkpoint-tmp-..." inside it), renamed when complete.
ORBAX_TMP = ".orbax-checkpoint-tmp"
ORBAX_TMP_EPOCH = re.compile(r"^(\d+)\.orbax-checkpoint-tmp")
# Where the loop moves a checkpoint it cannot restore (never deleted).
SET_ASIDE_DIR = "checkpoints_set_aside"


# --- what a workdir holds ---------------------------------------------------------------

def entries(directory: str) -> set[str]:
  """The entries of ``directory`` (none if it does not exist yet)."""
  try:
    return set(os.listdir(directory))
  except FileNotFoundError:
    return set()


def committed_epochs(workdir: str) -> list[int]:
  """Epochs of the complete checkpoints (orbax renames a finished write to its epoch)."""
  return sorted(int(n) for n in entries(os.path.join(workdir, "checkpoints")) if n.isdigit())


def checkpoint_writes(workdir: str) -> set[str]:
  """Checkpoint writes in progress, or left unfinished by a kill."""
  return {n for n in entries(os.path.join(workdir, "checkpoints")) if ORBAX_TMP in n}


def figure_writes(workdir: str) -> set[str]:
  """Figure writes in progress, or left unfinished by a kill."""
  return {n for n in entries(workdir) if n.startswith(JAXSEL_TMP) and n.endswith(".png")}


def set_aside(workdir: str) -> list[str]:
  """The checkpoints a resume moved out of ``checkpoints/``, by their names there."""
  return sorted(entries(os.path.join(workdir, SET_ASIDE_DIR)))


def _run_files(workdir: str) -> list[str]:
  """Relative paths of every file outside the checkpoint directories (orbax's own, read
  back by orbax, not compared), temporary files included."""
  found = []
  for directory, subdirs, filenames in os.walk(workdir):
    if directory == workdir:
      subdirs[:] = [d for d in subdirs if not d.startswith("checkpoints")]
    found += [os.path.relpath(os.path.join(directory, n), workdir) for n in filenames]
  return sorted(found)


def _temporary(path: str) -> bool:
  return os.path.basename(path).startswith(JAXSEL_TMP)


def output_files(workdir: str) -> list[str]:
  """Relative paths of the run's outputs: not checkpoints, not temporary files."""
  return [path for path in _run_files(workdir) if not _temporary(path)]


def litter(workdir: str) -> list[str]:
  """Temporary files and directories that killed writes left behind."""
  return ([path for path in _run_files(workdir) if _temporary(path)]
          + sorted(os.path.join("checkpoints", n) for n in checkpoint_writes(workdir)))


# --- comparison ---------------------------------------------------------------------------

def without_timings(value):
  """``value`` without its wall-clock fields, at any depth."""
  if isinstance(value, dict):
    return {k: without_timings(v) for k, v in value.items()
            if k not in TIMING_KEYS and not k.endswith("_seconds")}
  if isinstance(value, list):
    return [without_timings(v) for v in value]
  return value


def portable(value, workdir: str):
  """``value`` with the workdir's own path written as ``<workdir>``, at any depth: where a
  run lies is not one of its results (``summary.json`` names its own score file)."""
  if isinstance(value, dict):
    return {k: portable(v, workdir) for k, v in value.items()}
  if isinstance(value, list):
    return [portable(v, workdir) for v in value]
  if isinstance(value, str):
    return value.replace(workdir, "<workdir>")
  if isinstance(value, np.ndarray) and value.dtype.kind == "U":
    return np.char.replace(value, workdir, "<workdir>")
  return value


def _comparable(value, workdir: str):
  """A JSON result of the run in ``workdir`` as it is compared."""
  return portable(without_timings(value), workdir)


def _shown(value) -> str:
  text = repr(value)
  return text if len(text) <= 120 else text[:117] + "..."


def first_difference(reference, run, where: str) -> str | None:
  """The first place where ``run`` differs from ``reference`` (JSON values), or None."""
  if isinstance(reference, dict) and isinstance(run, dict):
    for key in sorted(set(reference) | set(run)):
      if key not in run or key not in reference:
        return f"{where}: field {key!r} only in the {'reference' if key in reference else 'run'}"
      found = first_difference(reference[key], run[key], f"{where}.{key}")
      if found:
        return found
    return None
  if isinstance(reference, list) and isinstance(run, list) and len(reference) == len(run):
    for i, (a, b) in enumerate(zip(reference, run)):
      found = first_difference(a, b, f"{where}[{i}]")
      if found:
        return found
    return None
  both_nan = (isinstance(reference, float) and isinstance(run, float)
              and np.isnan(reference) and np.isnan(run))
  if reference == run and type(reference) is type(run) or both_nan:
    return None
  return f"{where}: {_shown(run)} in the run, {_shown(reference)} in the reference"


def array_difference(where: str, reference: np.ndarray, run: np.ndarray) -> str | None:
  """How ``run`` differs from ``reference`` (equal: same dtype, shape and values, NaN
  equal to NaN), or None."""
  # Strings compare by value: their itemsize follows the longest string in them.
  same_type = (reference.dtype == run.dtype
               or reference.dtype.kind == run.dtype.kind == "U")
  if not same_type or reference.shape != run.shape:
    return (f"{where}: {run.dtype}{list(run.shape)} in the run, "
            f"{reference.dtype}{list(reference.shape)} in the reference")
  inexact = np.issubdtype(reference.dtype, np.inexact)
  if np.array_equal(reference, run, equal_nan=inexact):
    return None
  if reference.ndim == 0:
    return f"{where}: {_shown(run.item())} in the run, {_shown(reference.item())} in the reference"
  same = reference == run
  if inexact:
    same |= np.isnan(reference) & np.isnan(run)
  unequal = np.argwhere(~same)
  index = tuple(int(i) for i in unequal[0])
  return (f"{where}: {len(unequal)} of {reference.size} values differ, first at "
          f"{list(index)}: {run[index]!r} in the run, {reference[index]!r} in the reference")


def npz_difference(reference_dir: str, run_dir: str) -> str | None:
  """The first difference of the arrays of the two runs' ``.npz`` outputs, or None (the
  two hold the same output files: ``workdir_difference`` checks that first)."""
  for name in (n for n in output_files(reference_dir) if n.endswith(".npz")):
    with np.load(os.path.join(reference_dir, name), allow_pickle=False) as ref, \
        np.load(os.path.join(run_dir, name), allow_pickle=False) as run:
      if sorted(ref.files) != sorted(run.files):
        return (f"{name}: arrays {sorted(run.files)} in the run, {sorted(ref.files)} in "
                "the reference")
      for key in sorted(ref.files):
        found = array_difference(f"{name}[{key}]", portable(ref[key], reference_dir),
                                 portable(run[key], run_dir))
        if found:
          return found
  return None


def _summary(workdir: str) -> dict:
  with open(os.path.join(workdir, "summary.json")) as f:
    return _comparable(json.load(f), workdir)


def _epochs_contiguous(records: list[dict]) -> bool:
  return [r.get("epoch") for r in records] == list(range(len(records)))


def workdir_difference(reference_dir: str, run_dir: str) -> str | None:
  """The first difference of ``run_dir``'s results from ``reference_dir``'s, or None."""
  ref_files, run_files = output_files(reference_dir), output_files(run_dir)
  if ref_files != run_files:
    return (f"output files: only in the run {sorted(set(run_files) - set(ref_files))}, "
            f"only in the reference {sorted(set(ref_files) - set(run_files))}")
  found = first_difference(_summary(reference_dir), _summary(run_dir), "summary.json")
  if found:
    return found
  ref_records = files.read_jsonl(os.path.join(reference_dir, "metrics.jsonl"))
  run_records = files.read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
  if not _epochs_contiguous(run_records) or len(run_records) != len(ref_records):
    return (f"metrics.jsonl: epochs {[r.get('epoch') for r in run_records]} in the run, "
            f"0..{len(ref_records) - 1} in the reference")
  for ref, run in zip(ref_records, run_records):
    found = first_difference(_comparable(ref, reference_dir), _comparable(run, run_dir),
                             f"metrics.jsonl epoch {ref['epoch']}")
    if found:
      return found
  return npz_difference(reference_dir, run_dir)
