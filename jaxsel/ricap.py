"""RICAP, random image cropping and patching, as a batch mixing (``augment.Mixed``).

Takahashi et al., 2018, "RICAP: Random Image Cropping and Patching Data Augmentation for
Deep CNNs"; Arazo et al., 2021, "How Important is Importance Sampling for Deep Budgeted
Training?" (BMVC; reference ``ricap_data_original`` and ``ricap_criterion``) train with it
under a budget. Per batch, for images [B, H, W, C] with I_x = H rows and I_y = W columns:

  w = round(I_x · Beta(α, α)),  h = round(I_y · Beta(α, α))   (two independent draws)

split the rows at w and the columns at h into four patches: 0 top-left (w × h), 1
bottom-left ((I_x − w) × h), 2 top-right (w × (I_y − h)), 3 bottom-right. Patch k of
output image n is a crop of input ``idx_k[n]``, with ``idx_k`` a random permutation of the
batch and the crop's offset uniform over the positions where it fits, both drawn once per
patch and shared by the batch. Its loss is Σ_k W_k · ℓ(f(x̃_n), y_{idx_k[n]}) with
W_k = patch area / image area, i.e. ``augment.mixed_loss`` with positions[n, k] = idx_k[n]
and weights[n, k] = W_k.

Signals [B, L] or [B, L, C] (MNIST-1D's [B, 40]) have one spatial axis, split at
w = round(L · Beta(α, α)) into two patches. In general, patch k has bit a set when it lies
after the split of spatial axis a (images: bit 0 = rows, bit 1 = columns), so there are
P = 2^D patches for D spatial axes, and every row of ``Mixed`` has P sources even when some
patches have zero area (weight 0): fixed shapes, no recompilation as w and h change.

Padding rows (mask False) are only built from themselves (``augment.random_partner``), so
padding never leaks into a real example.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

# The module, not its names: ``augment`` may import this module to register ``'ricap'``, and
# then it is only partly initialised here; its names are looked up when first called.
from jaxsel import augment
from jaxsel.config_errors import require

# A side of 1 has no split with both parts non-empty (w is 0 or 1), so that axis never
# mixes and RICAP's 2 x 2 layout degenerates; such an input is more likely a signal stored
# as [1, L, C] than an image. From 2 on, every split w = 1 .. side − 1 cuts the axis.
MIN_SIDE = 2


def check_ricap_input(input_shape: Sequence[int]) -> None:
  """ValueError naming ``mixing.name`` unless ``input_shape`` (one example, no batch axis)
  is an image [H, W, C] or a signal [L] / [L, C] whose every spatial side is at least
  ``MIN_SIDE``; checked when the run is configured, not in the middle of training."""
  input_shape = tuple(input_shape)
  spatial = augment.spatial_shape(input_shape)
  require(bool(spatial) and min(spatial) >= MIN_SIDE, "mixing.name",
          f"a mixing that applies to inputs of shape {input_shape}: ricap needs images "
          f"[H, W, C] or signals [L] / [L, C] with every spatial side >= {MIN_SIDE}",
          "ricap")


def _patch_bits(num_axes: int) -> np.ndarray:
  """bool [2^D, D]: bit a of patch k, i.e. whether patch k lies after the split of axis a."""
  return np.array([[(k >> a) & 1 for a in range(num_axes)] for k in range(2**num_axes)],
                  bool)


def patch_sizes(splits: jax.Array, spatial: Sequence[int]) -> jax.Array:
  """int32 [P, D]: the extent of every patch along every spatial axis; splits int [D]."""
  splits = jnp.asarray(splits, jnp.int32)
  return jnp.where(_patch_bits(len(spatial)), jnp.asarray(spatial, jnp.int32) - splits,
                   splits)


def patch_weights(splits: jax.Array, spatial: Sequence[int]) -> jax.Array:
  """float32 [P]: patch area / input area, the W_k of the loss (sums to 1)."""
  areas = jnp.prod(patch_sizes(splits, spatial), axis=1)
  return areas.astype(jnp.float32) / np.float32(np.prod(spatial))


def draw_ricap(key: jax.Array, spatial: Sequence[int], mask: jax.Array, *,
               alpha: float | jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The random part of RICAP: ``(splits int32 [D], offsets int32 [P, D], permutations
  int32 [P, B])`` for inputs with spatial axes ``spatial`` and a batch ``mask`` [B].

  splits[a] = round(spatial[a] · Beta(α, α)) (half to even, as numpy's round), one
  independent draw per axis; with α ≤ 0 the draw is 1 (``augment.sample_lambda``), so patch
  0 is the whole input. offsets[k] is uniform over [0, spatial − size_k] per axis, both
  ends included. permutations[k] is ``random_partner``: real rows to real rows, padding
  rows to themselves.
  """
  num_axes = len(spatial)
  split_key, offset_key, permutation_key = jax.random.split(key, 3)
  fractions = jax.vmap(functools.partial(augment.sample_lambda, alpha=alpha))(
      jax.random.split(split_key, num_axes))
  splits = jnp.round(np.asarray(spatial, np.float32) * fractions).astype(jnp.int32)
  room = jnp.asarray(spatial, jnp.int32) - patch_sizes(splits, spatial) + 1
  offsets = jax.random.randint(offset_key, room.shape, 0, room, dtype=jnp.int32)
  permutations = jax.vmap(augment.random_partner, in_axes=(0, None))(
      jax.random.split(permutation_key, 2**num_axes), mask)
  return splits, offsets, permutations


