"""Writing run outputs so that a crash never leaves a half-written file behind.

On a multi-host run only process 0 writes into the run's directory
(``distributed.is_writer``): every process computes the same outputs, and the others write
theirs into a private temporary file that is then deleted, so code that writes a file needs
no test of its own for which process it runs in.
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator

from jaxsel import distributed


@contextlib.contextmanager
def _naming(path: str) -> Iterator[None]:
  """An OSError without a file name (a full disk fails at write or close) gets ``path``,
  so that the one line reporting it can say where."""
  try:
    yield
  except OSError as e:
    if e.filename is None:
      raise OSError(e.errno, e.strerror, path) from e
    raise


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
  """Yields a temporary path beside ``path``; renames it onto ``path`` on success.

  The rename is atomic on POSIX file systems, so readers see the old file or the new one,
  never a partial one. On error the temporary file is removed and ``path`` is untouched.
  On a process other than the writer, the temporary file is private (in the system's
  temporary directory) and deleted afterwards: ``path`` is not touched.
  """
  writer = distributed.is_writer()
  directory = os.path.dirname(os.path.abspath(path))
  if writer:
    os.makedirs(directory, exist_ok=True)
  suffix = os.path.splitext(path)[1]
  fd, tmp = tempfile.mkstemp(dir=directory if writer else None, prefix=".tmp-",
                             suffix=suffix)
  os.close(fd)
  try:
    yield tmp
    if writer:
      os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_text(path: str, text: str) -> None:
  with _naming(path), atomic_output(path) as tmp, open(tmp, "w") as f:
    f.write(text)


def write_json(path: str, obj) -> None:
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_text(path: str, text: str) -> None:
  """Appends ``text`` and flushes it. For logs written a line at a time: rewriting the
  whole file atomically each time would cost O(lines²) over a long run. A line cut short
  by a crash is dropped by ``read_jsonl``, and a resumed run rewrites the file whole."""
  if not distributed.is_writer():
    return
  with _naming(path), open(path, "a") as f:
    f.write(text)


def jsonl_line(record: dict) -> str:
  return json.dumps(record, sort_keys=True) + "\n"


def read_jsonl(path: str) -> list[dict]:
  """The records of a JSON-lines file; a last line without its newline (a write cut
  short) is left out."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = f.read().split("\n")
  # Every complete line ends with "\n", so the last piece is "" or an unfinished line.
  return [json.loads(line) for line in lines[:-1] if line.strip()]
