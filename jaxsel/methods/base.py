"""The interface between the generic training loop and a method family.

``jaxsel.train.train_and_evaluate`` runs every method with one loop: choose the epoch's
example ids → train on them in fixed-shape chunks → periodic evaluation and checkpoints →
log. What differs between families is behind the ``Method`` methods below; a family is one
subclass in its own module of this package, registered in ``jaxsel.methods.METHODS``:

- ``default_config`` / ``check_config``: its own config section, ``config.method``
  (``config.method.name`` picks the family), checked before any data is loaded, with
  errors that name the field;
- ``run_dataset``: the dataset the run trains on, if not the loaded one (a model trained on
  the holdout ids swaps the two);
- ``examples_in_epoch``: how many examples each epoch will train on, known before training
  (it fixes the learning-rate schedule and the length of a run given in steps); a method
  whose epochs shrink with what it learns (``epoch_size_varies``) gives the most an epoch
  may train on, and its schedule and triggers count planned, full epochs;
- ``trackers`` / ``initial_method_state`` / ``make_train_step``: the per-example tables the
  train step keeps, anything else the method carries on the device, and the step itself
  (the standard one by default; a method may build its own from ``jaxsel.steps``' pieces);
- ``choose``: the example ids of an epoch (the epoch policy), possibly re-scoring first;
- ``end_epoch``: device bookkeeping after an epoch (snapshots of score tables);
- ``epoch_examples``: how many examples the epoch's train step back-propagated and
  forwarded (a method whose step skips some of its examples counts its own);
- ``finish``: figures and artifacts at the end of the run.

Everything a method keeps on the device lives in the ``TrainState`` (``trackers``,
``method_state``), so checkpoints hold it and a resumed run continues identically; a
method keeps no other state that changes during training.
"""

import abc
import functools
import time
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import ml_collections
import numpy as np

from jaxsel import compilation, selection, steps, trackers
from jaxsel.data import Dataset, iterators
from jaxsel.durations import TrainingPlan
from jaxsel.state import TrainState, stream_key


class EpochChoice(NamedTuple):
  """What a method trains on in one epoch.

  example_ids: int32 [n], sorted training ids (the loop shuffles them).
  state: the train state, possibly with re-scored tables.
  selected: True if the method's rule chose the ids, False for all training examples
    (e.g. a warm-up epoch).
  costs: seconds spent ``scoring_seconds`` and ``selection_seconds`` (compilation
    excluded) and forward passes ``examples_scored`` outside the train step.
  """

  example_ids: np.ndarray
  state: TrainState
  selected: bool
  costs: dict[str, float]


def no_costs() -> dict[str, float]:
  return {"scoring_seconds": 0.0, "selection_seconds": 0.0, "examples_scored": 0}


@functools.partial(jax.jit, static_argnames=("num_ids", "by_index"))
def tie_break(seed, ids, *, num_ids: int, by_index: bool) -> jax.Array:
  """Tie-break ranks of ``ids``: one fixed permutation of all ``num_ids`` ids per run, from
  the seed's ``tie_break`` stream (or the ids themselves, ``by_index``), shared by every
  selector of the run (ALGORITHMS.md 0.1). Lower ranks come first among equal scores."""
  ranks = selection.tie_break_ranks(stream_key(seed, "tie_break"), num_ids,
                                    by_index=by_index)
  return ranks[ids]


def full_pass_plan(config: ml_collections.ConfigDict,
                   ids: np.ndarray) -> iterators.BatchPlan:
  """Every id once, in eval-sized batches (for scoring passes)."""
  return iterators.full_pass_plan(ids, batch_size=config.train.eval_batch_size,
                                  steps_per_chunk=config.train.steps_per_chunk)


class Stopwatch:
  """Wall seconds of a region minus the compilation the calling thread did inside it."""

  def __init__(self):
    self._start = time.perf_counter()
    self._compile = compilation.CompileClock.seconds()

  def seconds(self) -> float:
    return (time.perf_counter() - self._start
            - (compilation.CompileClock.seconds() - self._compile))


