"""Score files: one portable per-run file of per-example scores, for any method family.

Every method that scores training examples (calibrated prioritization's target-model
entropies, coreset training-dynamics scores, forgetting counts, ...) writes the same kind of
file, and every method that selects with someone else's scores reads it. A later run checks
that the file was made on its own data and split before using it.

File format (version 1)
-----------------------
A score file is an uncompressed ``.npz`` archive (``np.savez``) named ``scores.npz`` by
default, holding:

- ``example_ids``: int32 [N], the dataset ids the rows belong to, sorted and unique. Row
  ``i`` of every table scores example ``example_ids[i]``.
- ``table.<name>``: one array per named table, float32, int32, uint8 or bool, shaped [N]
  (one value per example, e.g. a final entropy) or [N, E] (e.g. one column per epoch).
  Names are non-empty identifiers made of ``[A-Za-z0-9_]``.
- ``metadata``: a 0-d unicode string holding a JSON object with
    - ``format_version``: 1;
    - ``fingerprint``: the dataset fingerprint computed by the writer, covering the input
      values, labels and split; a reader refuses a file whose fingerprint differs from its
      own;
    - ``dataset_name``: str;
    - ``num_epochs``: int, the epochs the writing run trained for;
    - ``seeds``: list of ints, the run seeds the scores come from (several after
      aggregation);
    - ``aggregation``: null for a single run's scores, else ``{"how": "mean" | "sum",
      "count": <number of files combined>}``;
    - ``config``: the JSON dict of the config that made the file (after aggregation: the
      first file's config; the other runs are recorded only through ``seeds``);
    - ``extra``: a free-form JSON dict.

Nothing needs pickling, so the file reads with plain numpy, without jaxsel::

    with np.load("scores.npz", allow_pickle=False) as f:
      meta = json.loads(str(f["metadata"]))
      ids, entropy = f["example_ids"], f["table.entropy"]

Readers ignore other keys in the archive.

Errors
------
``save`` and ``validate`` raise ``ValueError`` for a ``ScoreFile`` the calling code built
wrong. ``load`` and ``load_many`` raise ``jaxsel.config_errors.UserError`` (one line naming
the file and where its path came from: ``config.<field>`` or a command-line flag) for every
file that cannot be used: missing, not an archive, truncated, malformed, made on other data.
"""

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from jaxsel import files, score_archive
from jaxsel.config_errors import UserError, one_line

FILENAME = "scores.npz"
FORMAT_VERSION = 1

TABLE_PREFIX = score_archive.TABLE_PREFIX
TABLE_DTYPES = (np.float32, np.int32, np.uint8, np.bool_)
AGGREGATIONS = ("mean", "sum")
_TABLE_NAME = re.compile(r"[A-Za-z0-9_]+")
_INT32 = np.iinfo(np.int32)
# How many offending ids an error message lists before eliding the rest.
_SHOWN_IDS = 5
# The metadata fields besides format_version, all required.
METADATA_KEYS = ("fingerprint", "dataset_name", "num_epochs", "seeds", "aggregation",
                 "config", "extra")
class MissingScoreFileError(UserError, FileNotFoundError):
  """No score file where the config or a flag says one is.

  Also a FileNotFoundError, so callers that caught that before UserError existed still do.
  """


# Frozen so a loaded file cannot be changed by accident; eq=False because the generated
# __eq__ would compare numpy arrays with ``==`` and raise (compare fields explicitly).
@dataclasses.dataclass(frozen=True, eq=False)
class ScoreFile:
  """Per-example score tables of one run (or several runs, after ``aggregate``)."""
  example_ids: np.ndarray  # int [N], sorted, unique
  tables: Mapping[str, np.ndarray]  # name -> [N] or [N, E]
  fingerprint: str
  dataset_name: str
  num_epochs: int
  seeds: tuple[int, ...]
  config: dict  # JSON-able
  aggregation: dict | None = None  # {"how": "mean", "count": 3} after aggregate()
  extra: dict = dataclasses.field(default_factory=dict)

  def table(self, name: str) -> np.ndarray:
    """The table ``name``: [N] or [N, E], row ``i`` scoring ``example_ids[i]``."""
    if name not in self.tables:
      raise ValueError(f"score file has no table {name!r}; available: "
                       f"{_names(self.tables)}")
    return self.tables[name]

  def column(self, name: str, epoch: int) -> np.ndarray:
    """Scores [N] to use at ``epoch``: a [N] table as is, else column min(epoch, E - 1).

    Clamping lets a run that trains longer than the writer keep using the last epoch's
    scores rather than fail.
    """
    values = self.table(name)
    if values.ndim == 1:
      return values
    if epoch < 0:
      raise ValueError(f"epoch must be >= 0, got {epoch} (table {name!r})")
    return values[:, min(epoch, values.shape[1] - 1)]

  def for_ids(self, name: str, ids) -> np.ndarray:
    """Rows of table ``name`` for dataset ids ``ids`` (any order and shape).

    Returns ``ids.shape + table.shape[1:]``: entry ``j`` scores example ``ids[j]``.
    """
    values = self.table(name)
    ids = np.asarray(ids)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
      raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    rows = _rows_of(self.example_ids, ids)
    return values[rows]


