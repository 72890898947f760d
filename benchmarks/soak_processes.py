"""The soak's runs as processes: each as a user would run it, killed at a planned moment.

A run is ``python -m jaxsel.main`` with ``configs/default.py:<method>`` and overrides, a
fresh process whose stdout and stderr go to ``<out>/logs/<name>.<n>.out`` and ``.err``.
``launch`` SIGKILLs it the moment its trigger is true; ``kill_plan`` and ``trigger_for``
decide when that is (the kinds of kill are described in ``benchmarks/soak_resume.py``).
"""

import dataclasses
import glob
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from benchmarks import run_comparison

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILE = os.path.join(ROOT, "configs", "default.py")

KINDS = ("random", "checkpoint", "figures")
POLL_SECONDS = 0.005
# The words of the loop's warning when it sets a checkpoint aside.
SET_ASIDE_WORDS = "set aside"
# How a run says it began, on stdout: "... resuming after epoch N" or "... new run".
START_LINE = re.compile(r"resuming .*after epoch \d+|new run")

# Small runs: a few seconds per process on 2 CPU cores, a checkpoint after every epoch.
COMMON = {"model.kwargs.channels": 8, "checkpoint.every_epochs": 1, "progress_bar": "off"}


@dataclasses.dataclass(frozen=True)
class Family:
  """A run config: ``configs/default.py:<method>`` plus overrides; ``needs`` names the
  prerequisite run whose workdir goes into config field ``needs_field``."""
  method: str
  overrides: dict
  needs: str = ""
  needs_field: str = ""


@dataclasses.dataclass(frozen=True)
class Soak:
  out: str
  epochs: int
  seed: int
  max_kills: int
  kinds: tuple[str, ...]
  data_dir: str
  cache: str

  def settings(self) -> dict:
    """What the recorded results depend on: a rerun into ``out`` must match them."""
    return {"epochs": self.epochs, "seed": self.seed, "max_kills": self.max_kills,
            "kinds": list(self.kinds), "data_dir": self.data_dir, **COMMON}


# --- commands and processes -----------------------------------------------------------

def config_flags(family: Family, soak: Soak, prerequisite_dirs: dict) -> list[str]:
  fields = {**COMMON, "train.num_epochs": soak.epochs, **family.overrides}
  if soak.data_dir:
    fields["dataset.data_dir"] = soak.data_dir
  if family.needs:
    fields[family.needs_field] = prerequisite_dirs[family.needs]
  return [f"--config.{name}={value}" for name, value in fields.items()]


def command(family: Family, workdir: str, soak: Soak, prerequisite_dirs: dict) -> list[str]:
  return [sys.executable, "-m", "jaxsel.main", f"--config={CONFIG_FILE}:{family.method}",
          f"--workdir={workdir}", f"--compilation_cache={soak.cache}",
          *config_flags(family, soak, prerequisite_dirs)]


def log_prefix(soak: Soak, name: str) -> str:
  """A fresh ``logs/<name>.<n>`` for one process's ``.out`` and ``.err``."""
  os.makedirs(os.path.join(soak.out, "logs"), exist_ok=True)
  n = 1
  while os.path.exists(os.path.join(soak.out, "logs", f"{name}.{n}.err")):
    n += 1
  return os.path.join(soak.out, "logs", f"{name}.{n}")


def fresh_dir(path: str) -> str:
  """``path``, or ``path-2``, ``path-3``, ...: the first that does not exist. A run that
  must be uninterrupted never continues a workdir that a killed soak left behind."""
  n, candidate = 1, path
  while os.path.exists(candidate):
    n += 1
    candidate = f"{path}-{n}"
  return candidate


@dataclasses.dataclass
class Process:
  killed: bool
  status: int
  seconds: float
  log: str

  def error_lines(self, words: str = "") -> list[str]:
    """Its stderr's non-empty lines (those that contain ``words``, in any case)."""
    with open(self.log + ".err") as f:
      return [line.strip() for line in f if line.strip() and words in line.lower()]

  def last_error_line(self) -> str:
    lines = self.error_lines()
    return lines[-1] if lines else "(nothing on stderr)"


