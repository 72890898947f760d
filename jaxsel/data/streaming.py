"""The streaming input path: examples read by id from their TFDS data sources, chunk by chunk.

The in-memory path (``dataset.storage='device'``) puts every input on the device once and
gathers each batch inside jit. That ends at device memory, so a dataset larger than a
budget (``dataset.memory_budget_mb``), or one whose images differ in size, streams instead
(``'stream'``): the host holds the labels (4 bytes per example) and the data sources
(ArrayRecord files, random access, no TensorFlow), and every chunk of a batch plan is read
when a jitted pass is called on it:

1. ``ChunkPass`` (``jaxsel.steps``) hands this module's ``StreamedData`` the chunk's ids and
   mask ``[S, B]``; ``rows`` reads the real ids of this process's columns, decodes and
   converts them on host threads (``grain``, ``dataset.read_threads``) straight into one
   buffer, fills padding with example 0 (the row the in-memory path gathers for padding),
   and puts the result on the devices, sharded like the ids;
2. the jitted pass scans over those rows instead of gathering (``steps._scan_real_steps``),
   with the same masks, so the programs' shapes do not depend on the ids and a new subset
   compiles nothing;
3. dispatch is asynchronous: while the device works on one chunk, the host reads the next;
   before handing that one over, ``ChunkPass`` waits for the previous chunk's result (the
   carry it passes on), so at most two chunks are held at a time, whatever the size of the
   dataset or how much faster the host reads than the device computes.

Nothing else changes: methods, their per-example tables, the epoch plans and their seeds are
those of the in-memory path, so both paths choose the same ids, and resuming needs nothing
beyond the epoch (the plan is derived from (seed, epoch), as in memory).

What an example looks like on the host: fixed-shape inputs are converted exactly as the
in-memory loader converts them (uint8 → float32 / 255, then normalised, in float32), so both
paths train on bit-identical inputs and the device-side augmentations (keyed by
``fold_in(epoch key, example id)``) run unchanged inside jit. Images of varying size
(``dataset.image_size`` > 0) are cropped on the host, where their shape can vary: a random
resized crop and flip for training, keyed by (seed, epoch, example id), and the centre crop
for every eval-mode pass (``jaxsel.data.image_preprocessing``).
"""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import grain
import jax
import numpy as np

from jaxsel.data import image_preprocessing
from jaxsel.data.dataset import Normalization
from jaxsel.data.normalization import normalize, to_float

# Ids per batched read of a data source, the unit a reader thread takes: TFDS's
# `__getitems__` starts a thread pool per call, so raw reads run at ~23k ids/s in calls of
# 64 and ~83k/s in calls of 1,024; a chunk is split into one group per reader thread
# within these bounds.
_MIN_GROUP, _MAX_GROUP = 64, 1024


class Rows(NamedTuple):
  """One chunk's examples, aligned with its ids ``[S, B]``: ``inputs`` float32
  ``[S, B, *input_shape]``, ``labels`` int32 ``[S, B]``. A jitted pass given ``Rows`` as its
  data scans over them instead of gathering from a device-held dataset."""

  inputs: Any
  labels: Any


@dataclasses.dataclass(frozen=True)
class HostView:
  """How a stored example becomes a model input on the host.

  ``image_size`` 0: the stored array, converted like the in-memory path converts it.
  ``image_size`` > 0: an ImageNet-style crop to ``image_size``² pixels (random resized crop
  and flip for training, centre crop of ``eval_crop_fraction`` of the shorter side for
  evaluation) before the same conversion.
  """

  image_size: int = 0
  eval_crop_fraction: float = 0.875


@dataclasses.dataclass(frozen=True)
class StreamSplit:
  """A source split read by id: labels on the host, inputs in ``source``.

  source: a TFDS data source (``len``, ``[i]``, ``__getitems__``), example ``i`` = row ``i``.
  labels: int32 [N].
  input_key: the feature holding the input.
  input_shape: the shape of a model input (after ``view``).
  view: how a stored example becomes that input.
  """

  source: Sequence
  labels: np.ndarray
  input_key: str
  input_shape: tuple[int, ...]
  view: HostView = HostView()

  def __len__(self) -> int:
    return len(self.labels)


def read_examples(source: Sequence, keys: Sequence[int]) -> list[dict[str, Any]]:
  """Examples ``keys`` of ``source`` as feature dicts, in one batched read where it can."""
  keys = [int(k) for k in keys]
  try:
    return source.__getitems__(keys)
  except (TypeError, AttributeError):
    # `tfds.testing.mock_data` (TFDS 4.9.10) installs a `__getitems__` that cannot be called.
    return [source[k] for k in keys]