def _source_index(splits: jax.Array, offsets: jax.Array, permutations: jax.Array,
                  spatial: Sequence[int]) -> tuple[jax.Array, jax.Array]:
  """(flat source index int32 [B, *spatial] into inputs reshaped [B · Π spatial, -1],
  patch index int32 [*spatial]) of every output position.

  Along axis a an output coordinate i lies after the split iff i >= splits[a]; those bits
  name its patch k, and it is row ``permutations[k]`` at coordinate
  offsets[k, a] + i − (splits[a] if after else 0) of the input: one gather, whatever the
  (traced) splits.
  """
  grids = jnp.meshgrid(*(jnp.arange(s, dtype=jnp.int32) for s in spatial), indexing="ij")
  after = [grid >= splits[a] for a, grid in enumerate(grids)]
  patch = sum(after_a.astype(jnp.int32) << a for a, after_a in enumerate(after))
  flat = permutations.T[:, patch]  # [B, *spatial]: the source row
  for a, (grid, after_a) in enumerate(zip(grids, after)):
    coordinate = offsets[patch, a] + grid - jnp.where(after_a, splits[a], 0)
    flat = flat * spatial[a] + coordinate
  return flat, patch


def ricap_from_draws(inputs: jax.Array, splits: jax.Array, offsets: jax.Array,
                     permutations: jax.Array) -> augment.Mixed:
  """RICAP for given draws (see ``draw_ricap``): inputs [B, H, W, C] or [B, L(, C)] ->
  ``Mixed(inputs like inputs, positions = permutations.T int32 [B, P], weights float32
  [B, P])``. Deterministic, so tests can pin the draws; jittable with traced draws."""
  spatial = augment.spatial_shape(inputs.shape[1:])
  check_ricap_input(inputs.shape[1:])
  splits = jnp.asarray(splits, jnp.int32)
  offsets = jnp.asarray(offsets, jnp.int32)
  permutations = jnp.asarray(permutations, jnp.int32)
  batch, patches = inputs.shape[0], 2**len(spatial)
  if (splits.shape != (len(spatial),) or offsets.shape != (patches, len(spatial))
      or permutations.shape != (patches, batch)):
    raise ValueError(f"draws for inputs {inputs.shape} need splits [{len(spatial)}], "
                     f"offsets [{patches}, {len(spatial)}] and permutations "
                     f"[{patches}, {batch}]; got {splits.shape}, {offsets.shape}, "
                     f"{permutations.shape}")
  flat, _ = _source_index(splits, offsets, permutations, spatial)
  pixels = inputs.reshape(batch * int(np.prod(spatial)), -1)
  mixed = pixels[flat].reshape(inputs.shape)
  weights = jnp.broadcast_to(patch_weights(splits, spatial), (batch, patches))
  return augment.Mixed(mixed, permutations.T, weights)


def ricap(key: jax.Array, inputs: jax.Array, mask: jax.Array | None = None, *,
          alpha: float | jax.Array) -> augment.Mixed:
  """RICAP on a batch: inputs [B, H, W, C] or [B, L(, C)], already normalised (so no
  scaling here); mask [B] bool or None (all real). One draw per batch (``draw_ricap``);
  returns a ``Mixed`` with P = 4 (images) or 2 (signals) sources per row."""
  if mask is None:
    mask = jnp.ones(inputs.shape[0], bool)
  check_ricap_input(inputs.shape[1:])
  draws = draw_ricap(key, augment.spatial_shape(inputs.shape[1:]), mask, alpha=alpha)
  return ricap_from_draws(inputs, *draws)


def ricap_batch(key: jax.Array, inputs: jax.Array, mask: jax.Array, *,
                alpha: float) -> augment.Mixed:
  """``ricap`` with the ``augment.MixingFn`` signature ``(key, inputs, mask) -> Mixed``,
  once α is bound with ``functools.partial``: the ``'ricap'`` entry of the mixings."""
  return ricap(key, inputs, mask, alpha=alpha)


def area_attribution(values: jax.Array, positions: jax.Array, weights: jax.Array,
                     mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """A per-(mixed row, source) quantity attributed to the batch rows it came from, by area.

  values, weights: [B, P] (e.g. values[n, k] = 1 − p(y_{positions[n, k]} | x̃_n));
  positions int [B, P]; mask [B] bool (False = padding). Returns ``(average [B], total
  [B])`` with, for every batch row j over the pairs (n, k) with positions[n, k] = j and n
  real,

    total[j] = Σ weights[n, k],   average[j] = Σ weights[n, k] · values[n, k] / total[j],

  and average = total = 0 for rows nothing is built from (padding). A mixed image's score
  thus reaches each example in proportion to the area it covers. Under RICAP every real row
  appears once per patch column, so its total is Σ_k W_k = 1. Two scatter-adds into [B]:
  O(B · P), nothing of the dataset's size.
  """
  weights = jnp.where(jnp.asarray(mask, bool)[:, None], weights, 0).astype(jnp.float32)
  batch = values.shape[0]
  total = jnp.zeros(batch, jnp.float32).at[positions].add(weights)
  weighted = jnp.zeros(batch, jnp.float32).at[positions].add(weights * values)
  seen = total > 0
  return jnp.where(seen, weighted / jnp.where(seen, total, 1), 0), total
