"""Tests of jaxsel.data: builders, loading, the train/validation split, fingerprints.

Every test uses its own TFDS data dir under pytest's tmp_path, so nothing is written to
~/tensorflow_datasets.
"""

import dataclasses
import gzip
import pathlib
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from mnist1d.data import get_dataset_args, make_dataset

import jaxsel.data as jdata
from jaxsel.data import dataset as dataset_module
from jaxsel.data import fashion_mnist_builder
from jaxsel.data import loading
from jaxsel.data import mnist1d_builder

_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)


@pytest.fixture(scope='module')
def mnist1d(mnist1d_dir) -> jdata.Dataset:
  return jdata.load_dataset('mnist1d', data_dir=mnist1d_dir)


# --- mnist1d -----------------------------------------------------------------------------


def test_mnist1d_sizes_and_shape(mnist1d):
  assert len(mnist1d.pool) == 4000
  assert len(mnist1d.test) == 1000
  assert mnist1d.num_classes == 10
  assert mnist1d.input_shape == (40,)
  assert mnist1d.pool.inputs.dtype == np.float32
  assert mnist1d.pool.labels.dtype == np.int32
  assert mnist1d.name == 'mnist1d'


def test_mnist1d_rows_are_the_package_examples_in_order(mnist1d):
  # Identity normalisation and no shuffling: row i is the generator's example i.
  reference = make_dataset(get_dataset_args())
  np.testing.assert_allclose(mnist1d.pool.inputs, reference['x'], rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(mnist1d.pool.labels, reference['y'])
  np.testing.assert_allclose(mnist1d.test.inputs, reference['x_test'], rtol=1e-6,
                             atol=1e-6)
  np.testing.assert_array_equal(mnist1d.test.labels, reference['y_test'])


def test_mnist1d_default_split(mnist1d):
  assert len(mnist1d.train_ids) == 3600
  assert len(mnist1d.validation_ids) == 400


def test_mnist1d_is_prepared_once(mnist1d_dir, monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError('prepared again')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', fail)
  assert len(jdata.load_dataset('mnist1d/standard', data_dir=mnist1d_dir).pool) == 4000


def test_import_leaves_generator_out_but_registers_builders():
  # A fresh interpreter: this module has imported mnist1d already.
  code = (
      'import sys, jaxsel.data, tensorflow_datasets as tfds\n'
      'heavy = sorted({m.split(".")[0] for m in sys.modules} & {"mnist1d", "scipy", '
      '"matplotlib"})\n'
      'print(heavy, tfds.builder_cls("mnist1d").__name__, '
      'tfds.builder_cls("fashion_mnist_local").__name__)\n'
  )
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          check=True)
  assert result.stdout.split('\n')[-2] == "[] Mnist1d FashionMnistLocal"


def test_mnist1d_generation_keeps_global_random_state():
  config = mnist1d_builder.Mnist1dConfig(name='tiny', num_samples=100, train_split=0.8)
  np.random.seed(123)
  expected_next = np.random.rand()
  np.random.seed(123)
  data = mnist1d_builder.generate(config)
  assert np.random.rand() == expected_next
  assert data['x'].shape == (80, 40)
  assert data['x_test'].shape == (20, 40)


# --- train / validation split ------------------------------------------------------------


def test_split_is_deterministic_per_seed():
  a = jdata.split_train_validation(4000, train_fraction=0.9, seed=42)
  b = jdata.split_train_validation(4000, train_fraction=0.9, seed=42)
  c = jdata.split_train_validation(4000, train_fraction=0.9, seed=7)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[0], c[0])


def test_split_partitions_all_ids():
  train_ids, validation_ids = jdata.split_train_validation(
      4000, train_fraction=0.9, seed=42)
  assert (len(train_ids), len(validation_ids)) == (3600, 400)
  assert train_ids.dtype == np.int32 and validation_ids.dtype == np.int32
  assert np.all(np.diff(train_ids) > 0) and np.all(np.diff(validation_ids) > 0)
  assert not np.intersect1d(train_ids, validation_ids).size
  np.testing.assert_array_equal(
      np.sort(np.concatenate([train_ids, validation_ids])), np.arange(4000))


