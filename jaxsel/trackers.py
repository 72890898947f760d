"""Per-example running statistics, kept on the device and updated inside the train step.

A statistic is a ``Tracker``: a pair of pure functions

  init(num_ids)              -> state   (a pytree of ``[N]`` or ``[N, ...]`` tables)
  update(state, outputs)     -> state

where ``N`` is the size of the source train split and every table is indexed by the
stable ``example_id`` of an example. ``outputs`` is the ``StepOutputs`` of one train step:
the batch's ids, mask and labels, the logits of the forward pass used for the gradient
(train mode, augmented and mixed inputs, parameters before the update — the "PUTF"
statistics of ALGORITHMS.md 0.1), the per-example training loss, the epoch and step, and
for mixed batches which examples each input was mixed from and with what weights. A new
statistic is therefore one new tracker; the train step does not change. ``combine``
merges named trackers into one whose state is the ``trackers`` field of the train state.

Padding rows. A padded final batch has ``mask == False`` rows whose ``example_id`` is 0, a
real id. Every write goes through ``scatter_set`` (or ``scatter_add``), which drops those
rows, so padding never touches a table.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

# logits [B, K] -> per-example score [B].
ScoreFn = Callable[[jax.Array], jax.Array]


class StepOutputs(NamedTuple):
  """What one train step hands to the trackers (all device arrays, B rows).

  example_ids: int32 [B]; mask: bool [B] (False = padding row); labels: int32 [B].
  logits: float32 [B, K] of the forward pass the trackers score: by default the one the
    loss was computed from; with a method's clean view, a train-mode forward pass of the
    un-mixed inputs with the same parameters.
  loss: float32 [B], the per-example training loss (the mixed loss under mixing).
  epoch, step: int32 [], the 0-based epoch and the optimizer step before the update.
  sources: int32 [B, M], the example ids each row's input was made from (M = 1 and
    ``sources[:, 0] == example_ids`` without mixing; mixup: the row and its partner).
  weights: float32 [B, M], their mixing weights (rows sum to 1).
  positions: int32 [B, M], the batch rows of those sources (``sources ==
    example_ids[positions]``), e.g. to read their labels.
  """

  example_ids: jax.Array
  mask: jax.Array
  labels: jax.Array
  logits: jax.Array
  loss: jax.Array
  epoch: jax.Array
  step: jax.Array
  sources: jax.Array
  weights: jax.Array
  positions: jax.Array

  @classmethod
  def of(cls, example_ids, labels, logits, *, mask=None, loss=None, epoch=0,
         step=0) -> "StepOutputs":
    """Outputs of an un-mixed batch, for training loops other than jaxsel's: every row
    real unless ``mask`` says otherwise, loss 0 unless given, each row its own source."""
    example_ids = jnp.asarray(example_ids, jnp.int32)
    rows = example_ids.shape[0]
    return cls(
        example_ids=example_ids,
        mask=jnp.ones(rows, bool) if mask is None else jnp.asarray(mask, bool),
        labels=jnp.asarray(labels, jnp.int32), logits=logits,
        loss=jnp.zeros(rows, jnp.float32) if loss is None else loss,
        epoch=jnp.asarray(epoch, jnp.int32), step=jnp.asarray(step, jnp.int32),
        sources=example_ids[:, None], weights=jnp.ones((rows, 1), jnp.float32),
        positions=jnp.arange(rows, dtype=jnp.int32)[:, None])

  @property
  def correct(self) -> jax.Array:
    """bool [B]: whether the prediction (argmax of ``logits``) is the row's own label."""
    return jnp.argmax(self.logits, axis=-1) == self.labels


class Tracker(NamedTuple):
  """A per-example statistic as an (init, update) pair of pure functions.

  init: ``num_ids -> state``, a pytree of tables with leading axis ``num_ids``.
  update: ``(state, outputs: StepOutputs) -> state``, traced inside the jitted train step;
    it must write only the rows whose ``mask`` is True.
  """

  init: Callable[[int], Any]
  update: Callable[[Any, StepOutputs], Any]


