"""Selective backprop (Jiang et al., 2019), as budgeted training uses it (ALGORITHMS.md B.5).

Every epoch forwards every training example; only some are back-propagated. Per loader
batch the train step

1. scores the (augmented, mixed) batch with an eval-mode forward pass: per-example losses;
2. appends them to a ring buffer of the last ``history_size`` (1,024) losses and gives each
   example the fraction of the history strictly below its loss (its percentile π);
3. keeps each example independently with probability π^β (β = ``method.beta``; the
   expected kept fraction is 1/(β + 1) when percentiles are uniform);
4. appends the kept examples (their augmented, mixed inputs and label mixtures) to a queue
   on the device, and whenever the queue holds a full batch takes one optimizer step on
   exactly that batch (mean loss, no re-weighting); what is left waits for the next batch,
   and the remainder is flushed with one smaller step at the end of the epoch.

The first ``priming_epochs`` epochs keep everything, without filling the history. The
learning rate follows forward progress: the schedule's position is the number of forward
(loader) batches so far, so a per-step schedule over the run's loader batches is the
reference's table keyed by examples analysed.

All of it is one jitted step with fixed shapes (a queue of 2B rows, a [B, H] comparison for
the percentiles), so nothing recompiles as the number kept varies, and nothing goes to the
host within an epoch. The reference's per-example Python objects (B.9.6) are gone. The
run reports how many examples it back-propagated (``num_backpropagated`` per epoch) and
forwarded, and the coverage entropy of the per-example backprop counts; an epoch's
``train_loss`` and ``train_accuracy`` are those of the scoring pass over every example.

Under mixup the configured λ is used as drawn; the reference's selective backprop folds it
to max(λ, 1 − λ) and fixes α = 0.3. RICAP works here (the reference's selective backprop
silently runs without it, B.9.2).
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxsel import augment, steps
from jaxsel.config_errors import is_int, is_real, require
from jaxsel.methods import base
from jaxsel.methods.budgeted import coverage_summary, save_counts
from jaxsel.state import TrainState, stream_key


def percentiles(losses: jax.Array, history: jax.Array, filled: jax.Array) -> jax.Array:
  """π_i = |{h in history : h < ℓ_i}| / |history| over the first ``filled`` entries
  (strictly less, so the largest loss of the history gets (n − 1)/n, never 1)."""
  valid = jnp.arange(history.shape[0]) < filled
  below = jnp.sum(valid[None, :] & (history[None, :] < losses[:, None]), axis=1)
  return below / jnp.maximum(filled, 1).astype(jnp.float32)


def ring_append(history: jax.Array, filled: jax.Array, next_slot: jax.Array,
                values: jax.Array, mask: jax.Array):
  """Writes the real rows of ``values`` into the ring buffer after ``next_slot``;
  returns (history, filled, next_slot)."""
  size = history.shape[0]
  order = jnp.cumsum(mask) - 1
  slots = jnp.where(mask, (next_slot + order) % size, size)
  count = jnp.sum(mask).astype(jnp.int32)
  return (history.at[slots].set(values, mode="drop"), jnp.minimum(filled + count, size),
          (next_slot + count) % size)


def enqueue(queue: dict, size: jax.Array, rows: dict, keep: jax.Array):
  """Appends the kept ``rows`` (a dict of [B, ...] arrays) to ``queue`` ([2B, ...] arrays
  holding ``size`` < B rows), in batch order; returns (queue, new size)."""
  capacity = next(iter(queue.values())).shape[0]
  slots = jnp.where(keep, size + jnp.cumsum(keep) - 1, capacity)
  queue = {name: queue[name].at[slots].set(rows[name], mode="drop") for name in queue}
  return queue, size + jnp.sum(keep).astype(jnp.int32)


def dequeue(queue: dict, batch_size: int) -> dict:
  """The queue without its first ``batch_size`` rows (moved up, zeros behind)."""
  return {name: jnp.concatenate([rows[batch_size:], jnp.zeros_like(rows[:batch_size])])
          for name, rows in queue.items()}


class BackpropsSome(base.Method):
  """A method whose train step forwards every example and back-propagates some of them,
  counting on the device how many (this epoch) and how often each example (the run)."""

  def counters(self) -> dict:
    """The counters' part of ``initial_method_state``."""
    return {"backprop_counts": np.zeros(len(self.dataset.pool), np.int32),
            "epoch_backpropagated": np.zeros((), np.int32)}

  def is_selecting(self, epoch: int) -> bool:
    """Whether epoch ``epoch``'s step chooses (``EpochChoice.selected``)."""
    del epoch
    return True

  def choose(self, epoch, state, data):
    choice = super().choose(epoch, state, data)
    state = state.replace(method_state={**state.method_state,
                                        "epoch_backpropagated": np.zeros((), np.int32)})
    return choice._replace(state=state, selected=self.is_selecting(epoch))

  def epoch_examples(self, state, batches):
    backpropagated = int(state.method_state["epoch_backpropagated"])
    # Every example once through the scoring pass, the kept ones once more to train.
    return backpropagated, batches.num_examples + backpropagated

  def finish(self, state, data, workdir, *, fingerprint, num_epochs) -> dict:
    del data
    counts = np.asarray(state.method_state["backprop_counts"])[self.train_ids]
    save_counts(self, workdir, {"selection_count": counts.astype(np.int32)},
                fingerprint=fingerprint, num_epochs=num_epochs)
    return {**coverage_summary(counts),
            "backprop_fraction": float(counts.sum() / (num_epochs * len(counts)))}


