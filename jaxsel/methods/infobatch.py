"""InfoBatch (Qin et al., ICLR 2024): unbiased dynamic data pruning with loss re-scaling.

## G. InfoBatch (Qin, Wang, Zheng, Gu, Peng, Xu, Zhou, Shang, Sun, Xie, You, "InfoBatch:
## Lossless Training Speed-up by Unbiased Dynamic Data Pruning", ICLR 2024)

### G.1 Sources read

`NUS-HPC-AI-Lab/InfoBatch`: `infobatch/infobatch.py` (`InfoBatch.update, prune, no_prune,
stop_prune, reset_weights`, `IBSampler.reset, __iter__`, `DistributedIBSampler`),
`examples/cifar_example.py` (how the loss and the schedule are wired), `README.md`.

### G.2 Scores

- Every example i has a score s_i, its per-example training loss from the most recent train
  step that included it (`update`: `scores[batch ids] = loss.detach()`, gathered over all
  processes): the loss of the very forward pass the gradient comes from (train mode,
  augmented, mixed if mixing), before re-weighting. Examples left out of an epoch keep the
  score of their last step.
- The reference starts every score at 3.0; jaxsel starts them "unseen" (NaN) and always
  keeps unseen examples. Both train on every example in the first epoch (all scores equal,
  so none is below the mean); with `drop_remainder=False` (the default) every example has
  then been seen and the two are identical from there on.

### G.3 One epoch's examples (`prune`, from the sampler's `reset` before each epoch)

Let r be `prune_ratio` (0.5), keep ratio κ = clip(1 − r, 0.1, 1) (the reference clips; jaxsel
refuses r > 0.9 instead of silently keeping 10 %), E the epochs and δ = 1 − `anneal_fraction`
(0.875). Epoch e (0-based) is the reference's sampler iteration e + 1 (its constructor
calls `reset` once before training, with nothing learned), so:

- **pruning epochs**, e + 1 ≤ E·δ: the mean m = mean of the scores of all (seen) training
  examples, the stale ones included. The well-learned set W = {i : s_i < m} (strictly
  less). ⌊κ·|W|⌋ of W are drawn uniformly without replacement; they get loss weight 1/κ,
  every other example weight 1. The epoch trains on the complement of W plus the drawn
  ones; the rest of W is pruned for this epoch. Drawn with `default_rng([seed, tag,
  epoch])` (the reference: `np.random.seed(iteration)`, the same draw in every run).
- **annealing epochs**, e + 1 > E·δ (the final 12.5 %): every training example, weight 1.
  The reference resets the weights to 1 only at iteration E·δ + 1, which exists only when
  E·δ is an integer; otherwise the last pruning epoch's weights 1/κ stay on during the
  annealing (e.g. E = 10: 8.75). jaxsel resets them; `reference_weight_reset=True` keeps
  the reference's behaviour.
- The loop shuffles the epoch's ids as for every method (the reference shuffles them too).

### G.4 The step

The loss of a batch is mean_i(w_i · ℓ_i) over its examples: the re-weighted losses divided by
the batch's size, not by Σ w_i (`values.mul_(weights); values.mean()`), so the expected
gradient of an epoch equals the full epoch's: each i ∈ W is kept with probability κ and
weighted 1/κ. jaxsel's standard step takes the weights through its generic `loss_weights`
input, gathered by id from the `loss_weights` table in `state.method_state`.

### G.5 Epoch count and learning rate

E is the number of (planned, full) epochs; pruned epochs have fewer steps. The reference's
CIFAR example rebuilds its per-step OneCycle schedule every epoch with that epoch's number
of steps (`steps_per_epoch=len(trainloader), last_epoch=epoch·len − 1`), i.e. every epoch
sweeps the learning-rate range a full epoch would. jaxsel does the same for any per-step
schedule: step j of an epoch of n steps (n_full planned) is at schedule position
(start of the epoch's planned steps) + j · n_full / n. Per-epoch schedules need nothing.
A run is therefore given in epochs (`train.num_epochs`, not `num_train_steps`); evaluation
and checkpoint triggers in steps count planned steps.

### G.6 Cost ("total saving")

The reference counts the pruned examples, Σ_e (N − |epoch e|) (`get_pruned_count`, printed
as "Total saved sample forwarding"); the paper's "saved (%)" is that over E·N. The run's
summary has both (`infobatch_saved_examples`, `infobatch_saving_percent`) beside jaxsel's
exact `examples_backpropagated` (= E·N − saved; the scores cost no extra pass).
"""

import jax
import ml_collections
import numpy as np

from jaxsel import durations, trackers
from jaxsel.config_errors import UserError, is_real, require
from jaxsel.methods import base
from jaxsel.state import TrainState

SCORE_TABLE = "last_loss"
MAX_PRUNE_RATIO = 0.9  # the reference keeps at least 10 % of the well-learned examples
_PRUNE_TAG = 0x1B0B  # the pruning draw's stream: default_rng([seed, tag, epoch])


def keep_ratio(prune_ratio: float) -> float:
  """κ = clip(1 − r, 0.1, 1), the fraction of the well-learned examples an epoch keeps."""
  return min(1.0, max(1.0 - MAX_PRUNE_RATIO, 1.0 - prune_ratio))


def is_pruning_epoch(epoch: int, *, num_epochs: int, anneal_fraction: float) -> bool:
  """Epoch ``epoch`` (0-based) prunes iff it is the reference's iteration e + 1 ≤ E·δ."""
  return epoch + 1 <= num_epochs * (1.0 - anneal_fraction)


