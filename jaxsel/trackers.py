"""Per-example running statistics, kept on the device and updated inside the train step.

A statistic is a ``Tracker``: a pair of pure functions

  init(num_ids)                          -> state   (a pytree of ``[N]`` tables)
  update(state, batch, logits, epoch)    -> state

where ``N`` is the size of the source train split and every table is indexed by the
stable ``example_id`` of an example. ``update`` sees the training batch (``example_ids``,
``mask``, ``labels``, ``inputs``), the train-mode ``logits: [B, K]`` computed for the
gradient step, and the 0-based epoch, so statistics that need the label (a forgetting
count) or the epoch (a running mean over epochs) fit the same signature. ``combine``
merges several named trackers into one whose update is the ``update_trackers`` argument
of ``steps.train_step``, and whose state is the ``trackers`` field of the train state.

Padding rows. A padded final batch has ``mask == False`` rows whose ``example_id`` is 0, a
real id. Every write goes through ``scatter_set``, which drops those rows, so padding never
touches a table.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Batch = Mapping[str, jax.Array]
# logits [B, K] -> per-example score [B].
ScoreFn = Callable[[jax.Array], jax.Array]


class Tracker(NamedTuple):
  """A per-example statistic as an (init, update) pair of pure functions.

  init: ``num_ids -> state``, a pytree of ``[num_ids]`` arrays.
  update: ``(state, batch, logits [B, K], epoch) -> state``, traced inside the jitted
    train step; it must write only the rows of ``batch`` whose ``mask`` is True.
  """

  init: Callable[[int], Any]
  update: Callable[[Any, Batch, jax.Array, jax.Array], Any]


def scatter_set(table: jax.Array, ids: jax.Array, values: jax.Array,
                mask: jax.Array) -> jax.Array:
  """``table[ids[i]] = values[i]`` for every row i with ``mask[i]``; other rows are ignored.

  Args:
    table: ``[N]``.
    ids: int ``[B]`` example ids in [0, N).
    values: ``[B]``, cast to ``table.dtype``.
    mask: bool ``[B]``; False marks a padding row.

  Returns:
    The updated ``[N]`` table.

  Masked-out rows are redirected to index ``N``, one past the end, and dropped by
  ``mode="drop"``. Masking the *value* instead would not do: a padding row carries id 0,
  a duplicate of a real id whenever example 0 is in the epoch, and XLA does not say which
  of several writes to one index wins, so the padding row could overwrite the real
  example's new value. ``N`` rather than ``-1`` because negative indices wrap around to
  the end of the table instead of being dropped.

  Real rows of a batch have distinct ids (the epoch's ids are drawn without replacement),
  so among the writes that land, each index is written at most once and the result is
  well defined. This is not checked here: an assertion inside jit would need a host
  callback on every step. ``unique_indices`` is not passed to XLA either, since all the
  padding rows share the index ``N``.
  """
  out_of_range = jnp.asarray(table.shape[0], ids.dtype)
  safe_ids = jnp.where(mask, ids, out_of_range)
  return table.at[safe_ids].set(values.astype(table.dtype), mode="drop")


def last_score(score_fn: ScoreFn, *, initial_value: float = 0.0) -> Tracker:
  """The most recent score of each example: a float32 ``[N]`` table.

  ``init`` fills the table with ``initial_value``. ``update`` overwrites the entries of the
  batch's real rows with ``score_fn(logits)`` (``[B, K] -> [B]``) and leaves every other
  entry as it was. As in the calibrated-sample-prioritization paper, an example left out
  of an epoch's subset keeps the score it had when it was last trained on; scores are not
  refreshed by a separate pass over the whole training set.
  """

  def init(num_ids: int) -> jax.Array:
    return jnp.full((num_ids,), initial_value, jnp.float32)

  def update(table, batch, logits, epoch):
    del epoch
    return scatter_set(table, batch["example_ids"], score_fn(logits), batch["mask"])

  return Tracker(init=init, update=update)


def combine(trackers: Mapping[str, Tracker]) -> Tracker:
  """One tracker whose state is ``{name: state of trackers[name]}``.

  ``update`` applies every tracker to its own sub-state with the same batch, logits and
  epoch. With no trackers the state is ``{}`` and ``update`` returns it unchanged.
  """
  trackers = dict(trackers)

  def init(num_ids: int) -> dict[str, Any]:
    return {name: t.init(num_ids) for name, t in trackers.items()}

  def update(state, batch, logits, epoch):
    return {name: t.update(state[name], batch, logits, epoch)
            for name, t in trackers.items()}

  return Tracker(init=init, update=update)
