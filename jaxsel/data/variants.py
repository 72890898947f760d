"""Dataset variants: training examples removed, noisy labels, noisy inputs (ALGORITHMS.md D.6).

Any run, whatever its method, may train on a variant of its dataset, described by
``config.removal`` and ``config.noise``; ``apply(config, dataset)`` builds it before
training and ``write_records`` writes what it did into the run directory. The steps, in
order (N = number of training ids):

1. Removal. With an ordering file (a score file over the training ids with an int32 table
   ``rank``, 0 = lowest score), the ordering is O = ``example_ids[argsort(rank)]``.
   ``keep_lowest_n = k >= 0``: the window ``O[k : k + r]`` is removed (r = ``remove_n``; a
   window past the end is an error, never truncated). ``k = -1``: r examples removed at
   random (stream ``removal``), no ordering needed. ``remove_subsample = s > 0``: a random s
   of the k lowest-ranked ``O[0:k]`` are removed instead (stream ``removal``; ``remove_n``
   must then be 0). The kept ids stay sorted; validation and test examples are untouched.
2. Label noise (``noise.label_percent = p``): ``int(p · N' / 100)`` of the N' kept training
   ids, drawn without replacement (stream ``label_noise``), get the label
   ``(old + U{1..K-1}) mod K``, uniform over the other K − 1 classes.
3. Value noise (``noise.value_percent = p``): every kept training input gets additive noise
   ``N(value_mean, value_std²)`` at ``floor(p · L / 100)`` of its L locations, drawn without
   replacement (stream ``value_noise``), each at one random channel (with replacement).
   Locations are all positions except the channel axis: H·W pixels of [H, W, C] images, the
   L positions of a 1-d signal such as mnist1d's [40] (one channel). The noise is added on
   the stored scale:
   - uint8 images (``Dataset.uint8_inputs``): the stored value v in 0..255 is recovered from
     the normalised input, ``w = trunc(v + noise)`` (as storing a float into a uint8 array),
     then ``w mod 256`` (``value_overflow='wrap'``, the reference) or clipped to [0, 255]
     (``'clip'``); w is normalised exactly as ``loading`` normalises a loaded image, so a
     changed pixel is bit-identical to a loaded image of value w.
   - float inputs: the noise is added to the unnormalised value (mnist1d's normalisation is
     the identity, so there the stored value itself); with [lo, hi] the min / max of the
     training inputs, 'clip' clips to [lo, hi] and 'wrap' maps v to ``lo + (v - lo) mod
     (hi - lo)``.

Nothing is changed in place: the input ``Dataset`` may be shared by other runs of the same
process. Without removal and noise, ``apply`` returns the very same ``Dataset``.

Records (``write_records``, only when something was asked for):
- ``removed.npz``: a score file over the removed ids with int32 table ``rank`` (the rank in
  the ordering; -1 for random removal), fingerprint of the clean dataset (the one the
  ordering was made on: the removed ids are not in the variant's training ids).
- ``label_noise.npz``: a score file over the changed ids with int32 tables
  ``original_label`` and ``noisy_label``, fingerprint of the variant (the run's dataset).
- ``data_variant.json``: counts and parameters (see ``Record.info``).
"""

import dataclasses
import json
import math
import os

import numpy as np

from jaxsel import artifacts, coresets, files, orderings
from jaxsel.config_errors import UserError
from jaxsel.data.dataset import ArraySplit, Dataset, Normalization
from jaxsel.state import host_rng

OVERFLOWS = ("wrap", "clip")
REMOVED_FILE = "removed.npz"
LABEL_NOISE_FILE = "label_noise.npz"
INFO_FILE = "data_variant.json"
# Examples per block of value-noise draws: bounds the [examples, locations] random matrix
# (8192 x 784 float64 = 51 MB for Fashion-MNIST) without a per-example loop.
_CHUNK = 8192
_ORDERING_FIELD = "removal.ordering_path"