class SelectiveBackprop(BackpropsSome):
  """Forward everything, back-propagate the examples whose loss ranks high."""

  name = "selective_backprop"

  @classmethod
  def default_config(cls) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        name=cls.name,
        beta=3.0,  # β: keep with probability percentile^β (β = 1/b − 1 expects budget b)
        history_size=1024,  # losses the percentiles are taken against
        priming_epochs=1,  # epochs that back-propagate everything first
    ))

  @classmethod
  def check_config(cls, config) -> None:
    method = config.method
    require(is_real(method.beta) and 0 <= method.beta < float("inf"), "method.beta",
            "a finite real >= 0", method.beta)
    require(is_int(method.history_size) and method.history_size >= config.train.batch_size,
            "method.history_size",
            f"an integer >= train.batch_size ({config.train.batch_size})", method.history_size)
    require(is_int(method.priming_epochs) and method.priming_epochs >= 0,
            "method.priming_epochs", "an integer >= 0", method.priming_epochs)

  def _mixing_width(self) -> int:
    """M, the number of sources of a mixed row (1 without mixing)."""
    mixing = augment.get_mixing(self.config.mixing, input_shape=self.dataset.input_shape)
    if mixing is None:
      return 1
    inputs = jax.ShapeDtypeStruct((2, *self.dataset.input_shape), jnp.float32)
    mask = jax.ShapeDtypeStruct((2,), jnp.bool_)
    return jax.eval_shape(mixing, jax.random.PRNGKey(0), inputs, mask).positions.shape[1]

  def initial_method_state(self, plan):
    del plan
    rows, width = 2 * self.config.train.batch_size, self._mixing_width()
    return {
        "queue": {"inputs": np.zeros((rows, *self.dataset.input_shape),
                                     np.float32),  # inputs are float32 on both paths
                  "labels": np.zeros((rows, width), np.int32),
                  "weights": np.zeros((rows, width), np.float32),
                  "ids": np.zeros(rows, np.int32)},
        "queue_size": np.zeros((), np.int32),
        "history": np.zeros(self.config.method.history_size, np.float32),
        "history_filled": np.zeros((), np.int32),
        "history_next": np.zeros((), np.int32),
        "forward_batches": np.zeros((), np.int32),
        "key": np.asarray(stream_key(self.config.seed, "selection")),
        **self.counters(),
    }

  def make_train_step(self, *, loss_fn, learning_rate_fn, schedule_unit, augment_fn=None,
                      mixing_fn=None):
    method, batch_size = self.config.method, self.config.train.batch_size
    backprop = functools.partial(_backprop, loss_fn=loss_fn, batch_size=batch_size,
                                 learning_rate_fn=learning_rate_fn,
                                 schedule_unit=schedule_unit)
    self._flush = jax.jit(functools.partial(_flush, backprop=backprop), donate_argnums=0)

    def train_step(state: TrainState, batch, epoch):
      batch, mixed = steps.prepare_inputs(state, batch, epoch, augment_fn=augment_fn,
                                          mixing_fn=mixing_fn)
      rows = jnp.arange(batch_size, dtype=jnp.int32)
      if mixed is None:
        inputs, positions = batch["inputs"], rows[:, None]
        weights = jnp.ones((batch_size, 1), jnp.float32)
      else:
        inputs, positions, weights = mixed
      labels, mask = batch["labels"][positions], batch["mask"]
      logits = steps.predict(state, inputs, mask)  # the scoring pass: eval mode
      losses = augment.blended_loss(loss_fn, logits, labels, weights)
      ms = state.method_state
      priming = epoch < method.priming_epochs
      appended = ring_append(ms["history"], ms["history_filled"], ms["history_next"],
                             losses, mask & ~priming)
      keep_probability = percentiles(losses, appended[0], appended[1]) ** method.beta
      draw = jax.random.uniform(jax.random.fold_in(ms["key"], ms["forward_batches"]),
                                (batch_size,))
      keep = mask & (priming | (draw < keep_probability))
      queue, size = enqueue(ms["queue"], ms["queue_size"],
                            {"inputs": inputs, "labels": labels, "weights": weights,
                             "ids": batch["example_ids"]}, keep)
      state = state.replace(method_state={
          **ms, "queue": queue, "queue_size": size, "history": appended[0],
          "history_filled": appended[1], "history_next": appended[2]})
      state = jax.lax.cond(size >= batch_size,
                           lambda s: backprop(s, jnp.ones(batch_size, bool), epoch),
                           lambda s: s, state)
      state = state.replace(method_state={
          **state.method_state, "forward_batches": ms["forward_batches"] + 1})
      return state, steps.train_sums(losses, logits, batch)

    return train_step

  def is_selecting(self, epoch):
    return epoch >= self.config.method.priming_epochs

  def end_epoch(self, epoch, state, example_ids):
    del example_ids
    return self._flush(state, np.int32(epoch))


