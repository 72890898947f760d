"""Calibrated sample prioritization (Tata et al., 2022; ALGORITHMS.md section A).

Warm-up epochs train on every training example. After that, each epoch ranks the training
examples by a score and keeps ``k`` of them:

- scores come from the run's own per-example entropy table — as last written by the train
  step (``score_source='train_step'``: examples not selected keep their last, stale score,
  which is what makes the selection rotate through the data), or refreshed by an eval-mode
  pass over all training examples first (``'full_pass'``) — or from a calibrated target
  model's score file (``target.path``);
- a selector (``top_k``, ``uniform``, ``random``) turns scores into a subset; equal scores
  are ordered by one fixed permutation of the example ids drawn from the run seed (or by
  id, ``tie_break='index'``), the same in every epoch.

The key of epoch ``e``'s selection is ``fold_in(stream_key(seed, 'selection'), e)`` and the
score table is part of the checkpointed train state, so a resumed run selects exactly the
same subsets. Calibration during training (label smoothing, focal loss, mixup) is the
generic ``config.loss`` and ``config.mixing``.

With ``save_scores`` the run writes ``WORKDIR/scores.npz`` (``jaxsel.artifacts``): the
per-epoch entropy trajectory ``entropy_trajectory`` [N_train, E] (the score table after each
epoch) and the final model's eval-mode entropies ``final_entropy`` [N_train]; with
``save_selection_matrix`` also the 0/1 matrix ``selection_matrix`` [N_train, E] of which
examples each epoch trained on (A.6.6). Such a file, made by a larger calibrated model
trained on all the data, is the target of another run (``target.mode``: ``trajectory``
uses its column ``min(epoch, E - 1)``, ``fixed`` its final entropies).
"""

import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxsel import artifacts, compilation, scores, selection, steps, trackers
from jaxsel.config_errors import UserError, choice, is_int, is_real, require
from jaxsel.durations import TrainingPlan
from jaxsel.methods import base
from jaxsel.state import TrainState, stream_key

SCORE_TABLE = "last_entropy"
TRAJECTORY = "entropy_trajectory"
FINAL = "final_entropy"
SELECTION_MATRIX = "selection_matrix"
SCORE_SOURCES = ("train_step", "full_pass")
TARGET_MODES = ("trajectory", "fixed")
TIE_BREAKS = ("random", "index")


def _entropy_table(logits, labels):
  """Eval-mode score pass: the normalised entropy of every example (module-level, so the
  compiled pass is shared by every run in the process)."""
  del labels
  return {SCORE_TABLE: scores.entropy(logits)}


# Key, selection and the map back to sorted example ids run as one compiled call: per-epoch
# dispatches cost as much as the work on a 2-core CPU. Module-level with the selector and k
# static, so every run in a process with the same selector and subset size shares it.
@functools.partial(jax.jit, static_argnames=("selector", "k"))
def _select_ids(seed, epoch, candidate_scores, tie_break, train_ids, *, selector: str,
                k: int):
  """Sorted ids of ``train_ids`` chosen from their scores ``candidate_scores``."""
  key = jax.random.fold_in(stream_key(seed, "selection"), epoch)
  chosen = selection.get_selector(selector)(key, candidate_scores, k=k, tie_break=tie_break,
                                            ordered=False)
  return jnp.sort(train_ids[chosen])


@functools.partial(jax.jit, static_argnames=("selector", "k"))
def _select_ids_from_table(seed, epoch, table, tie_break, train_ids, *, selector: str,
                           k: int):
  """As ``_select_ids``, reading the candidates' scores from the table of all examples."""
  return _select_ids(seed, epoch, table[train_ids], tie_break, train_ids, selector=selector,
                     k=k)


@functools.partial(jax.jit, donate_argnums=0)
def _set_row(matrix, epoch, row):
  return matrix.at[epoch].set(row.astype(matrix.dtype))


