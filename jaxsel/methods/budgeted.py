"""Budgeted importance sampling (Arazo et al., BMVC 2021; ALGORITHMS.md B.2-B.4).

Under a budget b ∈ (0, 1] every epoch trains on n_b = ⌊b · N⌋ examples and the number of
epochs stays fixed, so a run costs about b of the full-data iterations (with
``train.drop_remainder``, the reference's drop-last, and a linear per-step decay over the
budgeted total: ``schedule.name='linear'``, ``unit='step'``, ``end_at_last_step=True``).
At the start of every epoch the subset is drawn without replacement (successive sampling,
as Gumbel-top-k) with probabilities from ``method.sampler``:

- ``unif`` (unif-SGD): uniform, a fresh random subset each epoch;
- ``p`` (p-SGD): the example's difficulty s_i, the running mean over all its
  presentations of 1 − p_y, kept on the device by the train step;
- ``c`` (c-SGD): ŝ(1 − ŝ), closeness to the decision threshold;

with the reference's handling of unseen examples and smoothing constant ε (B.4). The B.8
ablations are switches: ``smoothing=False`` (no ε) and ``difficulty='last'`` (the last
value instead of the historical average).

The other baselines of the paper need no method of their own: budgeted SGD is
``full_data`` run for b of the steps (``train.num_train_steps``), the fixed "Random" and
"Core-set" subsets are the ``coreset`` method with ``pruning_rate = 1 − b`` (rule
``random``, or a score-based rule), and selective backprop is ``selective_backprop``.

Every example's selection count is kept on the device (``method_state``); the run reports
the coverage entropy H(c) of these counts (B.8) and writes them with the difficulties to
``selection_counts.npz``.
"""

import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxsel import artifacts, importance, selection
from jaxsel.config_errors import choice, is_int, is_real, require
from jaxsel.methods import base
from jaxsel.state import stream_key

COUNTS_FILE = "selection_counts.npz"
DIFFICULTIES = ("mean", "last")


@functools.partial(jax.jit, static_argnames=("sampler", "smoothing", "k"))
def draw_subset(seed, epoch, difficulty, counts, train_ids, *, sampler: str, smoothing: bool,
                k: int):
  """The epoch's ids (sorted) and the selection counts with them added.

  difficulty: float32 [N] by example id (``UNSEEN`` < 0 where not seen); counts: int32 [N];
  train_ids: int32 [M] candidates. Draws ``fold_in(stream 'selection', epoch)``.
  """
  weights = importance.sampling_weights(difficulty[train_ids], sampler=sampler,
                                        smoothing=smoothing)
  key = jax.random.fold_in(stream_key(seed, "selection"), epoch)
  ids = jnp.sort(train_ids[selection.weighted_without_replacement(key, weights, k=k)])
  return ids, counts.at[ids].add(1)


class Budgeted(base.Method):
  """unif-SGD / p-SGD / c-SGD: a budget-sized subset drawn anew every epoch."""

  name = "budgeted"

  @classmethod
  def default_config(cls) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        name=cls.name,
        budget=0.3,  # b: the fraction of the training examples each epoch trains on
        sampler="p",  # unif | p (p-SGD) | c (c-SGD)
        smoothing=True,  # add ε = the mean raw weight (False: the "no ε" ablation)
        difficulty="mean",  # mean: historical average of 1 − p_y | last: its last value
        # Epochs drawn uniformly before the sampler takes over (the reference's
        # --c_sgd_warmup w, 1-based, is uniform_epochs = w − 1).
        uniform_epochs=0,
        # RICAP only. False: each source example gets the area-weighted predictions of
        # the patched images it is part of | True: image n's prediction at y_n goes to
        # example n, the reference's bug (ALGORITHMS.md B.9.1).
        reference_ricap_scores=False,
    ))

  @classmethod
  def check_config(cls, config) -> None:
    method = config.method
    require(is_real(method.budget) and 0 < method.budget <= 1, "method.budget",
            "in (0, 1]", method.budget)
    choice(method.sampler, "method.sampler", importance.SAMPLERS)
    choice(method.difficulty, "method.difficulty", DIFFICULTIES)
    for field in ("smoothing", "reference_ricap_scores"):
      require(isinstance(method[field], bool), f"method.{field}", "True or False",
              method[field])
    require(is_int(method.uniform_epochs) and method.uniform_epochs >= 0,
            "method.uniform_epochs", "an integer >= 0", method.uniform_epochs)

  def __init__(self, config, dataset):
    super().__init__(config, dataset)
    self.size = importance.budget_size(len(dataset.train_ids), config.method.budget)

  def examples_in_epoch(self, epoch: int) -> int:
    del epoch
    return self.size

  def trackers(self):
    ricap_area = (self.config.mixing.name == "ricap"
                  and not self.config.method.reference_ricap_scores)
    return {"difficulty": importance.difficulty_tracker(
        attribution="area" if ricap_area else "own")}

  def initial_method_state(self, plan):
    del plan
    return {"selection_counts": np.zeros(len(self.dataset.pool), np.int32)}

  def _sampler(self, epoch: int) -> str:
    return "unif" if epoch < self.config.method.uniform_epochs else self.config.method.sampler

  def choose(self, epoch, state, data) -> base.EpochChoice:
    del data
    method = self.config.method
    watch = base.Stopwatch()
    table = "difficulty" if method.difficulty == "mean" else "last_difficulty"
    ids, counts = draw_subset(
        np.int32(self.config.seed), np.int32(epoch), state.trackers["difficulty"][table],
        state.method_state["selection_counts"], self.train_ids, sampler=self._sampler(epoch),
        smoothing=method.smoothing, k=self.size)
    ids = np.asarray(ids)  # the loop lays out batches on the host
    state = state.replace(method_state={**state.method_state, "selection_counts": counts})
    costs = {**base.no_costs(), "selection_seconds": watch.seconds()}
    return base.EpochChoice(ids, state, True, costs)

  def finish(self, state, data, workdir, *, fingerprint, num_epochs) -> dict:
    del data
    counts = np.asarray(state.method_state["selection_counts"])[self.train_ids]
    tables = jax.device_get(state.trackers["difficulty"])
    save_counts(self, workdir, {
        "selection_count": counts.astype(np.int32),
        "difficulty": np.asarray(tables["difficulty"])[self.train_ids],
        "last_difficulty": np.asarray(tables["last_difficulty"])[self.train_ids]},
        fingerprint=fingerprint, num_epochs=num_epochs)
    return coverage_summary(counts)


def save_counts(method: base.Method, workdir: str, tables: dict, *, fingerprint: str,
                num_epochs: int) -> str:
  """Writes ``WORKDIR/selection_counts.npz``: per-example ``tables`` over the method's
  training ids (``selection_count`` at least)."""
  return artifacts.save(os.path.join(workdir, COUNTS_FILE), artifacts.ScoreFile(
      example_ids=method.train_ids, tables=tables, fingerprint=fingerprint,
      dataset_name=method.dataset.name, num_epochs=num_epochs, seeds=(method.config.seed,),
      config=json.loads(method.config.to_json())))


def coverage_summary(counts: np.ndarray) -> dict:
  """summary.json entries of per-example selection counts: H(c), its maximum ln N, and the
  fraction of examples never selected."""
  return {"coverage_entropy": importance.coverage_entropy(counts),
          "coverage_entropy_max": math.log(len(counts)),
          "never_selected_fraction": float(np.mean(counts == 0))}
