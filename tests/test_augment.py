"""Tests for jaxsel.augment: mixup's λ, pairing, masking and loss; crop + flip; cutout."""

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import augment, losses

BATCH = 8
INPUTS = jnp.asarray(np.random.default_rng(0).standard_normal((BATCH, 3)), jnp.float32)
ALL_REAL = jnp.ones(BATCH, bool)
# Four real rows scattered among padding, not only at the end.
MASK = jnp.asarray([False, True, True, False, True, False, True, False])
REAL_ROWS = (1, 2, 4, 6)


NUM_KEYS = 4800


# Compiling the Beta sampler dominates these tests, so one compilation serves all of them:
# α is traced, the mask is an argument and every call draws for the same number of keys.
@jax.jit
def _vmapped_mixup(keys, mask, alpha):
  return jax.vmap(lambda key: augment.mixup(key, INPUTS, mask, alpha=alpha))(keys)


def _mixup_many(count, mask, alpha, seed=0):
  """(mixed [count, B, 3], partners [count, B], lams [count]) for count keys."""
  keys = jax.random.split(jax.random.key(seed), NUM_KEYS)
  outputs = _vmapped_mixup(keys, mask, alpha)
  return tuple(np.asarray(x)[:count] for x in outputs)


def _assert_permutations(partners):
  np.testing.assert_array_equal(np.sort(partners, axis=-1),
                                np.broadcast_to(np.arange(BATCH), partners.shape))


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_no_mixing_when_alpha_not_positive(alpha):
  mixed, partners, lams = _mixup_many(4, ALL_REAL, alpha)
  np.testing.assert_array_equal(lams, 1.0)
  np.testing.assert_array_equal(mixed, np.broadcast_to(INPUTS, mixed.shape))
  _assert_permutations(partners)
  # λ = 1 makes the mixup loss the plain loss whatever the partner.
  logits = INPUTS
  labels = jnp.arange(BATCH) % 3
  np.testing.assert_allclose(
      augment.mixup_loss(losses.cross_entropy, logits, labels, partners[0], lams[0]),
      losses.cross_entropy(logits, labels), rtol=1e-6)


def test_mixed_inputs_are_the_convex_combination():
  mixed, partners, lams = _mixup_many(16, ALL_REAL, 0.4)
  _assert_permutations(partners)
  assert len(np.unique(lams)) == 16  # a fresh λ per key
  for x, partner, lam in zip(mixed, partners, lams):
    expected = lam * np.asarray(INPUTS) + (1 - lam) * np.asarray(INPUTS)[partner]
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-7)


def test_without_mask_is_a_permutation():
  key = jax.random.split(jax.random.key(0), NUM_KEYS)[0]
  mixed, partner, lam = jax.jit(functools.partial(augment.mixup, alpha=0.4))(key, INPUTS)
  assert partner.dtype == jnp.int32 and partner.shape == (BATCH,)
  assert lam.dtype == jnp.float32 and lam.shape == ()
  assert mixed.shape == INPUTS.shape and mixed.dtype == INPUTS.dtype
  _assert_permutations(np.asarray(partner)[None])
  # No mask is the same as an all-real mask.
  same_mixed, same_partners, same_lams = _mixup_many(1, ALL_REAL, 0.4)
  np.testing.assert_array_equal(partner, same_partners[0])
  np.testing.assert_allclose(lam, same_lams[0], rtol=1e-6)
  np.testing.assert_allclose(mixed, same_mixed[0], rtol=1e-6, atol=1e-7)


def test_mask_pairs_real_with_real_and_padding_with_itself():
  mixed, partners, _ = _mixup_many(64, MASK, 0.4)
  _assert_permutations(partners)
  real = np.asarray(MASK)
  assert real[partners[:, real]].all()
  np.testing.assert_array_equal(partners[:, ~real],
                                np.broadcast_to(np.flatnonzero(~real), (64, 4)))
  # λ x + (1 − λ) x = x up to rounding.
  np.testing.assert_allclose(mixed[:, ~real],
                             np.broadcast_to(np.asarray(INPUTS)[~real], (64, 4, 3)),
                             rtol=1e-6, atol=1e-6)


