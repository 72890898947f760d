"""Reads a TFDS dataset into host NumPy arrays and splits its train split by id.

Every dataset goes through one path: ``builder.as_data_source`` (ArrayRecord files, read
without TensorFlow), then NumPy. The source train split becomes ``Dataset.pool`` and is
divided into train and validation ids by a seeded permutation (``split_train_validation``);
the source test split becomes ``Dataset.test``. Inputs are normalised with the builder's
``NORMALIZATION`` entry, statistics of the training ids, or constants the caller passes;
``Dataset.normalization`` records which were used.

Builders defined in this package (``mnist1d``, ``fashion_mnist_local``) are generated
locally and prepared on first use. TFDS catalog datasets (``cifar10``, ...) need internet
access and TensorFlow to prepare, so they must have been prepared beforehand, in the
ArrayRecord format; otherwise ``DatasetNotPreparedError`` says how.
"""

import dataclasses
import hashlib
import logging
import time
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxsel.config_errors import UserError, suggestion
from jaxsel.data import fashion_mnist_builder
from jaxsel.data import mnist1d_builder
from jaxsel.data import streaming
from jaxsel.data import synthetic_builder
from jaxsel.data.dataset import ArraySplit
from jaxsel.data.dataset import Dataset
# Defined next to `Dataset`, which holds one; still importable from here as before.
from jaxsel.data.dataset import Normalization
# Importable from here as before they had a module of their own.
from jaxsel.data.normalization import (NORMALIZATION, check_normalization,  # pylint: disable=unused-import
                                       compute_normalization, normalize, to_float)
from jaxsel.data.normalization import _num_channels

# Builders of this package: they need neither internet nor TensorFlow to prepare.
LOCAL_BUILDERS = (mnist1d_builder.Mnist1d.name, fashion_mnist_builder.FashionMnistLocal.name,
                  synthetic_builder.SyntheticImages.name)
# Catalog datasets with known normalisation constants. Other catalog names are accepted
# too (their statistics are then computed from the training ids).
SUPPORTED_CATALOG_DATASETS = ('cifar10', 'cifar100', 'svhn_cropped', 'mnist', 'fashion_mnist')

_FILE_FORMAT = 'array_record'
# Examples per batched read: reading 60,000 Fashion-MNIST examples takes ~4 s in batches
# of this size and ~13 s one at a time (2 CPU cores).
_READ_CHUNK = 4096


class DatasetNotPreparedError(UserError, FileNotFoundError):
  """A dataset cannot be read from the data dir and cannot be prepared here (a catalog
  dataset without an ArrayRecord copy, a local one without its source files). A UserError
  (one line, naming ``config.dataset.name`` and ``config.dataset.data_dir``, saying how to
  prepare it) and still a FileNotFoundError, as before UserError existed."""


def _check_train_fraction(train_fraction: float) -> None:
  if isinstance(train_fraction, bool) or not 0.0 < train_fraction <= 1.0:
    raise UserError('config.dataset.train_fraction must be in (0, 1], got '
                    f'{train_fraction!r}')