def prune(scores: np.ndarray, *, keep: float,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """One pruning epoch (G.3) over the candidates' ``scores`` (float32 [M], NaN = unseen).

  Returns (kept: bool [M], weights: float32 [M]): the candidates the epoch trains on, and
  their loss weights (1/κ for the well-learned ones drawn, 1 otherwise).
  """
  seen = ~np.isnan(scores)
  weights = np.ones(len(scores), np.float32)
  if not seen.any():
    return np.ones(len(scores), bool), weights
  mean = np.mean(scores[seen], dtype=np.float64)
  well_learned = np.flatnonzero(seen & (scores < mean))
  drawn = rng.choice(well_learned, int(keep * len(well_learned)), replace=False)
  kept = np.ones(len(scores), bool)
  kept[well_learned] = False
  kept[drawn] = True
  weights[drawn] = 1.0 / keep
  return kept, weights


class InfoBatch(base.Method):
  """Prune a random part of the below-mean-loss examples each epoch, up-weight the rest."""

  name = "infobatch"
  epoch_size_varies = True

  @classmethod
  def default_config(cls) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        name=cls.name,
        prune_ratio=0.5,  # r: the fraction of the below-mean examples pruned each epoch
        anneal_fraction=0.125,  # 1 − δ: the final epochs that train on everything
        # True: the reference's weight reset (only at epoch E·δ, which an E·δ that is not
        # an integer never reaches, so the last weights stay on while annealing).
        reference_weight_reset=False,
    ))

  @classmethod
  def check_config(cls, config) -> None:
    method = config.method
    require(is_real(method.prune_ratio) and 0 <= method.prune_ratio <= MAX_PRUNE_RATIO,
            "method.prune_ratio",
            f"in [0, {MAX_PRUNE_RATIO}] (the reference keeps at least 10 % of the "
            "well-learned examples)", method.prune_ratio)
    require(is_real(method.anneal_fraction) and 0 <= method.anneal_fraction <= 1,
            "method.anneal_fraction", "in [0, 1]", method.anneal_fraction)
    require(isinstance(method.reference_weight_reset, bool), "method.reference_weight_reset",
            "True or False", method.reference_weight_reset)
    if config.train.num_train_steps:
      raise UserError(
          "config.train.num_train_steps must be 0 with config.method.name='infobatch': its "
          "epochs shrink with what the model has learned, so the run's length is given in "
          "epochs (config.train.num_epochs)")

  def __init__(self, config, dataset):
    super().__init__(config, dataset)
    self.keep = keep_ratio(config.method.prune_ratio)

  def trackers(self):
    return {SCORE_TABLE: trackers.last_loss()}

  def initial_method_state(self, plan):
    del plan
    return {"loss_weights": np.ones(len(self.dataset.pool), np.float32),
            "pruned": np.zeros((), np.int32),
            # The per-step schedule's position (G.5): where the epoch starts in planned
            # steps, the optimizer's step count then, and planned / actual steps.
            "planned_start": np.zeros((), np.int32), "step_start": np.zeros((), np.int32),
            "step_scale": np.ones((), np.float32)}

  @staticmethod
  def loss_weights(state: TrainState, batch) -> jax.Array:
    return state.method_state["loss_weights"][batch["example_ids"]]

  @staticmethod
  def schedule_position(state: TrainState, epoch) -> jax.Array:
    del epoch
    ms = state.method_state
    return ms["planned_start"] + (state.step - ms["step_start"]) * ms["step_scale"]

  def _pruning(self, epoch: int) -> bool:
    return is_pruning_epoch(epoch, num_epochs=self.plan.num_epochs,
                            anneal_fraction=self.config.method.anneal_fraction)

  def _annealing_weights(self, epoch: int, weights: jax.Array) -> np.ndarray | jax.Array:
    """An annealing epoch's weight table: all 1, or the reference's (G.3)."""
    stop = self.plan.num_epochs * (1.0 - self.config.method.anneal_fraction)
    if self.config.method.reference_weight_reset and epoch != stop:
      return weights
    return np.ones(len(self.dataset.pool), np.float32)

  def choose(self, epoch, state, data):
    del data
    watch = base.Stopwatch()
    ms = dict(state.method_state)
    ids = self.train_ids
    if self._pruning(epoch):
      scores = np.asarray(jax.device_get(state.trackers[SCORE_TABLE]))[ids]
      kept, weights = prune(scores, keep=self.keep, rng=np.random.default_rng(
          [self.config.seed, _PRUNE_TAG, epoch]))
      table = np.ones(len(self.dataset.pool), np.float32)
      table[ids] = weights
      ms["loss_weights"], ids = table, ids[kept]
    else:
      ms["loss_weights"] = self._annealing_weights(epoch, ms["loss_weights"])
    planned = self.plan.epoch_steps[epoch]
    actual = durations.steps_per_epoch(len(ids), batch_size=self.config.train.batch_size,
                                       drop_remainder=self.config.train.drop_remainder)
    ms.update(pruned=np.int32(int(ms["pruned"]) + len(self.train_ids) - len(ids)),
              planned_start=np.int32(self.plan.steps_before(epoch)),
              step_start=np.asarray(jax.device_get(state.step), np.int32),
              step_scale=np.float32(planned / max(actual, 1)))
    costs = base.no_costs()
    costs["selection_seconds"] = watch.seconds()
    return base.EpochChoice(ids, state.replace(method_state=ms), len(ids) < len(self.train_ids),
                            costs)

  def finish(self, state, data, workdir, *, fingerprint, num_epochs) -> dict:
    del data, workdir, fingerprint
    saved = int(state.method_state["pruned"])
    return {"infobatch_saved_examples": saved,
            "infobatch_saving_percent": 100.0 * saved / (num_epochs * len(self.train_ids)),
            "infobatch_keep_ratio": self.keep}
