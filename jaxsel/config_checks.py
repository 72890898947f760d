"""Checks a config before any data is loaded or any step is compiled.

Every error names the offending field and what it allows, so a typo in a
``--config.field=value`` override fails in a second, not after an epoch. This module checks
the sections every run has; the method's own section, ``config.method``, is checked by the
method (``Method.check_config``), and the registries (models, losses, augmentations,
mixings, optimizers) check their own names and hyper-parameters.
"""

import ml_collections

from jaxsel import augment, losses, methods, models, optim
from jaxsel.config_errors import choice, is_int, is_real, require

PROGRESS_BAR_MODES = ("auto", "on", "off")


def _positive_int(value, field: str) -> None:
  require(is_int(value) and value > 0, field, "a positive integer", value)


def _period(section: ml_collections.ConfigDict, prefix: str) -> None:
  for field in ("every_epochs", "every_steps"):
    require(is_int(section[field]) and section[field] >= 0, f"{prefix}.{field}",
            "an integer >= 0 (0: never)", section[field])


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
  method.check_config(config)


def check_against_data(config: ml_collections.ConfigDict, dataset) -> None:
  """Checks that need the dataset (still before any training)."""
  num_train = len(dataset.train_ids)
  require(config.train.batch_size <= num_train, "train.batch_size",
          f"at most the number of training examples ({num_train})", config.train.batch_size)
  # Raises for an augmentation that does not apply to these inputs (crops of 1-d signals).
  augment.get_augmentation(config.augmentation, input_shape=dataset.input_shape,
                           normalized_black=dataset.normalization.normalized(0.0))