def test_pairing_of_real_rows_is_uniform():
  # 4 real rows: 24 permutations, each expected 4800 / 24 = 200 times (sd ≈ 14).
  _, partners, _ = _mixup_many(4800, MASK, 0.4, seed=1)
  counts = collections.Counter(tuple(p) for p in partners[:, REAL_ROWS])
  assert len(counts) == 24
  assert 130 < min(counts.values()) and max(counts.values()) < 270, counts


def test_lambda_is_beta_distributed_and_not_folded():
  # Beta(0.4, 0.4): mean 0.5, variance 1 / (4 (2α + 1)) = 1 / 7.2 = 0.1389, symmetric.
  # Folding onto max(λ, 1 − λ) would put every draw at or above 0.5.
  _, _, lams = _mixup_many(4000, ALL_REAL, 0.4, seed=2)
  assert lams.min() >= 0.0 and lams.max() <= 1.0
  assert abs(lams.mean() - 0.5) < 0.03
  assert abs(lams.var() - 1 / 7.2) < 0.02
  assert abs(np.mean(lams < 0.5) - 0.5) < 0.05


def test_same_key_same_output():
  first = _mixup_many(2, MASK, 0.4)
  second = _mixup_many(2, MASK, 0.4)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  # ... and the two keys of the batch differ in both λ and pairing.
  assert first[2][0] != first[2][1]
  assert not np.array_equal(first[1][0], first[1][1])


def test_mixup_loss_by_hand():
  # p_0 = (0.7, 0.2, 0.1), y_0 = 0;  p_1 = (0.2, 0.5, 0.3), y_1 = 2;  π = (1, 0), λ = 0.6.
  #   0: 0.6 · −log p_0[y_0 = 0] + 0.4 · −log p_0[y_1 = 2]
  #      = 0.6 · 0.3566749 + 0.4 · 2.3025851 = 0.2140050 + 0.9210340 = 1.1350390
  #   1: 0.6 · −log p_1[y_1 = 2] + 0.4 · −log p_1[y_0 = 0]
  #      = 0.6 · 1.2039728 + 0.4 · 1.6094379 = 0.7223837 + 0.6437752 = 1.3661588
  logits = jnp.log(jnp.asarray([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]]))
  values = jax.jit(augment.mixup_loss, static_argnums=0)(
      losses.cross_entropy, logits, jnp.asarray([0, 2]), jnp.asarray([1, 0]),
      jnp.float32(0.6))
  np.testing.assert_allclose(values, [1.1350390, 1.3661588], rtol=1e-5)


# --- crop + flip ---------------------------------------------------------------------------


def _all_crops_and_flips(image, padding):
  """Every image crop_flip may return for ``image`` [H, W, C] (numpy oracle)."""
  height, width = image.shape[:2]
  padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
  crops = [padded[i:i + height, j:j + width]
           for i in range(2 * padding + 1) for j in range(2 * padding + 1)]
  return crops + [c[:, ::-1] for c in crops]


def test_crop_flip_returns_a_crop_or_flip_of_each_padded_image():
  images = np.arange(3 * 4 * 4 * 2, dtype=np.float32).reshape(3, 4, 4, 2) + 1
  ids = jnp.array([5, 9, 11])
  out = np.asarray(jax.jit(functools.partial(augment.crop_flip, padding=1))(
      jax.random.PRNGKey(0), jnp.asarray(images), ids))
  assert out.shape == images.shape
  for image, result in zip(images, out):
    assert any(np.array_equal(result, c) for c in _all_crops_and_flips(image, 1))


def test_crop_flip_draw_depends_on_example_id_not_batch_position():
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.normal(size=(4, 6, 6, 1)), jnp.float32)
  ids = jnp.array([3, 1, 4, 7])
  fn = jax.jit(functools.partial(augment.crop_flip, padding=2))
  key = jax.random.PRNGKey(1)
  out = fn(key, images, ids)
  order = jnp.array([2, 0, 3, 1])
  np.testing.assert_array_equal(fn(key, images[order], ids[order]), out[order])
  # Over many examples, both flips and several offsets occur (the draw is not constant).
  many = fn(key, jnp.broadcast_to(images[:1], (64, 6, 6, 1)), jnp.arange(64))
  assert len({np.asarray(m).tobytes() for m in many}) > 10


