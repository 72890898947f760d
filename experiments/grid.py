"""What every paper grid of ``experiments/`` shares: where runs go, the command that repeats
each one, running a config quietly on a shared dataset, and the per-cell statistics.

A *result* is ``{"arg", "seed", "summary", "command", "wall_seconds"}`` for one run; a *cell*
is every seed of one config argument.
"""

import collections
import contextlib
import csv
import io
import json
import os
import statistics

from jaxsel import files, train


def run_dir(root: str, arg: str, seed: int) -> str:
  return os.path.join(root, arg.replace(",", "_"), f"seed{seed}")


def command(config_file: str, arg: str, seed: int, workdir: str,
            overrides: dict | None = None) -> str:
  """The ``python -m jaxsel.main`` command that runs (or resumes) this run."""
  parts = ["python -m jaxsel.main", f"--config={config_file}:{arg}", f"--workdir={workdir}",
           f"--config.seed={seed}"]
  parts += [f"--config.{field}={_flag_value(value)}"
            for field, value in (overrides or {}).items()]
  return " ".join(parts)


def _flag_value(value) -> str:
  """A value as one shell word: tuples without spaces, e.g. ``(5,7)``."""
  if isinstance(value, (tuple, list)):
    return "(" + ",".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
  return str(value)


def run(config, workdir: str, dataset) -> dict:
  """``train_and_evaluate`` with its per-epoch lines swallowed (one line per run instead);
  a finished workdir returns its summary without training."""
  with config.unlocked():
    config.progress_bar = "off"
  with contextlib.redirect_stdout(io.StringIO()):
    return train.train_and_evaluate(config, workdir, dataset=dataset)


def read_or_run(get_config, arg: str, seed: int, overrides: dict, workdir: str,
                dataset) -> tuple[dict, bool]:
  """(summary, finished before): a finished workdir's summary is read, not re-checked (the
  config may have gained fields since); otherwise ``get_config(arg)`` with ``seed`` and the
  ``overrides`` ({'section.field': value}) runs in ``workdir``."""
  if is_done(workdir):
    with open(os.path.join(workdir, "summary.json")) as f:
      return json.load(f), True
  return run(config_of(get_config, arg, seed, overrides), workdir, dataset), False


def config_of(get_config, arg: str, seed: int, overrides: dict):
  """``get_config(arg)`` with ``seed`` and the ``overrides`` ({'section.field': value})."""
  config = get_config(arg)
  with config.unlocked():
    config.seed = seed
    config.update_from_flattened_dict(overrides)  # nested too: 'method.target.path'
  return config


def is_done(workdir: str) -> bool:
  return os.path.exists(os.path.join(workdir, "summary.json"))


def wall_seconds(workdir: str) -> float:
  """Wall time of a finished run: from its config.json (written when training starts) to
  its summary.json (written last), so also right for runs done by an earlier invocation."""
  return (os.path.getmtime(os.path.join(workdir, "summary.json"))
          - os.path.getmtime(os.path.join(workdir, "config.json")))


def cells(results) -> dict[str, dict]:
  """Config argument -> {'summaries', 'commands', 'seeds'}, in the order of ``results``."""
  grouped = collections.OrderedDict()
  for result in results:
    cell = grouped.setdefault(result["arg"], {"summaries": [], "commands": [], "seeds": []})
    cell["summaries"].append(result["summary"])
    cell["commands"].append(result["command"])
    cell["seeds"].append(result["seed"])
  return grouped


def stats(cell: dict, key: str) -> tuple[float, float]:
  """Mean and population std over the cell's seeds."""
  values = [s[key] for s in cell["summaries"]]
  return statistics.fmean(values), statistics.pstdev(values)


def stat_columns(cell: dict, keys) -> dict:
  """CSV columns ``<key>_mean`` / ``<key>_std`` (rounded to 4 decimals) of the cell's seeds;
  empty where some run's summary lacks the key."""
  columns = {}
  for key in keys:
    if all(key in s for s in cell["summaries"]):
      mean, std = stats(cell, key)
      columns[f"{key}_mean"], columns[f"{key}_std"] = round(mean, 4), round(std, 4)
    else:
      columns[f"{key}_mean"] = columns[f"{key}_std"] = ""
  return columns


def write_csv(path: str, rows: list[dict]) -> None:
  with files.atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


class Progress:
  """One line per run: its result, and a rough estimate of the time left."""

  def __init__(self, total: int):
    self._total, self._number, self._ran, self._seconds = total, 0, 0, 0.0

  def done(self, label: str, summary: dict, seconds: float, *, earlier: bool) -> None:
    self._number += 1
    if not earlier:
      self._ran, self._seconds = self._ran + 1, self._seconds + seconds
    left = self._seconds / max(self._ran, 1) * (self._total - self._number)
    status = "done earlier" if earlier else f"{seconds:.0f} s"
    print(f"[{self._number}/{self._total}] {label}: test acc "
          f"{summary['test_accuracy']:.2f} %  ECE {summary['test_ece']:.2f} %  "
          f"({status}; ~{left / 60:.0f} min left)", flush=True)
