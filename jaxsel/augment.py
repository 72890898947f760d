"""Jittable batch transforms: standard crop + flip, and mixup.

Mixup (Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization") trains on convex
combinations of pairs of examples and of their losses. Calibrated sample prioritization
(Tata et al., 2022, "Can Calibration Improve Sample Prioritization?") uses it as one of
the calibration-improving ways to train the selecting model (Thulasidasan et al., 2019,
"On Mixup Training: Improved Calibration and Predictive Uncertainty").

Mixup is applied to the inputs *after* normalisation, i.e. to exactly what the model sees,
so ``mixup`` does no scaling of its own.

Randomness. Per-example randomness elsewhere in jaxsel is drawn from
``jax.random.fold_in(key, example_id)`` so that an example's draw does not depend on the
batch it lands in. Mixup is different by definition: one mixing weight λ and one pairing
permutation are shared by the whole batch, so ``mixup`` takes a single per-batch key.
"""

import jax
import jax.numpy as jnp

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


def _crop_flip_one(key: jax.Array, image: jax.Array, *, padding: int) -> jax.Array:
  """[H, W, C] -> a random HxW crop of the zero-padded image, flipped with p = 0.5."""
  height, width = image.shape[:2]
  crop_key, flip_key = jax.random.split(key)
  offsets = jax.random.randint(crop_key, (2,), 0, 2 * padding + 1)
  padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)))
  crop = jax.lax.dynamic_slice(padded, (offsets[0], offsets[1], 0),
                               (height, width, image.shape[2]))
  return jnp.where(jax.random.bernoulli(flip_key), crop[:, ::-1], crop)


def crop_flip(key: jax.Array, images: jax.Array, example_ids: jax.Array, *,
              padding: int = 4) -> jax.Array:
  """The "standard" CIFAR augmentation: pad ``padding`` zeros on each side, take a random
  crop of the original size, flip horizontally with probability 1/2.

  images: [B, H, W, C] (already normalised, so the zero padding is the mean colour, as
  with padding before normalisation up to the per-channel shift). Each example's draw is
  ``fold_in(key, example_id)``: independent of the batch it lands in, so a resumed or
  re-batched run augments every example identically.
  """
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(example_ids)
  return jax.vmap(lambda k, x: _crop_flip_one(k, x, padding=padding))(keys, images)


AUGMENTATIONS = ("none", "crop_flip")