def _all_crops_and_flips_padded(image, padding, mode, value):
  height, width = image.shape[:2]
  pads = ((padding, padding), (padding, padding), (0, 0))
  padded = (np.pad(image, pads, mode="reflect") if mode == "reflect"
            else np.pad(image, pads, constant_values=value))
  crops = [padded[i:i + height, j:j + width]
           for i in range(2 * padding + 1) for j in range(2 * padding + 1)]
  return crops + [c[:, ::-1] for c in crops]


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_crop_flip_pads_with_the_given_colour_or_a_mirror(pad_mode):
  images = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5, 1) / 10
  out = np.asarray(augment.crop_flip(jax.random.PRNGKey(3), jnp.asarray(images),
                                     jnp.arange(2), padding=2, pad_mode=pad_mode,
                                     pad_value=-7.5))
  for image, result in zip(images, out):
    assert any(np.array_equal(result, c)
               for c in _all_crops_and_flips_padded(image, 2, pad_mode, -7.5))


def _augmentation_config(**fields):
  from configs import default  # pylint: disable=import-outside-toplevel
  config = default.get_config()
  with config.unlocked():
    config.augmentation.update(fields)
  return config.augmentation


def test_get_augmentation_pads_with_normalised_black_by_default():
  black = np.asarray([-1.0, -2.0], np.float32)
  fn = augment.get_augmentation(_augmentation_config(name="crop_flip", crop_padding=3),
                                input_shape=(4, 4, 2), normalized_black=black)
  # All-zero (mean-colour) images: every non-zero value of a crop is padding, and each
  # channel's padding is that channel's black.
  out = np.asarray(fn(jax.random.PRNGKey(0), jnp.zeros((32, 4, 4, 2)), jnp.arange(32)))
  for channel in (0, 1):
    values = set(np.unique(out[..., channel]).tolist())
    assert values == {0.0, float(black[channel])}
  assert augment.get_augmentation(_augmentation_config(), input_shape=(40,)) is None


@pytest.mark.parametrize("fields,shape,message", [
    ({"name": "crop_flip"}, (40,), r"config.augmentation.name='crop_flip' needs images"),
    ({"name": "rotate"}, (4, 4, 1), "unknown config.augmentation.name 'rotate'"),
    ({"name": "crop_flip", "pad_mode": "zeros"}, (4, 4, 1),
     "unknown config.augmentation.pad_mode 'zeros'"),
    ({"name": "crop_flip", "crop_padding": -1}, (4, 4, 1),
     "config.augmentation.crop_padding must be an integer >= 0"),
])
def test_get_augmentation_refuses_what_cannot_work(fields, shape, message):
  with pytest.raises(ValueError, match=message):
    augment.get_augmentation(_augmentation_config(**fields), input_shape=shape,
                             normalized_black=np.zeros(1, np.float32))


def test_mixed_loss_of_a_mixup_batch_is_the_mixup_loss():
  key = jax.random.split(jax.random.key(0), NUM_KEYS)[1]
  mixed = augment.mixup_batch(key, INPUTS, ALL_REAL, alpha=0.4)
  _, partner, lam = augment.mixup(key, INPUTS, ALL_REAL, alpha=0.4)
  np.testing.assert_array_equal(mixed.positions[:, 1], partner)
  logits = INPUTS
  labels = jnp.arange(BATCH) % 3
  np.testing.assert_allclose(
      augment.mixed_loss(losses.cross_entropy, logits, labels, mixed.positions,
                         mixed.weights),
      augment.mixup_loss(losses.cross_entropy, logits, labels, partner, lam), rtol=1e-6)


# --- cutout --------------------------------------------------------------------------------


def _mask(centre, shape, size):
  return np.asarray(augment.cutout_mask(jnp.asarray(centre), shape, size)).astype(int)


def test_cutout_mask_in_the_middle():
  # L = 4, half-length 2, centre (2, 3): rows [0, 4), columns [1, 5).
  np.testing.assert_array_equal(_mask([2, 3], (5, 6), 4), [
      [0, 1, 1, 1, 1, 0],
      [0, 1, 1, 1, 1, 0],
      [0, 1, 1, 1, 1, 0],
      [0, 1, 1, 1, 1, 0],
      [0, 0, 0, 0, 0, 0]])