def _names(tables: Mapping[str, np.ndarray]) -> str:
  return ", ".join(sorted(tables)) or "(none)"


def _preview(ids: np.ndarray) -> str:
  """A few ids for an error message, e.g. '[3, 9, 12, ...] (7 in all)'."""
  ids = np.asarray(ids).reshape(-1)
  shown = ", ".join(str(int(i)) for i in ids[:_SHOWN_IDS])
  more = ", ..." if ids.size > _SHOWN_IDS else ""
  return f"[{shown}{more}] ({ids.size} in all)"


def _rows_of(example_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
  """Row indices (shaped like ``ids``) of ``ids`` in the sorted ``example_ids``."""
  rows = np.searchsorted(example_ids, ids)
  if example_ids.size:
    # searchsorted returns N for ids past the end; clip so the comparison can index.
    found = example_ids[np.minimum(rows, example_ids.size - 1)] == ids
  else:
    found = np.zeros(ids.shape, bool)
  if not np.all(found):
    missing = np.unique(np.asarray(ids)[~found])
    raise ValueError(f"score file holds no rows for ids {_preview(missing)}; it covers "
                     f"{example_ids.size} examples")
  return rows


def _metadata(score_file: ScoreFile) -> dict:
  # Keys in METADATA_KEYS order, which load requires.
  return {
      "format_version": FORMAT_VERSION,
      "fingerprint": score_file.fingerprint,
      "dataset_name": score_file.dataset_name,
      "num_epochs": int(score_file.num_epochs),
      "seeds": [int(s) for s in score_file.seeds],
      "aggregation": score_file.aggregation,
      "config": score_file.config,
      "extra": score_file.extra,
  }


def _is_int(value) -> bool:
  # bool is an int subclass, but True is not a seed or an epoch count.
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _validate_ids(ids) -> None:
  if not isinstance(ids, np.ndarray) or ids.ndim != 1:
    raise ValueError(f"example_ids must be a 1-d numpy array, got "
                     f"{getattr(ids, 'shape', type(ids).__name__)}")
  if not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f"example_ids must be integers, got dtype {ids.dtype}")
  if ids.size and (ids.min() < _INT32.min or ids.max() > _INT32.max):
    raise ValueError("example_ids must fit in int32 (the stored dtype)")
  if np.any(np.diff(ids) <= 0):
    raise ValueError("example_ids must be sorted and unique; sort the ids and reorder "
                     "the table rows with the same permutation")


def _validate_table(name, values, n: int) -> None:
  if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
    raise ValueError(f"table name {name!r} must be a non-empty identifier of "
                     "[A-Za-z0-9_]")
  if not isinstance(values, np.ndarray):
    raise ValueError(f"table {name!r} must be a numpy array, got "
                     f"{type(values).__name__}")
  if values.dtype not in TABLE_DTYPES:
    allowed = ", ".join(np.dtype(d).name for d in TABLE_DTYPES)
    raise ValueError(f"table {name!r} has dtype {values.dtype}; allowed: {allowed} "
                     "(cast with .astype)")
  if values.ndim not in (1, 2) or values.shape[0] != n:
    raise ValueError(f"table {name!r} has shape {values.shape}; expected [N] or [N, E] "
                     f"with N = {n} (the number of example_ids)")


