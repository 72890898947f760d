"""Training dynamics: full-data training that records per-example scores for others.

The first stage of coverage-centric coreset selection (ALGORITHMS.md C.2-C.3) and of the
forgetting orderings (D.2-D.3): train on every example every epoch while
``jaxsel.dynamics``' tracker accumulates correctness, forgetting events, margins, EL2N and
the loss history of each presentation inside the train step; then score every training
example once more with the final model in eval mode on un-augmented (normalised) inputs,
and write it all as the run's score file, ``WORKDIR/scores.npz``:

  correctness, forgetting, never_learned, accumulated_margin (the CCS AUM), aum (Pleiss et
  al.'s mean logit margin), el2n, last_loss, max_loss_increase, presentations, entropy and
  loss (final model, eval mode), label; with ``per_epoch``, correct_by_epoch and
  loss_by_epoch ``[N_train, epochs]``.

Score files of several seeds are combined with ``jaxsel.artifacts.load_many``.
"""

import json
import os

import jax
import ml_collections
import numpy as np

from jaxsel import artifacts, dynamics, losses, scores, steps
from jaxsel.config_errors import choice, is_int, require
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
    ))

  @classmethod
  def check_config(cls, config) -> None:
    method = config.method
    require(is_int(method.el2n_epochs) and method.el2n_epochs >= 1, "method.el2n_epochs",
            "a positive integer", method.el2n_epochs)
    choice(method.never_learned_value, "method.never_learned_value",
           dynamics.NEVER_LEARNED_VALUES)

  def trackers(self):
    per_epoch = self.plan.num_epochs if self.config.method.per_epoch else 0
    return {"dynamics": dynamics.tracker(el2n_epochs=self.config.method.el2n_epochs,
                                         per_epoch=per_epoch)}

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
