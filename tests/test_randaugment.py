"""Tests for jaxsel.randaugment: every op against Pillow, the whole transform against the
reference's PIL pipeline, the uint8 round trip, per-example keys, the draws, the config
checks and the wiring into augment.get_augmentation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from jaxsel import augment, pil_tables, randaugment
from jaxsel.data import loading
from jaxsel.data.dataset import Normalization

FASHION = Normalization((0.2860,), (0.3530,))
CIFAR = Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
MAGNITUDES = (0, 4, 9, 17, 30)


def _pil(array: np.ndarray) -> Image.Image:
  return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def _array(image: Image.Image, shape) -> np.ndarray:
  return np.asarray(image).reshape(shape)


def _reference_op(name: str, image: Image.Image, v: float, corner=None) -> Image.Image:
  """The reference's op (utils_train/randAugm.py) with the sign already applied to v."""
  if name == "AutoContrast":
    return ImageOps.autocontrast(image)
  if name == "Equalize":
    return ImageOps.equalize(image)
  if name == "Invert":
    return ImageOps.invert(image)
  if name == "Rotate":
    return image.rotate(v)
  if name == "Posterize":
    return ImageOps.posterize(image, max(1, int(v)))
  if name == "Solarize":
    return ImageOps.solarize(image, v)
  if name == "SolarizeAdd":
    added = np.clip(np.array(image).astype(np.int64) + v, 0, 255).astype(np.uint8)
    return ImageOps.solarize(Image.fromarray(added), 128)
  if name in ("Color", "Contrast", "Brightness", "Sharpness"):
    return getattr(ImageEnhance, name)(image).enhance(v)
  if name == "CutoutAbs":
    # The reference's box from the corner drawn here; on an L image Pillow 13 refuses the
    # RGB colour, so its grey value is painted (see test_cutout_fill_on_greyscale).
    x0, y0 = corner
    width, height = image.size
    image = image.copy()
    colour = (125, 123, 114) if image.mode == "RGB" else 123
    ImageDraw.Draw(image).rectangle((x0, y0, min(width, x0 + v), min(height, y0 + v)), colour)
    return image
  matrix = {"ShearX": (1, v, 0, 0, 1, 0), "ShearY": (1, 0, 0, v, 1, 0),
            "TranslateXabs": (1, 0, v, 0, 1, 0), "TranslateYabs": (1, 0, 0, 0, 1, v)}[name]
  return image.transform(image.size, Image.AFFINE, matrix)


def _test_images(shape, seed) -> np.ndarray:
  """uint8 [8, *shape]: six random images with random value ranges per channel, one
  constant image, one with two values."""
  rng = np.random.default_rng(seed)
  images = []
  for _ in range(6):
    lo = rng.integers(0, 200, shape[-1])
    hi = lo + rng.integers(1, 256 - lo)
    images.append(rng.integers(lo, hi + 1, shape))
  images.append(np.full(shape, rng.integers(0, 256)))
  images.append(np.where(rng.random(shape) < 0.3, 17, 201))
  return np.stack(images).astype(np.uint8)


def _ours(name, images_u8, v, keys=None):
  """The op on a stack of images: uint8 [K, H, W, C]."""
  op = randaugment.make_op(name, abs(v), images_u8.shape[1:])
  if keys is None:
    keys = jax.random.split(jax.random.PRNGKey(0), len(images_u8))
  negative = jnp.full(len(images_u8), v < 0)
  out = jax.vmap(op)(keys, jnp.asarray(images_u8, jnp.int32), negative)
  return np.asarray(out).astype(np.uint8)


SHAPES = ((8, 8, 1), (7, 9, 1), (8, 8, 3), (7, 9, 3))
GEOMETRIC_SHAPES = SHAPES + ((28, 28, 1), (32, 32, 3))


@pytest.mark.parametrize("name", [n for n in randaugment.OPS if n != "CutoutAbs"])
def test_op_equals_pillow(name):
  shapes = GEOMETRIC_SHAPES if name in randaugment.SIGNED_OPS else SHAPES
  signs = (1, -1) if name in randaugment.SIGNED_OPS else (1,)
  # AutoContrast, Equalize and Invert ignore their value.
  magnitudes = (4,) if name in ("AutoContrast", "Equalize", "Invert") else MAGNITUDES
  for s, shape in enumerate(shapes):
    images = _test_images(shape, seed=s)
    for magnitude in magnitudes:
      for sign in signs:
        v = sign * randaugment.op_value(name, magnitude)
        got = _ours(name, images, v)
        want = np.stack([_array(_reference_op(name, _pil(a), v), shape) for a in images])
        mismatched = int((got != want).sum())
        assert mismatched == 0, (name, shape, magnitude, sign, mismatched)