@dataclasses.dataclass(frozen=True, eq=False)
class Record:
  """What ``apply`` did, for ``write_records``."""
  removed_ids: np.ndarray  # int32 [R], sorted
  removed_rank: np.ndarray  # int32 [R]: rank in the ordering, -1 for random removal
  changed_ids: np.ndarray  # int32 [M], sorted: ids whose label was changed
  original_labels: np.ndarray  # int32 [M]
  noisy_labels: np.ndarray  # int32 [M]
  clean_fingerprint: str  # of the dataset before the variant
  fingerprint: str  # of the variant
  dataset_name: str
  seed: int
  config: dict  # JSON of the run's config
  info: dict  # the content of data_variant.json


def removal_order(ordering: artifacts.ScoreFile) -> np.ndarray:
  """The ordering O: the file's example ids by ascending ``rank`` (int32 [N])."""
  rank = ordering.table("rank")
  n = len(ordering.example_ids)
  if (rank.ndim != 1 or not np.issubdtype(rank.dtype, np.integer)
      or not np.array_equal(np.sort(rank), np.arange(n))):
    raise UserError(f"config.{_ORDERING_FIELD}: the table 'rank' must be a permutation of "
                    f"0..{n - 1} (one rank per example), got dtype {rank.dtype}, shape "
                    f"{rank.shape}")
  return orderings.ordered_ids(ordering).astype(np.int32)


def check_removal(num_train: int, *, remove_n: int, keep_lowest_n: int,
                  remove_subsample: int, min_kept: int = 0) -> None:
  """Raises UserError, naming the fields and N, if the removal does not fit N ids or keeps
  fewer than ``min_kept`` of them (a run passes its ``train.batch_size``)."""
  if remove_n == 0 and remove_subsample == 0:
    return
  if keep_lowest_n < 0:
    if remove_n > num_train:
      raise UserError(f"config.removal.remove_n must be at most the number of training "
                      f"examples N={num_train} (random removal), got {remove_n}")
  elif remove_subsample > 0:
    if keep_lowest_n > num_train:
      raise UserError(f"config.removal.keep_lowest_n must be at most the number of "
                      f"training examples N={num_train} (the lowest-ranked block the "
                      f"subsample is drawn from), got {keep_lowest_n}")
  elif keep_lowest_n + remove_n > num_train:
    raise UserError(
        f"the removal window config.removal.keep_lowest_n={keep_lowest_n} + "
        f"config.removal.remove_n={remove_n} = {keep_lowest_n + remove_n} runs past the "
        f"end of the ordering of the N={num_train} training examples; the window [k, k + r) "
        "must end by N (it is not truncated)")
  _check_kept(num_train, remove_n=remove_n, keep_lowest_n=keep_lowest_n,
              remove_subsample=remove_subsample, min_kept=min_kept)


def _check_kept(num_train: int, *, remove_n: int, keep_lowest_n: int,
                remove_subsample: int, min_kept: int) -> None:
  """The removal must leave ``min_kept`` examples, one full batch: every training step
  takes config.train.batch_size examples (the check that the training set holds that many
  comes after the removal, so without this one it would blame the batch size). A
  training set already smaller than ``min_kept`` is left to that check."""
  removed = remove_subsample if remove_subsample > 0 else remove_n
  if num_train < min_kept or num_train - removed >= min_kept:
    return
  field = "remove_subsample" if remove_subsample > 0 else "remove_n"
  mode = ("random removal" if keep_lowest_n < 0 else
          f"of the {keep_lowest_n} lowest-ranked" if remove_subsample > 0 else "a window")
  raise UserError(
      f"config.removal.{field} must be at most N - config.train.batch_size = {num_train} - "
      f"{min_kept} = {num_train - min_kept} ({mode}; the N={num_train} training examples "
      f"must keep at least one batch), got {removed}")


