"""Combining the score files of several runs (seeds) into one, table by table.

``aggregate`` combines loaded ``ScoreFile``s; ``load_many`` loads files with
``artifacts.load``'s checks and combines them, naming the files in its errors. Both are also
importable from ``jaxsel.artifacts``. The file format is described there.
"""
# pylint: disable=protected-access  (the path and error-text helpers of jaxsel.artifacts)

import os
from collections.abc import Sequence

import numpy as np

from jaxsel import artifacts
from jaxsel.config_errors import UserError, one_line

_INT32 = np.iinfo(np.int32)


def _check_compatible(score_files: Sequence[artifacts.ScoreFile], labels: Sequence[str]) -> None:
  """Every file must share fingerprint, example ids and num_epochs with the first."""
  first = score_files[0]
  for score_file, label in zip(score_files[1:], labels[1:]):
    differs = []
    if score_file.fingerprint != first.fingerprint:
      differs.append(f"fingerprint {score_file.fingerprint} vs {first.fingerprint}")
    if not np.array_equal(score_file.example_ids, first.example_ids):
      differs.append(f"example_ids ({score_file.example_ids.size} vs "
                     f"{first.example_ids.size} ids)")
    if score_file.num_epochs != first.num_epochs:
      differs.append(f"num_epochs {score_file.num_epochs} vs {first.num_epochs}")
    if differs:
      raise ValueError(f"cannot aggregate: {label} differs from {labels[0]} in "
                       f"{'; '.join(differs)}")


def _combine(name: str, tables: Sequence[np.ndarray], labels: Sequence[str],
             how: str) -> np.ndarray:
  """Elementwise mean or sum of one table across files.

  Float tables combine in float64 and are stored float32. Integer and bool tables (counts,
  flags) sum exactly in int64 and stay int32; their mean (a rate) is float32.
  """
  for values, label in zip(tables[1:], labels[1:]):
    if values.shape != tables[0].shape:
      raise ValueError(f"cannot aggregate table {name!r}: {label} has shape "
                       f"{values.shape}, {labels[0]} {tables[0].shape}")
  integral = all(not np.issubdtype(v.dtype, np.floating) for v in tables)
  if how == "sum" and integral:
    total = np.sum([v.astype(np.int64) for v in tables], axis=0)
    if total.size and (total.min() < _INT32.min or total.max() > _INT32.max):
      raise ValueError(f"cannot aggregate table {name!r}: its sum overflows int32")
    return total.astype(np.int32)
  stacked = np.stack([v.astype(np.float64) for v in tables])
  combined = stacked.mean(axis=0) if how == "mean" else stacked.sum(axis=0)
  return combined.astype(np.float32)


def _aggregate(score_files: Sequence[artifacts.ScoreFile], how: str,
               labels: Sequence[str]) -> artifacts.ScoreFile:
  if how not in artifacts.AGGREGATIONS:
    raise ValueError(f"unknown aggregation how={how!r}; valid: {', '.join(artifacts.AGGREGATIONS)}")
  if not score_files:
    raise ValueError("cannot aggregate an empty list of score files")
  _check_compatible(score_files, labels)
  names = set.intersection(*(set(f.tables) for f in score_files))
  dropped = sorted(set.union(*(set(f.tables) for f in score_files)) - names)
  tables = {name: _combine(name, [f.tables[name] for f in score_files], labels, how)
            for name in sorted(names)}
  first = score_files[0]
  extra = dict(first.extra)
  if dropped:
    # Recorded so a reader wondering where a table went finds out why.
    extra["dropped_tables"] = dropped
  return artifacts.ScoreFile(
      example_ids=first.example_ids, tables=tables, fingerprint=first.fingerprint,
      dataset_name=first.dataset_name, num_epochs=first.num_epochs,
      seeds=tuple(s for f in score_files for s in f.seeds), config=first.config,
      aggregation={"how": how, "count": len(score_files)}, extra=extra)


def aggregate(score_files: Sequence[artifacts.ScoreFile], *, how: str = "mean") -> artifacts.ScoreFile:
  """Combines several runs' score files (e.g. seeds) into one, table by table.

  All files must share fingerprint, example ids and num_epochs. Tables present in every
  file are combined elementwise (NaN propagates); tables missing from some file are dropped
  and listed in ``extra["dropped_tables"]``. Seeds are concatenated; ``config`` and
  ``extra`` are the first file's; ``aggregation`` becomes ``{"how": how, "count":
  len(score_files)}``. Aggregating aggregates weights each input file equally, whatever
  its own count.
  """
  labels = [f"score file {i}" for i in range(len(score_files))]
  return _aggregate(score_files, how, labels)


def load_many(paths: Sequence[str], *, how: str = "mean", **load_kwargs) -> artifacts.ScoreFile:
  """Loads each path with ``load``'s checks (same keyword arguments), then aggregates.

  Raises UserError, naming the files, for files that cannot be combined (other data, other
  num_epochs, a shared table of different shapes, an int32 sum that overflows).
  """
  if how not in artifacts.AGGREGATIONS:  # the calling code's mistake, not the files'
    raise ValueError(f"unknown aggregation how={how!r}; valid: {', '.join(artifacts.AGGREGATIONS)}")
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  source = artifacts._source(load_kwargs.get("field", "path"), load_kwargs.get("source"))
  if not paths:
    raise UserError(f"{source} lists no score files")
  score_files = [artifacts.load(path, **load_kwargs) for path in paths]
  try:
    return _aggregate(score_files, how, [f"{source} {artifacts._file_path(p)!r}" for p in paths])
  except ValueError as e:
    raise UserError(one_line(e)) from e
