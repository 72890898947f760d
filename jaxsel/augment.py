"""Jittable batch transforms: augmentations keyed per example, and mixings of a batch.

Two registries, chosen by name from the config:

- ``AUGMENTATIONS`` (``config.augmentation.name``): per-example transforms
  ``(key, inputs [B, ...], example_ids [B]) -> inputs``; each example's draw is
  ``fold_in(key, example_id)``, independent of the batch it lands in. ``none``, ``crop_flip``.
  Cutout (``config.augmentation.cutout_size`` > 0) follows the named one: ``crop_flip`` with
  cutout is the forgetting paper's "augmentation + cutout", ``none`` with cutout is cutout
  alone. RandAugment (``randaugment_num_ops`` N > 0 ops of magnitude
  ``randaugment_magnitude``; ``jaxsel.randaugment``, images stored from uint8 only) comes
  before both, on the recovered 0-255 pixel values as the references apply it to PIL
  images: ``crop_flip`` with it is the budgeted-training paper's "RandAugment" setting,
  ``none`` with it is RandAugment alone.
- ``MIXINGS`` (``config.mixing.name``): per-batch transforms that blend examples,
  ``(key, inputs, mask) -> Mixed(inputs, positions [B, M], weights [B, M])``: row i of the
  output is made from rows ``positions[i]`` of the batch with ``weights[i]``, and its loss
  is ``mixed_loss``. ``none``, ``mixup``, ``ricap`` (``jaxsel.ricap``: patches of four
  images, or two segments of 1-d signals, weighted by area).

Mixup (Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization") trains on convex
combinations of pairs of examples and of their losses. Calibrated sample prioritization
(Tata et al., 2022, "Can Calibration Improve Sample Prioritization?") uses it as one of
the calibration-improving ways to train the selecting model (Thulasidasan et al., 2019,
"On Mixup Training: Improved Calibration and Predictive Uncertainty").

Mixup is applied to the inputs *after* normalisation, i.e. to exactly what the model sees,
so ``mixup`` does no scaling of its own.

Cutout (DeVries & Taylor, 2017, "Improved Regularization of Convolutional Neural Networks
with Cutout"; ALGORITHMS.md D.8) zeroes one square hole of the normalised input, i.e. paints
it with the dataset's mean colour; example forgetting (Toneva et al., 2019) trains its
removal runs with it.

Randomness. Per-example randomness elsewhere in jaxsel is drawn from
``jax.random.fold_in(key, example_id)`` so that an example's draw does not depend on the
batch it lands in. Mixup is different by definition: one mixing weight λ and one pairing
permutation are shared by the whole batch, so ``mixup`` takes a single per-batch key.
"""

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxsel.config_errors import UserError, choice, is_finite_real, is_int, require
from jaxsel.losses import LossFn


def sample_lambda(key: jax.Array, *, alpha: float | jax.Array) -> jax.Array:
  """One mixing weight λ ~ Beta(α, α) as a float32 scalar; λ = 1 (no mixing) if α ≤ 0.

  λ is used as drawn, not folded onto [0.5, 1] with max(λ, 1 − λ).
  """
  alpha = jnp.asarray(alpha, jnp.float32)
  positive = alpha > 0
  # A where-guard rather than a Python branch so that α may also be traced; the Beta
  # draw with the placeholder α = 1 is discarded when α ≤ 0.
  safe_alpha = jnp.where(positive, alpha, 1.0)
  lam = jax.random.beta(key, safe_alpha, safe_alpha, dtype=jnp.float32)
  return jnp.where(positive, lam, 1.0)