def _backprop(state: TrainState, rows: jax.Array, epoch, *, loss_fn, batch_size,
              learning_rate_fn, schedule_unit) -> TrainState:
  """One optimizer step on the queue's first ``batch_size`` rows where ``rows`` is True,
  then those rows leave the queue."""
  ms = state.method_state
  queue = {name: values[:batch_size] for name, values in ms["queue"].items()}
  weights = rows.astype(jnp.float32)

  def objective(params):
    logits, new_model_state = steps.forward(state, params, queue["inputs"], rows)
    per_example = augment.blended_loss(loss_fn, logits, queue["labels"], queue["weights"])
    loss = jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1.0)
    return loss, new_model_state

  grads, new_model_state = jax.grad(objective, has_aux=True)(state.params)
  count = jnp.sum(rows).astype(jnp.int32)
  state = state.replace(method_state={
      **ms, "queue": dequeue(ms["queue"], batch_size),
      "queue_size": jnp.maximum(ms["queue_size"] - batch_size, 0),
      "backprop_counts": ms["backprop_counts"].at[
          jnp.where(rows, queue["ids"], ms["backprop_counts"].shape[0])].add(1, mode="drop"),
      "epoch_backpropagated": ms["epoch_backpropagated"] + count})
  return steps.apply_gradients(state, grads, new_model_state, epoch,
                               learning_rate_fn=learning_rate_fn, schedule_unit=schedule_unit,
                               position=ms["forward_batches"])


def _flush(state: TrainState, epoch, *, backprop) -> TrainState:
  """The epoch's last step: the queue's remainder, if any, as one smaller batch."""

  def step_on_remainder(state):
    ms = state.method_state
    rows = jnp.arange(ms["queue"]["ids"].shape[0] // 2) < ms["queue_size"]
    # At the last forward batch's position (the counter has already moved past it).
    state = state.replace(method_state={**ms, "forward_batches": ms["forward_batches"] - 1})
    state = backprop(state, rows, epoch)
    return state.replace(method_state={**state.method_state,
                                       "forward_batches": ms["forward_batches"]})

  return jax.lax.cond(state.method_state["queue_size"] > 0, step_on_remainder,
                      lambda state: state, state)
