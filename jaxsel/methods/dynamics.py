"""Training dynamics: full-data training that records per-example scores for others.

The first stage of coverage-centric coreset selection (ALGORITHMS.md C.2-C.3) and of the
forgetting orderings (D.2-D.3): train on every example every epoch while
``jaxsel.dynamics``' tracker accumulates correctness, forgetting events, margins, EL2N and
the loss history of each presentation inside the train step; then score every training
example once more with the final model in eval mode on un-augmented (normalised) inputs,
and write it all as the run's score file, ``WORKDIR/scores.npz``:

  correctness, forgetting, never_learned, accumulated_margin (the CCS AUM), aum (Pleiss et
  al.'s mean logit margin), el2n, last_loss, max_loss_increase, max_relative_loss_increase,
  loss_slope, first_learned, presentations_needed_to_learn, presentations, entropy and loss
  (final model, eval mode), label; with ``grad_norm_epoch`` e, grad_norm (each example's
  eval-mode loss-gradient norm over all parameters after epoch e: the ``grad_norm`` form of
  Gradient Loss, D.5); with ``per_epoch``, correct_by_epoch and loss_by_epoch
  ``[N_train, epochs]``.

Score files of several seeds are combined with ``jaxsel.artifacts.load_many``, or turned
into one ascending ordering with ``jaxsel.orderings``.
"""

import json
import os

import jax
import ml_collections
import numpy as np

from jaxsel import artifacts, dynamics, losses, scores, steps
from jaxsel.config_errors import choice, is_finite_real, is_int, require
from jaxsel.methods import base

FINAL_ENTROPY_EPS = 1e-10  # as the coreset reference's post-training entropy


def _final_scores(logits, labels):
  """Eval-mode scores of the final model (module-level: one compiled pass per process).

  entropy: −Σ p log(p + 1e-10) in nats, not divided by log K, as the coreset reference.
  """
  return {"entropy": scores.entropy(logits, normalize=False, eps=FINAL_ENTROPY_EPS),
          "loss": losses.cross_entropy(logits, labels)}