def random_partner(key: jax.Array, mask: jax.Array) -> jax.Array:
  """A uniformly random permutation of the real rows; padding rows map to themselves.

  mask: [B] (True = real row, False = padding). Returns partner: [B] int32 with
  partner[i] real for every real row i (a uniformly random bijection of the real rows,
  fixed points allowed) and partner[i] = i for every padding row.

  Two stable argsorts list the real rows first and the padding rows last in index order:
  ``shuffled`` orders the real rows by random keys, ``ordered`` by index. Pairing
  ``shuffled[j]`` with ``ordered[j]`` maps real rows onto real rows through a uniformly
  random bijection and, as both list the padding rows identically, each padding row onto
  itself.
  """
  mask = jnp.asarray(mask, bool)
  batch = mask.shape[0]
  # 31 random bits for real rows, all ones for padding: padding sorts last, and the
  # stable sort keeps padding rows in index order. Ties between real rows (2^-31 per
  # pair) only keep index order there, still giving a permutation.
  bits = jax.random.bits(key, (batch,), jnp.uint32) >> 1
  sort_keys = jnp.where(mask, bits, jnp.uint32(jnp.iinfo(jnp.uint32).max))
  shuffled = jnp.argsort(sort_keys, stable=True)
  ordered = jnp.argsort(~mask, stable=True)
  return jnp.zeros(batch, jnp.int32).at[shuffled].set(ordered.astype(jnp.int32))