def test_apply_op_is_the_op_on_one_image():
  image = _test_images((7, 9, 3), seed=5)[0]
  for name, v in (("Rotate", -4.0), ("Sharpness", 1.3), ("Equalize", 0.0)):
    np.testing.assert_array_equal(np.asarray(randaugment.apply_op(name, image, v)),
                                  _array(_reference_op(name, _pil(image), v), image.shape))
  with pytest.raises(ValueError, match="negative"):
    randaugment.apply_op("Solarize", image, -3.0)


def test_autocontrast_reproduces_pillows_double_rounding():
  # Pillow computes int(x * scale + offset) in doubles, which for these (lo, hi, x) lands
  # just below the exact integer: e.g. a channel spanning 0..25 maps 25 to 254.
  table = pil_tables.autocontrast_corrections()
  assert table.size == 12094
  picks = table[np.random.default_rng(0).choice(table.size, 40, replace=False)]
  for key in list(picks) + [(0 << 16) | (25 << 8) | 25]:
    lo, hi, x = key >> 16, (key >> 8) & 255, key & 255
    image = np.full((3, 3, 1), lo, np.uint8)
    image[0, 0], image[1, 1] = hi, x
    want = _array(ImageOps.autocontrast(_pil(image)), image.shape)
    got = np.asarray(randaugment.apply_op("AutoContrast", image, 0.0))
    np.testing.assert_array_equal(got, want)
    assert got[1, 1, 0] == (x - lo) * 255 // (hi - lo) - 1


def test_op_values_at_the_default_magnitude():
  values = {name: randaugment.op_value(name, 4) for name in randaugment.OPS}
  np.testing.assert_allclose(
      [values[n] for n in ("Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
                           "ShearX", "CutoutAbs", "TranslateXabs")],
      [4.0, 0.5333333, 34.1333333, 14.6666667, 0.34, 0.04, 5.3333333, 13.3333333],
      rtol=1e-6)


@pytest.mark.parametrize("shape", [(8, 8, 1), (7, 9, 3), (28, 28, 1)])
def test_cutout_equals_pillows_rectangle(shape):
  height, width, _ = shape
  images = np.repeat(_test_images(shape, seed=1)[:1], 16, axis=0)
  keys = jax.random.split(jax.random.PRNGKey(2), 16)
  for magnitude in MAGNITUDES:
    v = randaugment.op_value("CutoutAbs", magnitude)
    got = _ours("CutoutAbs", images, v, keys)
    for key, image, out in zip(keys, images, got):
      corner = np.asarray(randaugment._cutout_corner(key, height, width, v))
      want = _array(_reference_op("CutoutAbs", _pil(image), v, corner), shape)
      np.testing.assert_array_equal(out, want)


def test_cutout_centre_is_the_references_uniform_on_one_to_size():
  # The reference's np.random.uniform(w) is uniform(low=w, high=1): centres in (1, w].
  keys = jax.random.split(jax.random.PRNGKey(0), 20000)
  corners = np.asarray(jax.vmap(lambda k: randaugment._cutout_corner(k, 10, 7, 0.0))(keys))
  assert corners[:, 0].min() == 1 and corners[:, 0].max() == 6  # x: width 7
  assert corners[:, 1].min() == 1 and corners[:, 1].max() == 9  # y: height 10
  np.testing.assert_allclose(np.bincount(corners[:, 1])[1:] / len(keys), 1 / 9, atol=0.01)


def test_cutout_fill_on_greyscale():
  # Pillow 13 refuses the reference's RGB fill on an L image; its own conversion of that
  # colour to L is the grey painted instead.
  with pytest.raises(TypeError):
    ImageDraw.Draw(Image.new("L", (4, 4))).rectangle((0, 0, 1, 1), (125, 123, 114))
  colour = Image.fromarray(np.asarray([[[125, 123, 114]]], np.uint8)).convert("L")
  assert np.asarray(colour)[0, 0] == randaugment._CUTOUT_GREY == 123


@pytest.mark.parametrize("normalization", [FASHION, CIFAR], ids=["fashion", "cifar"])
def test_uint8_round_trip_is_exact(normalization):
  channels = len(normalization.mean)
  u8 = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None, None, None],
                       (256, 2, 1, channels)).copy()
  loaded = loading.normalize(loading.to_float(u8), normalization)
  mean, std = normalization.mean, normalization.std
  recovered = np.asarray(randaugment.to_uint8(jnp.asarray(loaded), mean, std))
  np.testing.assert_array_equal(recovered, u8)
  again = np.asarray(randaugment.from_uint8(jnp.asarray(recovered), mean, std))
  np.testing.assert_array_equal(again, loaded)  # bit for bit


