"""Tests for jaxsel.ricap: RICAP against a numpy loop of its definition, its draws, its
loss, the attribution of a mixed row's score by patch area, input checks, and jit."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import augment, losses, ricap

ALPHA = 0.3
BATCH = 5
IMAGE_SHAPE = (6, 7, 2)
# Four real rows scattered among padding: padding is not only at the end.
MASK = np.array([True, False, True, True, False, True])
REAL_ROWS = np.flatnonzero(MASK)


def _distinct_inputs(batch, shape):
  """Inputs whose every entry is different, so each output value names its source."""
  return np.arange(batch * np.prod(shape), dtype=np.float32).reshape(batch, *shape)


def _oracle(inputs, splits, offsets, permutations):
  """(mixed, positions, weights) by the reference's loop: crop each patch from its
  permuted batch, concatenate rows, then columns; W_k = area / image area."""
  spatial = inputs.shape[1:3] if inputs.ndim == 4 else inputs.shape[1:2]
  if len(spatial) == 2:
    (rows, cols), (w, h) = spatial, splits
    rows_ = [w, rows - w, w, rows - w]
    cols_ = [h, h, cols - h, cols - h]
  else:
    (rows,), (w,) = spatial, splits
    rows_, cols_ = [w, rows - w], [1, 1]
  crops = []
  for k, offset in enumerate(offsets):
    source = inputs[np.asarray(permutations[k])]
    r = offset[0]
    if len(spatial) == 2:
      c = offset[1]
      crops.append(source[:, r:r + rows_[k], c:c + cols_[k]])
    else:
      crops.append(source[:, r:r + rows_[k]])
  if len(spatial) == 2:
    mixed = np.concatenate([np.concatenate(crops[:2], axis=1),
                            np.concatenate(crops[2:], axis=1)], axis=2)
  else:
    mixed = np.concatenate(crops, axis=1)
  weights = np.array([r * c for r, c in zip(rows_, cols_)]) / np.prod(spatial)
  positions = np.asarray(permutations).T
  return mixed, positions, np.broadcast_to(weights, positions.shape)


def _random_draws(rng, spatial, splits, batch):
  sizes = np.asarray(ricap.patch_sizes(jnp.asarray(splits), spatial))
  offsets = np.array([[rng.integers(0, s - n + 1) for s, n in zip(spatial, size)]
                      for size in sizes])
  permutations = np.stack([rng.permutation(batch) for _ in sizes])
  return np.asarray(splits), offsets, permutations


@pytest.mark.parametrize("shape,splits", [
    ((6, 7, 2), (2, 3)), ((6, 7, 2), (5, 1)), ((6, 7, 2), (0, 4)), ((6, 7, 2), (6, 7)),
    ((6, 7, 2), (0, 0)), ((6, 7, 2), (3, 7)), ((11, 1), (4,)), ((11, 1), (0,)),
    ((11, 1), (11,)), ((11,), (6,)),
])
def test_from_draws_matches_the_definition(shape, splits):
  inputs = _distinct_inputs(BATCH, shape)
  spatial = shape[:2] if len(shape) == 3 else shape[:1]
  fn = jax.jit(ricap.ricap_from_draws)
  for seed in range(3):
    draws = _random_draws(np.random.default_rng(seed), spatial, splits, BATCH)
    mixed = fn(jnp.asarray(inputs), *draws)
    expected, positions, weights = _oracle(inputs, *draws)
    np.testing.assert_array_equal(mixed.inputs, expected)
    np.testing.assert_array_equal(mixed.positions, positions)
    np.testing.assert_allclose(mixed.weights, weights, rtol=1e-6)
    assert mixed.positions.dtype == jnp.int32 and mixed.weights.dtype == jnp.float32
    assert mixed.inputs.dtype == jnp.float32 and mixed.inputs.shape == inputs.shape


def test_from_draws_refuses_draws_of_the_wrong_shape():
  inputs = jnp.zeros((BATCH, *IMAGE_SHAPE))
  with pytest.raises(ValueError, match=r"need splits \[2\], offsets \[4, 2\]"):
    ricap.ricap_from_draws(inputs, jnp.zeros(1), jnp.zeros((4, 2)), jnp.zeros((4, BATCH)))


NUM_KEYS = 1500


# One compilation (of the Beta sampler, which dominates) for every test of the draws.
@jax.jit
def _vmapped_ricap(keys, inputs, mask):
  def one(key):
    draws = ricap.draw_ricap(key, inputs.shape[1:3], mask, alpha=ALPHA)
    return ricap.ricap(key, inputs, mask, alpha=ALPHA), draws
  return jax.vmap(one)(keys)


@functools.lru_cache(maxsize=None)
def _many_draws():
  inputs = _distinct_inputs(len(MASK), IMAGE_SHAPE)
  keys = jax.random.split(jax.random.key(0), NUM_KEYS)
  mixed, draws = _vmapped_ricap(keys, jnp.asarray(inputs), jnp.asarray(MASK))
  return inputs, jax.tree.map(np.asarray, mixed), jax.tree.map(np.asarray, draws)


def test_ricap_is_ricap_from_draws_of_draw_ricap():
  inputs, mixed, (splits, offsets, permutations) = _many_draws()
  for i in range(5):
    again = ricap.ricap_from_draws(jnp.asarray(inputs), splits[i], offsets[i],
                                   permutations[i])
    np.testing.assert_array_equal(again.inputs, mixed.inputs[i])
    np.testing.assert_array_equal(again.positions, mixed.positions[i])
    np.testing.assert_array_equal(again.weights, mixed.weights[i])


def test_weights_are_the_patch_areas_and_sum_to_one():
  _, mixed, (splits, _, _) = _many_draws()
  rows, cols = IMAGE_SHAPE[:2]
  w, h = splits[:, 0:1], splits[:, 1:2]
  areas = np.concatenate([w * h, (rows - w) * h, w * (cols - h), (rows - w) * (cols - h)],
                         axis=1) / (rows * cols)
  np.testing.assert_allclose(mixed.weights, np.broadcast_to(areas[:, None], (NUM_KEYS,
                                                            len(MASK), 4)), rtol=1e-6)
  np.testing.assert_allclose(mixed.weights.sum(-1), 1.0, rtol=1e-6)
  # Zero-area patches keep their column (with weight 0): Beta(0.3, 0.3) puts mass at 0, 1.
  assert (mixed.weights == 0).any()


def test_positions_permute_real_rows_and_keep_padding_in_place():
  _, mixed, _ = _many_draws()
  padding = np.flatnonzero(~MASK)
  np.testing.assert_array_equal(mixed.positions[:, padding, :],
                                np.broadcast_to(padding[:, None], (NUM_KEYS, len(padding), 4)))
  real = np.sort(mixed.positions[:, REAL_ROWS, :], axis=1)
  np.testing.assert_array_equal(real, np.broadcast_to(REAL_ROWS[:, None], real.shape))
  # The four permutations are drawn independently, not one shared shuffle.
  assert (mixed.positions[:, :, 0] != mixed.positions[:, :, 1]).any()


def test_every_pixel_comes_from_its_regions_source_by_one_shift_per_patch():
  inputs, mixed, (splits, offsets, _) = _many_draws()
  rows, cols, channels = IMAGE_SHAPE
  # Distinct inputs: an output value v is input entry v, i.e. (row n, i, j, channel).
  source_n, source_i, source_j, source_c = np.unravel_index(mixed.inputs.astype(int),
                                                            inputs.shape)
  i, j, c = np.meshgrid(np.arange(rows), np.arange(cols), np.arange(channels),
                        indexing="ij")
  np.testing.assert_array_equal(source_c, np.broadcast_to(c, source_c.shape))
  for draw in range(200):
    w, h = splits[draw]
    patch = (i >= w) + 2 * (j >= h)  # [rows, cols, channels]
    expected_n = mixed.positions[draw][:, patch]  # [B, rows, cols, channels]
    np.testing.assert_array_equal(source_n[draw], expected_n)
    # Within a patch the crop is a translation by its offset.
    expected_i = offsets[draw][patch, 0] + i - np.where(i >= w, w, 0)
    expected_j = offsets[draw][patch, 1] + j - np.where(j >= h, h, 0)
    np.testing.assert_array_equal(source_i[draw], np.broadcast_to(expected_i, source_i.shape[1:]))
    np.testing.assert_array_equal(source_j[draw], np.broadcast_to(expected_j, source_j.shape[1:]))


def test_padding_rows_are_built_from_themselves_only():
  inputs, mixed, _ = _many_draws()
  source_n = np.unravel_index(mixed.inputs.astype(int), inputs.shape)[0]
  for row in np.flatnonzero(~MASK):
    np.testing.assert_array_equal(source_n[:, row], row)
  # and no real row ever contains a padding row's pixel.
  assert np.isin(source_n[:, REAL_ROWS], REAL_ROWS).all()


def test_split_distribution_matches_round_of_a_beta_draw():
  _, _, (splits, offsets, _) = _many_draws()
  rng = np.random.default_rng(0)
  for axis, side in enumerate(IMAGE_SHAPE[:2]):
    reference = np.round(side * rng.beta(ALPHA, ALPHA, size=1_000_000))
    drawn = np.bincount(splits[:, axis], minlength=side + 1) / NUM_KEYS
    expected = np.bincount(reference.astype(int), minlength=side + 1) / reference.size
    # Standard error of a frequency <= 0.5 / sqrt(1500) ~ 0.013.
    np.testing.assert_allclose(drawn, expected, atol=0.045)
    assert abs(splits[:, axis].mean() - reference.mean()) < 0.3  # 4.5 standard errors
  assert abs(np.corrcoef(splits[:, 0], splits[:, 1])[0, 1]) < 0.1  # independent draws
  # Offsets are uniform over [0, side − size], both ends included.
  sizes = np.asarray(jax.vmap(lambda s: ricap.patch_sizes(s, IMAGE_SHAPE[:2]))(splits))
  room = np.asarray(IMAGE_SHAPE[:2]) - sizes  # [NUM_KEYS, 4, 2]
  assert (offsets >= 0).all() and (offsets <= room).all()
  for free in range(1, max(IMAGE_SHAPE[:2])):
    drawn = offsets[room == free]
    if drawn.size >= 400:
      frequencies = np.bincount(drawn, minlength=free + 1) / drawn.size
      np.testing.assert_allclose(frequencies, 1 / (free + 1), atol=0.08)


def test_signals_split_into_two_segments():
  signals = _distinct_inputs(len(MASK), (40,))
  fn = jax.jit(functools.partial(ricap.ricap, alpha=ALPHA))
  for seed in range(20):
    mixed = fn(jax.random.key(seed), jnp.asarray(signals), jnp.asarray(MASK))
    assert mixed.positions.shape == (len(MASK), 2) and mixed.weights.shape == (len(MASK), 2)
    np.testing.assert_allclose(mixed.weights.sum(-1), 1.0, rtol=1e-6)
    source_n, source_i = np.unravel_index(np.asarray(mixed.inputs).astype(int), signals.shape)
    w = round(float(mixed.weights[0, 0]) * 40)
    after = np.arange(40) >= w
    np.testing.assert_array_equal(source_n, np.asarray(mixed.positions)[:, after.astype(int)])
    # Each segment is contiguous in its source.
    for segment in (~after, after):
      if segment.sum() > 1:
        assert (np.diff(source_i[:, segment], axis=1) == 1).all()


def _log_softmax(logits):
  shifted = logits - logits.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_mixed_loss_is_the_area_weighted_cross_entropy():
  inputs = jnp.asarray(np.random.default_rng(1).normal(size=(BATCH, *IMAGE_SHAPE)),
                       jnp.float32)
  labels = np.array([0, 2, 1, 2, 0])
  logits = np.random.default_rng(2).normal(size=(BATCH, 3)).astype(np.float32)
  for seed in range(5):
    mixed = ricap.ricap(jax.random.key(seed), inputs, alpha=ALPHA)
    got = augment.mixed_loss(losses.cross_entropy, jnp.asarray(logits), jnp.asarray(labels),
                             mixed.positions, mixed.weights)
    positions, weights = np.asarray(mixed.positions), np.asarray(mixed.weights)
    expected = np.zeros(BATCH)
    for n in range(BATCH):
      for k in range(4):
        expected[n] -= weights[n, k] * _log_softmax(logits[n])[labels[positions[n, k]]]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_area_attribution_by_hand():
  # Rows 0..2 real, row 3 padding (it is built from itself only).
  positions = np.array([[0, 1, 2, 0],
                        [1, 2, 0, 1],
                        [2, 0, 1, 2],
                        [3, 3, 3, 3]])
  weights = np.broadcast_to(np.array([0.5, 0.25, 0.125, 0.125], np.float32), (4, 4))
  values = np.array([[1.0, 2.0, 3.0, 4.0],
                     [5.0, 6.0, 7.0, 8.0],
                     [9.0, 10.0, 11.0, 12.0],
                     [100.0, 100.0, 100.0, 100.0]], np.float32)
  mask = np.array([True, True, True, False])
  average, total = ricap.area_attribution(jnp.asarray(values), jnp.asarray(positions),
                                          jnp.asarray(weights), jnp.asarray(mask))
  # Row 0: (n, k) = (0, 0) 0.5·1, (0, 3) 0.125·4, (1, 2) 0.125·7, (2, 1) 0.25·10.
  row0 = 0.5 * 1 + 0.125 * 4 + 0.125 * 7 + 0.25 * 10
  # Row 1: (0, 1) 0.25·2, (1, 0) 0.5·5, (1, 3) 0.125·8, (2, 2) 0.125·11.
  row1 = 0.25 * 2 + 0.5 * 5 + 0.125 * 8 + 0.125 * 11
  # Row 2: (0, 2) 0.125·3, (1, 1) 0.25·6, (2, 0) 0.5·9, (2, 3) 0.125·12.
  row2 = 0.125 * 3 + 0.25 * 6 + 0.5 * 9 + 0.125 * 12
  np.testing.assert_allclose(average, [row0, row1, row2, 0.0], rtol=1e-6)
  np.testing.assert_allclose(total, [1.0, 1.0, 1.0, 0.0], rtol=1e-6)


def test_area_attribution_with_unequal_totals_is_a_weighted_average():
  # Row 0 only in patch 0 of row 1 (weight 0.2); row 1 in 0.8 of itself and all of row 0.
  positions = np.array([[1, 1], [0, 1]])
  weights = np.array([[0.6, 0.4], [0.2, 0.8]], np.float32)
  values = np.array([[1.0, 3.0], [10.0, 20.0]], np.float32)
  average, total = ricap.area_attribution(jnp.asarray(values), jnp.asarray(positions),
                                          jnp.asarray(weights), jnp.ones(2, bool))
  np.testing.assert_allclose(total, [0.2, 1.8], rtol=1e-6)
  np.testing.assert_allclose(average, [10.0, (0.6 * 1 + 0.4 * 3 + 0.8 * 20) / 1.8], rtol=1e-6)


def test_area_attribution_of_a_ricap_batch_gives_real_rows_total_weight_one():
  _, mixed, _ = _many_draws()
  values = np.random.default_rng(3).uniform(size=mixed.weights.shape[1:]).astype(np.float32)
  for draw in range(10):
    average, total = ricap.area_attribution(jnp.asarray(values), mixed.positions[draw],
                                            mixed.weights[draw], jnp.asarray(MASK))
    np.testing.assert_allclose(np.asarray(total)[REAL_ROWS], 1.0, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(total)[~MASK], 0.0)
    np.testing.assert_array_equal(np.asarray(average)[~MASK], 0.0)


@pytest.mark.parametrize("shape", [(40,), (40, 1), (28, 28, 1), (2, 2, 3), (2,)])
def test_check_ricap_input_accepts_images_and_signals(shape):
  ricap.check_ricap_input(shape)


@pytest.mark.parametrize("shape", [(1, 28, 3), (28, 1, 1), (1,), (1, 4), (4, 4, 4, 1), ()])
def test_check_ricap_input_refuses_what_has_no_room_for_a_split(shape):
  with pytest.raises(ValueError, match=r"config\.mixing\.name must be .*"
                     + r"\(" + ", ".join(map(str, shape)) + r".*got 'ricap'"):
    ricap.check_ricap_input(shape)


def test_ricap_refuses_bad_inputs_at_trace_time():
  with pytest.raises(ValueError, match=r"config\.mixing\.name"):
    ricap.ricap(jax.random.key(0), jnp.zeros((2, 1, 5, 1)), alpha=ALPHA)


def test_ricap_batch_is_a_mixing_fn():
  inputs = jnp.asarray(_distinct_inputs(len(MASK), IMAGE_SHAPE))
  fn: augment.MixingFn = functools.partial(ricap.ricap_batch, alpha=ALPHA)
  key = jax.random.key(7)
  got = fn(key, inputs, jnp.asarray(MASK))
  expected = ricap.ricap(key, inputs, jnp.asarray(MASK), alpha=ALPHA)
  assert isinstance(got, augment.Mixed)
  for a, b in zip(got, expected):
    np.testing.assert_array_equal(a, b)


def test_jitted_ricap_compiles_once_for_all_splits():
  inputs = jnp.asarray(_distinct_inputs(len(MASK), IMAGE_SHAPE))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def fn(key, batch, mask):
    return ricap.ricap(key, batch, mask, alpha=ALPHA)

  weights = {tuple(np.asarray(fn(jax.random.key(seed), inputs, jnp.asarray(MASK)).weights[0]))
             for seed in range(12)}
  assert len(weights) > 3  # the splits did change between calls