def test_cutout_mask_is_clipped_at_the_border():
  # Centre (0, 0): rows and columns [-2, 2) clip to [0, 2), a 2x2 hole instead of 4x4.
  np.testing.assert_array_equal(_mask([0, 0], (4, 5), 4), [
      [1, 1, 0, 0, 0],
      [1, 1, 0, 0, 0],
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0]])
  # Centre (3, 4), the opposite corner: rows [1, 5) -> [1, 4), columns [2, 6) -> [2, 5).
  np.testing.assert_array_equal(_mask([3, 4], (4, 5), 4), [
      [0, 0, 0, 0, 0],
      [0, 0, 1, 1, 1],
      [0, 0, 1, 1, 1],
      [0, 0, 1, 1, 1]])


def test_cutout_mask_with_the_papers_size():
  # D.8: L = 16 on 32x32, half-length 8. Centre (16, 16): rows and columns [8, 24), 256
  # pixels. Centre (0, 31): rows [-8, 8) -> [0, 8), columns [23, 39) -> [23, 32): 8 x 9.
  middle = _mask([16, 16], (32, 32), 16)
  assert middle.sum() == 256 and middle[8:24, 8:24].all()
  corner = _mask([0, 31], (32, 32), 16)
  assert corner.sum() == 72 and corner[:8, 23:].all()