def _validate_aggregation(aggregation) -> None:
  if aggregation is None:
    return
  if (not isinstance(aggregation, dict) or aggregation.get("how") not in AGGREGATIONS
      or not _is_int(aggregation.get("count")) or aggregation["count"] < 1):
    raise ValueError(f"aggregation must be None or {{'how': one of {AGGREGATIONS}, "
                     f"'count': int >= 1}}, got {aggregation!r}")


def validate(score_file: ScoreFile) -> None:
  """Raises ValueError, naming the field or table, if ``score_file`` cannot be saved."""
  _validate_ids(score_file.example_ids)
  if not isinstance(score_file.tables, Mapping):
    raise ValueError(f"tables must be a mapping name -> array, got "
                     f"{type(score_file.tables).__name__}")
  for name, values in score_file.tables.items():
    _validate_table(name, values, score_file.example_ids.size)
  for field_name in ("fingerprint", "dataset_name"):
    if not isinstance(getattr(score_file, field_name), str):
      raise ValueError(f"{field_name} must be a str, got "
                       f"{type(getattr(score_file, field_name)).__name__}")
  if not _is_int(score_file.num_epochs) or score_file.num_epochs < 0:
    raise ValueError(f"num_epochs must be an int >= 0, got {score_file.num_epochs!r}")
  if not all(_is_int(s) for s in score_file.seeds):
    raise ValueError(f"seeds must be ints, got {score_file.seeds!r}")
  for field_name in ("config", "extra"):
    if not isinstance(getattr(score_file, field_name), dict):
      raise ValueError(f"{field_name} must be a dict, got "
                       f"{type(getattr(score_file, field_name)).__name__}")
  _validate_aggregation(score_file.aggregation)
  try:
    json.dumps(_metadata(score_file), allow_nan=False)
  except (TypeError, ValueError) as e:
    raise ValueError(f"config and extra must be JSON-serializable: {e}") from e


def _file_path(path: str) -> str:
  """``path`` itself if it names a ``.npz`` file, else ``<path>/scores.npz``.

  Deciding by the suffix (not only by what exists on disk) lets ``save`` write into a run
  directory that does not exist yet.
  """
  path = os.fspath(path)
  if os.path.isdir(path) or not path.endswith(".npz"):
    return os.path.join(path, FILENAME)
  return path


def save(path: str, score_file: ScoreFile) -> str:
  """Validates ``score_file`` and writes it atomically; returns the file's path.

  ``path`` is a ``.npz`` file or a directory (meaning ``<path>/scores.npz``). The archive
  is written to a temporary file beside it and renamed into place, so a crash leaves the
  old file (or none), never a partial one.
  """
  validate(score_file)
  path = _file_path(path)
  arrays = {f"{TABLE_PREFIX}{name}": values for name, values in score_file.tables.items()}
  arrays["example_ids"] = score_file.example_ids.astype(np.int32)
  arrays["metadata"] = np.array(json.dumps(_metadata(score_file), sort_keys=True))
  with files.atomic_output(path) as tmp:
    # Writing through a file object: np.savez appends ".npz" to a *name* lacking it, which
    # would write beside the temporary file instead of into it.
    with open(tmp, "wb") as f:
      np.savez(f, **arrays)
      f.flush()
      # Durable before the rename, so a power loss cannot leave an empty renamed file.
      os.fsync(f.fileno())
  return path


def _from_metadata(metadata: dict, example_ids: np.ndarray, tables: dict,
                   where: str) -> ScoreFile:
  """The ScoreFile the metadata describes; UserError for a metadata field missing or of a
  type that cannot be converted (``validate`` checks the rest)."""
  missing = [key for key in ("format_version", *METADATA_KEYS) if key not in metadata]
  if missing:
    raise UserError(f"{where} is malformed: its metadata lacks {', '.join(missing)}")
  version = metadata["format_version"]
  if not _is_int(version) or version != FORMAT_VERSION:
    raise UserError(f"{where} has format_version {version!r}; this jaxsel reads "
                    f"version {FORMAT_VERSION}")
  if not isinstance(metadata["seeds"], list):
    raise UserError(f"{where} is malformed: its metadata's seeds must be a list of ints, "
                    f"got {metadata['seeds']!r}")
  return ScoreFile(
      example_ids=example_ids, tables=tables, fingerprint=metadata["fingerprint"],
      dataset_name=metadata["dataset_name"], num_epochs=metadata["num_epochs"],
      seeds=tuple(metadata["seeds"]), config=metadata["config"],
      aggregation=metadata["aggregation"], extra=metadata["extra"])


