"""Tests for jaxsel.data.image_preprocessing: crop boxes, resizing, keyed views, normalisation."""

import concurrent.futures
import math

import numpy as np
import pytest

from jaxsel.data import image_preprocessing as ip
from jaxsel.data import loading
from jaxsel.data.dataset import Normalization

AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3 / 4, 4 / 3)
# A random image, so that different boxes or a flip almost surely give different views.
IMAGE = np.random.default_rng(0).integers(0, 256, size=(96, 128, 3), dtype=np.uint8)


def _fits(box, height, width):
  top, left, crop_height, crop_width = box
  return (all(isinstance(v, int) for v in box) and top >= 0 and left >= 0 and
          crop_height > 0 and crop_width > 0 and top + crop_height <= height and
          left + crop_width <= width)


def _consistent_with_draw(box, height, width, area_range, aspect_range):
  """Whether some unrounded sides within 0.5 of the box's meet both ranges.

  The box's sides are rounded from sqrt(A * r) and sqrt(A / r), so its own area and aspect
  may leave the ranges by rounding only.
  """
  _, _, h, w = box
  area_lo, area_hi = (h - 0.5) * (w - 0.5), (h + 0.5) * (w + 0.5)
  aspect_lo, aspect_hi = (w - 0.5) / (h + 0.5), (w + 0.5) / (h - 0.5)
  area = height * width
  return (area_lo <= area_range[1] * area and area_hi >= area_range[0] * area and
          aspect_lo <= aspect_range[1] and aspect_hi >= aspect_range[0])


def test_center_crop_box_fixtures():
  # 0.875 * 256 = 224; margins (256 - 224) / 2 = 16 and (320 - 224) / 2 = 48.
  assert ip.center_crop_box(256, 320) == (16, 48, 224, 224)
  # 0.875 * 101 = 88.375 -> 88; odd margin 13 -> top 6; (150 - 88) / 2 = 31.
  assert ip.center_crop_box(101, 150) == (6, 31, 88, 88)
  # Portrait, other fraction: 0.5 * 75 = 37.5 -> 38 (half to even); top (200 - 38) // 2 = 81,
  # left (75 - 38) // 2 = 18.
  assert ip.center_crop_box(200, 75, crop_fraction=0.5) == (81, 18, 38, 38)
  assert ip.center_crop_box(7, 9, crop_fraction=1.0) == (0, 1, 7, 7)
  with pytest.raises(ValueError):
    ip.center_crop_box(10, 10, crop_fraction=0.0)


@pytest.mark.parametrize('shape,area_range', [((96, 128), AREA_RANGE), ((300, 200), AREA_RANGE),
                                              ((64, 64), (0.3, 0.5))])
def test_random_resized_crop_box_in_image_and_in_range(shape, area_range):
  height, width = shape
  fallback = ip._fallback_box(height, width, ASPECT_RANGE)
  boxes = [
      ip.random_resized_crop_box(height, width, np.random.default_rng(seed),
                                 area_range=area_range) for seed in range(500)
  ]
  for box in boxes:
    assert _fits(box, height, width), box
    if box != fallback:
      assert _consistent_with_draw(box, height, width, area_range, ASPECT_RANGE), box
  fractions = np.asarray([h * w / (height * width) for _, _, h, w in boxes])
  # The boxes spread over the range rather than sitting at one size or place. (A 300 x 200
  # image has no box of aspect >= 3/4 above 89% of its area, hence the 0.2 at the top.)
  assert len(set(boxes)) > 400
  assert fractions.min() < area_range[0] + 0.05 and fractions.max() > area_range[1] - 0.2
  assert len({(top, left) for top, left, _, _ in boxes}) > 100


def test_random_resized_crop_box_draw_order():
  """The box is the one the documented draws give (area, log aspect, then top and left)."""
  height, width = 96, 128
  for seed in range(20):
    replay = np.random.default_rng(seed)
    area = height * width * replay.uniform(*AREA_RANGE)
    aspect = math.exp(replay.uniform(math.log(3 / 4), math.log(4 / 3)))
    w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
    if not (0 < w <= width and 0 < h <= height):
      continue
    expected = (int(replay.integers(0, height - h + 1)), int(replay.integers(0, width - w + 1)),
                h, w)
    assert ip.random_resized_crop_box(height, width, np.random.default_rng(seed)) == expected


@pytest.mark.parametrize('height,width', [(1, 100), (100, 1), (1, 1)])
def test_random_resized_crop_box_fallback(height, width):
  # No 1 x N (N >= 38) box has an area fraction >= 0.08 and an aspect in [3/4, 4/3], so every
  # attempt fails and the clamped centre crop is returned.
  expected = {(1, 100): (0, 49, 1, 1), (100, 1): (49, 0, 1, 1), (1, 1): (0, 0, 1, 1)}
  for seed in range(20):
    box = ip.random_resized_crop_box(height, width, np.random.default_rng(seed))
    assert box == expected[height, width]
    assert _fits(box, height, width)


def test_fallback_clamps_aspect():
  # max_attempts = 0 forces the fallback: 300 / 100 = 3 > 4/3 -> width round(100 * 4/3) = 133.
  rng = np.random.default_rng(0)
  assert ip.random_resized_crop_box(100, 300, rng, max_attempts=0) == (0, 83, 100, 133)
  assert ip.random_resized_crop_box(300, 100, rng, max_attempts=0) == (83, 0, 133, 100)
  assert ip.random_resized_crop_box(90, 100, rng, max_attempts=0) == (0, 0, 90, 100)


