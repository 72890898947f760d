"""Input normalisation: each dataset's usual constants, statistics of the training ids, and
the float32 operations every stored input goes through (``to_float`` then ``normalize``,
on both the in-memory and the streaming path)."""

import numpy as np

from jaxsel.config_errors import UserError
from jaxsel.data.dataset import Normalization

# Keyed by builder name, without config. Entries may be replaced or added before
# `load_dataset` is called; datasets without an entry get statistics computed from their
# training ids (see `compute_normalization`).
NORMALIZATION: dict[str, Normalization] = {
    'cifar10': Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    'cifar100': Normalization((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    'svhn_cropped': Normalization((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    'mnist': Normalization((0.1307,), (0.3081,)),
    'fashion_mnist': Normalization((0.2860,), (0.3530,)),
    'fashion_mnist_local': Normalization((0.2860,), (0.3530,)),
    # Identity: the mnist1d generator already centres the whole generated set and scales
    # it to std 1 before splitting it.
    'mnist1d': Normalization((0.0,), (1.0,)),
    # The usual ImageNet constants (torchvision's, also those of the coreset reference).
    # Close to the generated statistics; fixed so both storage paths use the same constants.
    'synthetic_images': Normalization((0.5, 0.5, 0.5), (0.3, 0.3, 0.3)),
    'imagenet2012': Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def to_float(inputs: np.ndarray) -> np.ndarray:
  """float32 copy of ``inputs``; uint8 (image) values are scaled to [0, 1]."""
  if inputs.dtype == np.uint8:
    scaled = inputs.astype(np.float32)
    scaled /= 255
    return scaled
  return inputs.astype(np.float32)


def _channel_axes(inputs: np.ndarray) -> tuple[int, ...]:
  """Axes reduced for per-channel statistics.

  All but the last (channel) axis of [N, H, W, C] images; all axes otherwise, giving one
  statistic for e.g. [N, D] vectors or [N, H, W] images.
  """
  return tuple(range(inputs.ndim - 1)) if inputs.ndim >= 4 else tuple(range(inputs.ndim))


def compute_normalization(inputs: np.ndarray, train_ids: np.ndarray) -> Normalization:
  """Mean and std of ``inputs[train_ids]`` (float, already scaled) per channel.

  Only training ids are used so that validation examples stay unseen. A zero std (a
  constant channel) is replaced by 1.
  """
  train = inputs[train_ids]
  axes = _channel_axes(train)
  mean = np.atleast_1d(train.mean(axis=axes, dtype=np.float64))
  std = np.atleast_1d(train.std(axis=axes, dtype=np.float64))
  std = np.where(std > 0, std, 1.0)
  return Normalization(tuple(mean.tolist()), tuple(std.tolist()))


def _num_channels(inputs: np.ndarray) -> int:
  """Channels that get their own statistic: C of [N, H, W, C] images, else 1."""
  return inputs.shape[-1] if inputs.ndim >= 4 else 1


def check_normalization(normalization: Normalization, num_channels: int | None) -> None:
  """Raises UserError unless ``normalization`` fits inputs with ``num_channels`` channels.

  mean and std must be sequences of finite numbers of the same length, 1 or
  ``num_channels`` (any length when ``num_channels`` is None, i.e. not known yet), with
  every std > 0. The message names ``dataset.normalization``, the config field that
  passes one.
  """
  try:
    mean = np.asarray(normalization.mean, dtype=np.float64)
    std = np.asarray(normalization.std, dtype=np.float64)
  except (TypeError, ValueError):  # e.g. a string or a ragged nesting
    mean = std = None
  problem = None
  if mean is None or mean.ndim != 1 or std.ndim != 1 or not mean.size:
    problem = 'mean and std must be non-empty sequences of numbers'
  elif mean.size != std.size:
    problem = f'mean has {mean.size} values but std has {std.size}'
  elif num_channels is not None and mean.size not in (1, num_channels):
    problem = (f'{mean.size} values per statistic, but these inputs have {num_channels} '
               'channel(s)')
  elif not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
    problem = 'values must be finite'
  elif not np.all(std > 0):
    problem = 'every std must be > 0'
  if problem is not None:
    raise UserError(
        f'config.dataset.normalization_mean {normalization.mean!r} and normalization_std '
        f'{normalization.std!r} are invalid: {problem} (one value per channel of the last '
        'input axis, or one for all).'
    )


def normalize(inputs: np.ndarray, normalization: Normalization) -> np.ndarray:
  """(inputs - mean) / std in place, broadcasting over the last (channel) axis."""
  inputs -= np.asarray(normalization.mean, dtype=np.float32)
  inputs /= np.asarray(normalization.std, dtype=np.float32)
  return inputs