def _check_same_data(score_file: ScoreFile, where: str, fingerprint, example_ids) -> None:
  """Refuses a file made on other data than the run's (fingerprint or ids differ)."""
  made_on = (f"{where} was made on dataset {score_file.dataset_name!r} with fingerprint "
             f"{score_file.fingerprint}")
  if fingerprint is not None and score_file.fingerprint != fingerprint:
    raise UserError(
        f"{made_on}, but this run's data has fingerprint {fingerprint}; its scores do not "
        "belong to these examples. Make the file with the same dataset, train fraction "
        "and split seed.")
  if example_ids is None:
    return
  # Order-insensitive: rows are looked up by id (for_ids), not by position.
  run_ids = np.sort(np.asarray(example_ids).reshape(-1))
  if not np.array_equal(run_ids, score_file.example_ids):
    unknown = np.setdiff1d(run_ids, score_file.example_ids)
    unused = np.setdiff1d(score_file.example_ids, run_ids)
    run_fingerprint = "" if fingerprint is None else f" (this run's: {fingerprint})"
    raise UserError(
        f"{made_on}{run_fingerprint}, over other examples: the file holds "
        f"{score_file.example_ids.size} ids, this run {run_ids.size}; ids the file lacks: "
        f"{_preview(unknown)}; file ids the run lacks: {_preview(unused)}. Make the file "
        "with the same dataset, train fraction and split seed.")


def _source(field: str, source: str | None) -> str:
  return f"config.{field}" if source is None else source


def load(path: str, *, fingerprint: str | None = None, example_ids=None,
         required: Sequence[str] = (), field: str = "path",
         source: str | None = None) -> ScoreFile:
  """Reads a score file and refuses one that does not fit this run.

  Args:
    path: a ``.npz`` file, or a directory holding ``scores.npz``.
    fingerprint: this run's dataset fingerprint; None skips the check.
    example_ids: this run's example ids (any order); None skips the check.
    required: table names the caller will read.
    field: the config field ``path`` came from, named in errors as ``config.<field>``.
    source: what errors name ``path`` by instead, when it did not come from a config: a
      command line passes its flag, e.g. ``"--scores"``.

  Raises:
    MissingScoreFileError: no file at ``path`` (a UserError and a FileNotFoundError).
    UserError: a file that is not a readable score file (not an archive, truncated, bad
      metadata, an unknown format version, a malformed table), one made on other data
      (fingerprint or ids differ), or a required table missing.
  """
  source = _source(field, source)
  given = os.fspath(path)
  path = _file_path(given)
  where = f"{source} {path!r}"
  if not os.path.isfile(path):
    if os.path.isdir(given):
      raise MissingScoreFileError(f"{source} {given!r} is a directory without {FILENAME}; "
                                  f"point {source} at a score file or a run directory "
                                  "holding one")
    raise MissingScoreFileError(f"{where} does not exist; write it with a run that saves "
                                f"scores, or point {source} at one")
  metadata, ids, tables = score_archive.read(path, where)
  score_file = _from_metadata(metadata, ids, tables, where)
  try:
    validate(score_file)
  except ValueError as e:
    raise UserError(f"{where} is malformed: {one_line(e)}") from e
  _check_same_data(score_file, where, fingerprint, example_ids)
  missing = [name for name in required if name not in score_file.tables]
  if missing:
    raise UserError(f"{where} lacks the required tables {', '.join(missing)}; "
                    f"available: {_names(score_file.tables)}")
  return score_file


# Combining several files lives in jaxsel.score_aggregation (which imports this module, so
# these import it when called).
def aggregate(score_files: Sequence[ScoreFile], *, how: str = "mean") -> ScoreFile:
  """``jaxsel.score_aggregation.aggregate``: several runs' files combined table by table."""
  from jaxsel import score_aggregation  # pylint: disable=import-outside-toplevel
  return score_aggregation.aggregate(score_files, how=how)


def load_many(paths: Sequence[str], *, how: str = "mean", **load_kwargs) -> ScoreFile:
  """``jaxsel.score_aggregation.load_many``: ``load`` each path, then ``aggregate``."""
  from jaxsel import score_aggregation  # pylint: disable=import-outside-toplevel
  return score_aggregation.load_many(paths, how=how, **load_kwargs)
