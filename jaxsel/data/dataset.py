"""The host-side dataset every run trains on.

One canonical index: an example's ``example_id`` is its row in the source TFDS split, in
the data source's (deterministic) order. Training and validation examples come from the
same source split (``pool``) and are told apart only by id, so a per-example table of length
``len(pool)`` is indexed by ``example_id`` everywhere and never needs converting.

Inputs are stored normalised; ``Dataset.normalization`` keeps the constants used, so that
code which adds values after loading (e.g. padding an image with black) can normalise them
the same way.
"""

import dataclasses
import functools

import numpy as np


@dataclasses.dataclass(frozen=True)
class Normalization:
  """Per-channel statistics of inputs already scaled to [0, 1] (uint8 images) or raw.

  mean, std: one value per channel (last input axis), or a single value for all.
  Normalising maps ``x`` to ``(x - mean) / std``, computed in float32.
  """

  mean: tuple[float, ...]
  std: tuple[float, ...]

  def normalized(self, value: float) -> np.ndarray:
    """What an input value ``value`` (on the scale above) becomes once normalised.

    ``normalized(0.0)`` is normalised black, the value to pad images with so that padding
    looks like black pixels of the source images rather than like the mean (0).

    Returns:
      float32 [C], ``(value - mean) / std`` per channel, C = ``len(mean)``; [1] for a
      single statistic, which broadcasts over any channel count. Bit-identical to a
      loaded input of that value (same float32 operations).
    """
    # Same dtype and order of operations as `loading.normalize` (subtract, then divide,
    # both in float32): padding then equals, not just approximates, a black pixel.
    centred = np.float32(value) - np.asarray(self.mean, dtype=np.float32)
    return centred / np.asarray(self.std, dtype=np.float32)


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

  @property
  def input_shape(self) -> tuple[int, ...]:
    return tuple(self.inputs.shape[1:])


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A source train split divided by id into train / validation, plus the test split.

  ``normalization`` holds the constants both splits' inputs were normalised with.
  """

  name: str
  num_classes: int
  # Source train split; train and validation ids index it. A `streaming.StreamSplit` (labels
  # on the host, inputs read by id) on the streaming path, with `test` one too.
  pool: ArraySplit
  train_ids: np.ndarray  # int32 [N_train], sorted
  validation_ids: np.ndarray  # int32 [N_val], sorted, disjoint from train_ids
  test: ArraySplit
  normalization: Normalization  # what `pool.inputs` and `test.inputs` were normalised with
  # True when the source inputs were uint8 images (values 0-255 scaled to [0, 1] before
  # normalising), so a variant can recover and change the stored values exactly. Not part
  # of the fingerprint (the inputs themselves are).
  uint8_inputs: bool = False
  # Streaming only: what identifies the sources (builder, version, view), which the
  # fingerprint hashes in place of the input values.
  source_identity: str = ""

  @property
  def input_shape(self) -> tuple[int, ...]:
    return self.pool.input_shape

  @property
  def streamed(self) -> bool:
    """Whether inputs are read from the data sources by id (``dataset.storage='stream'``)
    rather than held in host arrays."""
    return not isinstance(self.pool, ArraySplit)

  @functools.cached_property
  def fingerprint(self) -> str:
    """``loading.dataset_fingerprint`` of this dataset, computed once (hashing the inputs
    costs ~0.2 s for Fashion-MNIST). The arrays must not be changed in place after it is
    read; build a new ``Dataset`` for a variant (noise, removals)."""
    from jaxsel.data import loading  # pylint: disable=import-outside-toplevel
    return loading.dataset_fingerprint(self)
