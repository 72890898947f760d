"""Fixed-shape batch plans over any set of example ids.

A plan is a whole epoch (or a full pass) of example ids laid out as
``[num_chunks, steps_per_chunk, batch_size]`` plus a mask of the same shape. Every array a
jitted function sees therefore has one of two shapes whatever the size of the index set, so
changing the subset from one epoch to the next never recompiles; the step function skips
steps whose mask is all False.

Remainder policy:
- ``drop_remainder=False`` (default): the last partial batch is padded and masked, so every
  id in the set is visited exactly once per epoch (what the calibration, coreset and
  forgetting references do).
- ``drop_remainder=True``: only full batches, so ``len(ids) % batch_size`` ids (a different
  random few each epoch) are skipped (what the budgeted importance-sampling reference does).

Padding slots hold id 0, a valid row, so gathers inside jit stay in bounds; the mask is what
makes them count for nothing.
"""

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class BatchPlan:
  """example_ids: int32 [num_chunks, steps_per_chunk, batch_size]; mask: bool, same shape."""

  example_ids: np.ndarray
  mask: np.ndarray

  @property
  def num_examples(self) -> int:
    """Number of real (unmasked) examples in the plan."""
    return int(self.mask.sum())

  @property
  def num_steps(self) -> int:
    """Number of batches holding at least one real example."""
    return int(self.mask.any(axis=-1).sum())

  @property
  def num_chunks(self) -> int:
    return self.example_ids.shape[0]

  def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields ``(example_ids, mask)``, each [steps_per_chunk, batch_size]."""
    for ids, mask in zip(self.example_ids, self.mask):
      yield ids, mask


def _layout(ids: np.ndarray, *, batch_size: int, steps_per_chunk: int) -> BatchPlan:
  """Pads ``ids`` to whole chunks and reshapes them; padding is masked out."""
  if batch_size <= 0 or steps_per_chunk <= 0:
    raise ValueError(
        f"batch_size and steps_per_chunk must be positive, got {batch_size} and "
        f"{steps_per_chunk}")
  ids = np.asarray(ids, dtype=np.int32)
  per_chunk = batch_size * steps_per_chunk
  num_chunks = max(1, -(-len(ids) // per_chunk))
  padded = np.zeros(num_chunks * per_chunk, dtype=np.int32)
  padded[:len(ids)] = ids
  mask = np.zeros(num_chunks * per_chunk, dtype=bool)
  mask[:len(ids)] = True
  shape = (num_chunks, steps_per_chunk, batch_size)
  return BatchPlan(padded.reshape(shape), mask.reshape(shape))


def train_plan(
    ids: np.ndarray,
    *,
    batch_size: int,
    steps_per_chunk: int,
    shuffle_seed: Sequence[int],
    drop_remainder: bool = False,
    num_steps: int | None = None,
) -> BatchPlan:
  """One training epoch over ``ids`` in a fresh random order.

  ``shuffle_seed`` (e.g. ``(run_seed, epoch)``) fully determines the order, so a resumed run
  visits the same batches as an uninterrupted one. ``num_steps`` cuts the epoch short after
  that many batches (the last epoch of a run whose length is given in steps); it must not
  exceed the epoch's own number of batches.
  """
  order = np.random.default_rng(list(shuffle_seed)).permutation(np.asarray(ids, np.int32))
  if drop_remainder:
    order = order[:len(order) - len(order) % batch_size]
  if num_steps is not None:
    available = -(-len(order) // batch_size)
    if not 0 < num_steps <= available:
      raise ValueError(f"num_steps must be in [1, {available}] for {len(order)} examples in "
                       f"batches of {batch_size}, got {num_steps}")
    order = order[:num_steps * batch_size]
  return _layout(order, batch_size=batch_size, steps_per_chunk=steps_per_chunk)


def full_pass_plan(ids: np.ndarray, *, batch_size: int, steps_per_chunk: int) -> BatchPlan:
  """Every id exactly once, in the given order (for evaluation and scoring passes)."""
  return _layout(ids, batch_size=batch_size, steps_per_chunk=steps_per_chunk)
