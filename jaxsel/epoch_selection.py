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


def selection_key(seed: int, epoch: int) -> jax.Array:
  return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), _SELECTION_STREAM),
                            epoch)


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
      selector = functools.partial(selection.get_selector(sel.method), k=self.num_selected)
      train_ids = jnp.asarray(dataset.train_ids)

      # Gather the candidates' scores, select and map back to sorted example ids in one
      # compiled call: per-epoch dispatches cost as much as the work on a 2-core CPU.
      @jax.jit
      def select_ids(key, scores_of_candidates):
        return jnp.sort(train_ids[selector(key, scores_of_candidates)])

      @jax.jit
      def select_ids_from_table(key, table):
        return select_ids(key, table[train_ids])

      self._select_ids = select_ids
      self._select_ids_from_table = select_ids_from_table
    self._score_chunk = steps.jit_score_chunk(scores.entropy, name="score_chunk")

  def is_selection_epoch(self, epoch: int) -> bool:
    return self.active and epoch >= self._config.selection.warmup_epochs

  def refresh_scores(self, state: TrainState, data) -> TrainState:
    """Eval-mode entropy of every training example, written into the score table."""
    plan = iterators.full_pass_plan(
        self._train_ids, batch_size=self._config.train.eval_batch_size,
        steps_per_chunk=self._config.train.steps_per_chunk)
    table = state.trackers[SCORE_TABLE]
    for ids, mask in plan.chunks():
      table = self._score_chunk(state, table, data, ids, mask)
    return state.replace(trackers={**state.trackers, SCORE_TABLE: table})

  def choose(self, epoch: int, state: TrainState, data) -> tuple[np.ndarray, TrainState, dict]:
    """Returns (sorted example ids, state, {'scoring_seconds', 'selection_seconds',
    'examples_scored'})."""
    costs = {"scoring_seconds": 0.0, "selection_seconds": 0.0, "examples_scored": 0}
    if not self.is_selection_epoch(epoch):
      return self._train_ids, state, costs
    compile_before, start = steps.CompileClock.seconds(), time.perf_counter()
    if self._config.selection.score_source == "full_pass" and self._target is None:
      state = self.refresh_scores(state, data)
      jax.block_until_ready(state.trackers[SCORE_TABLE])
      costs["examples_scored"] = len(self._train_ids)
    compile_between, middle = steps.CompileClock.seconds(), time.perf_counter()
    key = selection_key(self._config.seed, epoch)
    if self._target is not None:
      ids = self._select_ids(key, jnp.asarray(
          self._target.scores(mode=self._config.target.mode, epoch=epoch)))
    else:
      ids = self._select_ids_from_table(key, state.trackers[SCORE_TABLE])
    ids = np.asarray(ids)
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
