"""Optimizers and learning-rate schedules, built from the config with optax.

The learning rate is an injected hyper-parameter (``optax.inject_hyperparams``) that the
train step sets from the schedule before each update. That lets one schedule be stepped per
epoch (the references' ``scheduler.step()`` after every epoch) or per step, and keeps the
per-epoch case correct when the number of steps per epoch changes with the selected subset.
"""

import math
from collections.abc import Sequence

import ml_collections
import numpy as np
import optax

SCHEDULE_UNITS = ("epoch", "step")


def _sgd(learning_rate, *, momentum, nesterov, weight_decay):
  # PyTorch SGD semantics: L2 decay is added to the gradient *before* momentum
  # (coupled), on every parameter.
  return optax.chain(
      optax.add_decayed_weights(weight_decay),
      optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov),
  )


def _adam(learning_rate, *, momentum, nesterov, weight_decay):
  del momentum, nesterov
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))


def _adamw(learning_rate, *, momentum, nesterov, weight_decay):
  del momentum, nesterov
  return optax.adamw(learning_rate, weight_decay=weight_decay)


OPTIMIZERS = {"sgd": _sgd, "adam": _adam, "adamw": _adamw}
SCHEDULES = ("constant", "cosine", "linear", "multistep")


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """``config.optimizer`` -> an optax transformation whose learning rate is injectable."""
  opt = config.optimizer
  if opt.name not in OPTIMIZERS:
    raise ValueError(
        f"unknown optimizer.name {opt.name!r}; valid: {', '.join(sorted(OPTIMIZERS))}")
  build = optax.inject_hyperparams(OPTIMIZERS[opt.name], static_args=(
      "momentum", "nesterov", "weight_decay"))
  return build(learning_rate=opt.learning_rate, momentum=opt.momentum,
               nesterov=opt.nesterov, weight_decay=opt.weight_decay)


def make_schedule(config: ml_collections.ConfigDict, *,
                  epoch_steps: Sequence[int]) -> optax.Schedule:
  """Learning rate as a function of the schedule position (epoch or step index).

  ``epoch_steps[e]`` is the number of optimizer steps planned for epoch ``e`` (it varies
  when selection trains on a subset after full-data warm-up epochs).

  With ``schedule.unit == 'epoch'`` the position is the 0-based epoch, so cosine gives
  ``lr_e = lr·(1 + cos(π e / E))/2`` (PyTorch ``CosineAnnealingLR`` with ``T_max = E``).
  With ``'step'`` the position is the global step, and a duration given in epochs
  (warm-up, milestones) ends at the first step of that epoch.
  """
  sched = config.schedule
  if sched.unit not in SCHEDULE_UNITS:
    raise ValueError(
        f"unknown schedule.unit {sched.unit!r}; valid: {', '.join(SCHEDULE_UNITS)}")
  if sched.name not in SCHEDULES:
    raise ValueError(f"unknown schedule.name {sched.name!r}; valid: {', '.join(SCHEDULES)}")
  if len(epoch_steps) != config.train.num_epochs:
    raise ValueError(f"epoch_steps has {len(epoch_steps)} entries for "
                     f"{config.train.num_epochs} epochs")
  if sched.unit == "epoch":
    to_position = float
  else:
    starts = np.concatenate([[0], np.cumsum(epoch_steps)])
    # Fractional epochs (e.g. 0.5 warm-up epochs) interpolate within their epoch.
    to_position = lambda epochs: float(np.interp(epochs, np.arange(len(starts)), starts))  # noqa: E731
  total = int(round(to_position(config.train.num_epochs)))
  warmup = int(round(to_position(sched.lr_warmup_epochs)))
  peak = config.optimizer.learning_rate
  end = sched.end_learning_rate
  if sched.name == "constant":
    decay = optax.constant_schedule(peak)
  elif sched.name == "cosine":
    decay = optax.cosine_decay_schedule(peak, decay_steps=max(1, total - warmup),
                                        alpha=end / peak if peak else 0.0)
  elif sched.name == "linear":
    decay = optax.linear_schedule(peak, end, transition_steps=max(1, total - warmup))
  else:  # multistep: multiply by decay_factor at each milestone (given in epochs)
    boundaries = {int(round(to_position(m))) - warmup: sched.decay_factor
                  for m in sched.milestone_epochs}
    decay = optax.piecewise_constant_schedule(peak, boundaries)
  if warmup == 0:
    return decay
  ramp = optax.linear_schedule(0.0, peak, transition_steps=warmup)
  return optax.join_schedules([ramp, decay], boundaries=[warmup])


def steps_per_epoch(num_examples: int, *, batch_size: int, drop_remainder: bool) -> int:
  """Optimizer steps in one epoch over ``num_examples`` examples."""
  if drop_remainder:
    return num_examples // batch_size
  return math.ceil(num_examples / batch_size)