class Method(abc.ABC):
  """One family of data-selection methods, as the generic loop sees it.

  Constructed once per run, after ``check_config`` and after the data is loaded, so the
  constructor may read artifacts and check them against the data.
  """

  name: ClassVar[str]
  # Forward passes the train step makes per trained example (a second, clean view of
  # mixed inputs costs one more); counted in ``examples_forwarded``.
  forwards_per_trained_example: int = 1
  # Whether the trackers see a clean (un-mixed) forward pass instead of the trained one
  # (see ``steps.make_train_step``).
  clean_view: bool = False
  # The run's plan (epochs and their steps); set by the loop, from ``examples_in_epoch``,
  # before ``trackers``, ``initial_method_state`` and ``make_train_step`` are called.
  plan: TrainingPlan | None = None
  # Whether ``choose`` may return fewer than ``examples_in_epoch(epoch)`` ids (an upper
  # bound then); the epoch then has fewer steps than planned.
  epoch_size_varies: bool = False
  # The standard step's ``loss_weights`` and ``schedule_position`` (``steps.make_train_step``;
  # None: unweighted, and a per-step schedule at the optimizer's step count).
  loss_weights: steps.LossWeightsFn | None = None
  schedule_position: steps.PositionFn | None = None

  @classmethod
  def default_config(cls) -> ml_collections.ConfigDict:
    """The method's ``config.method`` section with its defaults (and its name)."""
    return ml_collections.ConfigDict({"name": cls.name})

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> None:
    """Raises ``UserError`` naming the field for a value of ``config.method`` that cannot
    work. Runs before the data is loaded, after the generic checks (which include that
    every field has the type of its default, ``config_checks``)."""
    del config

  @classmethod
  def run_dataset(cls, config: ml_collections.ConfigDict, dataset: Dataset) -> Dataset:
    """The dataset the run trains and validates on, given the loaded one (after removal
    and noise); the method is constructed with it."""
    del config
    return dataset

  def __init__(self, config: ml_collections.ConfigDict, dataset: Dataset):
    self.config = config
    self.dataset = dataset

  @property
  def train_ids(self) -> np.ndarray:
    return self.dataset.train_ids

  def examples_in_epoch(self, epoch: int) -> int:
    """The number of examples epoch ``epoch`` will train on (before training starts)."""
    del epoch
    return len(self.dataset.train_ids)

  def trackers(self) -> Mapping[str, trackers.Tracker]:
    """Named per-example tables the train step keeps (``state.trackers``)."""
    return {}

  def initial_method_state(self, plan: TrainingPlan) -> Any:
    """Device state of the method besides the trackers (``state.method_state``)."""
    del plan
    return {}

  def make_train_step(self, **step_kwargs) -> steps.StepFn:
    """The train step; ``step_kwargs`` are the generic pieces (loss, schedule,
    augmentation, mixing) that ``steps.make_train_step`` takes."""
    return steps.make_train_step(**step_kwargs, tracker=trackers.combine(self.trackers()),
                                 clean_view=self.clean_view, loss_weights=self.loss_weights,
                                 schedule_position=self.schedule_position)

  def compile_ahead(self, state: TrainState, data) -> None:
    """Starts compiling, on the background thread, what ``choose`` will run."""
    del state, data

  def choose(self, epoch: int, state: TrainState, data) -> EpochChoice:
    """The epoch's example ids (the epoch policy). By default all training examples."""
    del epoch
    return EpochChoice(self.dataset.train_ids, state, False, no_costs())

  def epoch_examples(self, state: TrainState,
                     batches: iterators.BatchPlan) -> tuple[int, int]:
    """(backpropagated, forwarded) examples of the epoch just trained on ``batches``, the
    train step's passes only (scoring passes of ``choose`` are counted in its costs)."""
    del state
    return batches.num_examples, batches.num_examples * self.forwards_per_trained_example

  def end_epoch(self, epoch: int, state: TrainState, example_ids: np.ndarray) -> TrainState:
    """Device bookkeeping after the epoch has trained on ``example_ids``."""
    del epoch, example_ids
    return state

  def finish(self, state: TrainState, data, workdir: str, *, fingerprint: str,
             num_epochs: int) -> dict:
    """Figures and artifacts of the finished run; returns entries for ``summary.json``."""
    del state, data, workdir, fingerprint, num_epochs
    return {}


class FullData(Method):
  """Standard training: every training example, every epoch. The baseline."""

  name = "full_data"
