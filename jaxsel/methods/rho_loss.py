"""RHO-LOSS (Mindermann et al., ICML 2022): train on the points with the largest reducible loss.

## H. RHO-LOSS (Mindermann, Brauner, Razzak, Sharma, Kirsch, Xu, Höltgen, Gomez, Morisot,
## Farquhar, Gal, "Prioritized Training on Points that are Learnable, Worth Learning, and
## Not Yet Learnt", ICML 2022)

### H.1 Sources read

`OATML/RHO-Loss`: `src/curricula/selection_methods.py` (`reducible_loss_selection`,
`_compute_irreducible_loss`), `src/models/MultiModels.py` (`training_step`),
`src/train_irreducible.py`, `src/utils/utils.py` (`compute_losses_with_sanity_checks`),
`configs/irreducible_training.yaml`, `configs/model/*.yaml`, `configs/datamodule/*.yaml`.

### H.2 The irreducible-loss (IL) model: a first run, `method.name='irreducible_loss'`

- A model trained on a holdout set, never on the training set. The reference trains it on
  its validation split (`fit(train_dataloaders=val_dataloader())`, 30 epochs, AdamW, with
  the training augmentation on that split) and keeps the checkpoint of lowest loss on its
  *test* split (`val_dataloaders=test_dataloader()`: model selection on the test set).
- jaxsel trains on the run's validation ids (`dataset.train_fraction` sets how many) and
  validates on the training ids, which the IL model never sees: the run swaps the two
  (`run_dataset`). The test split is only reported. The losses come from the last model.
- It then writes, for every training id, the eval-mode cross-entropy of the un-augmented
  example, ℓ_IL(i) = CE(f_IL(x_i), y_i) (`compute_losses_with_sanity_checks`), as the score
  file `WORKDIR/scores.npz` (table `irreducible_loss`) with the fingerprint of the
  un-swapped dataset, which the RHO-LOSS run checks.

### H.3 Selection (`reducible_loss_selection`, `MultiModels.training_step`)

- The loader batch is the big batch of n_B examples (`train.batch_size`; the paper's n_B =
  320); n_b = max(1, ⌊n_B · `selected_fraction`⌋) of them are trained on (the paper's 10 %:
  32).
- Each example of the big batch is scored without gradient, in eval mode (the reference's
  default, `selection_train_mode=False`: BatchNorm running statistics, no dropout), on the
  batch's (augmented) inputs: reducible loss = CE(f(x_i), y_i) − ℓ_IL(i). The irreducible
  loss is fixed (the reference's `update_irreducible=False` default).
- The n_b largest reducible losses are selected (`torch.topk`; ties here: the lower row);
  one standard optimizer step trains on them (train mode, the configured loss, mean over
  the n_b). Padding rows of the last big batch score −∞ and stay masked if selected.
- Mixing is refused: the reference scores un-mixed examples and has no mixed variant.

### H.4 Shapes, schedule and cost

All of it is one jitted step with fixed shapes (n_B scoring rows, a static top-n_b, a
[n_b]-row train step), so nothing recompiles and nothing goes to the host within an epoch.
One optimizer step per big batch: a per-step schedule counts big batches. Every example is
forwarded once per epoch for scoring and the selected ones once more to train:
`examples_forwarded` = N + back-propagated, `examples_backpropagated` ≈ N · n_b / n_B per
epoch. The IL run's cost is its own run (the comparison counts it as scoring).
"""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxsel import artifacts, losses, steps
from jaxsel.config_errors import UserError, is_real, require
from jaxsel.methods import base, selective_backprop
from jaxsel.state import TrainState

TABLE = "irreducible_loss"


def swapped(dataset):
  """The dataset with its training and validation ids exchanged."""
  return dataclasses.replace(dataset, train_ids=dataset.validation_ids,
                             validation_ids=dataset.train_ids)


def _irreducible_table(logits, labels):
  """Eval-mode score pass: each example's cross-entropy (module-level: one compiled pass)."""
  return {TABLE: losses.cross_entropy(logits, labels)}


def select_reducible(losses_now: jax.Array, irreducible: jax.Array, mask: jax.Array,
                     num_selected: int) -> jax.Array:
  """Rows [n_b] of the ``num_selected`` largest reducible losses ``losses_now −
  irreducible`` among the real rows (``mask``); padding rows rank last."""
  reducible = jnp.where(mask, losses_now - irreducible, -jnp.inf)
  return jax.lax.top_k(reducible, num_selected)[1]