def cropped_view(stored: np.ndarray, view: HostView, input_shape: tuple[int, ...], *,
                 seed: int, epoch: int | None, example_id: int) -> np.ndarray:
  """A stored image's host crop (``view.image_size`` > 0; else ``stored`` as it is):
  the eval view for ``epoch`` None, else that epoch's training view, as ``input_shape``."""
  if not view.image_size:
    return stored
  if epoch is None:
    cropped = image_preprocessing.eval_view(stored, size=view.image_size,
                                            crop_fraction=view.eval_crop_fraction)
  else:
    cropped = image_preprocessing.train_view(stored, size=view.image_size, seed=seed,
                                             epoch=epoch, example_id=example_id)
  return cropped.reshape(input_shape)


def to_input(stored: np.ndarray, normalization: Normalization) -> np.ndarray:
  """float32 inputs of stored examples by the in-memory loader's own float32 operations
  (``to_float`` then ``normalize``): bit-identical to what it holds."""
  return normalize(to_float(stored), normalization)


class StreamedData:
  """The data of a streaming run: what the jitted passes take where the in-memory path
  passes the device-held arrays (``evaluation.run_data``).

  Ids index the pool split then the test split (test example ``i`` is id ``len(pool) + i``),
  as the in-memory arrays do.
  """

  def __init__(self, dataset, *, seed: int, read_threads: int):
    self._pool, self._test = dataset.pool, dataset.test
    self._labels = np.concatenate([dataset.pool.labels, dataset.test.labels]).astype(np.int32)
    self._normalization = dataset.normalization
    self._seed, self._threads, self._view = int(seed), int(read_threads), dataset.pool.view
    self.input_shape = tuple(dataset.input_shape)
    # Padding rows: example 0 as every eval-mode pass sees it, read once.
    self._padding = self.read(np.zeros(1, np.int32), epoch=None)[0]

  def __len__(self) -> int:
    return len(self._labels)

  def _convert(self, stored: np.ndarray, example_id: int, epoch: int | None) -> np.ndarray:
    cropped = cropped_view(stored, self._view, self.input_shape, seed=self._seed,
                           epoch=epoch, example_id=example_id)
    return to_input(cropped, self._normalization)

  def _read_group(self, ids: np.ndarray, rows: np.ndarray, out: np.ndarray,
                  epoch: int | None) -> None:
    """Writes the inputs of ``ids`` into rows ``rows`` of ``out`` (one reader thread's
    share; threads write disjoint rows of one buffer)."""
    num_pool = len(self._pool)
    for split, offset, chosen in ((self._pool, 0, ids < num_pool),
                                  (self._test, num_pool, ids >= num_pool)):
      if not chosen.any():
        continue
      examples = read_examples(split.source, ids[chosen] - offset)
      if not self._view.image_size:  # one conversion for the group: the same values
        out[rows[chosen]] = to_input(
            np.stack([np.asarray(e[split.input_key]) for e in examples]), self._normalization)
        continue
      for row, example_id, example in zip(rows[chosen], ids[chosen], examples):
        out[row] = self._convert(np.asarray(example[split.input_key]), int(example_id),
                                 epoch)

  def read_into(self, out: np.ndarray, rows: np.ndarray, ids: np.ndarray, *,
                epoch: int | None) -> None:
    """Writes the inputs of ``ids`` (int32 [n]) into ``out[rows]`` (``out``: float32
    [R, *input_shape], ``rows`` [n] distinct). ``epoch`` None: the eval-mode view; else the
    training view of that epoch.

    Groups of ids are read and converted on ``read_threads`` grain threads; image decoding
    and resizing (Pillow) run in parallel there, TFDS's record parsing holds the GIL. An
    error on a reader thread is raised here.
    """
    ids = np.asarray(ids, np.int32).reshape(-1)
    if len(ids) and (ids.min() < 0 or ids.max() >= len(self)):
      raise IndexError(f"example ids must be in [0, {len(self)}), got {ids.min()}..{ids.max()}")
    size = min(max(-(-len(ids) // self._threads), _MIN_GROUP), _MAX_GROUP)
    groups = [(ids[start:start + size], rows[start:start + size])
              for start in range(0, len(ids), size)]
    if len(groups) <= 1 or self._threads <= 1:
      for group_ids, group_rows in groups:
        self._read_group(group_ids, group_rows, out, epoch)
      return
    dataset = grain.MapDataset.source(groups).map(
        lambda group: self._read_group(*group, out, epoch))
    options = grain.ReadOptions(num_threads=min(self._threads, len(groups)),
                                prefetch_buffer_size=len(groups))
    for _ in dataset.to_iter_dataset(options):  # the writes are the result
      pass

  def read(self, ids: np.ndarray, *, epoch: int | None) -> np.ndarray:
    """Inputs of ``ids`` (int32 [n]) as the model sees them: float32 [n, *input_shape]
    (``read_into`` a new array)."""
    ids = np.asarray(ids, np.int32).reshape(-1)
    out = np.empty((len(ids), *self.input_shape), np.float32)
    self.read_into(out, np.arange(len(ids)), ids, epoch=epoch)
    return out

  def rows(self, example_ids: np.ndarray, mask: np.ndarray, *, epoch: int | None,
           placement) -> Rows:
    """The chunk ``example_ids``/``mask`` [S, B] (host) read and laid out for ``placement``:
    padded to its batch width and sharded like the ids; on a multi-host run this process
    reads only its own columns."""
    example_ids, mask = placement.padded(example_ids, mask)
    columns = placement.local_columns(example_ids.shape)
    local_ids, local_mask = example_ids[:, columns], mask[:, columns]
    inputs = np.empty((*local_ids.shape, *self.input_shape), np.float32)
    flat, real = inputs.reshape(-1, *self.input_shape), local_mask.reshape(-1)  # views
    flat[~real] = self._padding
    self.read_into(flat, np.flatnonzero(real), local_ids.reshape(-1)[real], epoch=epoch)
    labels = np.where(local_mask, self._labels[local_ids], self._labels[0])
    return Rows(placement.batch_rows(inputs, example_ids.shape),
                placement.batch_rows(labels.astype(np.int32), example_ids.shape))

  def abstract_rows(self, shape: tuple[int, int], placement) -> Rows:
    """The ``Rows`` a chunk of ids of ``shape`` [S, B] becomes, as shapes (compile ahead)."""
    width = placement.padded_width(shape[-1])
    sharding = placement.batch_rows_sharding()
    return Rows(jax.ShapeDtypeStruct((shape[0], width, *self.input_shape), np.float32,
                                     sharding=sharding),
                jax.ShapeDtypeStruct((shape[0], width), np.int32, sharding=sharding))


def _raw_labels(source: Sequence, keys: list[int], label_key: str) -> list[int] | None:
  """Labels parsed from the stored records without decoding their inputs (a JPEG decode
  per example would make reading ImageNet's 1.3M labels take minutes), or None where the
  source does not expose its records (e.g. a mocked one). TFDS's public ways to skip
  decoding need TensorFlow; its NumPy example parser does not."""
  records = getattr(source, "data_source", None)
  info = getattr(source, "dataset_info", None)
  parser = getattr(getattr(info, "features", None), "_example_parser_np", None)
  if records is None or parser is None:
    return None
  try:
    return [int(parser.parse_example(raw)[label_key]) for raw in records.__getitems__(keys)]
  except Exception:  # pylint: disable=broad-except
    return None  # an unexpected record layout: decode instead


def read_labels(source: Sequence, label_key: str, *, chunk: int = 4096) -> np.ndarray:
  """Every label of ``source``: int32 [len(source)], in id order."""
  labels = []
  for start in range(0, len(source), chunk):
    keys = list(range(start, min(start + chunk, len(source))))
    raw = _raw_labels(source, keys, label_key)
    if raw is None:
      raw = [int(example[label_key]) for example in read_examples(source, keys)]
    labels.extend(raw)
  return np.asarray(labels, np.int32)


def sample_inputs(source: Sequence, train_ids: np.ndarray, input_key: str, *,
                  shape: tuple[int, ...], view: HostView, seed: int,
                  size: int = 2048) -> np.ndarray:
  """Up to ``size`` training inputs (a seeded sample, eval view, scaled but not normalised)
  for the statistics of a dataset with no known normalisation."""
  rng = np.random.default_rng([seed, 0x5A4D])  # a tag for this stream
  chosen = np.sort(rng.choice(train_ids, size=min(size, len(train_ids)), replace=False))
  out = np.empty((len(chosen), *shape), np.float32)
  for row, (example_id, example) in enumerate(zip(chosen, read_examples(source, chosen))):
    out[row] = to_float(cropped_view(np.asarray(example[input_key]), view, shape, seed=seed,
                                     epoch=None, example_id=int(example_id)).reshape(shape))
  return out


def decoded_bytes(num_examples: int, input_shape: Sequence[int | None]) -> float:
  """Bytes of ``num_examples`` float32 inputs of ``input_shape`` (inf if a size varies)."""
  if any(size is None or size < 0 for size in input_shape):
    return math.inf
  return 4.0 * num_examples * math.prod(input_shape)
