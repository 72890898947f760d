"""RandAugment (Cubuk et al., 2020) on uint8-valued images, jittable and keyed per example.

The reference is the one importance sampling for budgeted training (Arazo et al., BMVC
2021, ``utils_train/randAugm.py``) trains with, itself the widely copied PIL
implementation: per image, N operations drawn uniformly *with replacement* from the 16 of
``OPS``, each applied with the value ``v = (M / 30) · (max − min) + min`` of its range in
``OP_RANGES``; ``SIGNED_OPS`` negate v with probability 1/2. Everything here reproduces
what Pillow 13 computes for those calls, bit for bit (``tests/test_randaugment.py``
compares every op with Pillow), so that a run here augments like the reference does:

- AutoContrast, Equalize, Invert, Posterize, Solarize, SolarizeAdd: per-channel lookup
  tables built as Pillow builds them. AutoContrast's table is computed by Pillow in
  doubles, ``int(x · (255 / (hi − lo)) − lo · (255 / (hi − lo)))``, which for 12,094
  (lo, hi, x) triples lands just below an exact integer and truncates one lower (a channel
  spanning 0..25 maps 25 to 254, not 255); float32 cannot reproduce that rounding, so the
  exact integer formula is corrected by a table of those triples computed once on the host.
- Color, Contrast, Brightness, Sharpness: ``Image.blend(degenerate, image, v)`` in float32
  as Pillow's C code does it, ``trunc(d + v · (x − d))`` clipped; greyscale is Pillow's
  ``(19595 R + 38470 G + 7471 B + 0x8000) >> 16``; Sharpness's degenerate is the SMOOTH
  3x3 filter summed in Pillow's float32 order, its border pixels left as they are.
- Rotate, ShearX/Y, TranslateX/Yabs: nearest-neighbour ``Image.transform(AFFINE)``. Pillow
  maps each output pixel centre through the matrix and accumulates the coordinates along a
  row, in 16.16 fixed point for rotations and shears and in doubles for translations (its
  "scale" path); ``img.rotate(v)`` turns about (W/2, H/2) with the matrix rounded to 15
  digits. The value of a geometric op is fixed by the config's magnitude and only its sign
  is random, so the source pixel of every output pixel is computed on the host, with
  Pillow's own arithmetic, for +v and for −v; in the step an op is one gather. (dm-pix was
  not used: its ``affine_transform`` / ``rotate`` follow scipy's conventions, pixel centres
  at integer coordinates, rotation about ((H − 1)/2, (W − 1)/2), nearest = round half away
  from zero, so no matrix makes it agree with Pillow on every pixel; and the maps here are
  exact and cheaper than interpolating.)
- CutoutAbs: the reference's box, corner ``int(max(0, c − v/2))`` and inclusive end
  ``int(min(size, corner + v))`` (``ImageDraw.rectangle``), filled with (125, 123, 114).
  Its centre comes from ``np.random.uniform(w)``, which is ``uniform(low=w, high=1)``: the
  reference's centre is uniform on (1, w] rather than [0, w), and this is reproduced. On
  greyscale images Pillow 13 refuses an RGB fill (the reference would crash), so the fill
  is that colour's grey value as Pillow converts it, 123.

Greyscale images (C = 1) are Pillow mode "L" (Color is then the identity), RGB (C = 3)
mode "RGB". The ops see the uint8 values as int32; ``rand_augment`` recovers them from the
model's normalised inputs and normalises the result again exactly as ``jaxsel.data``
normalises a loaded image, so an image no op changed comes back bit-identical.

Each op is a function ``(key, image int32 [H, W, C], negative bool []) -> image`` built
for one value v ≥ 0 and one image shape: ``negative`` applies −v (signed ops only), the key
is used by CutoutAbs only. ``apply_op`` applies one op to one image (for tests and
inspection); ``rand_augment`` is the batch transform. Per example, the draws come from
``fold_in(fold_in(key, _STREAM), example_id)``: independent of the batch the example lands
in and of the crop/flip and cutout draws made under the same key.
"""

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel import pil_tables
from jaxsel.config_errors import is_int, is_real, require

OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize",
       "SolarizeAdd", "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY",
       "CutoutAbs", "TranslateXabs", "TranslateYabs")
# (min, max) of each op's value, the reference's augment_list.
OP_RANGES = {
    "AutoContrast": (0, 1), "Equalize": (0, 1), "Invert": (0, 1), "Rotate": (0, 30),
    "Posterize": (0, 4), "Solarize": (0, 256), "SolarizeAdd": (0, 110),
    "Color": (0.1, 1.9), "Contrast": (0.1, 1.9), "Brightness": (0.1, 1.9),
    "Sharpness": (0.1, 1.9), "ShearX": (0.0, 0.3), "ShearY": (0.0, 0.3),
    "CutoutAbs": (0, 40), "TranslateXabs": (0.0, 100), "TranslateYabs": (0.0, 100),
}
SIGNED_OPS = frozenset({"Rotate", "ShearX", "ShearY", "TranslateXabs", "TranslateYabs"})
MAX_MAGNITUDE = 30

# Folded into the key before the example id, so that an example's RandAugment draws are not
# its crop/flip draws (fold_in(key, id)) or its cutout draws (augment._CUTOUT_STREAM). Like
# that constant it must not be a possible example id (int32 >= 0), see augment.py.
_STREAM = np.uint32(0xDA7A0A06)

_CUTOUT_RGB = (125, 123, 114)
# _CUTOUT_RGB as Pillow converts RGB to L: (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
_CUTOUT_GREY = 123

OpFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def op_value(name: str, magnitude: float) -> float:
  """The reference's value of op ``name`` at magnitude M: (M / 30) · (max − min) + min, in
  the same double arithmetic."""
  low, high = OP_RANGES[name]
  return (float(magnitude) / MAX_MAGNITUDE) * float(high - low) + low


# ---------------------------------------------------------------------------------------
# Device side: the ops on one image, int32 [H, W, C] with values 0..255.


def _gather_pixels(image: jax.Array, source: jax.Array) -> jax.Array:
  """Output pixel i = input pixel source[i] (flat), 0 where source[i] < 0."""
  height, width, channels = image.shape
  flat = image.reshape(height * width, channels)
  out = jnp.where((source >= 0)[:, None], flat[jnp.maximum(source, 0)], 0)
  return out.reshape(image.shape)


def _apply_channel_luts(image: jax.Array, luts: jax.Array) -> jax.Array:
  """image [H, W, C], luts [C, 256] -> luts[c, image[..., c]]."""
  return luts[jnp.arange(image.shape[-1]), image]


def _blend(degenerate: jax.Array, image: jax.Array, factor: float) -> jax.Array:
  """Pillow's ``Image.blend(degenerate, image, factor)``: float32 d + factor · (x − d),
  truncated and clipped to 0..255."""
  d = degenerate.astype(jnp.float32)
  mixed = d + np.float32(factor) * (image - degenerate).astype(jnp.float32)
  return jnp.clip(jnp.trunc(mixed), 0, 255).astype(jnp.int32)


def _grey(image: jax.Array) -> jax.Array:
  """[H, W]: Pillow's conversion to mode L (the only channel of a greyscale image)."""
  if image.shape[-1] == 1:
    return image[..., 0]
  r, g, b = image[..., 0], image[..., 1], image[..., 2]
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


def _autocontrast(image: jax.Array) -> jax.Array:
  lo = image.min(axis=(0, 1))[:, None]  # [C, 1]
  hi = image.max(axis=(0, 1))[:, None]
  values = jnp.arange(256, dtype=jnp.int32)[None, :]
  exact = (values - lo) * 255 // jnp.maximum(hi - lo, 1)
  table = jnp.asarray(pil_tables.autocontrast_corrections())
  keys = (lo << 16) | (hi << 8) | values
  found = table[jnp.minimum(jnp.searchsorted(table, keys), table.size - 1)] == keys
  luts = jnp.clip(exact - found.astype(jnp.int32), 0, 255)
  luts = jnp.where(hi > lo, luts, values)  # a constant channel is left alone
  return _apply_channel_luts(image, luts)