def launch(argv: list[str], log: str, trigger: Callable[[float], bool] | None = None
           ) -> Process:
  """Runs ``argv``; SIGKILLs it as soon as ``trigger(elapsed seconds)`` is true."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  with open(log + ".out", "w") as out, open(log + ".err", "w") as err:
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT, env=env)
    while proc.poll() is None:
      if trigger is not None and trigger(time.monotonic() - start):
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return Process(True, proc.returncode, time.monotonic() - start, log)
      time.sleep(POLL_SECONDS)
    return Process(False, proc.returncode, time.monotonic() - start, log)


def start_line(stdout_path: str) -> str | None:
  """How the process whose stdout is ``stdout_path`` said it began, or None."""
  with open(stdout_path) as f:
    return next((m.group(0) for m in map(START_LINE.search, f) if m), None)


def resumed_processes(soak: Soak, log_name: str) -> int:
  """How many of the processes logged as ``log_name`` resumed from a checkpoint, as their
  first line says: a resume that sets every checkpoint aside starts a new run instead."""
  paths = glob.glob(os.path.join(soak.out, "logs", f"{glob.escape(log_name)}.*.out"))
  return sum((start_line(path) or "").startswith("resuming") for path in paths)


# --- kills ----------------------------------------------------------------------------

def kill_plan(rng: random.Random, offset: int, max_kills: int, kinds: tuple[str, ...]
              ) -> list[tuple[str, float]]:
  """1..max_kills kills of distinct ``kinds``, each with a uniform draw u in [0, 1) that
  places it. Consecutive runs start at different kinds (``offset``) so that every family
  sees each kind. They come in the order of ``KINDS``: a random kill first, while the run
  is as long as the repeat run it is drawn over, and figures last, since once they are
  being written the last checkpoint exists and no checkpoint write would come."""
  count = min(rng.randint(1, max_kills), len(kinds))
  chosen = {kinds[(offset + j) % len(kinds)] for j in range(count)}
  return [(kind, rng.random()) for kind in KINDS if kind in chosen]


def trigger_for(kind: str, draw: float, workdir: str, *, epochs: int, run_seconds: float
                ) -> tuple[Callable[[float], bool], str]:
  """When to kill the next process in ``workdir``, and a description of it."""
  if kind == "random":
    delay = draw * run_seconds
    return (lambda elapsed: elapsed >= delay), f"after {delay:.2f} s"
  if kind == "checkpoint":
    done = run_comparison.committed_epochs(workdir)
    first = done[-1] + 1 if done else 0
    epoch = first + int(draw * max(epochs - first, 1))
    # Writes left behind by an earlier kill are not the one to wait for.
    stale = run_comparison.checkpoint_writes(workdir)

    def writing(elapsed):
      del elapsed
      for name in run_comparison.checkpoint_writes(workdir) - stale:
        match = run_comparison.ORBAX_TMP_EPOCH.match(name)
        if match is None or int(match.group(1)) >= epoch:
          return True
      return False
    return writing, f"writing the checkpoint of epoch >= {epoch + 1}"
  stale = run_comparison.figure_writes(workdir)

  def writing_figure(elapsed):
    del elapsed
    return bool(run_comparison.figure_writes(workdir) - stale)
  return writing_figure, "writing a figure"


def unfinished_writes(workdir: str) -> set[str]:
  """The checkpoint and figure writes in ``workdir`` now, unfinished or in progress."""
  return run_comparison.checkpoint_writes(workdir) | run_comparison.figure_writes(workdir)


def mid_write(kind: str, workdir: str, before: set[str]) -> bool | None:
  """Whether the kill left a write unfinished (its temporary still there), given the
  ``unfinished_writes`` before the process started; None for a kill that waits for no write."""
  if kind == "checkpoint":
    return bool(run_comparison.checkpoint_writes(workdir) - before)
  if kind == "figures":
    return bool(run_comparison.figure_writes(workdir) - before)
  return None