class TrainingDynamics(base.Method):
  """All data every epoch, with the training-dynamics tracker; writes ``scores.npz``."""

  name = "training_dynamics"

  @classmethod
  def default_config(cls) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        name=cls.name,
        el2n_epochs=10,  # E0: EL2N is summed over the first E0 epochs
        # What the forgetting score of a never-learned example is: zero (the CCS reference)
        # or presentations (its number of presentations, Toneva et al.'s T).
        never_learned_value="zero",
        per_epoch=False,  # also keep [N, epochs] correctness and loss trajectories
        relative_delta=dynamics.RELATIVE_LOSS_DELTA,  # δ of the relative loss increase
        # Per-example loss-gradient norms after this (1-based) epoch; 0: not computed.
        grad_norm_epoch=0,
    ))

  @classmethod
  def check_config(cls, config) -> None:
    method = config.method
    require(is_int(method.el2n_epochs) and method.el2n_epochs >= 1, "method.el2n_epochs",
            "a positive integer", method.el2n_epochs)
    choice(method.never_learned_value, "method.never_learned_value",
           dynamics.NEVER_LEARNED_VALUES)
    require(is_finite_real(method.relative_delta) and method.relative_delta > 0,
            "method.relative_delta", "a finite real > 0", method.relative_delta)
    require(isinstance(method.per_epoch, bool), "method.per_epoch", "True or False",
            method.per_epoch)
    num_epochs = config.train.num_epochs
    bound = f"in [0, train.num_epochs={num_epochs}]" if num_epochs else ">= 0"
    require(is_int(method.grad_norm_epoch) and 0 <= method.grad_norm_epoch
            and (not num_epochs or method.grad_norm_epoch <= num_epochs),
            "method.grad_norm_epoch", f"an integer {bound} (0: no gradient norms)",
            method.grad_norm_epoch)

  def trackers(self):
    method = self.config.method
    per_epoch = self.plan.num_epochs if method.per_epoch else 0
    return {"dynamics": dynamics.tracker(el2n_epochs=method.el2n_epochs, per_epoch=per_epoch,
                                         relative_delta=method.relative_delta)}

  def initial_method_state(self, plan):
    epoch = self.config.method.grad_norm_epoch
    # A run given in steps knows its epochs only now.
    require(epoch <= plan.num_epochs, "method.grad_norm_epoch",
            f"at most the run's {plan.num_epochs} epochs", epoch)
    if not epoch:
      return {}
    # Kept in the train state, so a run resumed after epoch e still has the norms.
    return {"grad_norm": np.zeros(len(self.dataset.pool), np.float32)}

  def _with_grad_norms(self, state, data):
    """The state with every training example's gradient norm in ``method_state``."""
    grad_norm_pass = steps.jit_grad_norm_chunk(losses.cross_entropy)
    # A fresh table, not the state's: the pass donates it, and the state's arrays may still
    # be read by a checkpoint being written in the background.
    table = np.zeros(len(self.dataset.pool), np.float32)
    for ids, mask in base.full_pass_plan(self.config, self.train_ids).chunks():
      table = grad_norm_pass(state, table, data, ids, mask)
    return state.replace(method_state={**state.method_state, "grad_norm": table})

  def choose(self, epoch, state, data):
    choice = super().choose(epoch, state, data)
    if epoch == 0 or epoch != self.config.method.grad_norm_epoch:
      return choice
    watch = base.Stopwatch()
    state = self._with_grad_norms(state, data)
    jax.block_until_ready(state.method_state)
    costs = {**choice.costs, "scoring_seconds": watch.seconds(),
             "examples_scored": len(self.train_ids)}
    return choice._replace(state=state, costs=costs)

  def final_scores(self, state, data) -> dict[str, np.ndarray]:
    """Eval-mode entropy and loss of every training example: {name: [N_train]}."""
    score_pass = steps.jit_score_chunk(_final_scores)
    num_ids = len(self.dataset.pool)
    tables = {name: np.zeros(num_ids, np.float32) for name in ("entropy", "loss")}
    for ids, mask in base.full_pass_plan(self.config, self.train_ids).chunks():
      tables = score_pass(state, tables, data, ids, mask)
    return {name: np.asarray(table)[self.train_ids] for name, table in
            jax.device_get(tables).items()}

  def finish(self, state, data, workdir, *, fingerprint, num_epochs) -> dict:
    tables = dynamics.scores(jax.device_get(state.trackers["dynamics"]), ids=self.train_ids,
                             never_learned_value=self.config.method.never_learned_value)
    watch = base.Stopwatch()
    tables.update(self.final_scores(state, data))
    if self.config.method.grad_norm_epoch == num_epochs:  # after the last epoch
      state = self._with_grad_norms(state, data)
    if self.config.method.grad_norm_epoch:
      tables["grad_norm"] = np.asarray(state.method_state["grad_norm"])[self.train_ids]
    final_scoring_seconds = watch.seconds()
    tables["label"] = self.dataset.pool.labels[self.train_ids].astype(np.int32)
    path = artifacts.save(workdir, artifacts.ScoreFile(
        example_ids=self.train_ids, tables=tables, fingerprint=fingerprint,
        dataset_name=self.dataset.name, num_epochs=num_epochs, seeds=(self.config.seed,),
        config=json.loads(self.config.to_json())))
    if self.config.figures:
      from jaxsel import plotting  # host-only; kept out of the core import path
      plotting.score_histogram(tables["forgetting"], os.path.join(workdir, "forgetting.png"),
                               title="forgetting events per training example",
                               bins=int(tables["forgetting"].max()) + 1)
    never_learned = float(np.mean(tables["never_learned"]))
    unforgettable = float(np.mean((tables["forgetting"] == 0) & ~tables["never_learned"]))
    return {"scores_path": path, "never_learned_fraction": never_learned,
            "unforgettable_fraction": unforgettable,
            # The eval-mode pass over every training example, compilation excluded.
            "final_scoring_seconds": final_scoring_seconds}
