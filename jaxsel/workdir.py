"""A run directory held by one process at a time, and the checks made before using one
(its layout, the config it holds, whether it is finished).

``held(workdir)`` takes an exclusive ``flock`` on ``<workdir>/.lock`` for as long as the run
lasts. The kernel drops the lock when its process dies, however it dies (a SIGKILL
included), so a stale file never blocks a later run; the file holds the holder's pid so
that the second process can say who holds it. The file is removed when the run ends; a
process that locked a file that was removed meanwhile (it opened it just before) sees
that the path no longer names what it locked, and tries again.

On a multi-host run process 0 alone holds the lock, and every process learns whether it
got it (``distributed.all_agree``), so a refusal stops them all rather than leaving the
others waiting for it in a collective.

On a refusal before anything was written, ``held`` leaves the workdir as it found it: a
directory it created is removed again (if it is still empty), and so is the lock file.
"""

import contextlib
import errno
import fcntl
import json
import os
import sys
from collections.abc import Iterator

from jaxsel import distributed
from jaxsel.config_errors import UserError, one_line

LOCK_FILENAME = ".lock"
# Written by ``files.atomic_output`` before a rename; left behind only by a killed process.
TEMPORARY_PREFIX = ".tmp-"


def _holder(path: str) -> str:
  try:
    with open(path) as f:
      pid = f.read().strip()
  except OSError:
    pid = ""
  return f"process {pid}" if pid.isdigit() else "another process"


def _lock(path: str) -> int:
  """An fd holding an exclusive lock on the file at ``path`` (created if missing)."""
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno in (errno.EAGAIN, errno.EACCES):
        workdir = os.path.dirname(path)
        raise UserError(f"--workdir {workdir} is in use by {_holder(path)} (it holds "
                        f"{path}); wait for that run to end or use another --workdir") from e
      raise
    try:
      same = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
      same = False
    if same:
      return fd
    os.close(fd)  # removed by its last holder after we opened it: lock the new one


@contextlib.contextmanager
def held(workdir: str) -> Iterator[None]:
  """Holds ``workdir`` for the duration of the block (creating it if needed); on a
  multi-host run, process 0 holds it for all."""
  if not distributed.is_writer():
    if not distributed.all_agree(True):
      raise UserError(f"process 0 of this run could not take --workdir {workdir}; its "
                      "output says why")
    yield
    return
  taken = None
  try:
    taken = _take(workdir)
  finally:
    # Once, whether or not it worked: the other processes wait for the answer.
    distributed.all_agree(taken is not None)
  try:
    yield
  finally:
    _release(*taken)


def _take(workdir: str) -> tuple[str, int, bool]:
  """(lock path, its fd, whether the directory was created) of a lock just taken."""
  created = not os.path.isdir(workdir)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILENAME)
  try:
    fd = _lock(path)
  except BaseException:
    _remove_if_created(workdir, created)
    raise
  os.ftruncate(fd, 0)
  os.write(fd, f"{os.getpid()}\n".encode())
  return path, fd, created


def _release(path: str, fd: int, created: bool) -> None:
  # Removed while still locked, so no other process can take the lock on this inode.
  with contextlib.suppress(FileNotFoundError):
    os.remove(path)
  os.close(fd)
  _remove_if_created(os.path.dirname(path), created)


def _remove_if_created(workdir: str, created: bool) -> None:
  if created:
    with contextlib.suppress(OSError):
      os.rmdir(workdir)  # only if empty: a refused run leaves nothing behind


def check_layout(workdir: str) -> None:
  """Refuses a workdir whose fixed entries are of the wrong kind (a file where the
  checkpoints directory goes, say): orbax would fail on a background thread."""
  if not isinstance(workdir, str) or not workdir.strip():
    raise UserError(f"--workdir must name a directory, got {workdir!r}")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f"--workdir {workdir} is a file, not a directory")
  for name in ("checkpoints", "checkpoints_set_aside"):
    path = os.path.join(workdir, name)
    if os.path.exists(path) and not os.path.isdir(path):
      raise UserError(f"{path} must be a directory (the run's checkpoints), but it is a "
                      "file; move it away or use another --workdir")


def remove_stale_temporaries(workdir: str) -> list[str]:
  """Removes the temporary files a killed process left (only safe while ``held``)."""
  removed = []
  for root, dirs, names in os.walk(workdir):
    dirs[:] = [d for d in dirs if not d.startswith("checkpoints")]  # orbax's own
    for name in names:
      if name.startswith(TEMPORARY_PREFIX):
        os.remove(os.path.join(root, name))
        removed.append(os.path.join(root, name))
  return removed


def read_json(path: str, what: str):
  """The JSON value in ``path``; a file that does not parse is a one-line UserError."""
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f"{path} ({what}) is not valid JSON ({one_line(e)}); "
                    "the workdir is damaged: use a new --workdir") from e


def check_same_config(workdir: str, config: dict) -> str:
  """Refuses to continue a run that had another config (``config``: this run's, as JSON);
  returns the path of the workdir's ``config.json``."""
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path):
    previous = read_json(path, "the config of the run in this workdir")
    if not isinstance(previous, dict):
      raise UserError(f"{path} (the config of the run in this workdir) is not a JSON "
                      "object; the workdir is damaged: use a new --workdir")
    if previous != config:
      changed = sorted(k for k in set(previous) | set(config)
                       if previous.get(k) != config.get(k))
      raise UserError(
          f"{workdir} holds a run with a different config (top-level fields that differ: "
          f"{', '.join(changed)}); use a new --workdir. Existing run directories are never "
          "overwritten.")
  return path


def completed_summary(workdir: str) -> dict | None:
  """The summary of a finished run in ``workdir``, or None. An unreadable summary.json
  (only an outside hand can cut one short: it is written atomically) is redone, with a
  warning."""
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      summary = json.load(f)
    if isinstance(summary, dict) and "test_accuracy" in summary:
      return summary
    problem = "it is not a run summary"
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    problem = f"it is not valid JSON ({one_line(e)})"
  print(f"warning: {path} is unreadable: {problem}; finishing the run again from its last "
        "checkpoint", file=sys.stderr, flush=True)
  return None
