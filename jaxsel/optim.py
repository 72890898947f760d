"""Optimizers and learning-rate schedules, built from the config with optax.

The learning rate is an injected hyper-parameter (``optax.inject_hyperparams``) that the
train step sets from the schedule before each update. That lets one schedule be stepped per
epoch (the references' ``scheduler.step()`` after every epoch) or per step, and keeps the
per-epoch case correct when the number of steps per epoch changes with the selected subset.
"""

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

  ``epoch_steps[e]`` is the number of optimizer steps planned for epoch ``e``
  (``durations.TrainingPlan.epoch_steps``: it varies when selection trains on a subset
  after full-data warm-up epochs, and the last epoch of a run defined by
  ``train.num_train_steps`` may be cut short). The schedule spans exactly these epochs or
  steps.

  With ``schedule.unit == 'epoch'`` the position is the 0-based epoch, so cosine gives
  ``lr_e = lr·(1 + cos(π e / E))/2`` (PyTorch ``CosineAnnealingLR`` with ``T_max = E``,
  E = ``len(epoch_steps)``).
  With ``'step'`` the position is the global step, and a duration given in epochs
  (warm-up, milestones) ends at the first step of that epoch.

  ``schedule.end_at_last_step`` (linear only) makes the decay reach ``end_learning_rate``
  on the last position instead of one past it (the budgeted-training reference, B.6).

  ``schedule.late_multistep_decay`` reproduces the forgetting reference (ALGORITHMS.md D.7,
  D.10.3): it calls the legacy ``MultiStepLR.step(epoch)`` *after* epoch e, which sets the
  rate of epoch e + 1 from e, so each decay comes one epoch after its milestone (with
  milestones (60, 120, 160): lr for epochs 0-60, lr·γ for 61-120, ...). The milestones
  are then taken as m + 1, also with ``'step'`` (the decay lands on the first step of
  epoch m + 1).
  """
  sched = config.schedule
  if sched.unit not in SCHEDULE_UNITS:
    raise ValueError(
        f"unknown schedule.unit {sched.unit!r}; valid: {', '.join(SCHEDULE_UNITS)}")
  if sched.name not in SCHEDULES:
    raise ValueError(f"unknown schedule.name {sched.name!r}; valid: {', '.join(SCHEDULES)}")
  if not len(epoch_steps):
    raise ValueError("epoch_steps must list at least one epoch")
  if sched.unit == "epoch":
    to_position = float
  else:
    starts = np.concatenate([[0], np.cumsum(epoch_steps)])
    # Fractional epochs (e.g. 0.5 warm-up epochs) interpolate within their epoch.
    to_position = lambda epochs: float(np.interp(epochs, np.arange(len(starts)), starts))  # noqa: E731
  if not 0 <= sched.lr_warmup_epochs < len(epoch_steps):
    raise ValueError(f"config.schedule.lr_warmup_epochs must be in [0, {len(epoch_steps)}) "
                     f"for a run of {len(epoch_steps)} epochs, got {sched.lr_warmup_epochs!r}")
  total = int(round(to_position(len(epoch_steps))))
  warmup = int(round(to_position(sched.lr_warmup_epochs)))
  peak = config.optimizer.learning_rate
  end = sched.end_learning_rate
  if sched.name == "constant":
    decay = optax.constant_schedule(peak)
  elif sched.name == "cosine":
    decay = optax.cosine_decay_schedule(peak, decay_steps=max(1, total - warmup),
                                        alpha=end / peak if peak else 0.0)
  elif sched.name == "linear":
    # end_at_last_step: the budgeted-training reference's lr0 + (end − lr0)·s/(T − 1), whose
    # last step already runs at the end value (ALGORITHMS.md B.6); otherwise the end value
    # is reached just after the last step, as optax's and PyTorch's linear decays.
    span = total - warmup - (1 if sched.end_at_last_step else 0)
    decay = optax.linear_schedule(peak, end, transition_steps=max(1, span))
  else:  # multistep: multiply by decay_factor at each milestone (given in epochs)
    late = 1 if sched.late_multistep_decay else 0
    boundaries = {int(round(to_position(m + late))) - warmup: sched.decay_factor
                  for m in sched.milestone_epochs}
    decay = optax.piecewise_constant_schedule(peak, boundaries)
  if warmup == 0:
    return decay
  ramp = optax.linear_schedule(0.0, peak, transition_steps=warmup)
  return optax.join_schedules([ramp, decay], boundaries=[warmup])
