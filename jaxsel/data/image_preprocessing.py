"""Host-side ImageNet-style preprocessing of one decoded image: random-resized and centre crops.

The streaming input path decodes ImageNet-style images on the host. Source images differ in
size, so the crop that gives every example the same shape has to happen before batching and
cannot run inside ``jit``; this module does it with NumPy and Pillow, one image at a time.

Every random draw of an example's view comes from ``example_rng(seed, epoch, example_id)``,
so the view is a pure function of (seed, epoch, example id): it does not depend on the batch
the example lands in, the order of the stream, or the thread or process that decodes it.

- Training view (``train_view``): the random-resized crop of Szegedy et al. (2015, "Going
  deeper with convolutions"), with the sampling rule of torchvision's ``RandomResizedCrop``.
  Up to ``max_attempts`` times draw an area fraction ``s ~ U(area_range)`` and a log aspect
  ratio ``log r ~ U(log aspect_range)``; with ``A = s * height * width`` take
  ``w = round(sqrt(A * r))`` and ``h = round(sqrt(A / r))``; accept if
  ``0 < w <= width`` and ``0 < h <= height``, then ``top ~ U{0, ..., height - h}`` and
  ``left ~ U{0, ..., width - w}``. If no draw fits, fall back to the centred crop of the
  whole image with its aspect ratio clamped to ``aspect_range``. The box is resized to
  ``size x size`` (PIL bilinear) and flipped left-right with probability 1/2.
- Evaluation view (``eval_view``): the centred square of side
  ``round(crop_fraction * min(height, width))`` resized to ``size x size``. With
  ``crop_fraction = 224 / 256 = 0.875`` this is the ResNet ImageNet evaluation ("resize the
  shorter side to 256, centre-crop 224") done as one crop then one resize.

The uint8 view then becomes the model's input through ``jaxsel.data.normalization``
(``to_float``, ``normalize``), as every stored input does.
"""

import math
from collections.abc import Sequence

import numpy as np
import PIL.Image

# A tag for this stream: it keeps the per-example crop rng apart from the project's other
# host rngs seeded with the same run seed.
_STREAM_TAG = 0x1A4A6E

Box = tuple[int, int, int, int]  # (top, left, crop_height, crop_width)


def example_rng(seed: int, epoch: int, example_id: int) -> np.random.Generator:
  """The generator of every random draw of one example's view in one epoch:
  ``default_rng([seed, 0x1A4A6E, epoch, example_id])``."""
  return np.random.default_rng([int(seed), _STREAM_TAG, int(epoch), int(example_id)])


def _fallback_box(height: int, width: int, aspect_range: Sequence[float]) -> Box:
  """The centred crop of the whole image, its aspect ratio (width / height) clamped."""
  lo, hi = aspect_range
  ratio = width / height
  if ratio < lo:
    crop_width, crop_height = width, min(height, max(1, round(width / lo)))
  elif ratio > hi:
    crop_height, crop_width = height, min(width, max(1, round(height * hi)))
  else:
    crop_height, crop_width = height, width
  return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def random_resized_crop_box(height: int,
                            width: int,
                            rng: np.random.Generator,
                            *,
                            area_range: Sequence[float] = (0.08, 1.0),
                            aspect_range: Sequence[float] = (3 / 4, 4 / 3),
                            max_attempts: int = 10) -> Box:
  """A random (top, left, crop_height, crop_width) of an ``height x width`` image.

  The Inception / torchvision ``RandomResizedCrop`` rule of the module docstring; the draws
  are, per attempt, the area fraction then the log aspect ratio, and then top and left once
  a box fits, so a given ``rng`` state always yields the same box.
  """
  if height < 1 or width < 1:
    raise ValueError(f'image of size {height}x{width} has no pixels')
  if not 0 < area_range[0] <= area_range[1]:
    raise ValueError(f'area_range {tuple(area_range)} must satisfy 0 < low <= high')
  if not 0 < aspect_range[0] <= aspect_range[1]:
    raise ValueError(f'aspect_range {tuple(aspect_range)} must satisfy 0 < low <= high')
  area = height * width
  log_lo, log_hi = math.log(aspect_range[0]), math.log(aspect_range[1])
  for _ in range(max_attempts):
    target_area = area * rng.uniform(area_range[0], area_range[1])
    aspect = math.exp(rng.uniform(log_lo, log_hi))
    # Python's round (half to even), as in torchvision, so boxes match the reference.
    crop_width = round(math.sqrt(target_area * aspect))
    crop_height = round(math.sqrt(target_area / aspect))
    if 0 < crop_width <= width and 0 < crop_height <= height:
      top = int(rng.integers(0, height - crop_height + 1))
      left = int(rng.integers(0, width - crop_width + 1))
      return top, left, crop_height, crop_width
  return _fallback_box(height, width, aspect_range)