class IrreducibleLoss(base.Method):
  """Trains the irreducible-loss model on the holdout (validation) ids and writes its
  per-example losses on the training ids (H.2)."""

  name = "irreducible_loss"

  @classmethod
  def check_config(cls, config) -> None:
    if config.removal.remove_n or config.removal.remove_subsample or any(
        config.noise[f] for f in ("label_percent", "value_percent")):
      raise UserError("config.removal and config.noise must be off with "
                      "config.method.name='irreducible_loss': they change the training ids, "
                      "which this run does not train on")

  @classmethod
  def run_dataset(cls, config, dataset):
    if not len(dataset.validation_ids):
      raise UserError("config.method.name='irreducible_loss' trains on the validation ids, "
                      "and there are none: set config.dataset.train_fraction below 1 (now "
                      f"{config.dataset.train_fraction})")
    return swapped(dataset)

  def finish(self, state, data, workdir, *, fingerprint, num_epochs) -> dict:
    del fingerprint
    original = swapped(self.dataset)  # the training ids of the runs that read the file
    ids = original.train_ids
    table = {TABLE: np.zeros(len(self.dataset.pool), np.float32)}
    score_pass = steps.jit_score_chunk(_irreducible_table)
    for chunk_ids, mask in base.full_pass_plan(self.config, ids).chunks():
      table = score_pass(state, table, data, chunk_ids, mask)
    values = np.asarray(table[TABLE])[ids]
    path = artifacts.save(workdir, artifacts.ScoreFile(
        example_ids=ids, tables={TABLE: values}, fingerprint=original.fingerprint,
        dataset_name=self.dataset.name, num_epochs=num_epochs, seeds=(self.config.seed,),
        config=json.loads(self.config.to_json())))
    return {"irreducible_loss_path": path,
            "irreducible_loss_mean": float(values.mean())}


class RhoLoss(selective_backprop.BackpropsSome):
  """Forward a big batch, back-propagate its points of largest reducible loss (H.3)."""

  name = "rho_loss"

  @classmethod
  def default_config(cls) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        name=cls.name,
        # The irreducible_loss run's scores.npz (or its run directory).
        irreducible_loss_path="",
        selected_fraction=0.1,  # n_b / n_B: of each big batch (train.batch_size) trained on
    ))

  @classmethod
  def check_config(cls, config) -> None:
    method = config.method
    require(isinstance(method.irreducible_loss_path, str) and
            bool(method.irreducible_loss_path), "method.irreducible_loss_path",
            "the scores.npz (or run directory) of a config.method.name='irreducible_loss' "
            "run on this dataset", method.irreducible_loss_path)
    require(is_real(method.selected_fraction) and 0 < method.selected_fraction <= 1,
            "method.selected_fraction", "in (0, 1]", method.selected_fraction)
    if config.mixing.name != "none":
      raise UserError(f"config.mixing.name is {config.mixing.name!r}; RHO-LOSS scores and "
                      "selects un-mixed examples: set it to 'none'")

  def __init__(self, config, dataset):
    super().__init__(config, dataset)
    self.num_selected = max(1, int(config.train.batch_size * config.method.selected_fraction))
    scores = artifacts.load(config.method.irreducible_loss_path,
                            fingerprint=dataset.fingerprint, example_ids=dataset.train_ids,
                            required=(TABLE,), field="method.irreducible_loss_path")
    self._irreducible = np.zeros(len(dataset.pool), np.float32)
    self._irreducible[scores.example_ids] = scores.table(TABLE)

  def initial_method_state(self, plan):
    del plan
    return {"irreducible": self._irreducible, **self.counters()}

  def make_train_step(self, *, loss_fn, learning_rate_fn, schedule_unit, augment_fn=None,
                      mixing_fn=None):
    del mixing_fn  # refused by check_config
    return functools.partial(_rho_step, loss_fn=loss_fn, learning_rate_fn=learning_rate_fn,
                             schedule_unit=schedule_unit, augment_fn=augment_fn,
                             num_selected=self.num_selected)

  def finish(self, state, data, workdir, *, fingerprint, num_epochs) -> dict:
    return {**super().finish(state, data, workdir, fingerprint=fingerprint,
                             num_epochs=num_epochs),
            "num_selected_per_batch": self.num_selected}


def _rho_step(state: TrainState, batch, epoch, *, loss_fn, learning_rate_fn, schedule_unit,
              augment_fn, num_selected: int):
  """Score the big batch, train on its ``num_selected`` rows of largest reducible loss."""
  batch, _ = steps.prepare_inputs(state, batch, epoch, augment_fn=augment_fn, mixing_fn=None)
  logits = steps.predict(state, batch["inputs"], batch["mask"])  # eval mode, no gradient
  scoring_losses = losses.cross_entropy(logits, batch["labels"])
  ms = state.method_state
  rows = select_reducible(scoring_losses, ms["irreducible"][batch["example_ids"]],
                          batch["mask"], num_selected)
  small = {name: values[rows] for name, values in batch.items()}
  grads, (_, _, new_model_state) = steps.loss_and_grads(state, small, None, loss_fn=loss_fn)
  safe_ids = jnp.where(small["mask"], small["example_ids"], ms["backprop_counts"].shape[0])
  state = state.replace(method_state={
      **ms, "backprop_counts": ms["backprop_counts"].at[safe_ids].add(1, mode="drop"),
      "epoch_backpropagated": ms["epoch_backpropagated"]
      + jnp.sum(small["mask"]).astype(jnp.int32)})
  state = steps.apply_gradients(state, grads, new_model_state, epoch,
                                learning_rate_fn=learning_rate_fn, schedule_unit=schedule_unit)
  return state, steps.train_sums(scoring_losses, logits, batch)