def _normalised(u8: np.ndarray, normalization: Normalization) -> jax.Array:
  return jnp.asarray(loading.normalize(loading.to_float(u8), normalization))


@functools.cache
def _jitted_rand_augment(num_ops, magnitude, normalization):
  return jax.jit(functools.partial(randaugment.rand_augment, num_ops=num_ops,
                                   magnitude=magnitude, mean=normalization.mean,
                                   std=normalization.std))


@pytest.mark.parametrize("shape,normalization", [((12, 12, 1), FASHION),
                                                 ((9, 11, 3), CIFAR)], ids=["L", "RGB"])
def test_rand_augment_is_the_reference_pipeline_with_the_same_draws(shape, normalization):
  num_ops, magnitude, batch = 3, 9, 24
  u8 = np.concatenate([_test_images(shape, seed=s) for s in range(3)])[:batch]
  ids = jnp.arange(100, 100 + batch)
  key = jax.random.PRNGKey(7)
  out = _jitted_rand_augment(num_ops, magnitude, normalization)(
      key, _normalised(u8, normalization), ids)
  got = np.asarray(randaugment.to_uint8(out, normalization.mean, normalization.std))
  drawn = set()
  for example_key, image, result in zip(randaugment.example_keys(key, ids), u8, got):
    choices, negative, op_keys = randaugment.sample_ops(example_key, num_ops)
    pil = _pil(image)
    for choice, neg, op_key in zip(np.asarray(choices), np.asarray(negative), op_keys):
      name = randaugment.OPS[choice]
      drawn.add(name)
      v = randaugment.op_value(name, magnitude)
      if name in randaugment.SIGNED_OPS and neg:
        v = -v
      corner = (np.asarray(randaugment._cutout_corner(op_key, shape[0], shape[1], v))
                if name == "CutoutAbs" else None)
      pil = _reference_op(name, pil, v, corner)
    np.testing.assert_array_equal(result, _array(pil, shape))
  assert len(drawn) >= 12  # the batch exercised most ops


def test_no_ops_returns_the_inputs():
  x = _normalised(_test_images((5, 5, 1), seed=0), FASHION)
  assert randaugment.rand_augment(jax.random.PRNGKey(0), x, jnp.arange(8), num_ops=0,
                                  magnitude=4, mean=0.286, std=0.353) is x


def test_draws_are_keyed_per_example():
  shape = (12, 12, 1)
  u8 = np.concatenate([_test_images(shape, seed=s) for s in range(3)])[:24]
  u8[12:] = u8[0]  # examples 12.. have example 0's image
  x = _normalised(u8, FASHION)
  fn = _jitted_rand_augment(3, 9, FASHION)
  key = jax.random.PRNGKey(7)
  ids = np.arange(100, 124)
  out = np.asarray(fn(key, x, jnp.asarray(ids)))
  # The same examples in another order, i.e. other positions in the batch.
  order = np.random.default_rng(0).permutation(24)
  shuffled = np.asarray(fn(key, x[order], jnp.asarray(ids[order])))
  np.testing.assert_array_equal(shuffled, out[order])
  # The same id gives the same output in a different batch; different ids differ.
  other_ids = ids.copy()
  other_ids[12:] = ids[0]
  again = np.asarray(fn(key, x, jnp.asarray(other_ids)))
  np.testing.assert_array_equal(again[:12], out[:12])
  np.testing.assert_array_equal(again[12:], np.broadcast_to(out[0], again[12:].shape))
  differ = [not np.array_equal(out[i], out[0]) for i in range(12, 24)]
  assert sum(differ) >= 9  # same image, other ids: other draws (a few may be identities)


def test_ops_are_drawn_uniformly_with_replacement_and_signs_are_fair():
  num_ops, count = 2, 40_000
  keys = randaugment.example_keys(jax.random.PRNGKey(3), jnp.arange(count))
  choices, negative, _ = jax.jit(jax.vmap(
      lambda k: randaugment.sample_ops(k, num_ops)))(keys)
  choices, negative = np.asarray(choices), np.asarray(negative)
  frequency = np.bincount(choices.ravel(), minlength=16) / choices.size
  sigma = np.sqrt((1 / 16) * (15 / 16) / choices.size)
  np.testing.assert_array_less(np.abs(frequency - 1 / 16), 5 * sigma)
  # With replacement: the two ops of an example coincide 1/16 of the time.
  same = np.mean(choices[:, 0] == choices[:, 1])
  assert abs(same - 1 / 16) < 5 * np.sqrt((1 / 16) * (15 / 16) / count)
  assert abs(negative.mean() - 0.5) < 5 * np.sqrt(0.25 / negative.size)
  assert abs(np.mean(negative[:, 0] == negative[:, 1]) - 0.5) < 5 * np.sqrt(0.25 / count)


