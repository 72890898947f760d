"""Checks a config before any data is loaded or any step is compiled.

Every error names the offending field and what it allows, so a typo in a
``--config.field=value`` override fails in a second, not after an epoch. This module checks
the sections every run has; the method's own section, ``config.method``, is checked by the
method (``Method.check_config``), and the registries (models, losses, augmentations,
mixings, optimizers) check their own names and hyper-parameters.
"""

import math

import ml_collections

from jaxsel import augment, losses, methods, models, optim
from jaxsel.config_errors import choice, is_int, is_real, require
from jaxsel.data import variants

PROGRESS_BAR_MODES = ("auto", "on", "off")


def _positive_int(value, field: str) -> None:
  require(is_int(value) and value > 0, field, "a positive integer", value)


def _period(section: ml_collections.ConfigDict, prefix: str) -> None:
  for field in ("every_epochs", "every_steps"):
    require(is_int(section[field]) and section[field] >= 0, f"{prefix}.{field}",
            "an integer >= 0 (0: never)", section[field])


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
  require(is_real(noise.value_mean) and math.isfinite(noise.value_mean), "noise.value_mean",
          "a finite real", noise.value_mean)
  require(is_real(noise.value_std) and 0 <= noise.value_std < math.inf, "noise.value_std",
          "a finite real >= 0", noise.value_std)
  choice(noise.value_overflow, "noise.value_overflow", variants.OVERFLOWS)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ValueError`` naming the field for every value that cannot work."""
  choice(config.model.name, "model.name", models.MODELS)
  method = methods.get_method(config.method.name)
  choice(config.optimizer.name, "optimizer.name", optim.OPTIMIZERS)
  choice(config.schedule.name, "schedule.name", optim.SCHEDULES)
  choice(config.schedule.unit, "schedule.unit", optim.SCHEDULE_UNITS)
  choice(config.progress_bar, "progress_bar", PROGRESS_BAR_MODES)
  losses.from_config(config.loss)  # name and hyper-parameter ranges
  augment.get_mixing(config.mixing)
  choice(config.augmentation.name, "augmentation.name", augment.AUGMENTATIONS)
  choice(config.augmentation.pad_mode, "augmentation.pad_mode", augment.PAD_MODES)
  augment.check_cutout_size(config.augmentation.cutout_size)  # vs input size: with data
  late = config.schedule.late_multistep_decay
  require(isinstance(late, bool), "schedule.late_multistep_decay", "True or False", late)
  at_last = config.schedule.end_at_last_step
  require(isinstance(at_last, bool), "schedule.end_at_last_step", "True or False", at_last)

  # Seeds enter jitted code as int32 (one compiled selection for every seed).
  require(is_int(config.seed) and 0 <= config.seed < 2**31, "seed",
          "an integer in [0, 2**31)", config.seed)
  fraction = config.dataset.train_fraction
  require(is_real(fraction) and 0 < fraction <= 1, "dataset.train_fraction", "in (0, 1]",
          fraction)
  train = config.train
  for field in ("num_epochs", "num_train_steps"):
    require(is_int(train[field]) and train[field] >= 0, f"train.{field}",
            "an integer >= 0", train[field])
  require((train.num_epochs > 0) != (train.num_train_steps > 0),
          "train.num_epochs and config.train.num_train_steps",
          "one positive and the other 0", (train.num_epochs, train.num_train_steps))
  for field in ("batch_size", "eval_batch_size", "steps_per_chunk"):
    _positive_int(train[field], f"train.{field}")
  require(config.optimizer.learning_rate >= 0, "optimizer.learning_rate", ">= 0",
          config.optimizer.learning_rate)
  require(config.optimizer.weight_decay >= 0, "optimizer.weight_decay", ">= 0",
          config.optimizer.weight_decay)
  if train.num_epochs > 0:
    warmup = config.schedule.lr_warmup_epochs
    require(0 <= warmup < train.num_epochs, "schedule.lr_warmup_epochs",
            f"in [0, train.num_epochs={train.num_epochs})", warmup)
  _positive_int(config.metrics.num_bins, "metrics.num_bins")
  _period(config.eval, "eval")
  _period(config.checkpoint, "checkpoint")
  require(is_real(config.checkpoint.every_seconds) and config.checkpoint.every_seconds >= 0,
          "checkpoint.every_seconds", ">= 0 (0: never)", config.checkpoint.every_seconds)
  _positive_int(config.checkpoint.max_to_keep, "checkpoint.max_to_keep")
  _check_variant(config)
  method.check_config(config)


def check_against_data(config: ml_collections.ConfigDict, dataset) -> None:
  """Checks that need the dataset (still before any training)."""
  num_train = len(dataset.train_ids)
  require(config.train.batch_size <= num_train, "train.batch_size",
          f"at most the number of training examples ({num_train})", config.train.batch_size)
  # Raises for an augmentation that does not apply to these inputs (crops of 1-d signals).
  augment.get_augmentation(config.augmentation, input_shape=dataset.input_shape,
                           normalized_black=dataset.normalization.normalized(0.0),
                           normalization=dataset.normalization,
                           uint8_inputs=dataset.uint8_inputs)
  augment.get_mixing(config.mixing, input_shape=dataset.input_shape)  # RICAP's minimum