def test_split_with_all_for_training():
  train_ids, validation_ids = jdata.split_train_validation(
      50, train_fraction=1.0, seed=0)
  np.testing.assert_array_equal(train_ids, np.arange(50))
  assert validation_ids.shape == (0,) and validation_ids.dtype == np.int32


@pytest.mark.parametrize('train_fraction', [0.0, 1.5, -0.1])
def test_bad_train_fraction(train_fraction, tmp_path):
  with pytest.raises(ValueError, match=r'train_fraction.*\(0, 1\]'):
    jdata.split_train_validation(10, train_fraction=train_fraction, seed=0)
  with pytest.raises(ValueError, match='train_fraction'):
    jdata.load_dataset('mnist1d', data_dir=str(tmp_path), train_fraction=train_fraction)


def test_load_dataset_split_matches_split_function(mnist1d):
  train_ids, validation_ids = jdata.split_train_validation(
      4000, train_fraction=0.9, seed=42)
  np.testing.assert_array_equal(mnist1d.train_ids, train_ids)
  np.testing.assert_array_equal(mnist1d.validation_ids, validation_ids)


# --- fingerprint ------------------------------------------------------------------------


def _with(dataset: jdata.Dataset, split: str, **arrays) -> jdata.Dataset:
  """``dataset`` with some arrays of ``split`` ('pool' or 'test') replaced."""
  return dataclasses.replace(
      dataset, **{split: dataclasses.replace(getattr(dataset, split), **arrays)})