def test_cutout_mask_odd_size_and_1d():
  # An odd L = 3 has half-length 1: [c - 1, c + 1), side 2, as the reference.
  np.testing.assert_array_equal(_mask([1, 2], (3, 4), 3), [
      [0, 1, 1, 0],
      [0, 1, 1, 0],
      [0, 0, 0, 0]])
  # A segment of a signal: L = 5, c = 3 -> [1, 5); c = 7 -> [5, 9) clipped to [5, 8).
  np.testing.assert_array_equal(_mask([3], (8,), 5), [0, 1, 1, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(_mask([7], (8,), 4), [0, 0, 0, 0, 0, 1, 1, 1])


def _normal_images(*shape):
  return jnp.asarray(np.random.default_rng(1).standard_normal(shape), jnp.float32)


_cutout = jax.jit(augment.cutout, static_argnames="size")


def _holes(key, ids, shape=(8, 8, 1), size=2):
  """bool [B, *shape]: where cutout zeroes all-ones inputs of the given ids."""
  ones = jnp.ones((len(ids), *shape), jnp.float32)
  return np.asarray(_cutout(key, ones, jnp.asarray(ids), size=size)) == 0


def test_cutout_zeroes_the_mask_of_each_example_on_every_channel():
  # With L = 2 the hole is [c - 1, c + 1) clipped, so c is its last row and column and
  # the zeros must be exactly cutout_mask(c) on each of the three channels.
  images = np.asarray(_normal_images(16, 8, 8, 3)) + 10.0  # no zeros of their own
  out = np.asarray(_cutout(jax.random.PRNGKey(0), jnp.asarray(images), jnp.arange(16),
                           size=2))
  for image, result in zip(images, out):
    zero = result == 0
    np.testing.assert_array_equal(zero[..., 0], zero[..., 1])
    np.testing.assert_array_equal(zero[..., 0], zero[..., 2])
    rows, cols = np.nonzero(zero[..., 0])
    expected = _mask([rows.max(), cols.max()], (8, 8), 2).astype(bool)
    np.testing.assert_array_equal(zero[..., 0], expected)
    np.testing.assert_array_equal(result[~zero], image[~zero])


def test_cutout_hole_depends_on_example_id_not_batch():
  key = jax.random.PRNGKey(4)
  first = _holes(key, [3, 1, 4, 7])
  second = _holes(key, [7, 9, 3])
  np.testing.assert_array_equal(first[0], second[2])  # id 3
  np.testing.assert_array_equal(first[3], second[0])  # id 7
  # Centres (the hole's last row and column for L = 2) differ between ids, uniformly over
  # the 64 pixels: 6400 ids, 100 expected per pixel (sd 10).
  holes = _holes(key, np.arange(6400))[..., 0]
  centres = [(np.flatnonzero(h.any(1)).max(), np.flatnonzero(h.any(0)).max()) for h in holes]
  counts = collections.Counter(centres)
  assert len(counts) == 64
  assert 55 < min(counts.values()) and max(counts.values()) < 145, counts


def test_cutout_of_signals_is_a_segment():
  # MNIST-1D inputs are [40]: with L = 8 each hole is one run of at most 8 zeros.
  fn = augment.get_augmentation(_augmentation_config(cutout_size=8), input_shape=(40,))
  out = np.asarray(jax.jit(fn)(jax.random.PRNGKey(2), jnp.ones((64, 40)), jnp.arange(64)))
  lengths = []
  for row in out == 0:
    zeros = np.flatnonzero(row)
    assert np.array_equal(zeros, np.arange(zeros[0], zeros[-1] + 1))  # contiguous
    lengths.append(len(zeros))
  # 8 unless the centre c is within 4 of an end: c in [0, 4) or c in (36, 40) clips.
  assert max(lengths) == 8 and 4 <= min(lengths) < 8


def test_crop_flip_then_cutout_keeps_the_crop_flip_draws():
  images = _normal_images(32, 6, 6, 2) + 10.0
  ids = jnp.arange(100, 132)
  key = jax.random.PRNGKey(7)
  black = np.asarray([-1.0, -2.0], np.float32)
  both = augment.get_augmentation(
      _augmentation_config(name="crop_flip", crop_padding=2, cutout_size=4),
      input_shape=(6, 6, 2), normalized_black=black)
  out = np.asarray(jax.jit(both)(key, images, ids))
  crops = np.asarray(augment.crop_flip(key, images, ids, padding=2, pad_value=black))
  holes = _holes(key, ids, shape=(6, 6, 2), size=4)
  assert holes[..., 0].any(axis=(1, 2)).all()  # every example has a hole
  # Exactly the crops of crop_flip alone, with cutout's own holes (drawn from the ids as
  # for any input) zeroed.
  np.testing.assert_array_equal(out, np.where(holes, 0.0, crops))


def test_cutout_alone_and_off():
  fn = augment.get_augmentation(_augmentation_config(cutout_size=4), input_shape=(6, 6, 2))
  key = jax.random.PRNGKey(0)
  images = _normal_images(5, 6, 6, 2)
  np.testing.assert_array_equal(fn(key, images, jnp.arange(5)),
                                augment.cutout(key, images, jnp.arange(5), size=4))
  assert augment.get_augmentation(_augmentation_config(cutout_size=0),
                                  input_shape=(6, 6, 2)) is None


@pytest.mark.parametrize("size,shape,message", [
    (-1, (32, 32, 3), r"cutout_size must be 0 \(off\) or an integer >= 2, got -1"),
    (1, (32, 32, 3), r"cutout_size must be 0 \(off\) or an integer >= 2, got 1"),
    (True, (32, 32, 3), r"cutout_size must be 0 \(off\) or an integer >= 2, got True"),
    (33, (32, 32, 3), r"cutout_size must be at most 32, the largest side .* got 33"),
    (41, (40,), r"cutout_size must be at most 40, the largest side .* got 41"),
    (2, (2, 4, 4, 1), r"cutout_size must be 0 for inputs of shape \(2, 4, 4, 1\)"),
])
def test_cutout_size_refused_with_the_field_named(size, shape, message):
  with pytest.raises(ValueError, match="config.augmentation." + message):
    augment.get_augmentation(_augmentation_config(cutout_size=size), input_shape=shape)


def test_cutout_size_checked_before_data():
  from configs import default  # pylint: disable=import-outside-toplevel
  from jaxsel import config_checks  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match=r"config.augmentation.cutout_size must be .* got 2.5"):
    augment.check_cutout_size(2.5)
  config = default.get_config()
  with config.unlocked():
    config.augmentation.cutout_size = -3
  with pytest.raises(ValueError, match=r"config.augmentation.cutout_size .* got -3"):
    config_checks.check_config(config)