def kept_ids(train_ids: np.ndarray, *, remove_n: int, keep_lowest_n: int,
             remove_subsample: int, order: np.ndarray | None = None,
             rng: np.random.Generator | None = None) -> np.ndarray:
  """The training ids kept by the removal (int32, sorted).

  Args:
    train_ids: the sorted training ids.
    remove_n, keep_lowest_n, remove_subsample: r, k and s of ``config.removal``.
    order: the ordering O (ids, ascending score; ``removal_order``); needed when k >= 0 and
      something is removed.
    rng: the ``removal`` stream's generator; needed for random removal and the subsample.
  """
  train_ids = np.asarray(train_ids, np.int32)
  check_removal(len(train_ids), remove_n=remove_n, keep_lowest_n=keep_lowest_n,
                remove_subsample=remove_subsample)
  if remove_n == 0 and remove_subsample == 0:
    return train_ids
  if keep_lowest_n < 0:
    return train_ids[coresets.remove_random(rng, len(train_ids), remove_n)]
  positions = np.searchsorted(train_ids, order)
  if (len(order) != len(train_ids)
      or not np.array_equal(train_ids[np.minimum(positions, len(train_ids) - 1)], order)):
    raise UserError(f"config.{_ORDERING_FIELD}: the ordering does not list exactly the "
                    f"{len(train_ids)} training ids")
  if remove_subsample > 0:
    kept = coresets.remove_from_lowest(positions, lowest=keep_lowest_n,
                                       size=remove_subsample, rng=rng)
  else:
    kept = coresets.remove_window(positions, start=keep_lowest_n, size=remove_n)
  return train_ids[kept]


