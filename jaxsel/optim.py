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

from jaxsel.config_errors import choice, is_finite_real, is_real, require

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
SCHEDULES = ("constant", "cosine", "linear", "multistep", "onecycle")


def check_optimizer(opt: ml_collections.ConfigDict) -> None:
  """UserError naming the ``config.optimizer`` field for a value that cannot work."""
  choice(opt.name, "optimizer.name", OPTIMIZERS)
  # An infinite or NaN rate makes the first update NaN; 0 is allowed (it trains nothing,
  # which is sometimes what a test of the pipeline wants).
  require(is_finite_real(opt.learning_rate) and opt.learning_rate >= 0,
          "optimizer.learning_rate", "a finite real >= 0", opt.learning_rate)
  # Heavy-ball momentum μ: the velocity is a geometric sum of the gradients with ratio μ,
  # bounded only for μ < 1 (μ = 1 never forgets a gradient; μ > 1 diverges). Adam and
  # AdamW ignore it, but a value out of range is still a mistake.
  require(is_real(opt.momentum) and 0 <= opt.momentum < 1, "optimizer.momentum",
          "in [0, 1) (0: plain SGD)", opt.momentum)
  require(isinstance(opt.nesterov, bool), "optimizer.nesterov", "True or False",
          opt.nesterov)
  if opt.name == "sgd" and opt.nesterov:
    # optax (as `momentum or None` passes it) would silently run plain SGD; PyTorch refuses.
    require(opt.momentum > 0, "optimizer.momentum",
            "> 0 with config.optimizer.nesterov=True (Nesterov momentum needs momentum)",
            opt.momentum)
  require(is_finite_real(opt.weight_decay) and opt.weight_decay >= 0,
          "optimizer.weight_decay", "a finite real >= 0", opt.weight_decay)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """``config.optimizer`` -> an optax transformation whose learning rate is injectable."""
  opt = config.optimizer
  check_optimizer(opt)
  build = optax.inject_hyperparams(OPTIMIZERS[opt.name], static_args=(
      "momentum", "nesterov", "weight_decay"))
  return build(learning_rate=opt.learning_rate, momentum=opt.momentum,
               nesterov=opt.nesterov, weight_decay=opt.weight_decay)


def _check_milestones(sched: ml_collections.ConfigDict, num_epochs: int | None) -> None:
  """Multistep milestones: epochs, increasing, at or after the warm-up, before the end."""
  field, milestones = "schedule.milestone_epochs", sched.milestone_epochs
  per_epoch = sched.unit == "epoch"
  # A per-epoch rate changes only at the start of an epoch; a per-step one can change at
  # a fraction of an epoch (interpolated, as lr_warmup_epochs is).
  kind = "integers" if per_epoch else "numbers"
  is_epoch = (lambda m: is_real(m) and float(m).is_integer()) if per_epoch else is_finite_real
  require(isinstance(milestones, (tuple, list))
          and all(is_epoch(m) and m >= 0 for m in milestones),
          field, f"a list of epochs ({kind} >= 0)", milestones)
  # A repeated milestone would decay once, not twice (the boundaries are a dict).
  require(all(a < b for a, b in zip(milestones, milestones[1:])), field,
          "strictly increasing", milestones)
  # Milestones are epochs in both units ('step' converts them to the first step of that
  # epoch): decay m takes effect at epoch m (m + 1 with late_multistep_decay).
  late = 1 if sched.late_multistep_decay else 0
  # The decay schedule starts after the warm-up: a decay due during the warm-up would
  # only come at its end, after the ramp has reached the undecayed peak.
  warmup = sched.lr_warmup_epochs
  require(all(m + late >= warmup for m in milestones), field,
          f"at or after the warm-up's end, config.schedule.lr_warmup_epochs={warmup}",
          milestones)
  if num_epochs is None:
    return
  # The decay must fall in one of the run's epochs 0 .. E - 1, or it never happens.
  last = num_epochs - 1 - late
  require(all(m <= last for m in milestones), field,
          f"epochs at most {last} for a run of {num_epochs} epochs"
          + (" (each decay comes one epoch late: config.schedule.late_multistep_decay)"
             if late else "") + "; a later milestone never decays", milestones)


