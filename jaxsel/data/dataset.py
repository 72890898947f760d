"""The host-side dataset every run trains on.

One canonical index: an example's ``example_id`` is its row in the source TFDS split, in
the data source's (deterministic) order. Training and validation examples come from the
same source split (``pool``) and are told apart only by id, so a per-example table of length
``len(pool)`` is indexed by ``example_id`` everywhere and never needs converting.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ArraySplit:
  """Examples of one source split; ``example_id == row``.

  inputs: float32 [N, *input_shape], already normalised.
  labels: int32 [N].
  """

  inputs: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A source train split divided by id into train / validation, plus the test split."""

  name: str
  num_classes: int
  pool: ArraySplit  # source train split; train and validation ids index it
  train_ids: np.ndarray  # int32 [N_train], sorted
  validation_ids: np.ndarray  # int32 [N_val], sorted, disjoint from train_ids
  test: ArraySplit

  @property
  def input_shape(self) -> tuple[int, ...]:
    return tuple(self.pool.inputs.shape[1:])