def mixup(key: jax.Array, inputs: jax.Array, mask: jax.Array | None = None, *,
          alpha: float | jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Mixes each example with a random partner from the same batch.

  inputs: [B, ...] (already normalised); mask: [B] bool or None (False = padding row of a
  padded final batch). With λ ~ Beta(α, α) (λ = 1 if α ≤ 0) and π a uniformly random
  permutation of the batch, both drawn once per batch,

    x̃_i = λ · x_i + (1 − λ) · x_π(i).

  With a mask, real rows are only paired with real rows and padding rows with themselves,
  so padding never leaks into a real example. Returns ``(mixed [B, ...] in the dtype of
  inputs, partner = π [B] int32, lam [] float32)``; pass partner and lam to ``mixup_loss``.
  """
  lam_key, partner_key = jax.random.split(key)
  lam = sample_lambda(lam_key, alpha=alpha)
  if mask is None:
    mask = jnp.ones(inputs.shape[0], bool)
  partner = random_partner(partner_key, mask)
  weight = lam.astype(inputs.dtype)
  mixed = weight * inputs + (1 - weight) * inputs[partner]
  return mixed, partner, lam


def mixup_loss(loss_fn: LossFn, logits: jax.Array, labels: jax.Array, partner: jax.Array,
               lam: jax.Array) -> jax.Array:
  """Per-example mixup loss: [B, K], [B], [B], [] -> [B].

    ℓ̃_i = λ · ℓ(logits_i, y_i) + (1 − λ) · ℓ(logits_i, y_π(i))

  with ℓ = ``loss_fn`` any per-example loss of ``jaxsel.losses``. Its batch mean is the
  usual mixup criterion λ · mean ℓ(·, y) + (1 − λ) · mean ℓ(·, y_π); keeping it per
  example lets callers mask padding rows and weight examples.
  """
  return lam * loss_fn(logits, labels) + (1 - lam) * loss_fn(logits, labels[partner])


def _crop_flip_one(key: jax.Array, image: jax.Array, *, padding: int, pad_mode: str,
                   pad_value: jax.Array, flip: bool) -> jax.Array:
  """[H, W, C] -> a random HxW crop of the padded image, flipped with p = 0.5."""
  height, width, channels = image.shape
  crop_key, flip_key = jax.random.split(key)
  offsets = jax.random.randint(crop_key, (2,), 0, 2 * padding + 1)
  if pad_mode == "reflect":
    padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)), mode="reflect")
  else:
    # A canvas of the padding colour with the image written into it: exact, unlike
    # shifting the image by the colour, padding with zeros and shifting back.
    canvas = jnp.broadcast_to(pad_value.astype(image.dtype),
                              (height + 2 * padding, width + 2 * padding, channels))
    padded = jax.lax.dynamic_update_slice(canvas, image, (padding, padding, 0))
  crop = jax.lax.dynamic_slice(padded, (offsets[0], offsets[1], 0), (height, width, channels))
  if not flip:
    return crop
  return jnp.where(jax.random.bernoulli(flip_key), crop[:, ::-1], crop)


def crop_flip(key: jax.Array, images: jax.Array, example_ids: jax.Array, *,
              padding: int = 4, pad_mode: str = "constant",
              pad_value: jax.Array | float = 0.0, flip: bool = True) -> jax.Array:
  """The "standard" CIFAR augmentation: pad ``padding`` pixels on each side, take a random
  crop of the original size, flip horizontally with probability 1/2 (if ``flip``).

  images: [B, H, W, C], already normalised. ``pad_mode='constant'`` pads with
  ``pad_value`` (a scalar or one value per channel): the references pad *black* pixels
  before normalising, which is the normalised value ``(0 - mean) / std`` here (see
  ``get_augmentation``); ``'reflect'`` mirrors the border (the coreset reference). Each
  example's draw is ``fold_in(key, example_id)``: independent of the batch it lands in, so
  a resumed or re-batched run augments every example identically.
  """
  if pad_mode not in ("constant", "reflect"):
    raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
  pad_value = jnp.broadcast_to(jnp.asarray(pad_value, images.dtype), images.shape[-1:])
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(example_ids)
  one = functools.partial(_crop_flip_one, padding=padding, pad_mode=pad_mode,
                          pad_value=pad_value, flip=flip)
  return jax.vmap(one)(keys, images)


# Folded into the key before the example id, so that an example's hole is not drawn from
# its crop/flip key. It must not be a possible example id (int32 >= 0): fold_in(k, m) is
# split(k)[m], so with a small constant C example C's crop/flip keys would be examples 0 and
# 1's cutout keys.
_CUTOUT_STREAM = np.uint32(0xC07C0A7E)


def spatial_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
  """The axes a cutout hole spans: (H, W) of an image [H, W, C], (L,) of a signal [L] or
  [L, C] (like MNIST-1D's [40]); the channels share the hole. () for any other rank."""
  input_shape = tuple(input_shape)
  if len(input_shape) == 3:
    return input_shape[:2]
  if len(input_shape) in (1, 2):
    return input_shape[:1]
  return ()


def cutout_mask(centre: jax.Array, shape: Sequence[int], size: int) -> jax.Array:
  """bool [*shape]: True inside the hole of side ``size`` centred at ``centre`` (int [D],
  one coordinate per axis of ``shape``).

  Along every axis the hole covers [c − size//2, c + size//2) clipped to the axis, the
  reference's rule (``Cutout/util/cutout.py``): a hole at the border is smaller, and an odd
  ``size`` gives side ``size − 1``.
  """
  half = size // 2
  centre = jnp.asarray(centre).reshape(-1, *(1,) * len(shape))
  coords = jnp.indices(tuple(shape))  # [D, *shape]
  return jnp.all((coords >= centre - half) & (coords < centre + half), axis=0)


def cutout(key: jax.Array, inputs: jax.Array, example_ids: jax.Array, *,
           size: int) -> jax.Array:
  """Zeroes one hole of side ``size`` (see ``cutout_mask``) in each example.

  inputs: [B, H, W, C] images (a square hole) or [B, L] / [B, L, C] signals (a segment),
  already normalised, so zero is the dataset's mean. The centre is uniform over all
  positions, and the same hole covers every channel. Each example's centre is drawn from
  ``fold_in(fold_in(key, _CUTOUT_STREAM), example_id)``: independent of the batch it lands
  in and of the example's crop/flip draw under the same key.
  """
  spatial = spatial_shape(inputs.shape[1:])
  stream = jax.random.fold_in(key, _CUTOUT_STREAM)
  keys = jax.vmap(lambda i: jax.random.fold_in(stream, i))(example_ids)
  centres = jax.vmap(lambda k: jax.random.randint(k, (len(spatial),), 0,
                                                  jnp.asarray(spatial)))(keys)
  holes = jax.vmap(lambda c: cutout_mask(c, spatial, size))(centres)
  holes = holes.reshape(*holes.shape, *(1,) * (inputs.ndim - holes.ndim))  # channels
  return jnp.where(holes, jnp.zeros((), inputs.dtype), inputs)


AugmentFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
AUGMENTATIONS = ("none", "crop_flip")
PAD_MODES = ("black", "mean", "reflect")


def _is_image(input_shape) -> bool:
  return len(input_shape) == 3


def check_cutout_size(size, input_shape: Sequence[int] | None = None) -> None:
  """UserError naming ``augmentation.cutout_size`` unless it is 0 (off) or an integer in
  [2, the inputs' largest side] (checked only given ``input_shape``). A size of 1 is refused
  because its hole, [c, c), is empty; a larger size than the input's sides is refused as a
  mistake, since a hole that wide, centred, already blanks the whole input."""
  require(is_int(size) and (size == 0 or size >= 2), "augmentation.cutout_size",
          "0 (off) or an integer >= 2", size)
  if size == 0 or input_shape is None:
    return
  spatial = spatial_shape(input_shape)
  require(bool(spatial), "augmentation.cutout_size",
          f"0 for inputs of shape {tuple(input_shape)} (cutout needs images [H, W, C] or "
          "signals [L] / [L, C])", size)
  require(size <= max(spatial), "augmentation.cutout_size",
          f"at most {max(spatial)}, the largest side of this dataset's inputs "
          f"{tuple(input_shape)}", size)


def check_crop_flip(config: ml_collections.ConfigDict) -> None:
  """UserError naming the field for a bad ``crop_flip`` setting of ``config.augmentation``
  (checked whatever the augmentation's name, before any data is loaded)."""
  choice(config.pad_mode, "augmentation.pad_mode", PAD_MODES)
  require(is_int(config.crop_padding) and config.crop_padding >= 0,
          "augmentation.crop_padding", "an integer >= 0", config.crop_padding)
  require(isinstance(config.flip, bool), "augmentation.flip", "True or False", config.flip)


def _crop_flip_from_config(config: ml_collections.ConfigDict, input_shape: Sequence[int],
                           normalized_black: np.ndarray | None) -> AugmentFn:
  name = config.name
  if not _is_image(input_shape):
    raise UserError(f"config.augmentation.name={name!r} needs images [H, W, C]; this "
                    f"dataset's inputs have shape {tuple(input_shape)}. Valid here: none")
  check_crop_flip(config)
  pad_value = 0.0
  if config.pad_mode == "black":
    if normalized_black is None:
      raise ValueError("config.augmentation.pad_mode='black' needs the dataset's "
                       "normalisation")
    pad_value = np.asarray(normalized_black, np.float32)
  return functools.partial(
      crop_flip, padding=config.crop_padding,
      pad_mode="reflect" if config.pad_mode == "reflect" else "constant",
      pad_value=pad_value, flip=bool(config.flip))


def _then(first: AugmentFn, second: AugmentFn, key: jax.Array, inputs: jax.Array,
          example_ids: jax.Array) -> jax.Array:
  # Both get the same key: each keeps the draws it would make alone.
  return second(key, first(key, inputs, example_ids), example_ids)


def get_augmentation(config: ml_collections.ConfigDict, *, input_shape: Sequence[int],
                     normalized_black: np.ndarray | None = None, normalization=None,
                     uint8_inputs: bool = False) -> AugmentFn | None:
  """``config.augmentation`` -> a per-example transform, or None for ``none`` without
  cutout or RandAugment.

  RandAugment if ``randaugment_num_ops`` > 0, then the named augmentation, then cutout if
  ``cutout_size`` > 0; all get the same key, and each draws from its own stream, so
  switching one on leaves the others' draws unchanged. ``normalized_black``: float [C], the
  value black pixels have after normalisation (the padding of ``pad_mode='black'``).
  ``normalization`` (a ``jaxsel.data.Normalization``) and ``uint8_inputs``: the dataset's,
  which RandAugment needs to recover the pixel values. Raises UserError naming the field
  for an unknown name or pad mode, a bad cutout size or RandAugment setting, or an
  augmentation that does not apply to inputs of ``input_shape``.
  """
  # Imported here: jaxsel.randaugment is only needed once RandAugment is configured.
  from jaxsel import randaugment  # pylint: disable=import-outside-toplevel
  name = config.name
  choice(name, "augmentation.name", AUGMENTATIONS)
  check_cutout_size(config.cutout_size, input_shape)
  # Configs made before RandAugment existed have no such fields: off.
  num_ops = config.get("randaugment_num_ops", 0)
  magnitude = config.get("randaugment_magnitude", 4)
  randaugment.check_rand_augment(num_ops, magnitude, input_shape, uint8_inputs)
  steps = []
  if num_ops:
    if normalization is None:
      raise ValueError("config.augmentation.randaugment_num_ops > 0 needs the dataset's "
                       "normalisation")
    steps.append(functools.partial(
        randaugment.rand_augment, num_ops=num_ops, magnitude=float(magnitude),
        mean=np.asarray(normalization.mean, np.float32),
        std=np.asarray(normalization.std, np.float32)))
  if name != "none":
    steps.append(_crop_flip_from_config(config, input_shape, normalized_black))
  if config.cutout_size:
    steps.append(functools.partial(cutout, size=config.cutout_size))
  if not steps:
    return None
  transform = steps[0]
  for step in steps[1:]:
    transform = functools.partial(_then, transform, step)
  return transform


class Mixed(NamedTuple):
  """A mixed batch: ``inputs`` [B, ...]; row i is made from batch rows ``positions[i]``
  (int32 [B, M]) with ``weights[i]`` (float32 [B, M], summing to 1)."""

  inputs: jax.Array
  positions: jax.Array
  weights: jax.Array


MixingFn = Callable[[jax.Array, jax.Array, jax.Array], Mixed]
MIXINGS = ("none", "mixup", "ricap")


def mixup_batch(key: jax.Array, inputs: jax.Array, mask: jax.Array, *,
                alpha: float) -> Mixed:
  """``mixup`` as a ``Mixed`` batch: sources (row, partner), weights (λ, 1 − λ)."""
  mixed, partner, lam = mixup(key, inputs, mask, alpha=alpha)
  rows = jnp.arange(inputs.shape[0], dtype=jnp.int32)
  weights = jnp.broadcast_to(jnp.stack([lam, 1 - lam]), (inputs.shape[0], 2))
  return Mixed(mixed, jnp.stack([rows, partner], axis=1), weights)


def mixed_loss(loss_fn: LossFn, logits: jax.Array, labels: jax.Array, positions: jax.Array,
               weights: jax.Array) -> jax.Array:
  """Per-example loss of a mixed batch: Σ_m weights[:, m] · loss(logits, labels[positions[:, m]]).

  logits [B, K], labels [B], positions int [B, M], weights [B, M] -> [B]. For mixup this is
  ``mixup_loss``: λ · ℓ(·, y_i) + (1 − λ) · ℓ(·, y_π(i)).
  """
  return blended_loss(loss_fn, logits, labels[positions], weights)


def blended_loss(loss_fn: LossFn, logits: jax.Array, row_labels: jax.Array,
                 weights: jax.Array) -> jax.Array:
  """Σ_m weights[:, m] · loss(logits, row_labels[:, m]): [B, K], [B, M], [B, M] -> [B].

  ``mixed_loss`` with each row's source labels already gathered (a method that stores
  mixed rows away from their batch, as selective backprop's queue does, keeps these)."""
  total = weights[:, 0] * loss_fn(logits, row_labels[:, 0])
  for m in range(1, row_labels.shape[1]):
    total = total + weights[:, m] * loss_fn(logits, row_labels[:, m])
  return total


def get_mixing(config: ml_collections.ConfigDict, *,
               input_shape: Sequence[int] | None = None) -> MixingFn | None:
  """``config.mixing`` -> a batch mixing, or None for ``none``. Given ``input_shape``,
  also refuses a mixing that does not apply to such inputs (RICAP on inputs too small to
  split), naming the field."""
  name = config.name
  choice(name, "mixing.name", MIXINGS)
  # Checked also when off: a NaN left in the field is a mistake all the same. An infinite
  # α would make Beta(α, α) draws NaN.
  require(is_finite_real(config.alpha) and config.alpha > 0, "mixing.alpha",
          "> 0 and finite", config.alpha)
  if name == "none":
    return None
  if name == "mixup":
    return functools.partial(mixup_batch, alpha=float(config.alpha))
  from jaxsel import ricap  # imports this module's ``Mixed``
  if input_shape is not None:
    ricap.check_ricap_input(input_shape)
  return functools.partial(ricap.ricap_batch, alpha=float(config.alpha))