class Prioritization(base.Method):
  """Max-entropy (or rank-stratified, or random) subsets after full-data warm-up."""

  name = "prioritization"

  @classmethod
  def default_config(cls) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        name=cls.name,
        # top_k: the k highest entropies | uniform: every ⌊N/k⌋-th entropy rank |
        # random: a fresh random subset each epoch (the baseline).
        selector="top_k",
        subset_fraction=0.1,  # k as a fraction of the training examples, in (0, 1] ...
        subset_size=0,  # ... or an exact count (> 0 overrides subset_fraction)
        warmup_epochs=10,  # full-data epochs before the first selection
        # 'train_step': each example's entropy from its last training forward pass (stale
        # for examples not selected since); 'full_pass': a fresh eval-mode entropy of every
        # training example at the start of each selection epoch.
        score_source="train_step",
        # Under mixing, score the un-mixed inputs (one extra forward pass per step) instead
        # of the mixed ones the reference scores.
        score_unmixed_view=False,
        tie_break="random",  # random: one permutation of the ids from the seed | index
        target=ml_collections.ConfigDict(dict(
            path="",  # a scores.npz (or its run directory) of a save_scores run
            mode="trajectory",  # trajectory: its entropy at the same epoch | fixed: final
            required=False,  # True: refuse to run without a target.path
        )),
        save_scores=False,  # write WORKDIR/scores.npz (entropy trajectory, final entropy)
        save_selection_matrix=False,  # and the [N_train, epochs] 0/1 selection matrix
    ))

  @classmethod
  def check_config(cls, config) -> None:
    method = config.method
    choice(method.selector, "method.selector", selection.SELECTORS)
    require(is_real(method.subset_fraction) and 0 < method.subset_fraction <= 1,
            "method.subset_fraction", "in (0, 1]", method.subset_fraction)
    require(is_int(method.subset_size) and method.subset_size >= 0, "method.subset_size",
            "an integer >= 0 (0: use subset_fraction)", method.subset_size)
    require(is_int(method.warmup_epochs) and method.warmup_epochs >= 0,
            "method.warmup_epochs", "an integer >= 0", method.warmup_epochs)
    selects = method.subset_fraction < 1 or method.subset_size > 0
    if selects and config.train.num_epochs > 0:
      require(method.warmup_epochs < config.train.num_epochs, "method.warmup_epochs",
              f"in [0, train.num_epochs={config.train.num_epochs})", method.warmup_epochs)
    choice(method.score_source, "method.score_source", SCORE_SOURCES)
    choice(method.tie_break, "method.tie_break", TIE_BREAKS)
    choice(method.target.mode, "method.target.mode", TARGET_MODES)
    for field in ("score_unmixed_view", "save_scores", "save_selection_matrix"):
      require(isinstance(method[field], bool), f"method.{field}", "True or False",
              method[field])
    require(isinstance(method.target.required, bool), "method.target.required",
            "True or False", method.target.required)
    require(isinstance(method.target.path, str), "method.target.path",
            "a path (str; '' = none)", method.target.path)
    if method.target.required and not method.target.path:
      raise UserError(
          "config.method.target.path must name a score file (the scores.npz of a run with "
          "config.method.save_scores=True, or its directory) because "
          "config.method.target.required=True; without it this would silently be a run "
          "ranked by the current model")

  def __init__(self, config, dataset):
    super().__init__(config, dataset)
    method = config.method
    num_train = len(dataset.train_ids)
    if method.subset_size:
      require(method.subset_size <= num_train, "method.subset_size",
              f"at most the number of training examples ({num_train})", method.subset_size)
    self.num_selected = selection.subset_size(
        num_train, fraction=None if method.subset_size else method.subset_fraction,
        count=method.subset_size or None)
    self._target = None
    if method.target.path:
      table = TRAJECTORY if method.target.mode == "trajectory" else FINAL
      self._target = artifacts.load(method.target.path, fingerprint=dataset.fingerprint,
                                    example_ids=dataset.train_ids, required=(table,),
                                    field="method.target.path")
    self.clean_view = method.score_unmixed_view and config.mixing.name != "none"
    self.forwards_per_trained_example = 2 if self.clean_view else 1
    self._refresh = method.score_source == "full_pass" and self._target is None
    self._score_pass = steps.jit_score_chunk(_entropy_table)
    self._device_train_ids = None
    self._tie_break_ranks = None
    self._ahead = []  # futures of compile_ahead

  # --- the epoch policy --------------------------------------------------------------

  def is_selection_epoch(self, epoch: int) -> bool:
    return (self.num_selected < len(self.train_ids)
            and epoch >= self.config.method.warmup_epochs)

  def examples_in_epoch(self, epoch: int) -> int:
    return self.num_selected if self.is_selection_epoch(epoch) else len(self.train_ids)

  def trackers(self):
    return {SCORE_TABLE: trackers.last_score(scores.entropy)}

  def initial_method_state(self, plan: TrainingPlan):
    method, num_ids = self.config.method, len(self.dataset.pool)
    tables = {}
    if method.save_scores:
      tables[TRAJECTORY] = jnp.zeros((plan.num_epochs, num_ids), jnp.float32)
    if method.save_selection_matrix:
      tables[SELECTION_MATRIX] = jnp.zeros((plan.num_epochs, num_ids), jnp.uint8)
    return tables

  def _selection_call(self, epoch: int, state: TrainState):
    """(jitted selection, its array arguments, its static arguments) for ``epoch``."""
    if self._device_train_ids is None:
      self._device_train_ids = jnp.asarray(self.train_ids)
      self._tie_break_ranks = base.tie_break(
          np.int32(self.config.seed), self._device_train_ids, num_ids=len(self.dataset.pool),
          by_index=self.config.method.tie_break == "index")
    arrays = dict(seed=np.int32(self.config.seed), epoch=np.int32(epoch),
                  tie_break=self._tie_break_ranks, train_ids=self._device_train_ids)
    static = dict(selector=self.config.method.selector, k=self.num_selected)
    if self._target is not None:
      table = TRAJECTORY if self.config.method.target.mode == "trajectory" else FINAL
      arrays["candidate_scores"] = self._target.column(table, epoch)
      return _select_ids, arrays, static
    arrays["table"] = state.trackers[SCORE_TABLE]
    return _select_ids_from_table, arrays, static

  def compile_ahead(self, state, data) -> None:
    if self.num_selected == len(self.train_ids):
      return
    select, arrays, static = self._selection_call(self.config.method.warmup_epochs, state)
    self._ahead.append(compilation.compile_ahead(select, kwargs=arrays, static=static))
    if self._refresh:
      ids, mask = next(iter(self._full_pass_plan().chunks()))
      self._ahead.append(self._score_pass.compile_ahead(
          state, {SCORE_TABLE: state.trackers[SCORE_TABLE]}, data, ids, mask))

  def _wait_for_compile_ahead(self) -> None:
    for future in self._ahead:
      future.result()
    self._ahead = []

  def _full_pass_plan(self):
    return base.full_pass_plan(self.config, self.train_ids)

  def refresh_scores(self, state: TrainState, data) -> TrainState:
    """Eval-mode entropy of every training example, written into the score table."""
    self._wait_for_compile_ahead()
    tables = {SCORE_TABLE: state.trackers[SCORE_TABLE]}
    for ids, mask in self._full_pass_plan().chunks():
      tables = self._score_pass(state, tables, data, ids, mask)
    return state.replace(trackers={**state.trackers, **tables})

  def choose(self, epoch: int, state: TrainState, data) -> base.EpochChoice:
    costs = base.no_costs()
    if not self.is_selection_epoch(epoch):
      return base.EpochChoice(self.train_ids, state, False, costs)
    self._wait_for_compile_ahead()
    watch = base.Stopwatch()
    if self._refresh:
      state = self.refresh_scores(state, data)
      jax.block_until_ready(state.trackers[SCORE_TABLE])
      costs["examples_scored"] = len(self.train_ids)
    costs["scoring_seconds"] = watch.seconds()
    watch = base.Stopwatch()
    select, arrays, static = self._selection_call(epoch, state)
    ids = np.asarray(select(**arrays, **static))
    costs["selection_seconds"] = watch.seconds()
    return base.EpochChoice(ids, state, True, costs)

  def end_epoch(self, epoch: int, state: TrainState, example_ids: np.ndarray) -> TrainState:
    tables = dict(state.method_state)
    if TRAJECTORY in tables:
      tables[TRAJECTORY] = _set_row(tables[TRAJECTORY], np.int32(epoch),
                                    state.trackers[SCORE_TABLE])
    if SELECTION_MATRIX in tables:
      row = np.zeros(len(self.dataset.pool), np.uint8)
      row[example_ids] = 1
      tables[SELECTION_MATRIX] = _set_row(tables[SELECTION_MATRIX], np.int32(epoch), row)
    return state.replace(method_state=tables) if tables else state

  # --- end of run --------------------------------------------------------------------

  def finish(self, state, data, workdir, *, fingerprint, num_epochs) -> dict:
    from jaxsel import plotting  # host-only; kept out of the core import path

    final_scores = np.asarray(state.trackers[SCORE_TABLE])[self.train_ids]
    plotting.score_histogram(final_scores, os.path.join(workdir, "scores_final.png"),
                             title="final score table (normalised entropy, training ids)")
    method, tables = self.config.method, {}
    if method.save_scores:
      fresh = self.refresh_scores(state, data).trackers[SCORE_TABLE]
      tables[TRAJECTORY] = np.asarray(state.method_state[TRAJECTORY])[:, self.train_ids].T
      tables[FINAL] = np.asarray(fresh)[self.train_ids]
    if method.save_selection_matrix:
      tables[SELECTION_MATRIX] = np.asarray(
          state.method_state[SELECTION_MATRIX])[:, self.train_ids].T
    if not tables:
      return {"num_selected": self.num_selected}
    path = artifacts.save(workdir, artifacts.ScoreFile(
        example_ids=self.train_ids, tables=tables, fingerprint=fingerprint,
        dataset_name=self.dataset.name, num_epochs=num_epochs, seeds=(self.config.seed,),
        config=json.loads(self.config.to_json())))
    return {"num_selected": self.num_selected, "scores_path": path}
