"""Checks a config before any data is loaded or any step is compiled.

Every error is a ``UserError`` naming the offending field and what it allows, so a typo in
a ``--config.field=value`` override fails in a second, not after an epoch (or as a NaN
loss). Every field of every section has a check of its type and range, whether or not the
run uses it (a NaN left in an unused field is a mistake all the same); checks between
fields are made where a field is used (milestones only for the multistep schedule, ...).
This module checks the sections every run has; the method's own section, ``config.method``,
is checked here against the types of the method's defaults and then by the method
(``Method.check_config``), and the registries (models, losses, augmentations, mixings,
optimizers and schedules) check their own names and hyper-parameters.

``check_against_data`` runs once the data is loaded (and its variant built), before
anything is written.
"""

import math

import ml_collections

from jaxsel import augment, losses, methods, models, optim, randaugment
from jaxsel.config_errors import (UserError, choice, did_you_mean, is_finite_real, is_int,
                                  is_positive_int, is_real, one_line_repr, require)
from jaxsel.data import variants

PROGRESS_BAR_MODES = ("auto", "on", "off")


def _positive_int(value, field: str) -> None:
  require(is_positive_int(value), field, "a positive integer", value)


def _bool(value, field: str) -> None:
  require(isinstance(value, bool), field, "True or False", value)


def _period(section: ml_collections.ConfigDict, prefix: str) -> None:
  for field in ("every_epochs", "every_steps"):
    require(is_int(section[field]) and section[field] >= 0, f"{prefix}.{field}",
            "an integer >= 0 (0: never)", section[field])


def _check_dataset(data: ml_collections.ConfigDict) -> None:
  """``config.dataset``; the name itself is looked up when the data is loaded."""
  require(isinstance(data.name, str) and bool(data.name), "dataset.name",
          "a dataset name (str), e.g. 'mnist1d'", data.name)
  require(isinstance(data.data_dir, str), "dataset.data_dir",
          "a directory (str; '' = TFDS's default)", data.data_dir)
  fraction = data.train_fraction
  require(is_real(fraction) and 0 < fraction <= 1, "dataset.train_fraction", "in (0, 1]",
          fraction)
  require(is_int(data.train_subset_size) and data.train_subset_size >= 0,
          "dataset.train_subset_size", "an integer >= 0 (0: every training id)",
          data.train_subset_size)
  # numpy's default_rng takes any integer >= 0.
  require(is_int(data.split_seed) and data.split_seed >= 0, "dataset.split_seed",
          "an integer >= 0", data.split_seed)
  mean, std = data.normalization_mean, data.normalization_std
  require(isinstance(mean, (tuple, list)) and all(is_finite_real(m) for m in mean),
          "dataset.normalization_mean",
          "a list of finite numbers (one per channel, or one for all; [] = the dataset's)",
          mean)
  # Inputs are divided by the std: 0 makes them infinite and the loss NaN.
  require(isinstance(std, (tuple, list)) and all(is_finite_real(s) and s > 0 for s in std),
          "dataset.normalization_std",
          "a list of finite numbers > 0 (one per channel, or one for all; [] = the "
          "dataset's)", std)
  require(len(std) == len(mean), "dataset.normalization_std",
          f"as long as config.dataset.normalization_mean ({len(mean)} values; both [] for "
          "the dataset's own statistics)", std)
  require(isinstance(data.test_split, str) and bool(data.test_split), "dataset.test_split",
          "a split name of the dataset (str), e.g. 'test' or 'validation'", data.test_split)
  require(data.storage in ("auto", "device", "stream"), "dataset.storage",
          "'auto', 'device' or 'stream'", data.storage)
  require(is_real(data.memory_budget_mb) and data.memory_budget_mb > 0,
          "dataset.memory_budget_mb", "a number of MiB > 0", data.memory_budget_mb)
  require(is_int(data.read_threads) and data.read_threads >= 1, "dataset.read_threads",
          "an integer >= 1", data.read_threads)
  require(is_int(data.image_size) and data.image_size >= 0, "dataset.image_size",
          "an integer >= 0 (0: inputs as stored)", data.image_size)
  require(is_real(data.eval_crop_fraction) and 0 < data.eval_crop_fraction <= 1,
          "dataset.eval_crop_fraction", "in (0, 1]", data.eval_crop_fraction)