def split_train_validation(
    num_examples: int, *, train_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
  """Divides ids 0..num_examples-1 into train and validation ids.

  A uniform random permutation from ``np.random.default_rng(seed)``; its first
  ``round(train_fraction * num_examples)`` ids are train, the rest validation. The seed is
  kept apart from a run's seed so that runs with different seeds see the same split.

  Returns:
    (train_ids int32 [N_train], validation_ids int32 [N - N_train]), each sorted;
    disjoint, and together all ids. ``train_fraction == 1`` gives no validation ids.
  """
  _check_train_fraction(train_fraction)
  if num_examples < 0:
    raise ValueError(f'num_examples must be >= 0, got {num_examples}')
  permutation = np.random.default_rng(seed).permutation(num_examples)
  num_train = int(round(train_fraction * num_examples))
  train_ids = np.sort(permutation[:num_train]).astype(np.int32)
  validation_ids = np.sort(permutation[num_train:]).astype(np.int32)
  return train_ids, validation_ids


def subsample_train(dataset: Dataset, size: int, *, seed: int) -> Dataset:
  """``dataset`` training on a random ``size`` of its training ids (``config.dataset.
  train_subset_size``); the other training ids are not used at all, the validation ids
  and the test split are unchanged. The draw is ``default_rng([seed, size])`` (the split
  seed, not a run's), so every run seed trains on the same subset, and the fingerprint,
  which covers the ids, tells the subset apart from the whole."""
  num_train = len(dataset.train_ids)
  if size > num_train:
    raise UserError(f'config.dataset.train_subset_size is {size}, more than the {num_train} '
                    'training ids of the split (config.dataset.train_fraction); use at most '
                    f'{num_train}, or 0 for all of them')
  chosen = np.random.default_rng([seed, size]).choice(num_train, size, replace=False)
  return dataclasses.replace(dataset, train_ids=np.sort(dataset.train_ids[chosen]))


def dataset_fingerprint(dataset: Dataset) -> str:
  """A 16-hex-digit digest of what identifies a dataset's examples and split.

  Covers the name, number of classes, input shape, split sizes, labels, train and
  validation ids, and the input values of the pool and test splits (their float32 bytes
  as stored, i.e. after normalisation), so that results computed on one dataset or split
  can be told apart from another's, including a variant with the same labels but
  perturbed (noisy, corrupted) inputs. Any changed bit of an input changes it.

  Costs ~0.2 s for Fashion-MNIST's 220 MB of inputs and ~5 ms for mnist1d/large's
  9.6 MB (SHA-256, which the CPU accelerates: ~1.1-1.9 GB/s here against ~1.0 GB/s for
  BLAKE2b); the arrays' buffers are hashed in place, not copied.
  """
  digest = hashlib.sha256()

  def add(part: bytes | np.ndarray) -> None:
    # The buffer itself: `tobytes()` would copy 220 MB for Fashion-MNIST (+0.1 s).
    view = memoryview(part).cast('B')  # flat bytes; needs a C-contiguous buffer
    digest.update(view.nbytes.to_bytes(8, 'little'))  # no ambiguity between parts
    digest.update(view)

  add(dataset.name.encode())
  add(repr((dataset.num_classes, dataset.input_shape, len(dataset.pool),
            len(dataset.test))).encode())
  for ids in (dataset.pool.labels, dataset.test.labels, dataset.train_ids,
              dataset.validation_ids):
    add(np.ascontiguousarray(ids, dtype='<i4'))  # no copy: loaded ids are int32
  if dataset.streamed:
    # Reading every input would cost a pass over the whole dataset (ImageNet: ~150 GB), so
    # a streamed dataset's digest covers what identifies its sources instead: builder,
    # version, host view and normalisation (``source_identity``). It therefore differs from
    # the same data's in-memory digest.
    add(b'stream:' + dataset.source_identity.encode())
    return digest.hexdigest()[:16]
  for inputs in (dataset.pool.inputs, dataset.test.inputs):
    add(np.ascontiguousarray(inputs, dtype='<f4'))  # no copy: loaded inputs are float32
  return digest.hexdigest()[:16]


def _builder_name(name: str) -> str:
  """'mnist1d/large' -> 'mnist1d'; 'cifar10:3.0.2' -> 'cifar10'."""
  return name.split('/')[0].split(':')[0]


def _check_known(builder_name: str) -> None:
  """Raises UserError unless ``builder_name`` is ours or in the TFDS catalog.

  Community datasets are left out: listing them queries a remote index.
  """
  if builder_name in LOCAL_BUILDERS:
    return
  catalog = tfds.list_builders(with_community_datasets=False)
  if builder_name in catalog:
    return
  known = LOCAL_BUILDERS + SUPPORTED_CATALOG_DATASETS
  raise UserError(
      f'Unknown dataset {builder_name!r} (config.dataset.name). Known: {", ".join(known)} '
      "(a config may follow a '/', e.g. 'mnist1d/large'); other TFDS catalog names work "
      f'too{suggestion(builder_name, [*known, *catalog])}'
  )


def _not_prepared_error(builder: tfds.core.DatasetBuilder, name: str,
                        data_dir: str | None) -> DatasetNotPreparedError:
  root = data_dir or tfds.core.constants.DATA_DIR
  state = (
      f'is prepared in {builder.data_dir} but not in the ArrayRecord format'
      if builder.is_prepared()
      else f'is not prepared (looked in {builder.data_dir})'
  )
  # One line (jaxsel.main prints it as the whole error), commands quoted.
  return DatasetNotPreparedError(
      f'dataset {name!r} (config.dataset.name) {state}, in '
      + (f'config.dataset.data_dir {root!r}' if data_dir else
         f"TFDS's default data dir {root!r} (config.dataset.data_dir is '': "
         '$TFDS_DATA_DIR, else ~/tensorflow_datasets)')
      + '. Catalog datasets are '
      'not prepared automatically: that needs internet access and TensorFlow. On a '
      "machine with both, run `pip install 'jaxsel[tf]'` and "
      f'`tfds build {name} --file_format=array_record --data_dir={root}` (or '
      f"`tfds.builder('{name}', data_dir='{root}', "
      "file_format='array_record').download_and_prepare()` in Python), then copy the "
      f'resulting {_builder_name(name)} folder into {root}.'
  )


def _open_builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Returns the builder of ``name``, preparing it first if it is one of ours."""
  builder_name = _builder_name(name)
  _check_known(builder_name)
  if builder_name not in LOCAL_BUILDERS:
    # Never prepared here: that would download, and needs TensorFlow.
    return tfds.builder(name, data_dir=data_dir)
  builder = tfds.builder(name, data_dir=data_dir, file_format=_FILE_FORMAT)
  if not builder.is_prepared():
    if builder_name == fashion_mnist_builder.FashionMnistLocal.name:
      _check_fashion_mnist_files(name)
    started = time.perf_counter()
    builder.download_and_prepare(file_format=_FILE_FORMAT)
    logging.info('Prepared %s in %s in %.1f s', name, builder.data_dir,
                 time.perf_counter() - started)
  return builder


def _check_fashion_mnist_files(name: str) -> None:
  """Before preparing: DatasetNotPreparedError (one line) naming the IDX files missing."""
  directory = fashion_mnist_builder.source_dir()
  missing = [str(directory / file) for files in fashion_mnist_builder.SPLIT_FILES.values()
             for file in files if not (directory / file).is_file()]
  if missing:
    raise DatasetNotPreparedError(
        f'dataset {name!r} (config.dataset.name) is not prepared yet, and preparing it '
        f'needs the Fashion-MNIST IDX files; missing: {", ".join(missing)}. Install them '
        f'with `{fashion_mnist_builder.INSTALL_COMMAND}` (they go to '
        f'{fashion_mnist_builder.DEFAULT_DIR}) or set {fashion_mnist_builder.DIR_ENV_VAR} '
        'to a directory that holds them')


def _data_source(builder: tfds.core.DatasetBuilder, name: str, split: str,
                 data_dir: str | None) -> Any:
  if builder.name in LOCAL_BUILDERS:
    return builder.as_data_source(split=split)  # prepared by `_open_builder`
  try:
    return builder.as_data_source(split=split)
  except (NotImplementedError, ValueError, FileNotFoundError) as e:
    # An unprepared builder has no ArrayRecord files; TFDS then complains about the file
    # format. Whether it is unprepared is asked only here because under
    # `tfds.testing.mock_data` `is_prepared()` is False although reading works.
    raise _not_prepared_error(builder, name, data_dir) from e


def _feature_keys(builder: tfds.core.DatasetBuilder) -> tuple[str, str]:
  """(input key, label key) of the builder's examples."""
  if builder.info.supervised_keys:
    input_key, label_key = builder.info.supervised_keys
    return input_key, label_key
  features = builder.info.features
  input_key = 'image' if 'image' in features else 'x'
  return input_key, 'label'


def read_arrays(source: Any, input_key: str,
                label_key: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads a whole data source into (inputs [N, *shape] as stored, labels int32 [N])."""
  num_examples = len(source)
  if not num_examples:
    raise ValueError(f'{source!r} holds no examples')
  inputs, labels = [], []
  for start in range(0, num_examples, _READ_CHUNK):
    examples = streaming.read_examples(source, range(start, min(start + _READ_CHUNK,
                                                                  num_examples)))
    inputs.append(np.stack([np.asarray(e[input_key]) for e in examples]))
    labels.append(np.asarray([e[label_key] for e in examples], dtype=np.int32))
  return np.concatenate(inputs), np.concatenate(labels)


STORAGES = ('auto', 'device', 'stream')


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    train_fraction: float = 0.9,
    split_seed: int = 42,
    normalization: Normalization | None = None,
    storage: str = 'device',
    memory_budget_mb: float = 4096,
    test_split: str = 'test',
    view: streaming.HostView = streaming.HostView(),
) -> Dataset:
  """Loads a TFDS dataset into host arrays, its train split divided by id.

  Args:
    name: a TFDS name with an optional config: 'mnist1d', 'mnist1d/large',
      'fashion_mnist_local' (prepared here on first use), or a catalog name such as
      'cifar10', 'cifar100', 'svhn_cropped', 'mnist', 'fashion_mnist' (must have been
      prepared as ArrayRecord beforehand).
    data_dir: TFDS data dir; None means TFDS's default ($TFDS_DATA_DIR if set, else
      ~/tensorflow_datasets).
    train_fraction: share of the source train split given train ids, in (0, 1]; the rest
      are validation ids.
    split_seed: seed of the train/validation split, independent of any run seed.
    normalization: constants to normalise with, used as given (references differ, e.g.
      CIFAR-10 std (0.2023, 0.1994, 0.2010) or (0.2470, 0.2435, 0.2616)), on the scale of
      ``Normalization``. None: ``NORMALIZATION[builder]``, or statistics of the training
      ids when there is no entry (on the streaming path, of a seeded sample of them).
    storage: 'device' reads every input into host arrays (the in-memory path); 'stream'
      keeps only labels and the data sources (``Dataset.streamed``, see
      ``jaxsel.data.streaming``); 'auto' streams when the decoded float32 inputs of the
      train and test splits would exceed ``memory_budget_mb`` or differ in shape.
    memory_budget_mb: the budget 'auto' compares against (MiB).
    test_split: the source split evaluated as the test set ('validation' for ImageNet,
      whose 'test' split has no labels).
    view: how a stored example becomes an input on the streaming path (an ImageNet-style
      host crop when ``view.image_size`` > 0, which needs 'stream' or 'auto').

  Returns:
    A Dataset whose inputs are float32 and normalised as above, labels int32, and
    ``normalization`` the constants used.

  Raises:
    UserError: unknown name, train_fraction outside (0, 1], or a ``normalization``
      that does not fit the inputs (see ``check_normalization``).
    DatasetNotPreparedError (a UserError and a FileNotFoundError): a catalog dataset is
      not prepared as ArrayRecord, or the Fashion-MNIST IDX files to prepare
      ``fashion_mnist_local`` from are missing.
  """
  _check_train_fraction(train_fraction)
  if normalization is not None:
    # Before preparing or reading anything (minutes for a first Fashion-MNIST); the
    # channel count is checked once the inputs are read.
    check_normalization(normalization, num_channels=None)
  builder = _open_builder(name, data_dir)
  input_key, label_key = _feature_keys(builder)
  # `builder.info.splits` is empty under `tfds.testing.mock_data`; sizes come from the
  # data sources.
  known_splits = list(builder.info.splits)  # empty under `tfds.testing.mock_data`
  if known_splits and test_split not in known_splits:
    raise UserError(f'config.dataset.test_split is {test_split!r}, but dataset {name!r} has '
                    f'the splits {", ".join(known_splits)}')
  sources = {'train': _data_source(builder, name, 'train', data_dir),
             'test': _data_source(builder, name, test_split, data_dir)}
  if _streams(builder, name, input_key, sources, storage=storage,
              memory_budget_mb=memory_budget_mb, view=view):
    return _streaming_dataset(builder, name, sources, input_key, label_key,
                              train_fraction=train_fraction, split_seed=split_seed,
                              normalization=normalization, view=view)

  started = time.perf_counter()
  raw = {split: read_arrays(source, input_key, label_key)
         for split, source in sources.items()}
  logging.info('Read %s (%d + %d examples) in %.1f s', name, len(raw['train'][1]),
               len(raw['test'][1]), time.perf_counter() - started)

  train_ids, validation_ids = split_train_validation(
      len(raw['train'][1]), train_fraction=train_fraction, seed=split_seed)
  pool_inputs = to_float(raw['train'][0])
  test_inputs = to_float(raw['test'][0])
  if normalization is not None:
    check_normalization(normalization, _num_channels(pool_inputs))
  elif builder.name in NORMALIZATION:
    normalization = NORMALIZATION[builder.name]
  else:
    normalization = compute_normalization(pool_inputs, train_ids)
  return Dataset(
      name=name,
      num_classes=builder.info.features[label_key].num_classes,
      pool=ArraySplit(normalize(pool_inputs, normalization), raw['train'][1]),
      train_ids=train_ids,
      validation_ids=validation_ids,
      test=ArraySplit(normalize(test_inputs, normalization), raw['test'][1]),
      normalization=normalization,
      uint8_inputs=bool(raw['train'][0].dtype == np.uint8),
  )


def _stored_shape(builder: tfds.core.DatasetBuilder, input_key: str) -> tuple:
  return tuple(builder.info.features[input_key].shape)


def _streams(builder, name: str, input_key: str, sources: dict, *, storage: str,
             memory_budget_mb: float, view: streaming.HostView) -> bool:
  """Whether this dataset takes the streaming path (UserError for a choice that cannot
  work: a host crop in memory, images of varying size without one)."""
  if storage not in STORAGES:
    raise UserError(f'config.dataset.storage is {storage!r}; allowed: {", ".join(STORAGES)}')
  shape = _stored_shape(builder, input_key)
  varying = any(size is None for size in shape)
  if view.image_size and storage == 'device':
    raise UserError(f'config.dataset.image_size is {view.image_size}: the host-side crop runs '
                    "on the streaming path only; set config.dataset.storage to 'stream' or "
                    "'auto' (or image_size to 0)")
  if view.image_size and len(shape) not in (2, 3):
    raise UserError(f'config.dataset.image_size is {view.image_size}, but dataset {name!r} '
                    f'(config.dataset.name) has inputs of shape {shape}, not images '
                    '[H, W] or [H, W, C]; set image_size to 0')
  if varying and not view.image_size:
    raise UserError(f'dataset {name!r} (config.dataset.name) has inputs of varying shape '
                    f'{shape}: set config.dataset.image_size (e.g. 224) to crop them to one '
                    'size on the host, with config.dataset.storage \'stream\' or \'auto\'')
  if storage != 'auto':
    return storage == 'stream'
  if view.image_size:
    return True
  num_rows = sum(len(source) for source in sources.values())
  return streaming.decoded_bytes(num_rows, shape) > memory_budget_mb * 2**20


def _streaming_dataset(builder, name: str, sources: dict, input_key: str, label_key: str, *,
                       train_fraction: float, split_seed: int,
                       normalization: Normalization | None,
                       view: streaming.HostView) -> Dataset:
  """The dataset with labels on the host and inputs left in ``sources``."""
  started = time.perf_counter()
  labels = {split: streaming.read_labels(source, label_key)
            for split, source in sources.items()}
  logging.info('Read the labels of %s (%d + %d examples) in %.1f s', name,
               len(labels['train']), len(labels['test']), time.perf_counter() - started)
  train_ids, validation_ids = split_train_validation(
      len(labels['train']), train_fraction=train_fraction, seed=split_seed)
  stored = _stored_shape(builder, input_key)
  uint8 = builder.info.features[input_key].np_dtype == np.uint8
  if view.image_size:  # the crop's output: [size, size, C] (C = 1 for [H, W] images)
    shape = (view.image_size, view.image_size, stored[-1] if len(stored) == 3 else 1)
  else:
    shape = stored
  num_channels = shape[-1] if len(shape) >= 3 else 1
  if normalization is not None:
    check_normalization(normalization, num_channels)
  elif builder.name in NORMALIZATION:
    normalization = NORMALIZATION[builder.name]
  else:
    normalization = compute_normalization(
        streaming.sample_inputs(sources['train'], train_ids, input_key, shape=shape, view=view,
                                seed=split_seed), slice(None))
  identity = (f'{builder.info.full_name}|{view}|{normalization}|'
              f'{len(sources["train"])}+{len(sources["test"])}')
  return Dataset(
      name=name,
      num_classes=builder.info.features[label_key].num_classes,
      pool=streaming.StreamSplit(sources['train'], labels['train'], input_key, shape, view),
      train_ids=train_ids,
      validation_ids=validation_ids,
      test=streaming.StreamSplit(sources['test'], labels['test'], input_key, shape, view),
      normalization=normalization,
      uint8_inputs=bool(uint8),
      source_identity=identity,
  )