def _drop_padding(table: jax.Array, ids: jax.Array, values: jax.Array,
                  mask: jax.Array) -> jax.Array:
  # Checked while tracing (free at run time): a [B] table write with [B, K] values, or
  # ids and mask of different lengths, would otherwise broadcast into something wrong.
  chex.assert_rank([ids, mask], 1)
  chex.assert_equal_shape([ids, mask])
  chex.assert_shape(values, (ids.shape[0], *table.shape[1:]))
  # Masked-out rows are redirected to index N, one past the end, which ``mode="drop"``
  # discards. N rather than -1 because negative indices wrap around to the end.
  return jnp.where(mask, ids, jnp.asarray(table.shape[0], ids.dtype))


def scatter_set(table: jax.Array, ids: jax.Array, values: jax.Array,
                mask: jax.Array) -> jax.Array:
  """``table[ids[i]] = values[i]`` for every row i with ``mask[i]``; other rows are ignored.

  Args:
    table: ``[N, ...]``.
    ids: int ``[B]`` example ids in [0, N).
    values: ``[B, ...]``, cast to ``table.dtype``.
    mask: bool ``[B]``; False marks a padding row.

  Returns:
    The updated table.

  Masking the *value* instead of the index would not do: a padding row carries id 0, a
  duplicate of a real id whenever example 0 is in the epoch, and XLA does not say which of
  several writes to one index wins, so the padding row could overwrite the real example's
  new value.

  Real rows of a batch have distinct ids (an epoch's ids are drawn without replacement),
  so among the writes that land each index is written at most once and the result is well
  defined. This is not checked here: an assertion inside jit would need a host callback on
  every step.
  """
  safe_ids = _drop_padding(table, ids, values, mask)
  return table.at[safe_ids].set(values.astype(table.dtype), mode="drop")


def scatter_add(table: jax.Array, ids: jax.Array, values: jax.Array,
                mask: jax.Array) -> jax.Array:
  """``table[ids[i]] += values[i]`` for every row i with ``mask[i]``; repeated ids add up.

  For contributions that may hit one example several times in a batch, e.g. the sources
  of mixed inputs (``StepOutputs.sources``), where one example can be a partner of several
  rows.
  """
  safe_ids = _drop_padding(table, ids, values, mask)
  return table.at[safe_ids].add(values.astype(table.dtype), mode="drop")


def last_score(score_fn: ScoreFn, *, initial_value: float = 0.0) -> Tracker:
  """The most recent score of each example: a float32 ``[N]`` table.

  ``init`` fills the table with ``initial_value``. ``update`` overwrites the entries of the
  batch's real rows with ``score_fn(outputs.logits)`` (``[B, K] -> [B]``) and leaves every
  other entry as it was. As in the calibrated-sample-prioritization paper, an example left
  out of an epoch's subset keeps the score it had when it was last trained on.
  """

  def init(num_ids: int) -> jax.Array:
    return jnp.full((num_ids,), initial_value, jnp.float32)

  def update(table, outputs: StepOutputs):
    return scatter_set(table, outputs.example_ids, score_fn(outputs.logits), outputs.mask)

  return Tracker(init=init, update=update)


def combine(trackers: Mapping[str, Tracker]) -> Tracker:
  """One tracker whose state is ``{name: state of trackers[name]}``.

  ``update`` applies every tracker to its own sub-state with the same outputs. With no
  trackers the state is ``{}`` and ``update`` returns it unchanged.
  """
  trackers = dict(trackers)

  def init(num_ids: int) -> dict[str, Any]:
    return {name: t.init(num_ids) for name, t in trackers.items()}

  def update(state, outputs: StepOutputs):
    return {name: t.update(state[name], outputs) for name, t in trackers.items()}

  return Tracker(init=init, update=update)


def last_loss(*, initial_value: float = float("nan")) -> Tracker:
  """Each example's training loss from its most recent train step (the per-example loss the
  gradient came from, the mixed loss under mixing): a float32 ``[N]`` table, filled with
  ``initial_value`` (NaN by default: "not trained on yet") until an example is."""

  def init(num_ids: int) -> jax.Array:
    return jnp.full((num_ids,), initial_value, jnp.float32)

  def update(table, outputs: StepOutputs):
    return scatter_set(table, outputs.example_ids, outputs.loss, outputs.mask)

  return Tracker(init=init, update=update)