def _check_model(model: ml_collections.ConfigDict) -> None:
  choice(model.name, "model.name", models.MODELS)
  require(isinstance(model.kwargs, (ml_collections.ConfigDict, dict)), "model.kwargs",
          "a dict of the model's options", model.kwargs)
  models.check_options(model.name, model.kwargs)


def _check_like(section: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict,
                prefix: str) -> None:
  """Every field of ``section`` has the type of its default in ``defaults`` (a float
  default: a finite real), and no field is unknown or missing."""
  for name in sorted(section.keys()):
    if name not in defaults:
      raise UserError(f"config.{prefix}.{name}: config.{prefix} has no field {name!r}; "
                      f"{did_you_mean(name, defaults.keys())}valid: "
                      f"{', '.join(sorted(defaults.keys()))}")
  for name in sorted(defaults.keys()):
    field, default = f"{prefix}.{name}", defaults[name]
    if name not in section:
      raise UserError(f"config.{field} is missing (its default: {one_line_repr(default)})")
    value = section[name]
    if isinstance(default, ml_collections.ConfigDict):
      require(isinstance(value, ml_collections.ConfigDict), field, "a section of fields",
              value)
      _check_like(value, default, field)
    elif isinstance(default, bool):
      _bool(value, field)
    elif is_int(default):
      require(is_int(value), field, "an integer", value)
    elif isinstance(default, float):
      require(is_finite_real(value), field, "a finite real", value)
    elif isinstance(default, str):
      require(isinstance(value, str), field, "a str", value)


def _check_variant(config: ml_collections.ConfigDict) -> None:
  """``config.removal`` and ``config.noise`` (the dataset variant, ALGORITHMS.md D.6)."""
  removal, noise = config.removal, config.noise
  for field in ("remove_n", "remove_subsample"):
    require(is_int(removal[field]) and removal[field] >= 0, f"removal.{field}",
            "an integer >= 0", removal[field])
  lowest = removal.keep_lowest_n
  require(is_int(lowest) and lowest >= -1, "removal.keep_lowest_n",
          "an integer >= 0 (the first rank removed), or -1 (random removal)", lowest)
  require(isinstance(removal.ordering_path, str), "removal.ordering_path",
          "a path (str; '' = none)", removal.ordering_path)
  subsample = removal.remove_subsample
  if subsample > 0:
    require(subsample <= lowest, "removal.remove_subsample",
            f"at most config.removal.keep_lowest_n={lowest} (it removes that many of the "
            "keep_lowest_n lowest-ranked)", subsample)
    require(removal.remove_n == 0, "removal.remove_n",
            "0 when config.removal.remove_subsample > 0 (the subsample replaces the "
            "window)",
            removal.remove_n)
  if lowest >= 0 and (removal.remove_n > 0 or subsample > 0):
    require(bool(removal.ordering_path), "removal.ordering_path",
            "an ordering file (a score file with table 'rank') when "
            "config.removal.keep_lowest_n >= 0 and remove_n or remove_subsample > 0 "
            "(keep_lowest_n=-1: random removal, no ordering)", removal.ordering_path)
  for field in ("label_percent", "value_percent"):
    require(is_real(noise[field]) and 0 <= noise[field] <= 100, f"noise.{field}",
            "in [0, 100]", noise[field])
  require(is_finite_real(noise.value_mean), "noise.value_mean", "a finite real",
          noise.value_mean)
  require(is_finite_real(noise.value_std) and noise.value_std >= 0, "noise.value_std",
          "a finite real >= 0", noise.value_std)
  choice(noise.value_overflow, "noise.value_overflow", variants.OVERFLOWS)


