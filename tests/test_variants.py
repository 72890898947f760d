"""Dataset variants (ALGORITHMS.md D.6): removal windows against a hand-written ordering,
random removal, the subsample, label noise, value noise on hand-made uint8 images and float
signals, config checks, and an end-to-end run that removes and relabels."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import default
from jaxsel import artifacts, config_checks, coresets, train
from jaxsel.data import ArraySplit, Dataset, Normalization, load_dataset, loading, variants
from jaxsel.config_errors import UserError
from jaxsel.state import host_rng
from tests.conftest import override

# Ten training ids among 16 pool rows, and a hand-written ordering O of them.
TRAIN_IDS = np.array([0, 2, 3, 5, 7, 8, 9, 11, 12, 14], np.int32)
VALIDATION_IDS = np.array([1, 4, 6, 10, 13, 15], np.int32)
ORDER = np.array([9, 2, 14, 0, 7, 12, 3, 11, 5, 8], np.int32)  # ascending score
IMAGE_NORM = Normalization((0.5,), (0.25,))
IDENTITY = Normalization((0.0,), (1.0,))


def _config(**fields):
  return override(default.get_config(), **fields)


def _removal(**fields):
  return {k: fields.get(k, 0) for k in ("remove_n", "keep_lowest_n", "remove_subsample")}


def _images(values: np.ndarray) -> np.ndarray:
  """uint8 images as `load_dataset` stores them: scaled to [0, 1], then normalised."""
  return loading.normalize(loading.to_float(values), IMAGE_NORM)


def _dataset(pool_inputs, *, test_inputs=None, uint8=False, num_classes=3,
             normalization=None) -> Dataset:
  labels = (np.arange(16) % num_classes).astype(np.int32)
  test_inputs = pool_inputs[:4] if test_inputs is None else test_inputs
  return Dataset(
      name="toy", num_classes=num_classes, pool=ArraySplit(pool_inputs, labels),
      train_ids=TRAIN_IDS, validation_ids=VALIDATION_IDS,
      test=ArraySplit(test_inputs, labels[:len(test_inputs)]),
      normalization=normalization or (IMAGE_NORM if uint8 else IDENTITY),
      uint8_inputs=uint8)


def _signal_dataset(num_classes=3) -> Dataset:
  return _dataset(np.linspace(-1, 1, 16 * 8, dtype=np.float32).reshape(16, 8),
                  num_classes=num_classes)


def _save_ordering(path, dataset, order=ORDER, fingerprint=None) -> str:
  rank = np.empty(len(order), np.int32)
  rank[np.searchsorted(dataset.train_ids, order)] = np.arange(len(order))
  return artifacts.save(str(path), artifacts.ScoreFile(
      example_ids=dataset.train_ids, tables={"rank": rank, "score": rank.astype(np.float32)},
      fingerprint=fingerprint or dataset.fingerprint, dataset_name=dataset.name,
      num_epochs=3, seeds=(0,), config={}, extra={"score": "hand"}))


# --- removal -----------------------------------------------------------------------------


def test_window_in_the_middle_removes_exactly_those_ranks():
  kept = variants.kept_ids(TRAIN_IDS, order=ORDER, **_removal(remove_n=4, keep_lowest_n=3))
  # O[3:7] = 0, 7, 12, 3.
  np.testing.assert_array_equal(kept, [2, 5, 8, 9, 11, 14])


def test_window_edges():
  # Ending exactly at N: O[8:10] = 5, 8.
  np.testing.assert_array_equal(
      variants.kept_ids(TRAIN_IDS, order=ORDER, **_removal(remove_n=2, keep_lowest_n=8)),
      [0, 2, 3, 7, 9, 11, 12, 14])
  # r = 0 removes nothing, wherever the window starts.
  np.testing.assert_array_equal(
      variants.kept_ids(TRAIN_IDS, order=ORDER, **_removal(remove_n=0, keep_lowest_n=25)),
      TRAIN_IDS)
  with pytest.raises(ValueError, match=r"keep_lowest_n=8 \+ config.removal.remove_n=3 = 11 "
                     r"runs past the end .* N=10 training examples"):
    variants.kept_ids(TRAIN_IDS, order=ORDER, **_removal(remove_n=3, keep_lowest_n=8))
  np.testing.assert_array_equal(coresets.remove_window(np.arange(4), start=1, size=3), [0])
  with pytest.raises(ValueError, match="does not fit"):
    coresets.remove_window(np.arange(4), start=2, size=3)


def test_random_removal_is_sorted_seeded_and_independent_of_the_ordering():
  def kept(seed):
    return variants.kept_ids(TRAIN_IDS, rng=host_rng(seed, "removal"),
                             **_removal(remove_n=4, keep_lowest_n=-1))

  first = kept(0)
  assert len(first) == 6 and np.all(np.diff(first) > 0)
  assert set(first) <= set(TRAIN_IDS.tolist())
  np.testing.assert_array_equal(kept(0), first)
  assert any(not np.array_equal(kept(seed), first) for seed in (1, 2))
  # The first N - r of one permutation of the stream.
  expected = np.sort(TRAIN_IDS[host_rng(0, "removal").permutation(10)[:6]])
  np.testing.assert_array_equal(first, expected)
  with pytest.raises(ValueError, match=r"config.removal.remove_n must be at most .* N=10"):
    variants.kept_ids(TRAIN_IDS, rng=host_rng(0, "removal"),
                      **_removal(remove_n=11, keep_lowest_n=-1))


def test_subsample_removes_s_of_the_lowest_k_and_keeps_the_rest():
  for seed in range(5):
    kept = variants.kept_ids(TRAIN_IDS, order=ORDER, rng=host_rng(seed, "removal"),
                             **_removal(keep_lowest_n=6, remove_subsample=2))
    assert len(kept) == 8 and np.all(np.diff(kept) > 0)
    removed = np.setdiff1d(TRAIN_IDS, kept)
    assert len(removed) == 2 and set(removed) <= set(ORDER[:6].tolist())
    assert set(ORDER[6:].tolist()) <= set(kept.tolist())
  with pytest.raises(ValueError, match="config.removal.remove_n must be 0 when "
                     "config.removal.remove_subsample > 0 .*replaces the window.*got 3"):
    config_checks.check_config(_config(**{"removal.ordering_path": "o.npz",
                                          "removal.keep_lowest_n": 6,
                                          "removal.remove_subsample": 2,
                                          "removal.remove_n": 3}))


def test_apply_removes_the_window_and_records_ranks(tmp_path):
  dataset = _signal_dataset()
  path = _save_ordering(tmp_path / "order.npz", dataset)
  config = _config(**{"removal.ordering_path": path, "removal.remove_n": 4,
                      "removal.keep_lowest_n": 3})
  variant, record = variants.apply(config, dataset)
  np.testing.assert_array_equal(variant.train_ids, [2, 5, 8, 9, 11, 14])
  assert variant.pool is dataset.pool and variant.test is dataset.test
  np.testing.assert_array_equal(variant.validation_ids, VALIDATION_IDS)
  np.testing.assert_array_equal(record.removed_ids, [0, 3, 7, 12])
  np.testing.assert_array_equal(record.removed_rank, [3, 6, 4, 5])
  assert variant.fingerprint != dataset.fingerprint
  assert (record.info["num_train_before"], record.info["num_removed"],
          record.info["num_kept"]) == (10, 4, 6)
  assert record.info["ordering"]["extra"] == {"score": "hand"}
  assert record.info["removal_mode"] == "window"

  variants.write_records(record, str(tmp_path / "run"))
  removed = artifacts.load(str(tmp_path / "run" / variants.REMOVED_FILE),
                           fingerprint=dataset.fingerprint, required=("rank",))
  np.testing.assert_array_equal(removed.example_ids, [0, 3, 7, 12])
  np.testing.assert_array_equal(removed.table("rank"), [3, 6, 4, 5])
  assert sorted(os.listdir(tmp_path / "run")) == [variants.INFO_FILE, variants.REMOVED_FILE]


def test_apply_random_removal_needs_no_ordering(tmp_path):
  config = _config(**{"removal.remove_n": 3, "removal.keep_lowest_n": -1})
  variant, record = variants.apply(config, _signal_dataset())
  assert len(variant.train_ids) == 7
  np.testing.assert_array_equal(record.removed_rank, [-1, -1, -1])
  np.testing.assert_array_equal(np.union1d(record.removed_ids, variant.train_ids), TRAIN_IDS)
  assert record.info["removal_mode"] == "random" and record.info["ordering"] is None


def test_nothing_asked_returns_the_same_dataset_and_writes_nothing(tmp_path):
  dataset = _signal_dataset()
  variant, record = variants.apply(_config(), dataset)
  assert variant is dataset and record is None
  variants.write_records(record, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_ordering_from_other_data_or_with_bad_ranks_is_refused(tmp_path):
  dataset = _signal_dataset()
  other = _save_ordering(tmp_path / "other.npz", dataset, fingerprint="0123456789abcdef")
  config = _config(**{"removal.ordering_path": other, "removal.remove_n": 2})
  with pytest.raises(ValueError, match="config.removal.ordering_path .*fingerprint "
                     "0123456789abcdef"):
    variants.apply(config, dataset)
  tied = artifacts.save(str(tmp_path / "tied.npz"), artifacts.ScoreFile(
      example_ids=TRAIN_IDS, tables={"rank": np.zeros(10, np.int32)},
      fingerprint=dataset.fingerprint, dataset_name="toy", num_epochs=1, seeds=(0,),
      config={}))
  with pytest.raises(ValueError, match="config.removal.ordering_path: the table 'rank' must "
                     "be a permutation of 0..9"):
    variants.apply(_config(**{"removal.ordering_path": tied, "removal.remove_n": 2}),
                   dataset)


# --- label noise -------------------------------------------------------------------------


def test_label_noise_changes_exactly_the_count_to_other_classes_uniformly():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, 30000).astype(np.int32)
  before = labels.copy()
  ids = np.arange(5, 20005)
  noisy, changed = variants.label_noise(labels, ids, 30.0, 10, np.random.default_rng(1))
  np.testing.assert_array_equal(labels, before)  # not changed in place
  assert len(changed) == 6000 and np.all(np.diff(changed) > 0)
  assert set(changed.tolist()) <= set(ids.tolist())
  assert np.all(noisy[changed] != labels[changed])
  untouched = np.setdiff1d(np.arange(30000), changed)
  np.testing.assert_array_equal(noisy[untouched], labels[untouched])
  offsets = np.bincount((noisy[changed] - labels[changed]) % 10, minlength=10)
  # 6000 / 9 = 666.7 each, std ~24; 0 never.
  assert offsets[0] == 0 and np.all(np.abs(offsets[1:] - 6000 / 9) < 120), offsets
  # int(p * N / 100): 33.3 % of 10 -> 3; 0.5 % of 100 -> 0 (nothing changed, same array).
  assert len(variants.label_noise(labels, ids[:10], 33.3, 10, rng)[1]) == 3
  same, none = variants.label_noise(labels, ids[:100], 0.5, 10, rng)
  assert same is labels and none.size == 0


def test_apply_label_noise_after_removal_only_on_training_ids(tmp_path):
  dataset = _signal_dataset(num_classes=4)
  labels_before = dataset.pool.labels.copy()
  test_before = dataset.test.labels.copy()
  config = _config(**{"removal.remove_n": 3, "removal.keep_lowest_n": -1,
                      "noise.label_percent": 50.0})
  variant, record = variants.apply(config, dataset)
  np.testing.assert_array_equal(dataset.pool.labels, labels_before)
  assert len(record.changed_ids) == 3  # int(50 * 7 / 100)
  assert set(record.changed_ids.tolist()) <= set(variant.train_ids.tolist())
  np.testing.assert_array_equal(record.original_labels, labels_before[record.changed_ids])
  np.testing.assert_array_equal(record.noisy_labels, variant.pool.labels[record.changed_ids])
  assert np.all(record.noisy_labels != record.original_labels)
  unchanged = np.setdiff1d(np.arange(16), record.changed_ids)
  np.testing.assert_array_equal(variant.pool.labels[unchanged], labels_before[unchanged])
  np.testing.assert_array_equal(variant.pool.labels[VALIDATION_IDS],
                                labels_before[VALIDATION_IDS])
  np.testing.assert_array_equal(variant.test.labels, test_before)
  assert record.info["labels_changed"] == 3

  variants.write_records(record, str(tmp_path))
  stored = artifacts.load(str(tmp_path / variants.LABEL_NOISE_FILE),
                          fingerprint=variant.fingerprint,
                          required=("original_label", "noisy_label"))
  np.testing.assert_array_equal(stored.example_ids, record.changed_ids)
  np.testing.assert_array_equal(stored.table("noisy_label"), record.noisy_labels)
  assert stored.table("original_label").dtype == np.int32


# --- value noise -------------------------------------------------------------------------


@pytest.mark.parametrize("overflow,value,mean,expected", [
    ("wrap", 200, 120.0, 64),  # 320 mod 256
    ("clip", 200, 120.0, 255),
    ("wrap", 100, -130.5, 226),  # trunc(-30.5) = -30 (toward zero), mod 256
    ("clip", 100, -130.5, 0),
    ("wrap", 10, 0.9, 10),  # trunc(10.9) = 10
])
def test_uint8_value_noise_is_exact(overflow, value, mean, expected):
  # [2, 3, 1] images: 6 locations; 50 % -> 3 changed pixels per training image.
  stored = np.full((16, 2, 3, 1), value, np.uint8)
  dataset = _dataset(_images(stored), test_inputs=_images(stored[:4]), uint8=True)
  pool_before = dataset.pool.inputs.copy()
  config = _config(**{"noise.value_percent": 50.0, "noise.value_mean": mean,
                      "noise.value_overflow": overflow})
  variant, record = variants.apply(config, dataset)
  np.testing.assert_array_equal(dataset.pool.inputs, pool_before)
  assert record.info["value_locations_per_example"] == 3
  changed = variant.pool.inputs != pool_before
  if expected != value:
    assert changed.reshape(16, -1).sum(1).tolist() == [
        3 if i in TRAIN_IDS else 0 for i in range(16)]
  # Bit-identical to a loaded image of the expected value.
  new_value = _images(np.array([expected], np.uint8))[0]
  train = variant.pool.inputs[TRAIN_IDS]
  assert np.all((train == new_value) | (train == pool_before[TRAIN_IDS]))
  assert np.sum(train == new_value) == (30 if expected != value else 60)
  np.testing.assert_array_equal(variant.pool.inputs[VALIDATION_IDS],
                                pool_before[VALIDATION_IDS])
  assert variant.test is dataset.test


def test_value_noise_puts_one_channel_per_location():
  # [2, 2, 3] images of 200: 4 locations, 75 % -> 3, each at one of 3 channels.
  stored = np.full((16, 2, 2, 3), 200, np.uint8)
  dataset = _dataset(_images(stored), uint8=True)
  noisy, count = variants.value_noise(
      dataset.pool.inputs, TRAIN_IDS, percent=75.0, mean=120.0, std=0.0, overflow="clip",
      normalization=IMAGE_NORM, uint8=True, value_range=None, rng=np.random.default_rng(0))
  assert count == 3
  changed = (noisy != dataset.pool.inputs)[TRAIN_IDS]  # [10, 2, 2, 3]
  per_location = changed.sum(-1).reshape(10, 4)
  assert np.all(per_location.sum(1) == 3) and per_location.max() == 1
  assert changed.any(axis=(0, 1, 2)).all()  # every channel drawn somewhere in 30 draws


@pytest.mark.parametrize("overflow,expected", [("clip", 1.0), ("wrap", -0.75)])
def test_float_value_noise_clips_or_wraps_to_the_training_range(overflow, expected):
  # 8 positions of value 0.75, 25 % -> 2; 0.75 + 0.5 = 1.25 over [-1, 1]:
  # clip -> 1, wrap -> -1 + (2.25 mod 2) = -0.75.
  inputs = np.full((16, 8), 0.75, np.float32)
  noisy, count = variants.value_noise(
      inputs, TRAIN_IDS, percent=25.0, mean=0.5, std=0.0, overflow=overflow,
      normalization=IDENTITY, uint8=False, value_range=(-1.0, 1.0),
      rng=np.random.default_rng(0))
  assert count == 2
  assert np.sum(noisy[TRAIN_IDS] == expected, axis=1).tolist() == [2] * 10
  np.testing.assert_array_equal(noisy[VALIDATION_IDS], inputs[VALIDATION_IDS])
  assert np.all(inputs == 0.75)


def test_apply_float_value_noise_uses_the_training_range():
  dataset = _signal_dataset()  # linspace(-1, 1) over the 16 x 8 pool
  config = _config(**{"noise.value_percent": 50.0, "noise.value_mean": 5.0,
                      "noise.value_std": 0.0, "noise.value_overflow": "clip"})
  variant, record = variants.apply(config, dataset)
  train = dataset.pool.inputs[TRAIN_IDS]
  high = train.max()  # 119/127 (row 14, last position), below the pool's max of 1
  assert high < dataset.pool.inputs.max()
  assert record.info["value_range"] == [float(train.min()), float(high)]
  assert record.info["value_scale"] == "float"
  assert record.info["value_locations_per_example"] == 4  # floor(50 % of 8)
  # +5 clipped to the training maximum at 4 positions of each training signal (in row 14,
  # which holds the maximum itself, that position may be one of them and stays the same).
  changed = variant.pool.inputs != dataset.pool.inputs
  assert changed.sum(1)[[1, 4, 6, 10, 13, 15]].tolist() == [0] * 6  # validation rows
  assert changed.sum(1)[TRAIN_IDS[:-1]].tolist() == [4] * 9
  assert np.all(variant.pool.inputs[changed] == high)
  hits = (variant.pool.inputs[TRAIN_IDS] == high).sum(1)
  assert hits[:-1].tolist() == [4] * 9 and hits[-1] in (4, 5)


def test_loaded_uint8_images_get_bit_identical_noisy_pixels():
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    dataset = load_dataset("cifar10")
  assert dataset.uint8_inputs and dataset.input_shape == (32, 32, 3)
  config = _config(**{"noise.value_percent": 10.0, "noise.value_std": 3.0})
  variant, record = variants.apply(config, dataset)
  assert record.info["value_locations_per_example"] == 102  # floor(10 % of 1024)
  changed = (variant.pool.inputs != dataset.pool.inputs).reshape(20, -1).sum(1)
  train = np.isin(np.arange(20), dataset.train_ids)
  assert np.all(changed[train] == 102) and np.all(changed[~train] == 0)
  norm = dataset.normalization
  values = np.rint((variant.pool.inputs.astype(np.float64) * np.float32(norm.std)
                    + np.float32(norm.mean)) * 255).astype(np.uint8)
  np.testing.assert_array_equal(loading.normalize(loading.to_float(values), norm),
                                variant.pool.inputs)


# --- config checks and end to end --------------------------------------------------------


@pytest.mark.parametrize("fields,message", [
    ({"noise.label_percent": 101.0}, "config.noise.label_percent must be in [0, 100]"),
    ({"noise.value_percent": -1.0}, "config.noise.value_percent must be in [0, 100]"),
    ({"noise.value_std": -0.5}, "config.noise.value_std must be a finite real >= 0"),
    ({"noise.value_mean": float("nan")}, "config.noise.value_mean must be a finite real"),
    ({"noise.value_overflow": "bounce"},
     "unknown config.noise.value_overflow 'bounce'; valid: clip, wrap"),
    ({"removal.keep_lowest_n": -2}, "config.removal.keep_lowest_n must be an integer >= 0 "
     "(the first rank removed), or -1 (random removal), got -2"),
    ({"removal.remove_n": -1}, "config.removal.remove_n must be an integer >= 0"),
    ({"removal.remove_n": 5}, "config.removal.ordering_path must be an ordering file"),
    ({"removal.remove_subsample": 3, "removal.keep_lowest_n": 2,
      "removal.ordering_path": "o.npz"},
     "config.removal.remove_subsample must be at most config.removal.keep_lowest_n=2"),
])
def test_config_checks_name_the_field(fields, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    config_checks.check_config(_config(**fields))


def test_random_removal_and_noise_only_pass_the_checks():
  config_checks.check_config(_config(**{"removal.remove_n": 5, "removal.keep_lowest_n": -1,
                                        "noise.label_percent": 100.0,
                                        "noise.value_overflow": "clip"}))


@pytest.fixture(scope="module")
def mnist1d_dataset(mnist1d_dir):
  return load_dataset("mnist1d", data_dir=mnist1d_dir)


def _mnist1d_ordering(path, dataset):
  order = np.random.default_rng(3).permutation(dataset.train_ids).astype(np.int32)
  return _save_ordering(path, dataset, order=order), order


def test_end_to_end_removal_by_ordering_with_label_noise(tiny_config, mnist1d_dataset,
                                                         tmp_path):
  assert mnist1d_dataset.input_shape == (40,) and not mnist1d_dataset.uint8_inputs
  path, order = _mnist1d_ordering(tmp_path / "order.npz", mnist1d_dataset)
  config = override(tiny_config, **{
      "train.num_epochs": 1, "figures": False, "removal.ordering_path": path,
      "removal.keep_lowest_n": 100, "removal.remove_n": 600, "noise.label_percent": 20.0})
  workdir = tmp_path / "run"
  labels_before = mnist1d_dataset.pool.labels.copy()
  summary = train.train_and_evaluate(config, str(workdir), dataset=mnist1d_dataset)
  np.testing.assert_array_equal(mnist1d_dataset.pool.labels, labels_before)
  assert summary["num_train"] == 3000 and summary["num_train_examples_seen"] == 3000

  removed = artifacts.load(str(workdir / "removed.npz"),
                           fingerprint=mnist1d_dataset.fingerprint, required=("rank",))
  np.testing.assert_array_equal(removed.example_ids, np.sort(order[100:700]))
  assert sorted(removed.table("rank").tolist()) == list(range(100, 700))
  noisy = artifacts.load(str(workdir / "label_noise.npz"),
                         fingerprint=summary["dataset_fingerprint"])
  assert len(noisy.example_ids) == 600  # int(20 * 3000 / 100)
  assert not set(noisy.example_ids.tolist()) & set(removed.example_ids.tolist())
  np.testing.assert_array_equal(noisy.table("original_label"),
                                labels_before[noisy.example_ids])
  assert np.all(noisy.table("noisy_label") != noisy.table("original_label"))
  with open(workdir / "data_variant.json") as f:
    info = json.load(f)
  assert (info["num_train_before"], info["num_removed"], info["num_kept"],
          info["labels_changed"]) == (3600, 600, 3000, 600)
  assert info["fingerprint_after"] == summary["dataset_fingerprint"]
  assert info["ordering_path"] == path and info["ordering"]["extra"] == {"score": "hand"}


@pytest.mark.parametrize("case", ["percent", "keep_lowest_n", "other_data", "past_end"])
def test_bad_variants_fail_before_training_and_leave_nothing(tiny_config, mnist1d_dataset,
                                                             tmp_path, case):
  path, _ = _mnist1d_ordering(tmp_path / "order.npz", mnist1d_dataset)
  other_path = _save_ordering(tmp_path / "other.npz", mnist1d_dataset,
                              order=np.sort(mnist1d_dataset.train_ids),
                              fingerprint="fedcba9876543210")
  fields, message = {
      "percent": ({"noise.label_percent": 101.0}, "config.noise.label_percent"),
      "keep_lowest_n": ({"removal.keep_lowest_n": -2}, "config.removal.keep_lowest_n"),
      "other_data": ({"removal.ordering_path": other_path, "removal.remove_n": 10},
                     "config.removal.ordering_path .*fingerprint fedcba9876543210"),
      "past_end": ({"removal.ordering_path": path, "removal.keep_lowest_n": 3500,
                    "removal.remove_n": 101},
                   r"config.removal.keep_lowest_n=3500 \+ config.removal.remove_n=101 .*"
                   "N=3600"),
  }[case]
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(override(tiny_config, **fields), str(workdir),
                             dataset=mnist1d_dataset)
  assert not workdir.exists() or not os.listdir(workdir)


@pytest.mark.parametrize("sizes,field", [
    (dict(remove_n=9, keep_lowest_n=-1), "remove_n"),  # random removal
    (dict(remove_n=9, keep_lowest_n=0), "remove_n"),  # a window
    (dict(keep_lowest_n=10, remove_subsample=9), "remove_subsample"),
])
def test_a_removal_must_leave_one_batch(sizes, field):
  # N = 10 training ids and batches of 2: at most 8 may go, whichever way.
  sizes = _removal(**sizes)
  with pytest.raises(UserError, match=re.escape(
      f"config.removal.{field} must be at most N - config.train.batch_size = 10 - 2 = 8 ")
      + ".* got 9$"):
    variants.check_removal(10, **sizes, min_kept=2)
  variants.check_removal(10, **{**sizes, field: 8}, min_kept=2)
  # A training set smaller than one batch is the batch size's fault, reported later.
  variants.check_removal(10, **sizes, min_kept=11)


def test_removing_every_example_names_the_removal_not_the_batch_size():
  config = _config(**{"removal.remove_n": 10, "removal.keep_lowest_n": -1,
                      "train.batch_size": 4})
  with pytest.raises(UserError, match=r"^config.removal.remove_n must be at most N - "
                                      r"config.train.batch_size = 10 - 4 = 6 \(random "
                                      r"removal; .*got 10$"):
    variants.apply(config, _signal_dataset())
  variant, _ = variants.apply(override(config, **{"removal.remove_n": 6}), _signal_dataset())
  assert len(variant.train_ids) == 4