def _one_ulp_up(inputs: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
  changed = inputs.copy()
  changed[index] = np.nextafter(changed[index], np.float32(np.inf))
  return changed


def test_fingerprint_is_16_hex_digits_and_equal_for_copies(mnist1d):
  fingerprint = jdata.dataset_fingerprint(mnist1d)
  assert re.fullmatch('[0-9a-f]{16}', fingerprint)
  copy = _with(_with(mnist1d, 'pool', inputs=mnist1d.pool.inputs.copy(),
                     labels=mnist1d.pool.labels.copy()),
               'test', inputs=mnist1d.test.inputs.copy(), labels=mnist1d.test.labels.copy())
  assert copy.pool.inputs is not mnist1d.pool.inputs
  assert jdata.dataset_fingerprint(copy) == fingerprint
  # Hashed by value: a non-contiguous (Fortran-order) copy gives the same digest.
  fortran = _with(mnist1d, 'pool', inputs=np.asfortranarray(mnist1d.pool.inputs))
  assert not fortran.pool.inputs.flags.c_contiguous
  assert jdata.dataset_fingerprint(fortran) == fingerprint


@pytest.mark.parametrize('split, index', [('pool', (1234, 17)), ('test', (999, 39))])
def test_fingerprint_covers_every_input_value(mnist1d, split, index):
  inputs = getattr(mnist1d, split).inputs
  changed = _one_ulp_up(inputs, index)
  assert np.count_nonzero(changed != inputs) == 1
  assert np.max(np.abs(changed - inputs)) < 1e-6  # one ulp of a value of order 1
  perturbed = _with(mnist1d, split, inputs=changed)
  assert jdata.dataset_fingerprint(perturbed) != jdata.dataset_fingerprint(mnist1d)


def test_fingerprint_covers_labels(mnist1d):
  labels = mnist1d.pool.labels.copy()
  labels[7] = (labels[7] + 1) % 10
  relabelled = _with(mnist1d, 'pool', labels=labels)
  assert jdata.dataset_fingerprint(relabelled) != jdata.dataset_fingerprint(mnist1d)


def test_fingerprint_value_is_stable():
  # Pins the digest of a tiny dataset: a change here invalidates stored artifacts (e.g.
  # target entropies), which are checked against the fingerprint of their dataset.
  inputs = np.arange(12, dtype=np.float32).reshape(3, 2, 2) / 8 - 0.5
  tiny = jdata.Dataset(
      name='tiny', num_classes=2,
      pool=jdata.ArraySplit(inputs, np.array([0, 1, 1], np.int32)),
      train_ids=np.array([0, 2], np.int32), validation_ids=np.array([1], np.int32),
      test=jdata.ArraySplit(inputs[:1] + 1, np.array([1], np.int32)),
      normalization=jdata.Normalization((0.0,), (1.0,)))
  assert jdata.dataset_fingerprint(tiny) == '44948b4da17d8a1d'


def test_fingerprint_depends_on_split_seed(mnist1d, mnist1d_dir):
  same = jdata.load_dataset('mnist1d', data_dir=mnist1d_dir, split_seed=42)
  other = jdata.load_dataset('mnist1d', data_dir=mnist1d_dir, split_seed=7)
  fingerprint = jdata.dataset_fingerprint(mnist1d)
  assert len(fingerprint) == 16
  assert jdata.dataset_fingerprint(same) == fingerprint
  assert jdata.dataset_fingerprint(other) != fingerprint


# --- fashion_mnist_local -------------------------------------------------------------------


def _write_idx_gz(path: pathlib.Path, values: np.ndarray) -> None:
  """Writes uint8 ``values`` as a gzipped IDX file (magic 0x00000803 for 3-D, ...)."""
  header = bytes([0, 0, 0x08, values.ndim]) + np.asarray(values.shape, '>u4').tobytes()
  with gzip.open(path, 'wb') as f:
    f.write(header + values.astype(np.uint8).tobytes())


def _write_fake_fashion_mnist(directory: pathlib.Path) -> dict[str, tuple[np.ndarray, ...]]:
  rng = np.random.default_rng(0)
  splits = {'train': 6, 'test': 3}
  data = {}
  for split, n in splits.items():
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    images_file, labels_file = fashion_mnist_builder.SPLIT_FILES[split]
    _write_idx_gz(directory / images_file, images)
    _write_idx_gz(directory / labels_file, labels)
    data[split] = (images, labels)
  return data


def test_fashion_mnist_local_round_trip(tmp_path, monkeypatch):
  source = tmp_path / 'idx'
  source.mkdir()
  raw = _write_fake_fashion_mnist(source)
  monkeypatch.setenv(fashion_mnist_builder.DIR_ENV_VAR, str(source))

  dataset = jdata.load_dataset(
      'fashion_mnist_local', data_dir=str(tmp_path / 'tfds'), train_fraction=0.5)

  assert dataset.num_classes == 10
  assert dataset.input_shape == (28, 28, 1)
  assert (len(dataset.train_ids), len(dataset.validation_ids)) == (3, 3)
  for split, arrays in (('train', dataset.pool), ('test', dataset.test)):
    images, labels = raw[split]
    expected = (images[..., None] / 255.0 - 0.2860) / 0.3530
    np.testing.assert_allclose(arrays.inputs, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(arrays.labels, labels)
    assert arrays.inputs.dtype == np.float32 and arrays.labels.dtype == np.int32


def test_fashion_mnist_local_missing_files(tmp_path, monkeypatch):
  missing = tmp_path / 'nowhere'
  monkeypatch.setenv(fashion_mnist_builder.DIR_ENV_VAR, str(missing))
  with pytest.raises(FileNotFoundError) as info:
    jdata.load_dataset('fashion_mnist_local', data_dir=str(tmp_path / 'tfds'))
  message = str(info.value)
  assert 'sudo apt-get install dataset-fashion-mnist' in message
  assert fashion_mnist_builder.DIR_ENV_VAR in message
  assert str(missing / 'train-images-idx3-ubyte.gz') in message
  assert str(missing / 't10k-labels-idx1-ubyte.gz') in message


def test_parse_idx_rejects_bad_header():
  with pytest.raises(ValueError, match='IDX'):
    fashion_mnist_builder.parse_idx(b'\x01\x00\x08\x01\x00\x00\x00\x01\x07')
  with pytest.raises(ValueError, match='shape'):
    fashion_mnist_builder.parse_idx(b'\x00\x00\x08\x01\x00\x00\x00\x03\x07')


_REAL_FASHION_MNIST = pathlib.Path(fashion_mnist_builder.DEFAULT_DIR)


@pytest.mark.slow
@pytest.mark.skipif(
    not (_REAL_FASHION_MNIST / 'train-images-idx3-ubyte.gz').is_file(),
    reason='dataset-fashion-mnist is not installed')
def test_fashion_mnist_local_real_files(tmp_path, monkeypatch):
  monkeypatch.delenv(fashion_mnist_builder.DIR_ENV_VAR, raising=False)
  dataset = jdata.load_dataset('fashion_mnist_local', data_dir=str(tmp_path))
  assert dataset.pool.inputs.shape == (60000, 28, 28, 1)
  assert dataset.test.inputs.shape == (10000, 28, 28, 1)
  assert np.bincount(dataset.pool.labels).tolist() == [6000] * 10
  # The published constants describe the train split.
  assert abs(float(dataset.pool.inputs.mean())) < 0.01
  assert abs(float(dataset.pool.inputs.std()) - 1.0) < 0.01
  assert dataset.normalization == loading.NORMALIZATION['fashion_mnist_local']
  assert re.fullmatch('[0-9a-f]{16}', jdata.dataset_fingerprint(dataset))


# --- catalog datasets --------------------------------------------------------------------


def test_catalog_dataset_under_mock_data():
  mean = np.array([0.4914, 0.4822, 0.4465])
  std = np.array([0.2470, 0.2435, 0.2616])
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    dataset = jdata.load_dataset('cifar10')
    raw = tfds.builder('cifar10').as_data_source(split='train')[3]['image']

  assert dataset.pool.inputs.shape == (20, 32, 32, 3)
  assert dataset.test.inputs.shape == (20, 32, 32, 3)
  assert dataset.pool.inputs.dtype == np.float32
  assert dataset.num_classes == 10
  assert (len(dataset.train_ids), len(dataset.validation_ids)) == (18, 2)
  for labels in (dataset.pool.labels, dataset.test.labels):
    assert labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() < 10
  assert raw.dtype == np.uint8
  expected = (raw[5, 7] / 255.0 - mean) / std
  np.testing.assert_allclose(dataset.pool.inputs[3, 5, 7], expected, rtol=1e-5,
                             atol=1e-5)


def test_unprepared_catalog_dataset(tmp_path, monkeypatch):
  def no_network(*args, **kwargs):
    raise AssertionError('tried to reach the network')

  def no_prepare(*args, **kwargs):
    raise AssertionError('tried to prepare a catalog dataset')

  monkeypatch.setattr(socket.socket, 'connect', no_network)
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', no_prepare)
  with pytest.raises(jdata.DatasetNotPreparedError) as info:
    jdata.load_dataset('cifar10', data_dir=str(tmp_path))
  message = str(info.value)
  assert 'download_and_prepare' in message
  assert 'tfds build cifar10 --file_format=array_record' in message
  assert "pip install 'jaxsel[tf]'" in message
  assert str(tmp_path) in message
  assert not any(tmp_path.iterdir())  # nothing written


def test_unknown_dataset_lists_known_names(tmp_path):
  with pytest.raises(ValueError, match='Unknown dataset') as info:
    jdata.load_dataset('no_such_dataset', data_dir=str(tmp_path))
  for known in ('mnist1d', 'fashion_mnist_local', 'cifar10', 'cifar100', 'svhn_cropped',
                'mnist', 'fashion_mnist'):
    assert known in str(info.value)


# --- normalisation ------------------------------------------------------------------------


def test_computed_normalization_uses_training_ids_per_channel():
  inputs = np.zeros((4, 2, 2, 3), np.float32)
  inputs[:2] = np.arange(3)  # channel c is c in the training examples
  inputs[2:] = 100.0  # validation examples must not count
  inputs[1] += 2.0
  norm = loading.compute_normalization(inputs, np.array([0, 1], np.int32))
  np.testing.assert_allclose(norm.mean, [1.0, 2.0, 3.0])
  np.testing.assert_allclose(norm.std, [1.0, 1.0, 1.0])


def test_unknown_catalog_dataset_gets_computed_normalization(monkeypatch):
  monkeypatch.delitem(loading.NORMALIZATION, 'cifar10')
  with tfds.testing.mock_data(num_examples=30, policy=tfds.testing.MockPolicy.USE_CODE):
    dataset = jdata.load_dataset('cifar10', train_fraction=0.5)
    raw = tfds.builder('cifar10').as_data_source(split='train')[4]['image']
  train = dataset.pool.inputs[dataset.train_ids]
  np.testing.assert_allclose(train.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(train.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
  # The computed statistics are recorded: they map raw pixels to the stored inputs.
  norm = dataset.normalization
  assert len(norm.mean) == len(norm.std) == 3
  expected = (raw[2, 9] / 255.0 - np.array(norm.mean)) / np.array(norm.std)
  np.testing.assert_allclose(dataset.pool.inputs[4, 2, 9], expected, rtol=1e-5, atol=1e-5)


def test_normalization_is_one_class_under_every_name():
  assert jdata.Normalization is loading.Normalization is dataset_module.Normalization


def test_normalized_value_per_channel():
  norm = jdata.Normalization(mean=(0.5, 0.25, 0.0), std=(0.5, 0.125, 2.0))
  black = norm.normalized(0.0)
  assert black.dtype == np.float32 and black.shape == (3,)
  np.testing.assert_array_equal(black, [-1.0, -2.0, 0.0])
  np.testing.assert_array_equal(norm.normalized(1.0), [1.0, 6.0, 0.5])
  # One statistic for all channels gives one value, which broadcasts.
  np.testing.assert_array_equal(jdata.Normalization((0.5,), (0.25,)).normalized(0.0),
                                [-2.0])


def test_mnist1d_records_its_table_normalization(mnist1d):
  assert mnist1d.normalization == jdata.Normalization((0.0,), (1.0,))
  assert mnist1d.normalization == loading.NORMALIZATION['mnist1d']


def test_fashion_mnist_pads_with_exactly_normalised_black(tmp_path, monkeypatch):
  source = tmp_path / 'idx'
  source.mkdir()
  raw = _write_fake_fashion_mnist(source)
  monkeypatch.setenv(fashion_mnist_builder.DIR_ENV_VAR, str(source))
  dataset = jdata.load_dataset('fashion_mnist_local', data_dir=str(tmp_path / 'tfds'))

  assert dataset.normalization == jdata.Normalization((0.2860,), (0.3530,))
  black = dataset.normalization.normalized(0.0)
  np.testing.assert_allclose(black, [-0.2860 / 0.3530], rtol=1e-6)
  # Bit-identical to the stored value of every black pixel, so padding with it adds
  # nothing an image could not hold.
  is_black = raw['train'][0][..., None] == 0
  assert np.count_nonzero(is_black) > 5  # ~1/256 of 6 x 784 random pixels
  np.testing.assert_array_equal(np.unique(dataset.pool.inputs[is_black]), black)
  is_white = raw['train'][0][..., None] == 255
  np.testing.assert_array_equal(np.unique(dataset.pool.inputs[is_white]),
                                dataset.normalization.normalized(1.0))


def test_normalization_override_is_used_as_given():
  # CIFAR-10 std as in another reference than the table's (0.2470, 0.2435, 0.2616).
  override = jdata.Normalization(_CIFAR10_MEAN, (0.2023, 0.1994, 0.2010))
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    table = jdata.load_dataset('cifar10')
    dataset = jdata.load_dataset('cifar10', normalization=override)
    raw = tfds.builder('cifar10').as_data_source(split='test')[6]['image']

  assert dataset.normalization is override
  assert table.normalization == loading.NORMALIZATION['cifar10']
  expected = (raw[1, 30] / 255.0 - np.array(_CIFAR10_MEAN)) / np.array(override.std)
  np.testing.assert_allclose(dataset.test.inputs[6, 1, 30], expected, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(override.normalized(0.0), [-2.42907, -2.41825, -2.22139],
                             rtol=1e-5)
  # Same pixels, other constants: other input values, so another fingerprint.
  np.testing.assert_array_equal(dataset.pool.labels, table.pool.labels)
  assert jdata.dataset_fingerprint(dataset) != jdata.dataset_fingerprint(table)


def test_single_value_override_applies_to_every_channel():
  with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
    dataset = jdata.load_dataset(
        'cifar10', normalization=jdata.Normalization((0.5,), (0.25,)))
    raw = tfds.builder('cifar10').as_data_source(split='train')[2]['image']
  np.testing.assert_allclose(dataset.pool.inputs[2], (raw / 255.0 - 0.5) / 0.25,
                             rtol=1e-5, atol=1e-5)


def test_override_on_mnist1d_is_exact(mnist1d, mnist1d_dir):
  dataset = jdata.load_dataset('mnist1d', data_dir=mnist1d_dir,
                               normalization=jdata.Normalization([1.0], [2.0]))
  # The table's identity left the generator's values as they are, so float32
  # (x - 1) / 2 of the default load is exactly what the override must give.
  expected = (mnist1d.pool.inputs - np.float32(1.0)) / np.float32(2.0)
  np.testing.assert_array_equal(dataset.pool.inputs, expected)
  assert dataset.normalization == jdata.Normalization([1.0], [2.0])


@pytest.mark.parametrize('mean, std, problem', [
    ((0.0, 0.0), (1.0,), 'mean has 2 values but std has 1'),
    ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), '3 values per statistic, but these inputs have 1'),
    ((0.0,), (0.0,), 'std must be > 0'),
    ((0.0,), (-1.0,), 'std must be > 0'),
    ((float('nan'),), (1.0,), 'finite'),
    ((0.0,), (float('inf'),), 'finite'),
    ((), (), 'non-empty'),
    (0.5, 0.25, 'sequences'),
])
def test_bad_normalization_override(mnist1d_dir, mean, std, problem):
  with pytest.raises(ValueError, match='dataset.normalization') as info:
    jdata.load_dataset('mnist1d', data_dir=mnist1d_dir,
                       normalization=jdata.Normalization(mean, std))
  assert problem in str(info.value)


def test_bad_normalization_is_rejected_before_preparing(tmp_path, monkeypatch):
  def no_prepare(*args, **kwargs):
    raise AssertionError('prepared a dataset for a load that must fail')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', no_prepare)
  with pytest.raises(ValueError, match='dataset.normalization'):
    jdata.load_dataset('mnist1d', data_dir=str(tmp_path),
                       normalization=jdata.Normalization((0.5,), (0.0,)))


@pytest.mark.parametrize('num_channels', [1, 3])
def test_check_normalization_accepts_one_or_per_channel(num_channels):
  loading.check_normalization(jdata.Normalization((0.5,), (0.2,)), num_channels)
  loading.check_normalization(
      jdata.Normalization((0.5,) * num_channels, (0.2,) * num_channels), num_channels)


def test_a_train_subset_is_the_same_for_every_run_seed_and_keeps_the_validation_ids(
    mnist1d_dir):
  from jaxsel import train
  from jaxsel.config_errors import UserError
  from tests.conftest import tiny_run_config
  config = tiny_run_config(mnist1d_dir, **{"dataset.train_subset_size": 500})
  whole = train.load_data(tiny_run_config(mnist1d_dir))
  subset = train.load_data(config)
  again = train.load_data(tiny_run_config(mnist1d_dir, **{"dataset.train_subset_size": 500,
                                                          "seed": 9}))
  assert len(subset.train_ids) == 500 and np.all(np.diff(subset.train_ids) > 0)
  assert np.isin(subset.train_ids, whole.train_ids).all()
  np.testing.assert_array_equal(subset.train_ids, again.train_ids)
  np.testing.assert_array_equal(subset.validation_ids, whole.validation_ids)
  assert subset.fingerprint != whole.fingerprint
  with pytest.raises(UserError, match="train_subset_size"):
    train.load_data(tiny_run_config(mnist1d_dir, **{"dataset.train_subset_size": 3601}))
