"""Checks a config before any data is loaded or any step is compiled.

Every error names the offending field and what it allows, so a typo in a
``--config.field=value`` override fails in a second, not after an epoch.
"""

import ml_collections

from jaxsel import augment, calibration, models, optim, selection

PROGRESS_BAR_MODES = ("auto", "on", "off")
SCORE_SOURCES = ("train_step", "full_pass")
TARGET_MODES = ("trajectory", "fixed")


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
  _choice(config.calibration.method, "calibration.method", calibration.METHODS)
  _choice(config.selection.method, "selection.method", ("none", *selection.SELECTORS))
  _choice(config.selection.score_source, "selection.score_source", SCORE_SOURCES)
  _choice(config.target.mode, "target.mode", TARGET_MODES)
  _choice(config.optimizer.name, "optimizer.name", optim.OPTIMIZERS)
  _choice(config.schedule.name, "schedule.name", optim.SCHEDULES)
  _choice(config.schedule.unit, "schedule.unit", optim.SCHEDULE_UNITS)
  _choice(config.progress_bar, "progress_bar", PROGRESS_BAR_MODES)
  _choice(config.augmentation, "augmentation", augment.AUGMENTATIONS)

  # Seeds enter jitted code as int32 (one compiled selection for every seed).
  _require(isinstance(config.seed, int) and 0 <= config.seed < 2**31, "seed",
           "an integer in [0, 2**31)", config.seed)
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
  calibration.loss_and_mixup(config.calibration)  # hyper-parameter ranges
  sel = config.selection
  _require(0 < sel.subset_fraction <= 1, "selection.subset_fraction", "in (0, 1]",
           sel.subset_fraction)
  _require(sel.subset_size >= 0, "selection.subset_size", ">= 0 (0: use subset_fraction)",
           sel.subset_size)
  _require(0 <= sel.warmup_epochs < train.num_epochs, "selection.warmup_epochs",
           f"in [0, train.num_epochs={train.num_epochs})", sel.warmup_epochs)
  _require(config.metrics.num_bins > 0, "metrics.num_bins", "a positive integer",
           config.metrics.num_bins)
  _require(config.checkpoint.every_epochs > 0, "checkpoint.every_epochs",
           "a positive integer", config.checkpoint.every_epochs)
  _require(config.checkpoint.max_to_keep > 0, "checkpoint.max_to_keep", "a positive integer",
           config.checkpoint.max_to_keep)


def check_against_data(config: ml_collections.ConfigDict, *, num_train: int) -> None:
  """Checks that need the dataset's sizes (still before any training)."""
  if config.selection.subset_size:
    _require(config.selection.subset_size <= num_train, "selection.subset_size",
             f"at most the number of training examples ({num_train})",
             config.selection.subset_size)
  _require(config.train.batch_size <= num_train, "train.batch_size",
           f"at most the number of training examples ({num_train})",
           config.train.batch_size)