def _check_augmentation(section: ml_collections.ConfigDict) -> None:
  """``config.augmentation``; what needs the inputs' shape waits for the data."""
  choice(section.name, "augmentation.name", augment.AUGMENTATIONS)
  augment.check_crop_flip(section)
  augment.check_cutout_size(section.cutout_size)
  num_ops, magnitude = section.randaugment_num_ops, section.randaugment_magnitude
  require(is_int(num_ops) and num_ops >= 0, "augmentation.randaugment_num_ops",
          "an integer >= 0 (0: off)", num_ops)
  require(is_real(magnitude) and 0 <= magnitude <= randaugment.MAX_MAGNITUDE,
          "augmentation.randaugment_magnitude",
          f"a number in [0, {randaugment.MAX_MAGNITUDE}]", magnitude)


def _check_train(train: ml_collections.ConfigDict) -> None:
  for field in ("num_epochs", "num_train_steps"):
    require(is_int(train[field]) and train[field] >= 0, f"train.{field}",
            "an integer >= 0", train[field])
  require((train.num_epochs > 0) != (train.num_train_steps > 0),
          "train.num_epochs and config.train.num_train_steps",
          "one positive and the other 0", (train.num_epochs, train.num_train_steps))
  for field in ("batch_size", "eval_batch_size", "steps_per_chunk"):
    _positive_int(train[field], f"train.{field}")
  _bool(train.drop_remainder, "train.drop_remainder")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``UserError`` naming the field for every value that cannot work."""
  # Seeds enter jitted code as int32 (one compiled selection for every seed).
  require(is_int(config.seed) and 0 <= config.seed < 2**31, "seed",
          "an integer in [0, 2**31)", config.seed)
  require(is_int(config.num_devices) and config.num_devices >= 0, "num_devices",
          "an integer >= 0 (0: every device)", config.num_devices)
  _check_dataset(config.dataset)
  _check_model(config.model)
  method = methods.get_method(config.method.name)
  _check_like(config.method, method.default_config(), "method")
  _check_train(config.train)
  optim.check_optimizer(config.optimizer)
  # A run given in steps knows its epochs only with the data: make_schedule checks the
  # rest then (before anything is written).
  optim.check_schedule(config, num_epochs=config.train.num_epochs or None)
  losses.check_config(config.loss)
  augment.get_mixing(config.mixing)  # name and alpha; RICAP's input size with the data
  _check_augmentation(config.augmentation)
  _positive_int(config.metrics.num_bins, "metrics.num_bins")
  _bool(config.metrics.reference_binning, "metrics.reference_binning")
  _period(config.eval, "eval")
  _period(config.checkpoint, "checkpoint")
  seconds = config.checkpoint.every_seconds
  require(is_real(seconds) and not math.isnan(seconds) and seconds >= 0,
          "checkpoint.every_seconds", ">= 0 (0: never)", seconds)
  _positive_int(config.checkpoint.max_to_keep, "checkpoint.max_to_keep")
  _bool(config.figures, "figures")
  choice(config.progress_bar, "progress_bar", PROGRESS_BAR_MODES)
  _check_variant(config)
  method.check_config(config)


def check_against_data(config: ml_collections.ConfigDict, dataset) -> None:
  """Checks that need the dataset (still before any training)."""
  num_train = len(dataset.train_ids)
  # Every optimizer step takes one full batch of training ids (a smaller last batch is
  # padded, never the only one). A removal that leaves too few is refused earlier,
  # naming the removal (variants.check_removal).
  require(config.train.batch_size <= num_train, "train.batch_size",
          f"at most the number of training examples ({num_train})", config.train.batch_size)
  models.check_input_shape(config.model.name, config.model.kwargs, dataset.input_shape)
  # Raises for an augmentation that does not apply to these inputs (crops of 1-d signals).
  augment.get_augmentation(config.augmentation, input_shape=dataset.input_shape,
                           normalized_black=dataset.normalization.normalized(0.0),
                           normalization=dataset.normalization,
                           uint8_inputs=dataset.uint8_inputs)
  augment.get_mixing(config.mixing, input_shape=dataset.input_shape)  # RICAP's minimum
