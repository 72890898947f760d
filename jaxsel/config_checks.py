"""Checks a config before any data is loaded or any step is compiled.

Every error names the offending field and what it allows, so a typo in a
``--config.field=value`` override fails in a second, not after an epoch.
"""

import ml_collections

from jaxsel import losses, models, optim

PROGRESS_BAR_MODES = ("auto", "on", "off")


def _require(condition: bool, field: str, allowed: str, value) -> None:
  if not condition:
    raise ValueError(f"config.{field} must be {allowed}, got {value!r}")


def _choice(value, field: str, valid) -> None:
  if value not in valid:
    raise ValueError(
        f"unknown config.{field} {value!r}; valid: {', '.join(sorted(valid))}")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ValueError`` naming the field for every value that cannot work."""
  _choice(config.model.name, "model.name", models.MODELS)
  _choice(config.loss.name, "loss.name", losses.LOSSES)
  _choice(config.optimizer.name, "optimizer.name", optim.OPTIMIZERS)
  _choice(config.schedule.name, "schedule.name", optim.SCHEDULES)
  _choice(config.schedule.unit, "schedule.unit", optim.SCHEDULE_UNITS)
  _choice(config.progress_bar, "progress_bar", PROGRESS_BAR_MODES)

  fraction = config.dataset.train_fraction
  _require(0 < fraction <= 1, "dataset.train_fraction", "in (0, 1]", fraction)
  train = config.train
  for field in ("num_epochs", "batch_size", "eval_batch_size", "steps_per_chunk"):
    value = train[field]
    _require(isinstance(value, int) and value > 0, f"train.{field}", "a positive integer",
             value)
  _require(config.optimizer.learning_rate >= 0, "optimizer.learning_rate", ">= 0",
           config.optimizer.learning_rate)
  _require(config.optimizer.weight_decay >= 0, "optimizer.weight_decay", ">= 0",
           config.optimizer.weight_decay)
  warmup = config.schedule.lr_warmup_epochs
  _require(0 <= warmup < train.num_epochs, "schedule.lr_warmup_epochs",
           f"in [0, train.num_epochs={train.num_epochs})", warmup)
  _require(config.metrics.num_bins > 0, "metrics.num_bins", "a positive integer",
           config.metrics.num_bins)
  _require(config.checkpoint.every_epochs > 0, "checkpoint.every_epochs",
           "a positive integer", config.checkpoint.every_epochs)
  _require(config.checkpoint.max_to_keep > 0, "checkpoint.max_to_keep", "a positive integer",
           config.checkpoint.max_to_keep)


def check_against_data(config: ml_collections.ConfigDict, *, num_train: int) -> None:
  """Checks that need the dataset's sizes (still before any training)."""
  _require(config.train.batch_size <= num_train, "train.batch_size",
           f"at most the number of training examples ({num_train})",
           config.train.batch_size)