def _equalize(image: jax.Array) -> jax.Array:
  height, width, channels = image.shape
  flat = image.reshape(height * width, channels)
  hist = jnp.zeros((channels, 256), jnp.int32).at[jnp.arange(channels), flat].add(1)
  hi = image.max(axis=(0, 1))
  last = hist[jnp.arange(channels), hi]  # the count of the highest value present
  step = ((height * width - last) // 255)[:, None]
  below = jnp.cumsum(hist, axis=1) - hist  # pixels of a lower value
  luts = jnp.minimum((step // 2 + below) // jnp.maximum(step, 1), 255)
  identity = ((hist > 0).sum(axis=1, keepdims=True) <= 1) | (step == 0)
  luts = jnp.where(identity, jnp.arange(256, dtype=jnp.int32)[None, :], luts)
  return _apply_channel_luts(image, luts)


def _color(image: jax.Array, factor: float) -> jax.Array:
  if image.shape[-1] == 1:
    return image  # the degenerate of an L image is the image itself
  return _blend(jnp.broadcast_to(_grey(image)[..., None], image.shape), image, factor)


def _contrast(image: jax.Array, factor: float) -> jax.Array:
  height, width, _ = image.shape
  count = height * width
  total = _grey(image).sum()
  mean = (2 * total + count) // (2 * count)  # int(S / N + 0.5), exactly
  return _blend(jnp.broadcast_to(mean, image.shape), image, factor)


_SMOOTH_EDGE = np.float32(1) / np.float32(13)
_SMOOTH_CENTRE = np.float32(5) / np.float32(13)


def _smooth(image: jax.Array) -> jax.Array:
  """Pillow's ``ImageFilter.SMOOTH`` ([[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13): float32
  sums in Pillow's order (the row below, the row, the row above; left to right), + 0.5,
  truncated; the border rows and columns are copied."""
  if image.shape[0] < 3 or image.shape[1] < 3:
    return image
  pixels = image.astype(jnp.float32)

  def row_sum(rows, centre):
    return (rows[:, :-2] * _SMOOTH_EDGE + rows[:, 1:-1] * centre) + rows[:, 2:] * _SMOOTH_EDGE

  total = np.float32(0.5) + row_sum(pixels[2:], _SMOOTH_EDGE)
  total = total + row_sum(pixels[1:-1], _SMOOTH_CENTRE)
  total = total + row_sum(pixels[:-2], _SMOOTH_EDGE)
  inner = jnp.clip(jnp.trunc(total), 0, 255).astype(jnp.int32)
  return image.at[1:-1, 1:-1].set(inner)


def _cutout_corner(key: jax.Array, height: int, width: int, v: float) -> jax.Array:
  """int32 [2] (x0, y0): the box's top-left corner, int(max(0, c − v/2)) per axis with the
  reference's centre c ~ np.random.uniform(size) = U(1, size]."""
  u = jax.random.uniform(key, (2,), jnp.float32)
  size = jnp.asarray([width, height], jnp.float32)
  centre = size + (1 - size) * u
  return jnp.floor(jnp.maximum(0.0, centre - np.float32(v / 2))).astype(jnp.int32)


def _cutout(key: jax.Array, image: jax.Array, v: float) -> jax.Array:
  height, width, channels = image.shape
  x0, y0 = _cutout_corner(key, height, width, v)
  extent = math.floor(v)  # ImageDraw.rectangle truncates the end and includes it
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  box = (rows >= y0) & (rows <= y0 + extent) & (cols >= x0) & (cols <= x0 + extent)
  colour = jnp.asarray(_CUTOUT_RGB if channels == 3 else (_CUTOUT_GREY,), jnp.int32)
  return jnp.where(box[..., None], colour, image)


def make_op(name: str, v: float, shape: Sequence[int]) -> OpFn:
  """Op ``name`` with value v >= 0 on images of ``shape`` (H, W, C) as a function
  ``(key, image int32 [H, W, C], negative bool []) -> image``; ``negative`` applies −v
  (ops of ``SIGNED_OPS`` only), the key is read by CutoutAbs only."""
  height, width, channels = (int(s) for s in shape)
  if channels not in (1, 3):
    raise ValueError(f"RandAugment needs images [H, W, C] with C = 1 or 3, got {shape}")
  if name not in OPS:
    raise ValueError(f"unknown RandAugment op {name!r}; valid: {', '.join(OPS)}")
  if v < 0:
    raise ValueError(f"the value of {name} must be >= 0 (negate with `negative`), got {v}")
  if name in SIGNED_OPS:
    sources = np.stack([pil_tables.geometric_source(name, v, height, width),
                        pil_tables.geometric_source(name, -v, height, width)])

    def geometric(key, image, negative):
      del key
      return _gather_pixels(image, jnp.asarray(sources)[jnp.asarray(negative, jnp.int32)])
    return geometric
  if name in ("Invert", "Posterize", "Solarize", "SolarizeAdd"):
    lut = pil_tables.value_lut(name, v)
    return lambda key, image, negative: jnp.asarray(lut)[image]
  if name == "CutoutAbs":
    return lambda key, image, negative: _cutout(key, image, v)
  per_image = {
      "AutoContrast": _autocontrast,
      "Equalize": _equalize,
      "Color": functools.partial(_color, factor=v),
      "Contrast": functools.partial(_contrast, factor=v),
      "Brightness": lambda image: _blend(jnp.zeros_like(image), image, v),
      "Sharpness": lambda image: _blend(_smooth(image), image, v),
  }[name]
  return lambda key, image, negative: per_image(image)


@functools.lru_cache(maxsize=32)
def _ops_at(magnitude: float, shape: tuple[int, ...]) -> tuple[OpFn, ...]:
  return tuple(make_op(name, op_value(name, magnitude), shape) for name in OPS)


def apply_op(name: str, image_u8, v: float, key: jax.Array | None = None) -> jax.Array:
  """Op ``name`` with value v (negative only for ``SIGNED_OPS``) on one uint8-valued image
  [H, W, C] -> uint8 [H, W, C], as the reference's ``Op(PIL image, v)``. ``key`` places
  CutoutAbs's box (default ``PRNGKey(0)``)."""
  if v < 0 and name not in SIGNED_OPS:
    raise ValueError(f"{name} takes no negative value, got {v}")
  image = jnp.asarray(image_u8).astype(jnp.int32)
  op = make_op(name, abs(float(v)), image.shape)
  key = jax.random.PRNGKey(0) if key is None else key
  return op(key, image, jnp.asarray(v < 0)).astype(jnp.uint8)


# ---------------------------------------------------------------------------------------
# The batch transform.


def example_keys(key: jax.Array, example_ids: jax.Array) -> jax.Array:
  """[B] keys: fold_in(fold_in(key, _STREAM), example_id), one per example."""
  stream = jax.random.fold_in(key, _STREAM)
  return jax.vmap(lambda i: jax.random.fold_in(stream, i))(example_ids)


def sample_ops(key: jax.Array, num_ops: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One example's draws: (op indices into ``OPS`` int32 [N], uniform with replacement;
  negate bool [N], each with p = 1/2 and used by ``SIGNED_OPS`` only; keys [N], one per
  op application)."""
  choice_key, sign_key, op_key = jax.random.split(key, 3)
  choices = jax.random.randint(choice_key, (num_ops,), 0, len(OPS), jnp.int32)
  negative = jax.random.bernoulli(sign_key, 0.5, (num_ops,))
  return choices, negative, jax.random.split(op_key, num_ops)


def to_uint8(images: jax.Array, mean, std) -> jax.Array:
  """int32 pixel values 0..255 of normalised images ((u / 255) − mean) / std: rounded
  (x · std + mean) · 255, clipped."""
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return jnp.clip(jnp.round((images * std + mean) * 255), 0, 255).astype(jnp.int32)


def normalised_values(mean, std) -> np.ndarray:
  """float32 [C or 1, 256]: what pixel value u of channel c becomes once normalised, by
  the float32 operations of ``jaxsel.data.loading`` (u / 255, − mean, / std)."""
  values = np.arange(256, dtype=np.float32)[None, :]
  values /= np.float32(255)
  values = values - np.asarray(mean, np.float32).reshape(-1, 1)
  values /= np.asarray(std, np.float32).reshape(-1, 1)
  return values


def from_uint8(pixels: jax.Array, mean, std) -> jax.Array:
  """float32 (u / 255 − mean) / std of int pixel values [..., C], bit-identical to a loaded
  image: looked up in ``normalised_values`` (concrete ``mean`` / ``std``), because XLA
  computes a division by a broadcast scalar as a multiplication by its reciprocal, which
  is one ulp off for about half of the values."""
  table = jnp.asarray(normalised_values(mean, std))
  if table.shape[0] == 1:
    return table[0][pixels]
  return table[jnp.arange(pixels.shape[-1]), pixels]


def _augment_one(key: jax.Array, image: jax.Array, *, ops: tuple[OpFn, ...],
                 num_ops: int) -> jax.Array:
  choices, negative, keys = sample_ops(key, num_ops)
  for i in range(num_ops):
    image = jax.lax.switch(choices[i], ops, keys[i], image, negative[i])
  return image


def rand_augment(key: jax.Array, images: jax.Array, example_ids: jax.Array, *,
                 num_ops: int, magnitude: float, mean, std) -> jax.Array:
  """RandAugment with N = ``num_ops`` ops of magnitude M = ``magnitude`` on every image.

  images: float32 [B, H, W, C] (C = 1 or 3), the model's normalised inputs
  ((u8 / 255) − mean) / std with ``mean`` / ``std`` per channel (or scalars; concrete
  values, e.g. the dataset's ``Normalization``, not traced ones). The uint8
  values are recovered exactly, augmented as the reference's PIL code would, and returned
  normalised again (float32 [B, H, W, C]). Each example's draws come from
  ``example_keys(key, example_ids)``. ``num_ops = 0`` returns ``images``.
  """
  if num_ops == 0:
    return images
  ops = _ops_at(float(magnitude), tuple(int(s) for s in images.shape[1:]))
  pixels = to_uint8(images, mean, std)
  one = functools.partial(_augment_one, ops=ops, num_ops=num_ops)
  # A loop over the examples, not vmap: with one example at a time the switch is a real
  # conditional that runs only the drawn op. Under vmap it becomes a select that computes
  # all 16 ops, and XLA fuses that select into the next op's reads and recomputes it: on 2
  # CPU cores, N = 2 on [128, 32, 32, 3] takes 1.8 ms this way and 126 ms vmapped.
  augmented = jax.lax.map(lambda args: one(*args), (example_keys(key, example_ids), pixels))
  return from_uint8(augmented, mean, std)


def check_rand_augment(num_ops, magnitude, input_shape: Sequence[int],
                       uint8_inputs: bool) -> None:
  """ValueError naming the field unless ``augmentation.randaugment_num_ops`` is an integer
  >= 0 (0: off) and ``augmentation.randaugment_magnitude`` a number in [0, 30]; when on,
  the inputs must be images [H, W, C] with C = 1 or 3 stored from uint8 values (the ops
  work on the 0..255 values the reference's PIL images hold)."""
  require(is_int(num_ops) and num_ops >= 0, "augmentation.randaugment_num_ops",
          "an integer >= 0 (0: off)", num_ops)
  require(is_real(magnitude) and 0 <= magnitude <= MAX_MAGNITUDE,
          "augmentation.randaugment_magnitude", f"a number in [0, {MAX_MAGNITUDE}]",
          magnitude)
  if num_ops == 0:
    return
  shape = tuple(input_shape)
  require(len(shape) == 3 and shape[-1] in (1, 3), "augmentation.randaugment_num_ops",
          f"0 for inputs of shape {shape} (RandAugment needs images [H, W, C] with C = 1 "
          "or 3)", num_ops)
  require(bool(uint8_inputs), "augmentation.randaugment_num_ops",
          "0 for a dataset not stored from uint8 images (RandAugment works on their 0-255 "
          "values)", num_ops)
