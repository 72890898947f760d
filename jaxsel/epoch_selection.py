"""Choosing the example ids of each epoch (calibrated sample prioritization, §A).

Warm-up epochs train on every training example. After that, each epoch ranks the training
examples by a score and keeps ``k`` of them:

- scores come from the run's own per-example entropy table — as last written by the train
  step (``score_source='train_step'``: examples not selected keep their last, stale score,
  which is what makes the selection rotate through the data), or refreshed by an eval-mode
  pass over all training examples first (``'full_pass'``) — or from a target artifact;
- a selector (``top_k``, ``uniform``, ``random``) turns scores into a subset.

The key of epoch ``e``'s selection is derived from ``(seed, e)`` only, and the score table
is part of the checkpointed train state, so a resumed run selects exactly the same subsets.
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel import scores, selection, steps
from jaxsel.data import Dataset, iterators
from jaxsel.state import TrainState
from jaxsel.target import TargetArtifact

SCORE_TABLE = "last_entropy"
_SELECTION_STREAM = 1  # folded into the run key so selection draws are independent of init


def selection_key(seed, epoch) -> jax.Array:
  """The key of epoch ``epoch``'s selection (ints, or int32 arrays inside jit)."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), _SELECTION_STREAM),
                            epoch)


# Key, selection and the map back to sorted example ids run as one compiled call: per-epoch
# dispatches cost as much as the work on a 2-core CPU. Module-level with the selector and k
# static, so every run in a process with the same method and subset size shares the
# compiled program.
@functools.partial(jax.jit, static_argnames=("method", "k"))
def _select_ids(seed, epoch, candidate_scores, train_ids, *, method: str, k: int):
  """Sorted ids of ``train_ids`` chosen from their scores ``candidate_scores``."""
  chosen = selection.get_selector(method)(selection_key(seed, epoch), candidate_scores, k=k,
                                          ordered=False)
  return jnp.sort(train_ids[chosen])


@functools.partial(jax.jit, static_argnames=("method", "k"))
def _select_ids_from_table(seed, epoch, table, train_ids, *, method: str, k: int):
  """As ``_select_ids``, reading the candidates' scores from the table of all examples."""
  return _select_ids(seed, epoch, table[train_ids], train_ids, method=method, k=k)


class EpochSelector:
  """``choose(epoch, state, data)`` -> the epoch's ids, the (re-scored) state, costs."""

  def __init__(self, config, dataset: Dataset, *, target: TargetArtifact | None = None):
    sel = config.selection
    self._config = config
    self._train_ids = dataset.train_ids
    self._target = target
    self.active = sel.method != "none"
    self.num_selected = len(dataset.train_ids)
    if self.active:
      self.num_selected = selection.subset_size(
          len(dataset.train_ids), fraction=None if sel.subset_size else sel.subset_fraction,
          count=sel.subset_size or None)
      self._device_train_ids = jnp.asarray(dataset.train_ids)
    self._score_chunk = steps.jit_score_chunk(scores.entropy, name="score_chunk")
    self._ahead = []  # futures of compile_ahead

  def _selection_call(self, epoch: int, state: TrainState):
    """(jitted selection, its array arguments, its static arguments) for ``epoch``."""
    arrays = dict(seed=np.int32(self._config.seed), epoch=np.int32(epoch),
                  train_ids=self._device_train_ids)
    static = dict(method=self._config.selection.method, k=self.num_selected)
    if self._target is not None:
      arrays["candidate_scores"] = self._target.scores(mode=self._config.target.mode,
                                                       epoch=epoch)
      return _select_ids, arrays, static
    arrays["table"] = state.trackers[SCORE_TABLE]
    return _select_ids_from_table, arrays, static

  def _full_pass_plan(self) -> iterators.BatchPlan:
    return iterators.full_pass_plan(
        self._train_ids, batch_size=self._config.train.eval_batch_size,
        steps_per_chunk=self._config.train.steps_per_chunk)

  def compile_ahead(self, state: TrainState, data) -> None:
    """Starts compiling, in the background, what selection epochs will run (see
    ``steps.compile_ahead``); the first selection epoch waits for it."""
    if not self.active:
      return
    select, arrays, static = self._selection_call(self._config.selection.warmup_epochs,
                                                  state)
    self._ahead.append(steps.compile_ahead(select, kwargs=arrays, static=static))
    if self._config.selection.score_source == "full_pass" and self._target is None:
      ids, mask = next(iter(self._full_pass_plan().chunks()))
      self._ahead.append(self._score_chunk.compile_ahead(
          state, state.trackers[SCORE_TABLE], data, ids, mask))

  def _wait_for_compile_ahead(self) -> None:
    for future in self._ahead:
      future.result()
    self._ahead = []

  def is_selection_epoch(self, epoch: int) -> bool:
    return self.active and epoch >= self._config.selection.warmup_epochs

  def refresh_scores(self, state: TrainState, data) -> TrainState:
    """Eval-mode entropy of every training example, written into the score table."""
    self._wait_for_compile_ahead()
    table = state.trackers[SCORE_TABLE]
    for ids, mask in self._full_pass_plan().chunks():
      table = self._score_chunk(state, table, data, ids, mask)
    return state.replace(trackers={**state.trackers, SCORE_TABLE: table})

  def choose(self, epoch: int, state: TrainState, data) -> tuple[np.ndarray, TrainState, dict]:
    """Returns (sorted example ids, state, {'scoring_seconds', 'selection_seconds',
    'examples_scored'})."""
    costs = {"scoring_seconds": 0.0, "selection_seconds": 0.0, "examples_scored": 0}
    if not self.is_selection_epoch(epoch):
      return self._train_ids, state, costs
    self._wait_for_compile_ahead()
    compile_before, start = steps.CompileClock.seconds(), time.perf_counter()
    if self._config.selection.score_source == "full_pass" and self._target is None:
      state = self.refresh_scores(state, data)
      jax.block_until_ready(state.trackers[SCORE_TABLE])
      costs["examples_scored"] = len(self._train_ids)
    compile_between, middle = steps.CompileClock.seconds(), time.perf_counter()
    select, arrays, static = self._selection_call(epoch, state)
    ids = np.asarray(select(**arrays, **static))
    # Seconds of work, compilation (first selection epoch only) excluded.
    costs["scoring_seconds"] = middle - start - (compile_between - compile_before)
    costs["selection_seconds"] = (time.perf_counter() - middle
                                  - (steps.CompileClock.seconds() - compile_between))
    return ids, state, costs


def subset_diagnostics(ids: np.ndarray, previous_ids: np.ndarray | None, labels: np.ndarray,
                       num_classes: int) -> dict:
  """What a subset looks like: its size, class mix (%) and overlap with the last one (%)."""
  overlap = (None if previous_ids is None
             else selection.overlap_percent(previous_ids, ids))
  return {
      "num_selected": int(len(ids)),
      "class_histogram": [round(float(p), 3) for p in
                          selection.class_histogram(labels[ids], num_classes)],
      "overlap_with_previous": overlap,
  }
