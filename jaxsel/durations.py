"""How long a run trains, in optimizer steps, from a duration in epochs or in steps.

A run is defined by exactly one of ``config.train.num_epochs`` and
``config.train.num_train_steps``. Either way the loop, the learning-rate schedule and the
evaluation and checkpoint triggers see one ``TrainingPlan``: the number of optimizer steps
of every epoch. Epochs can differ in length (full-data warm-up epochs, then subsets), so
the plan is built from the method's planned number of examples per epoch.

With ``num_train_steps`` the run stops exactly at that step, in the middle of an epoch if
need be (the coreset reference overshoots to the end of the epoch; ALGORITHMS.md C.5), and
a per-step schedule spans exactly those steps. A small coreset then cycles through many
short epochs.
"""

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from jaxsel.config_errors import UserError

# An upper bound on epochs, so a plan whose epochs have no steps fails instead of looping.
MAX_EPOCHS = 10_000_000


def steps_per_epoch(num_examples: int, *, batch_size: int, drop_remainder: bool) -> int:
  """Optimizer steps in one epoch over ``num_examples`` examples."""
  if drop_remainder:
    return num_examples // batch_size
  return math.ceil(num_examples / batch_size)


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
  """epoch_steps[e]: optimizer steps of epoch e (the last epoch may be cut short)."""

  epoch_steps: tuple[int, ...]

  @property
  def num_epochs(self) -> int:
    return len(self.epoch_steps)

  @property
  def total_steps(self) -> int:
    return int(sum(self.epoch_steps))

  def steps_before(self, epoch: int) -> int:
    """Optimizer steps of the epochs before ``epoch``."""
    return int(sum(self.epoch_steps[:epoch]))

  def epoch_starts(self) -> np.ndarray:
    """int64 [num_epochs + 1]: the global step at which each epoch starts, then the end."""
    return np.concatenate([[0], np.cumsum(self.epoch_steps, dtype=np.int64)])


def plan_training(*, num_epochs: int, num_train_steps: int,
                  examples_in_epoch: Callable[[int], int], batch_size: int,
                  drop_remainder: bool) -> TrainingPlan:
  """The plan of a run of ``num_epochs`` epochs or ``num_train_steps`` steps (set exactly
  one of them > 0); ``examples_in_epoch(e)`` is how many examples epoch e trains on."""
  if (num_epochs > 0) == (num_train_steps > 0):
    raise UserError(
        "set exactly one of config.train.num_epochs and config.train.num_train_steps to a "
        f"positive integer (the other 0), got num_epochs={num_epochs} and "
        f"num_train_steps={num_train_steps}")

  def steps_of(epoch: int) -> int:
    count = steps_per_epoch(examples_in_epoch(epoch), batch_size=batch_size,
                            drop_remainder=drop_remainder)
    if count <= 0:
      # The epoch's examples are the method's choice (a subset size, a budget), so the
      # message names both sides.
      raise UserError(
          f"epoch {epoch} would have no optimizer step: it trains on "
          f"{examples_in_epoch(epoch)} examples (config.method's subset), fewer than "
          f"config.train.batch_size={batch_size} with "
          f"config.train.drop_remainder={drop_remainder}; lower the batch size, set "
          "drop_remainder=False or train on more examples per epoch")
    return count

  if num_epochs > 0:
    return TrainingPlan(tuple(steps_of(epoch) for epoch in range(num_epochs)))
  epoch_steps, remaining = [], num_train_steps
  while remaining > 0:
    if len(epoch_steps) >= MAX_EPOCHS:
      raise UserError(f"config.train.num_train_steps={num_train_steps} needs more than "
                      f"{MAX_EPOCHS} epochs")
    epoch_steps.append(min(steps_of(len(epoch_steps)), remaining))
    remaining -= epoch_steps[-1]
  return TrainingPlan(tuple(epoch_steps))


def crossed(period: int, steps_before: int, steps_after: int) -> bool:
  """Whether a multiple of ``period`` lies in (steps_before, steps_after]: a trigger every
  ``period`` steps (or epochs) fired during this interval. ``period`` <= 0 never fires."""
  return period > 0 and steps_after // period > steps_before // period
