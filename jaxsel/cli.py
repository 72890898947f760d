"""How jaxsel's command lines end: one line and an exit status for every failure a user can
fix, a traceback only for programming errors.

| what happened                                   | stderr                          | exit |
|-------------------------------------------------|---------------------------------|------|
| ``UserError`` (bad value, file, flag, workdir)  | ``error: <its one line>``       | 2    |
| Ctrl-C (``KeyboardInterrupt``)                  | ``interrupted; run the same command to resume`` | 130 |
| the disk is full (``ENOSPC``)                   | ``error: no space left on device writing <path>`` | 1 |
| anything else                                   | the traceback                   | 1    |

``--traceback`` (or ``JAXSEL_TRACEBACK=1``) shows the traceback in every case, for
reporting a bug.
"""

import difflib
import errno
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from absl import flags

from jaxsel.config_errors import UserError, did_you_mean, one_line

TRACEBACK_FLAG = "--traceback"
TRACEBACK_ENV_VAR = "JAXSEL_TRACEBACK"
INTERRUPTED = "interrupted; run the same command to resume"


def wants_traceback(argv: list[str]) -> bool:
  return (TRACEBACK_FLAG in argv
          or os.environ.get(TRACEBACK_ENV_VAR, "").lower() in ("1", "true", "yes"))


def _disk_full_path(error: BaseException) -> str | None:
  """The path a write failed on for lack of space, searching the exception's causes
  (orbax and TensorStore wrap the OSError), else None."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
      return error.filename or "?"
    if "No space left on device" in str(error):
      return getattr(error, "filename", None) or "?"
    error = error.__cause__ or error.__context__
  return None


def _fail(line: str, status: int, show_traceback: bool):
  if show_traceback:
    traceback.print_exc()
  if line:
    print(line, file=sys.stderr, flush=True)
  sys.stdout.flush()
  # Skip interpreter teardown: background threads (orbax's, the compile-ahead pool) may
  # still be running, and joining them is what turns Ctrl-C into pages of traceback.
  os._exit(status)  # pylint: disable=protected-access


def run(main: Callable[[list[str]], None], argv: list[str] | None = None):
  """Calls ``main(argv)`` and exits: 0 on success, else as the table above says."""
  argv = list(sys.argv if argv is None else argv)
  show = wants_traceback(argv)
  try:
    main(argv)
  except UserError as e:
    _fail(f"error: {e}", 2, show)
  except KeyboardInterrupt:
    _fail(INTERRUPTED, 130, show)
  except BaseException as e:  # pylint: disable=broad-except
    if isinstance(e, SystemExit):
      raise
    path = _disk_full_path(e)
    if path is not None:
      _fail(f"error: no space left on device writing {path}", 1, show)
    traceback.print_exc()  # a programming error: the traceback is the report
    _fail("", 1, False)
  sys.stdout.flush()
  sys.stderr.flush()
  # Everything is written (atomically) and the checkpointer is closed; tearing down the
  # interpreter's ~2,000 modules would take another 0.3 s of a ~4 s run, so skip it.
  os._exit(0)  # pylint: disable=protected-access


def _flag_value(argv: Sequence[str], name: str) -> str | None:
  """The value given to ``--name`` (``--name=V`` or ``--name V``) in ``argv``, else None."""
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
    if arg == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _config_path(argv: Sequence[str], config_flag: str) -> tuple[str, str | None] | None:
  """(file, argument) of ``--config=FILE[:ARG]``, or None when the flag is absent."""
  value = _flag_value(argv, config_flag)
  if value is None:
    return None
  path, _, arg = value.partition(":")
  return path, (arg or None)


def _load_config_file(path: str, arg: str | None):
  """``get_config(arg)`` of the config file at ``path``, as ml_collections loads it."""
  spec = importlib.util.spec_from_file_location("jaxsel_config_file", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module.get_config()


def _unknown_override(argv: Sequence[str], config_flag: str) -> str | None:
  """The message for the first ``--config.a.b=V`` whose field the config lacks."""
  path, arg = _config_path(argv, config_flag)
  config = _load_config_file(path, arg)
  prefix = f"--{config_flag}."
  for item in argv:
    if not item.startswith(prefix):
      continue
    dotted = item[len(prefix):].split("=", 1)[0]
    node, walked = config, []
    for name in dotted.split("."):
      keys = list(node.keys()) if hasattr(node, "keys") else []
      if name not in keys:
        where = ".".join(walked)
        flag = item.split("=", 1)[0]
        if where == "model.kwargs":
          from jaxsel import models  # only on this error path: it imports flax
          try:
            models.check_options(config.model.name, {name: None})
          except UserError as e:  # "config.model.kwargs.<name>: model ... has no option"
            return f"--{config_flag}.{str(e).removeprefix('config.')}"
        section = f"config.{where}" if where else "the config"
        return (f"{flag}: {section} has no field {name!r}; "
                f"{did_you_mean(name, keys)}valid: {', '.join(sorted(keys))}")
      node, walked = node[name], walked + [name]
  return None


def _flags_error(error: flags.Error) -> str:
  message = str(error)
  if "Error whilst parsing config file" in message:
    # ml_collections formats the config file's own exception as a traceback: keep its
    # last line, the error itself.
    last = [line for line in message.splitlines() if line.strip()][-1]
    return f"--config: {last.split(': ', 1)[-1] if 'Error: ' in last else last}"
  if isinstance(error, flags.UnrecognizedFlagError):
    name = getattr(error, "flagname", "") or ""
    known = sorted(n for n in flags.FLAGS if len(n) > 1)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean --{close[0]}?" if close else ""
    return f"unknown flag --{name}{hint} (--helpshort lists the flags)"
  return one_line(message)


def parse_flags(argv: list[str], *, config_flag: str, required: Sequence[str]) -> None:
  """Parses absl's flags from ``argv``; every mistake is a one-line ``UserError``."""
  config = _config_path(argv, config_flag)
  if config is not None and not os.path.isfile(config[0]):
    raise UserError(f"--{config_flag}: no config file {config[0]!r}")
  try:
    flags.FLAGS(argv)
  except flags.Error as e:
    raise UserError(_flags_error(e)) from e
  except (KeyError, AttributeError) as e:  # ml_collections: an override of no field
    message = _unknown_override(argv, config_flag)
    raise UserError(message or one_line(e)) from e
  for name in required:
    if flags.FLAGS[name].value is None:
      raise UserError(f"--{name} is required (--helpshort lists the flags)")


def loaded_config(config_flag, argv: Sequence[str]):
  """The config the flag loaded; a config file that fails to load is a UserError."""
  config = config_flag.value
  try:
    config.to_json()  # a file that failed to load gives an object that raises here
  except (IOError, AttributeError) as e:
    raise UserError(f"--config: {one_line(e)}") from e
  return config


def workdir_path(workdir: str) -> str:
  """``--workdir`` checked: a non-empty path that is not a file."""
  from jaxsel import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  workdir_lib.check_layout(workdir)
  return workdir