def test_train_view_is_keyed_per_example():
  view = ip.train_view(IMAGE, size=32, seed=3, epoch=1, example_id=7)
  assert view.shape == (32, 32, 3) and view.dtype == np.uint8
  np.testing.assert_array_equal(view, ip.train_view(IMAGE, size=32, seed=3, epoch=1,
                                                    example_id=7))
  for other in [dict(seed=3, epoch=2, example_id=7), dict(seed=3, epoch=1, example_id=8),
                dict(seed=4, epoch=1, example_id=7)]:
    assert not np.array_equal(view, ip.train_view(IMAGE, size=32, **other)), other
  # The stream tag separates these draws from an untagged rng of the same numbers.
  assert ip.example_rng(3, 1, 7).random() != np.random.default_rng([3, 1, 7]).random()
  assert ip.example_rng(3, 1, 7).random() == np.random.default_rng([3, 0x1A4A6E, 1, 7]).random()


def test_train_view_same_across_threads():
  ids = list(range(32))

  def view(example_id):
    return ip.train_view(IMAGE, size=24, seed=5, epoch=0, example_id=example_id)

  serial = [view(i) for i in ids]
  # Reversed so that the threads meet the ids in another order than the serial loop.
  with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    threaded = dict(zip(ids[::-1], pool.map(view, ids[::-1])))
  for i in ids:
    np.testing.assert_array_equal(serial[i], threaded[i])


def test_crop_and_resize_constant_stays_constant():
  image = np.full((50, 70, 3), [17, 200, 93], np.uint8)
  out = ip.crop_and_resize(image, (3, 5, 41, 29), 32)
  assert out.shape == (32, 32, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out, np.broadcast_to([17, 200, 93], out.shape))


def test_crop_and_resize_same_size_is_exact_crop():
  box = (10, 20, 32, 32)
  out = ip.crop_and_resize(IMAGE, box, 32)
  np.testing.assert_array_equal(out, IMAGE[10:42, 20:52])


def test_crop_and_resize_downsamples_gradient():
  # v(y, x) = 2x + y at pixel centres. Halving maps output pixel j to input coordinate
  # 2j + 0.5, where the symmetric bilinear filter reproduces a linear function exactly;
  # the border row and column are left out because the filter is cut there.
  y, x = np.mgrid[0:64, 0:64]
  image = (2 * x + y).astype(np.uint8)[:, :, None]
  out = ip.crop_and_resize(image, (0, 0, 64, 64), 32)[:, :, 0].astype(float)
  j = np.arange(32) * 2 + 0.5
  expected = 2 * j[None, :] + j[:, None]
  assert np.abs(out - expected)[1:-1, 1:-1].max() <= 1
  # The box is cut out first: a crop of the gradient is the gradient shifted by its corner.
  shifted = ip.crop_and_resize(image, (8, 4, 32, 32), 16)[:, :, 0].astype(float)
  k = np.arange(16) * 2 + 0.5
  assert np.abs(shifted - (2 * (k[None, :] + 4) + (k[:, None] + 8)))[1:-1, 1:-1].max() <= 1


def test_crop_and_resize_rejects_bad_boxes():
  for box in [(-1, 0, 10, 10), (0, 0, 97, 10), (0, 120, 10, 10), (0, 0, 0, 10)]:
    with pytest.raises(ValueError):
      ip.crop_and_resize(IMAGE, box, 8)
  with pytest.raises(ValueError):
    ip.crop_and_resize(IMAGE.astype(np.float32), (0, 0, 8, 8), 8)


def test_flip_mirrors_the_unflipped_crop_about_half_the_time():
  flipped = 0
  for example_id in range(40):
    keys = dict(size=24, seed=11, epoch=2, example_id=example_id)
    plain = ip.train_view(IMAGE, flip=False, **keys)
    view = ip.train_view(IMAGE, flip=True, **keys)
    # The flip is drawn after the box from the same rng.
    replay = ip.example_rng(11, 2, example_id)
    ip.random_resized_crop_box(*IMAGE.shape[:2], replay)
    if replay.random() < 0.5:
      flipped += 1
      np.testing.assert_array_equal(view, plain[:, ::-1])
      assert not np.array_equal(view, plain)
    else:
      np.testing.assert_array_equal(view, plain)
  assert 10 <= flipped <= 30


def test_eval_view():
  image = np.random.default_rng(1).integers(0, 256, size=(256, 320, 3), dtype=np.uint8)
  out = ip.eval_view(image, size=224)
  np.testing.assert_array_equal(out, image[16:240, 48:272])
  small = ip.eval_view(image, size=64)
  np.testing.assert_array_equal(small, ip.crop_and_resize(image, (16, 48, 224, 224), 64))


@pytest.mark.parametrize('shape', [(40, 50), (40, 50, 1)])
def test_grayscale(shape):
  image = np.random.default_rng(3).integers(0, 256, size=shape, dtype=np.uint8)
  train = ip.train_view(image, size=16, seed=0, epoch=0, example_id=0)
  evaluation = ip.eval_view(image, size=16)
  assert train.shape == evaluation.shape == (16, 16, 1)
  assert train.dtype == evaluation.dtype == np.uint8
  # Both layouts give the same pixels.
  other = image[:, :, 0] if image.ndim == 3 else image[:, :, None]
  np.testing.assert_array_equal(evaluation, ip.eval_view(other, size=16))