def check_schedule(config: ml_collections.ConfigDict, *, num_epochs: int | None) -> None:
  """UserError naming the ``config.schedule`` field for a value that cannot work, for a
  run of ``num_epochs`` epochs (None: not known yet, i.e. a run given in steps before its
  data is loaded; the checks against the run's length then wait for ``make_schedule``)."""
  sched = config.schedule
  choice(sched.name, "schedule.name", SCHEDULES)
  choice(sched.unit, "schedule.unit", SCHEDULE_UNITS)
  for flag in ("late_multistep_decay", "end_at_last_step"):
    require(isinstance(sched[flag], bool), f"schedule.{flag}", "True or False", sched[flag])
  warmup = sched.lr_warmup_epochs
  allowed = (f"in [0, {num_epochs}) for a run of {num_epochs} epochs" if num_epochs
             else "a finite real of epochs >= 0")
  require(is_finite_real(warmup) and 0 <= warmup < (num_epochs or math.inf),
          "schedule.lr_warmup_epochs", allowed, warmup)
  require(is_finite_real(sched.end_learning_rate) and sched.end_learning_rate >= 0,
          "schedule.end_learning_rate", "a finite real >= 0", sched.end_learning_rate)
  # 0 would stop training at the first milestone; > 1 is allowed (a rate that grows).
  require(is_finite_real(sched.decay_factor) and sched.decay_factor > 0,
          "schedule.decay_factor", "a finite real > 0", sched.decay_factor)
  require(isinstance(sched.milestone_epochs, (tuple, list)), "schedule.milestone_epochs",
          "a list of epochs ([] unless schedule.name='multistep')", sched.milestone_epochs)
  if sched.name == "multistep":
    _check_milestones(sched, num_epochs)
  require(is_finite_real(sched.onecycle_pct_start) and 0 < sched.onecycle_pct_start < 1,
          "schedule.onecycle_pct_start", "in (0, 1)", sched.onecycle_pct_start)
  for field in ("onecycle_div_factor", "onecycle_final_div_factor"):
    require(is_finite_real(sched[field]) and sched[field] > 0, f"schedule.{field}",
            "a finite real > 0", sched[field])
  if sched.name == "onecycle":
    require(warmup == 0, "schedule.lr_warmup_epochs",
            "0 with schedule.name='onecycle' (its first phase is the warm-up)", warmup)


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
  if not len(epoch_steps):
    raise ValueError("epoch_steps must list at least one epoch")
  # Here the run's epochs are known, also for a run given in steps.
  check_schedule(config, num_epochs=len(epoch_steps))
  if sched.unit == "epoch":
    to_position = float
  else:
    starts = np.concatenate([[0], np.cumsum(epoch_steps)])
    # Fractional epochs (e.g. 0.5 warm-up epochs) interpolate within their epoch.
    to_position = lambda epochs: float(np.interp(epochs, np.arange(len(starts)), starts))  # noqa: E731
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
  elif sched.name == "onecycle":
    decay = optax.cosine_onecycle_schedule(
        max(1, total), peak, pct_start=sched.onecycle_pct_start,
        div_factor=sched.onecycle_div_factor,
        final_div_factor=sched.onecycle_final_div_factor)
  else:  # multistep: multiply by decay_factor at each milestone (given in epochs)
    late = 1 if sched.late_multistep_decay else 0
    boundaries = {int(round(to_position(m + late))) - warmup: sched.decay_factor
                  for m in sched.milestone_epochs}
    decay = optax.piecewise_constant_schedule(peak, boundaries)
  if warmup == 0:
    return decay
  ramp = optax.linear_schedule(0.0, peak, transition_steps=warmup)
  return optax.join_schedules([ramp, decay], boundaries=[warmup])