@pytest.mark.parametrize("num_ops,magnitude,shape,uint8,field,text", [
    (2, 4, (40,), True, "randaugment_num_ops", "needs images"),
    (2, 4, (28, 28), True, "randaugment_num_ops", "needs images"),
    (2, 4, (8, 8, 2), True, "randaugment_num_ops", "C = 1 or 3"),
    (2, 4, (28, 28, 1), False, "randaugment_num_ops", "uint8"),
    (2, 31, (28, 28, 1), True, "randaugment_magnitude", r"\[0, 30\]"),
    (2, -1, (28, 28, 1), True, "randaugment_magnitude", r"\[0, 30\]"),
    (2, "4", (28, 28, 1), True, "randaugment_magnitude", r"\[0, 30\]"),
    (-1, 4, (28, 28, 1), True, "randaugment_num_ops", ">= 0"),
    (1.5, 4, (28, 28, 1), True, "randaugment_num_ops", ">= 0"),
    (True, 4, (28, 28, 1), True, "randaugment_num_ops", ">= 0"),
])
def test_check_rand_augment_refuses(num_ops, magnitude, shape, uint8, field, text):
  with pytest.raises(ValueError, match=f"config.augmentation.{field} must be .*{text}"):
    randaugment.check_rand_augment(num_ops, magnitude, shape, uint8)


def test_check_rand_augment_accepts():
  randaugment.check_rand_augment(2, 4, (28, 28, 1), True)
  randaugment.check_rand_augment(1, 30.0, (32, 32, 3), True)
  randaugment.check_rand_augment(0, 4, (40,), False)  # off: anything goes


def _augmentation_config(**fields):
  from configs import default  # pylint: disable=import-outside-toplevel
  config = default.get_config()
  with config.unlocked():
    config.augmentation.update(fields)
  return config.augmentation


def test_get_augmentation_refuses_randaugment_where_it_cannot_work():
  config = _augmentation_config(randaugment_num_ops=2)
  with pytest.raises(ValueError, match="randaugment_num_ops must be .*needs images"):
    augment.get_augmentation(config, input_shape=(40,), normalization=FASHION,
                             uint8_inputs=True)
  with pytest.raises(ValueError, match="randaugment_num_ops must be .*uint8"):
    augment.get_augmentation(config, input_shape=(12, 12, 1), normalization=FASHION)
  with pytest.raises(ValueError, match="randaugment_num_ops > 0 needs the dataset's"):
    augment.get_augmentation(config, input_shape=(12, 12, 1), uint8_inputs=True)
  # Off by default, so existing callers are unchanged.
  assert augment.get_augmentation(_augmentation_config(), input_shape=(40,)) is None


@pytest.mark.parametrize("name", ["crop_flip", "none"])
def test_get_augmentation_runs_randaugment_first_on_its_own_stream(name):
  shape = (12, 12, 1)
  u8 = np.concatenate([_test_images(shape, seed=s) for s in range(3)])[:24]
  x = _normalised(u8, FASHION)
  ids = jnp.arange(100, 124)
  key = jax.random.PRNGKey(7)
  black = FASHION.normalized(0.0)
  fields = dict(name=name, crop_padding=2, randaugment_magnitude=9)
  with_ra = augment.get_augmentation(
      _augmentation_config(randaugment_num_ops=3, **fields), input_shape=shape,
      normalized_black=black, normalization=FASHION, uint8_inputs=True)
  without = augment.get_augmentation(_augmentation_config(**fields), input_shape=shape,
                                     normalized_black=black)
  ra_only = _jitted_rand_augment(3, 9, FASHION)(key, x, ids)
  out = np.asarray(jax.jit(with_ra)(key, x, ids))
  if without is None:
    np.testing.assert_array_equal(out, ra_only)
  else:
    # The crop/flip draws are those it makes without RandAugment, on the augmented images.
    np.testing.assert_array_equal(out, np.asarray(jax.jit(without)(key, ra_only, ids)))
    assert not np.array_equal(out, np.asarray(ra_only))