def label_noise(labels: np.ndarray, ids: np.ndarray, percent: float, num_classes: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """(new labels, changed ids): ``int(percent · len(ids) / 100)`` of ``ids`` (without
  replacement) get ``(label + U{1..K-1}) mod K``. ``labels`` (all pool labels) is not
  changed; without a change it is returned as is. Changed ids come sorted, int32."""
  count = int(percent * len(ids) / 100)
  if count == 0:
    return labels, np.zeros(0, np.int32)
  if num_classes < 2:
    raise UserError(f"config.noise.label_percent must be 0 for a dataset of "
                    f"{num_classes} class, got {percent}")
  changed = np.sort(rng.choice(np.asarray(ids), count, replace=False)).astype(np.int32)
  offsets = rng.integers(1, num_classes, size=count)
  noisy = np.array(labels, copy=True)
  noisy[changed] = (labels[changed].astype(np.int64) + offsets) % num_classes
  return noisy, changed


def locations(input_shape: tuple[int, ...]) -> tuple[int, int]:
  """(locations L, channels C) of one input: [H, W, C] images have H·W locations of C
  channels; other inputs (a 1-d signal [L], a 2-d [H, W]) have all positions, 1 channel."""
  size = math.prod(input_shape)
  channels = input_shape[-1] if len(input_shape) >= 3 else 1
  return size // channels, channels


def _noisy_values(stored: np.ndarray, noise: np.ndarray, channel: np.ndarray, *,
                  normalization: Normalization, uint8: bool, overflow: str,
                  value_range: tuple[float, float]) -> np.ndarray:
  """Normalised float32 values of ``stored`` (normalised) plus ``noise`` on the stored scale."""
  mean32 = np.asarray(normalization.mean, np.float32)
  std32 = np.asarray(normalization.std, np.float32)
  mean32, std32 = mean32[channel % mean32.size], std32[channel % std32.size]
  raw = stored.astype(np.float64) * std32 + mean32  # [0, 1] for images, else raw values
  if uint8:
    value = np.rint(raw * 255)
    if np.any(np.abs(raw * 255 - value) > 0.01) or np.any((value < 0) | (value > 255)):
      raise ValueError("the dataset is marked uint8_inputs, but its inputs are not "
                       "normalised uint8 values")
    noisy = np.trunc(value + noise)  # as a float stored into a uint8 array
    noisy = np.mod(noisy, 256) if overflow == "wrap" else np.clip(noisy, 0, 255)
    out = noisy.astype(np.float32)
    out /= np.float32(255)  # the same float32 operations as loading.to_float / normalize
  else:
    lo, hi = value_range
    noisy = raw + noise
    if overflow == "clip":
      noisy = np.clip(noisy, lo, hi)
    else:
      noisy = lo + np.mod(noisy - lo, hi - lo) if hi > lo else np.full_like(noisy, lo)
    out = noisy.astype(np.float32)
  out -= mean32
  out /= std32
  return out


def value_noise(inputs: np.ndarray, ids: np.ndarray, *, percent: float, mean: float,
                std: float, overflow: str, normalization: Normalization, uint8: bool,
                value_range: tuple[float, float], rng: np.random.Generator
                ) -> tuple[np.ndarray, int]:
  """(new inputs, locations changed per example): every input ``inputs[ids]`` gets
  ``N(mean, std²)`` added at ``floor(percent · L / 100)`` distinct locations, one random
  channel each (see the module docstring for the scales and ``overflow``).

  ``inputs`` are the normalised pool inputs [P, *shape]; they are not changed (without a
  change they are returned as is). Draws come in blocks of examples, vectorised."""
  if overflow not in OVERFLOWS:
    raise UserError(f"unknown config.noise.value_overflow {overflow!r}; valid: "
                    f"{', '.join(sorted(OVERFLOWS))}")
  num_locations, channels = locations(inputs.shape[1:])
  count = math.floor(percent * num_locations / 100)
  ids = np.asarray(ids)
  if count == 0 or not len(ids):
    return inputs, count
  noisy = np.array(inputs, copy=True, order="C")
  flat = noisy.reshape(len(noisy), num_locations, channels)  # a view of the copy
  for start in range(0, len(ids), _CHUNK):
    rows = ids[start:start + _CHUNK, None]
    where = np.argpartition(rng.random((len(rows), num_locations)), count - 1,
                            axis=1)[:, :count]
    channel = (rng.integers(channels, size=where.shape) if channels > 1
               else np.zeros(where.shape, np.int64))
    draws = rng.normal(mean, std, size=where.shape)
    flat[rows, where, channel] = _noisy_values(
        flat[rows, where, channel], draws, channel, normalization=normalization,
        uint8=uint8, overflow=overflow, value_range=value_range)
  return noisy, count


def _value_range(dataset: Dataset) -> tuple[float, float]:
  """min / max of the training inputs, unnormalised (float inputs' overflow range)."""
  train = dataset.pool.inputs[dataset.train_ids].astype(np.float64)
  raw = (train * np.asarray(dataset.normalization.std, np.float32)
         + np.asarray(dataset.normalization.mean, np.float32))
  return float(raw.min()), float(raw.max())


def _ordering_info(ordering: artifacts.ScoreFile | None) -> dict | None:
  if ordering is None:
    return None
  return {"fingerprint": ordering.fingerprint, "dataset_name": ordering.dataset_name,
          "num_epochs": ordering.num_epochs, "seeds": list(ordering.seeds),
          "aggregation": ordering.aggregation, "extra": ordering.extra}


def apply(config, dataset: Dataset) -> tuple[Dataset, Record | None]:
  """The variant of ``dataset`` that ``config.removal`` and ``config.noise`` describe, and
  its record; ``(dataset, None)`` itself when they ask for nothing.

  Raises UserError (naming the field) for a removal that does not fit the data or keeps
  fewer than ``config.train.batch_size`` examples, or an ordering made on other data
  (fingerprint or ids), before anything is written.
  """
  removal, noise = config.removal, config.noise
  removing = removal.remove_n > 0 or removal.remove_subsample > 0
  if not removing and noise.label_percent == 0 and noise.value_percent == 0:
    return dataset, None
  train_ids = dataset.train_ids
  sizes = dict(remove_n=removal.remove_n, keep_lowest_n=removal.keep_lowest_n,
               remove_subsample=removal.remove_subsample)
  check_removal(len(train_ids), **sizes, min_kept=config.train.batch_size)
  ordering = order = None
  if removing and removal.keep_lowest_n >= 0:
    ordering = artifacts.load(removal.ordering_path, fingerprint=dataset.fingerprint,
                              example_ids=train_ids, required=("rank",),
                              field=_ORDERING_FIELD)
    order = removal_order(ordering)
  kept = kept_ids(train_ids, order=order, rng=host_rng(config.seed, "removal"), **sizes)
  removed = np.setdiff1d(train_ids, kept).astype(np.int32)
  removed_rank = (ordering.for_ids("rank", removed).astype(np.int32) if ordering is not None
                  else np.full(len(removed), -1, np.int32))

  labels, changed = label_noise(dataset.pool.labels, kept, noise.label_percent,
                                dataset.num_classes, host_rng(config.seed, "label_noise"))
  pool, value_range, per_example = dataset.pool, None, 0
  if dataset.streamed and noise.value_percent > 0:
    raise UserError("config.noise.value_percent is "
                    f"{noise.value_percent}: input noise is drawn over the inputs held in "
                    "memory, and this dataset streams (config.dataset.storage); use "
                    "storage='device' or no input noise")
  if not dataset.streamed:
    value_range = None if dataset.uint8_inputs else _value_range(dataset)
    inputs, per_example = value_noise(
        dataset.pool.inputs, kept, percent=noise.value_percent, mean=noise.value_mean,
        std=noise.value_std, overflow=noise.value_overflow,
        normalization=dataset.normalization, uint8=dataset.uint8_inputs,
        value_range=value_range, rng=host_rng(config.seed, "value_noise"))
    if inputs is not pool.inputs:
      pool = ArraySplit(inputs=inputs, labels=pool.labels)
  if labels is not pool.labels:
    pool = dataclasses.replace(pool, labels=labels)
  variant = dataclasses.replace(dataset, pool=pool, train_ids=kept)

  num_locations, channels = locations(dataset.input_shape)
  mode = ("none" if not removing else "random" if removal.keep_lowest_n < 0
          else "subsample" if removal.remove_subsample > 0 else "window")
  info = {
      "dataset_name": dataset.name, "seed": int(config.seed),
      "fingerprint_before": dataset.fingerprint, "fingerprint_after": variant.fingerprint,
      "num_train_before": int(len(train_ids)), "num_removed": int(len(removed)),
      "num_kept": int(len(kept)),
      "removal_mode": mode, "ordering_path": removal.ordering_path,
      "ordering": _ordering_info(ordering), **sizes,
      "label_percent": float(noise.label_percent), "labels_changed": int(len(changed)),
      "value_percent": float(noise.value_percent),
      "value_locations_per_example": int(per_example),
      "value_examples_changed": int(len(kept)) if per_example else 0,
      "value_locations": int(num_locations), "value_channels": int(channels),
      "value_mean": float(noise.value_mean), "value_std": float(noise.value_std),
      "value_overflow": noise.value_overflow,
      "value_scale": "uint8" if dataset.uint8_inputs else "float",
      "value_range": None if value_range is None else list(value_range),
  }
  record = Record(
      removed_ids=removed, removed_rank=removed_rank, changed_ids=changed,
      original_labels=dataset.pool.labels[changed].astype(np.int32),
      noisy_labels=labels[changed].astype(np.int32),
      clean_fingerprint=dataset.fingerprint, fingerprint=variant.fingerprint,
      dataset_name=dataset.name, seed=int(config.seed),
      config=json.loads(config.to_json()), info=info)
  return variant, record


def _score_file(record: Record, ids: np.ndarray, tables: dict, fingerprint: str,
                kind: str) -> artifacts.ScoreFile:
  return artifacts.ScoreFile(
      example_ids=ids, tables=tables, fingerprint=fingerprint,
      dataset_name=record.dataset_name, num_epochs=0, seeds=(record.seed,),
      config=record.config, extra={"kind": kind})


def write_records(record: Record | None, workdir: str) -> None:
  """Writes ``removed.npz`` (when something was removed), ``label_noise.npz`` (when label
  noise was asked for) and ``data_variant.json`` into ``workdir``, atomically; nothing for
  ``None`` (no variant)."""
  if record is None:
    return
  if len(record.removed_ids):
    artifacts.save(os.path.join(workdir, REMOVED_FILE), _score_file(
        record, record.removed_ids, {"rank": record.removed_rank},
        record.clean_fingerprint, "removed"))
  if record.info["label_percent"] > 0:
    artifacts.save(os.path.join(workdir, LABEL_NOISE_FILE), _score_file(
        record, record.changed_ids, {"original_label": record.original_labels,
                                     "noisy_label": record.noisy_labels},
        record.fingerprint, "label_noise"))
  files.write_json(os.path.join(workdir, INFO_FILE), record.info)
