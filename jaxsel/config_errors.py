"""The one exception type for user errors, and checks of single config values.

``UserError`` is what every check of user input raises (a config value, a file named by a
config field or a flag, a workdir): its message is one line saying what is wrong, naming the
field, flag or file, and what is allowed. ``jaxsel.main`` prints that line and exits with
status 2; library callers get an ordinary exception (a ``ValueError``, so ``except
ValueError`` keeps working). Anything else that escapes is a programming error and keeps
its traceback.

The value checks are shared by the generic checks (``config_checks``) and every method's own
(``Method.check_config``), so that all of them read alike:
``config.method.subset_fraction must be in (0, 1], got 1.5``.
"""

import difflib
import math
import numbers
from collections.abc import Iterable


class UserError(ValueError):
  """Bad user input; the message is one line naming the field, flag or file."""


def require(condition: bool, field: str, allowed: str, value) -> None:
  """UserError ``config.<field> must be <allowed>, got <value>`` unless ``condition``."""
  if not condition:
    raise UserError(f"config.{field} must be {allowed}, got {one_line_repr(value)}")


def one_line_repr(value) -> str:
  """``repr(value)`` on one line (a ConfigDict's repr spans several)."""
  shown = repr(value)
  return " ".join(shown.split()) if "\n" in shown else shown


def one_line(error) -> str:
  """An exception's (or any value's) text on one line, for a message that quotes it; an
  exception with no text gives its type's name."""
  text = " ".join(str(error).split())
  return text or (type(error).__name__ if isinstance(error, BaseException) else "")


def choice(value, field: str, valid: Iterable[str]) -> None:
  """UserError listing the valid names unless ``value`` is one of them (and suggesting
  the closest, after the list so that the message still starts as it always has)."""
  valid = tuple(valid)
  if not isinstance(value, str) or value not in valid:
    raise UserError(f"unknown config.{field} {value!r}; valid: {', '.join(sorted(valid))}"
                    f"{suggestion(value, valid)}")


def did_you_mean(name, valid: Iterable[str]) -> str:
  """``"did you mean 'x'? "`` for the valid name closest to a misspelt ``name``, else ''
  (to go before a list of the valid names)."""
  if not isinstance(name, str):
    return ""
  close = difflib.get_close_matches(name, list(valid), n=1)
  return f"did you mean {close[0]!r}? " if close else ""


def suggestion(name, valid: Iterable[str]) -> str:
  """``"; did you mean 'x'?"`` for the valid name closest to ``name``, else '' (to end a
  message)."""
  hint = did_you_mean(name, valid)
  return f"; {hint.rstrip()}" if hint else ""


def is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_finite_real(value) -> bool:
  """A real number that is neither NaN nor infinite (and not a bool)."""
  return is_real(value) and math.isfinite(value)


def is_positive_int(value) -> bool:
  return is_int(value) and value > 0