def center_crop_box(height: int, width: int, *, crop_fraction: float = 0.875) -> Box:
  """The centred square of side ``round(crop_fraction * min(height, width))``.

  An odd margin puts the extra pixel below and to the right (``top = (height - side) // 2``).
  """
  if height < 1 or width < 1:
    raise ValueError(f'image of size {height}x{width} has no pixels')
  if not 0 < crop_fraction <= 1:
    raise ValueError(f'crop_fraction must be in (0, 1], got {crop_fraction}')
  # At least one pixel, so that tiny images still give a (resized) view instead of failing.
  side = max(1, round(crop_fraction * min(height, width)))
  return (height - side) // 2, (width - side) // 2, side, side


def _as_hwc(image: np.ndarray) -> np.ndarray:
  """``image`` as uint8 [H, W, C] with C in {1, 3}; [H, W] becomes [H, W, 1]."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f'expected a uint8 image, got dtype {image.dtype}')
  if image.ndim == 2:
    image = image[:, :, None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f'expected an image of shape [H, W], [H, W, 1] or [H, W, 3], '
                     f'got {image.shape}')
  if image.shape[0] < 1 or image.shape[1] < 1:
    raise ValueError(f'image of shape {image.shape} has no pixels')
  return image


def crop_and_resize(image: np.ndarray, box: Box, size: int) -> np.ndarray:
  """``image[top:top + h, left:left + w]`` resized to uint8 [size, size, C] (PIL bilinear).

  The box is cut out before resizing, as torchvision does, so pixels outside it never enter
  the filter. ``reducing_gap=None`` keeps Pillow's exact (single-pass) resampling instead of
  its faster approximate reduction. A box already ``size x size`` is returned unresampled.
  """
  image = _as_hwc(image)
  top, left, crop_height, crop_width = (int(v) for v in box)
  height, width = image.shape[:2]
  if not (0 <= top and 0 <= left and 0 < crop_height and 0 < crop_width and
          top + crop_height <= height and left + crop_width <= width):
    raise ValueError(f'box {tuple(box)} does not lie inside an image of size {height}x{width}')
  if size < 1:
    raise ValueError(f'size must be positive, got {size}')
  crop = np.ascontiguousarray(image[top:top + crop_height, left:left + crop_width])
  channels = crop.shape[-1]
  # Pillow has no [H, W, 1] mode: a single channel goes through mode 'L'.
  pil = PIL.Image.fromarray(crop[:, :, 0] if channels == 1 else crop)
  resized = pil.resize((size, size), resample=PIL.Image.BILINEAR, reducing_gap=None)
  return np.asarray(resized, dtype=np.uint8).reshape(size, size, channels)


def train_view(image: np.ndarray,
               *,
               size: int,
               seed: int,
               epoch: int,
               example_id: int,
               flip: bool = True) -> np.ndarray:
  """The training view: random-resized crop, bilinear resize, random left-right flip.

  All draws come from ``example_rng(seed, epoch, example_id)``: the box first, then (if
  ``flip``) one ``rng.random() < 0.5`` for the flip, so ``flip=False`` gives the same crop
  unflipped. Returns uint8 [size, size, C].
  """
  image = _as_hwc(image)
  rng = example_rng(seed, epoch, example_id)
  box = random_resized_crop_box(image.shape[0], image.shape[1], rng)
  view = crop_and_resize(image, box, size)
  if flip and rng.random() < 0.5:
    view = np.ascontiguousarray(view[:, ::-1])
  return view


def eval_view(image: np.ndarray, *, size: int, crop_fraction: float = 0.875) -> np.ndarray:
  """The evaluation view: the centred square crop resized to uint8 [size, size, C]."""
  image = _as_hwc(image)
  box = center_crop_box(image.shape[0], image.shape[1], crop_fraction=crop_fraction)
  return crop_and_resize(image, box, size)
