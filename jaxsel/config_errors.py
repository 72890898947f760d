"""Checks of single config values whose errors name the field and what it allows.

Shared by the generic checks (``config_checks``) and every method's own
(``Method.check_config``), so that all of them read alike:
``config.method.subset_fraction must be in (0, 1], got 1.5``.
"""

import numbers
from collections.abc import Iterable


def require(condition: bool, field: str, allowed: str, value) -> None:
  """ValueError ``config.<field> must be <allowed>, got <value>`` unless ``condition``."""
  if not condition:
    raise ValueError(f"config.{field} must be {allowed}, got {value!r}")


def choice(value, field: str, valid: Iterable[str]) -> None:
  """ValueError listing the valid names unless ``value`` is one of them."""
  valid = tuple(valid)
  if value not in valid:
    raise ValueError(f"unknown config.{field} {value!r}; valid: {', '.join(sorted(valid))}")


def is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)
