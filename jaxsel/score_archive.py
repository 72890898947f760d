"""Reading a score file's ``.npz`` archive into its raw parts, every failure one line.

``read`` returns the metadata (a JSON object), the example ids and the tables of the archive
at a path, checking only that they can be read; ``jaxsel.artifacts.load`` checks what they
hold. Each way a file can fail to read (empty, not a zip archive, cut short, a corrupt
member, a member of pickled objects, metadata that is not a JSON object) is a
``UserError`` naming the file as the caller describes it.
"""

import json
import zipfile
import zlib

import numpy as np

from jaxsel.config_errors import UserError, one_line

TABLE_PREFIX = "table."
# The first bytes of a zip archive (what np.savez writes): a member's local header, or the
# end record of an archive with no members. Checked before np.load, which would otherwise
# try anything else as a pickle and say only that pickles are not allowed.
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
# What reading a damaged archive raises: zipfile for a cut or corrupt directory or a bad
# CRC, NotImplementedError for a compression zipfile lacks, zlib for a corrupt compressed
# member, EOFError and ValueError from numpy for a cut or malformed member (or one holding
# pickled objects), OSError for a file the OS cannot read.
_UNREADABLE = (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError, ValueError,
               OSError)



def _describe(value) -> str:
  if isinstance(value, np.ndarray):
    return f"an array of dtype {value.dtype} and shape {value.shape}"
  return type(value).__name__


def _member(stored, key: str, where: str):
  """The array ``key`` of the open archive ``stored``, read now (np.load reads lazily)."""
  try:
    return stored[key]
  except _UNREADABLE as e:
    raise UserError(f"{where} is damaged: its array {key!r} cannot be read "
                    f"({type(e).__name__}: {one_line(e)}); write the file again") from e


def _parse_metadata(value, where: str) -> dict:
  """The JSON object held by the archive's ``metadata`` (a 0-d unicode array)."""
  if not (isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind == "U"):
    raise UserError(f"{where} is not a score file: its metadata must be a 0-d string "
                    f"holding a JSON object, got {_describe(value)}")
  try:
    metadata = json.loads(str(value))
  except json.JSONDecodeError as e:
    raise UserError(f"{where} is not a score file: its metadata is not JSON "
                    f"({one_line(e)})") from e
  if not isinstance(metadata, dict):
    raise UserError(f"{where} is not a score file: its metadata must be a JSON object, "
                    f"got a JSON {type(metadata).__name__}")
  return metadata


def _arrays(stored, where: str) -> tuple[dict, np.ndarray, dict]:
  missing = [key for key in ("metadata", "example_ids") if key not in stored.files]
  if missing:
    raise UserError(f"{where} is not a score file: it lacks "
                    f"{' and '.join(repr(key) for key in missing)} (its arrays: "
                    f"{', '.join(stored.files) or 'none'})")
  metadata = _parse_metadata(_member(stored, "metadata", where), where)
  example_ids = _member(stored, "example_ids", where)
  tables = {key[len(TABLE_PREFIX):]: _member(stored, key, where) for key in stored.files
            if key.startswith(TABLE_PREFIX)}
  return metadata, example_ids, tables


def read(path: str, where: str) -> tuple[dict, np.ndarray, dict]:
  """(metadata, example_ids, tables) from the archive at ``path``; no checks on values.

  ``where`` names the file in errors (e.g. "config.target.path '/runs/a/scores.npz'").
  Raises UserError for a file that is not a readable .npz archive holding 'metadata' (a
  JSON object) and 'example_ids'.
  """
  try:
    with open(path, "rb") as f:
      signature = f.read(4)
  except OSError as e:
    raise UserError(f"{where} cannot be read ({one_line(e)})") from e
  if not signature:
    raise UserError(f"{where} is empty (0 bytes), not a score file; write it again")
  if signature not in _ZIP_SIGNATURES:
    raise UserError(f"{where} is not a score file: it is not an .npz archive (a zip file "
                    "as np.savez writes)")
  try:
    with np.load(path, allow_pickle=False) as stored:
      return _arrays(stored, where)
  except UserError:
    raise
  except _UNREADABLE as e:
    raise UserError(f"{where} is damaged or truncated: its .npz archive cannot be read "
                    f"({type(e).__name__}: {one_line(e)}); write the file again") from e
