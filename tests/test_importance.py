"""Budgeted importance sampling's pieces: the difficulty running mean on scripted
presentations, and the p-SGD / c-SGD weights by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import importance
from jaxsel.trackers import StepOutputs


def _outputs(ids, p_true, mask=None):
  # Two classes, label 0: logits (log p, log(1 − p)) give softmax p for the label.
  p = np.asarray(p_true, np.float64)
  logits = jnp.asarray(np.stack([np.log(p), np.log(1 - p)], axis=1), jnp.float32)
  mask = jnp.ones(len(ids), bool) if mask is None else jnp.asarray(mask)
  return StepOutputs.of(jnp.asarray(ids, jnp.int32), jnp.zeros(len(ids), jnp.int32), logits,
                        mask=mask, loss=jnp.zeros(len(ids)), epoch=0)


def test_running_mean_of_one_minus_p_and_the_last_value():
  tracker = importance.difficulty_tracker()
  update = jax.jit(tracker.update)
  tables = tracker.init(4)
  tables = update(tables, _outputs([0, 1], [0.9, 0.2]))
  # A padding row (mask False) on id 2 changes nothing.
  tables = update(tables, _outputs([0, 2], [0.5, 0.7], mask=[True, False]))
  tables = update(tables, _outputs([0], [0.6]))
  out = jax.device_get(tables)
  # id 0: 1 − p = .1, .5, .4 -> mean 1/3, last .4; id 1: .8 once; ids 2, 3 unseen.
  np.testing.assert_allclose(out["difficulty"], [1 / 3, 0.8, -1, -1], rtol=1e-5)
  np.testing.assert_allclose(out["last_difficulty"], [0.4, 0.8, -1, -1], rtol=1e-5)
  np.testing.assert_array_equal(out["difficulty_count"], [3, 1, 0, 0])


def test_p_and_c_sgd_weights_by_hand():
  s = jnp.asarray([0.2, 0.6, -1.0, 0.1])  # the third is unseen: it gets max seen = 0.6
  # p-SGD: raw (.2, .6, .6, .1), ε = .375 -> (.575, .975, .975, .475) / 3.
  np.testing.assert_allclose(importance.sampling_weights(s, sampler="p"),
                             np.asarray([0.575, 0.975, 0.975, 0.475]) / 3.0, rtol=1e-6)
  np.testing.assert_allclose(importance.sampling_weights(s, sampler="p", smoothing=False),
                             np.asarray([0.2, 0.6, 0.6, 0.1]) / 1.5, rtol=1e-6)
  # c-SGD: ŝ(1 − ŝ) = (.16, .24, .24, .09), ε = .1825.
  raw = np.asarray([0.16, 0.24, 0.24, 0.09])
  np.testing.assert_allclose(importance.sampling_weights(s, sampler="c"),
                             (raw + raw.mean()) / (raw + raw.mean()).sum(), rtol=1e-6)
  np.testing.assert_allclose(importance.sampling_weights(s, sampler="unif"), 0.25)


def test_nothing_seen_yet_is_uniform_and_bad_names_are_refused():
  unseen = jnp.full(5, importance.UNSEEN)
  for sampler in importance.SAMPLERS:
    np.testing.assert_allclose(importance.sampling_weights(unseen, sampler=sampler), 0.2)
  with pytest.raises(ValueError, match="unknown sampler 'q'"):
    importance.sampling_weights(unseen, sampler="q")


@pytest.mark.parametrize("difficulty,sampler", [
    ((0.0, 0.0, 0.0), "p"),  # every example learned: raw weights 0, so ε = 0 too
    ((1.0, 1.0, 1.0), "c"),  # ŝ(1 − ŝ) = 0 at ŝ = 1
    ((0.0, 1.0, 0.0), "c"),  # ... and at ŝ = 0
])
@pytest.mark.parametrize("smoothing", [True, False])
def test_all_zero_weights_give_a_uniform_p_as_the_reference(difficulty, sampler, smoothing):
  # The reference adds 1e-10 to every weight when they sum to 0: P = 1e-10 / 3e-10 = 1/3
  # each (adding it to the sum alone would leave P = 0 everywhere).
  weights = importance.sampling_weights(jnp.asarray(difficulty), sampler=sampler,
                                        smoothing=smoothing)
  np.testing.assert_allclose(weights, [1 / 3, 1 / 3, 1 / 3], rtol=1e-6)


def test_a_partly_zero_p_keeps_its_zeros():
  # Raw (0, .5, 0, .3) without ε sums to .8 > 0: no 1e-10 anywhere, so the zeros stay 0.
  weights = importance.sampling_weights(jnp.asarray([0.0, 0.5, 0.0, 0.3]), sampler="p",
                                        smoothing=False)
  np.testing.assert_array_equal(np.asarray(weights)[[0, 2]], 0.0)
  np.testing.assert_allclose(np.asarray(weights)[[1, 3]], [0.625, 0.375], rtol=1e-6)


def test_area_attribution_gives_each_source_its_patches_predictions():
  # Two patched images (rows 0, 1) of ids 7 and 4 with labels 0 and 1: row 0 is 3/4 of
  # itself and 1/4 of row 1, row 1 is 3/4 of itself and 1/4 of row 0.
  probs = np.array([[0.6, 0.4], [0.3, 0.7]])
  outputs = StepOutputs.of(jnp.asarray([7, 4]), jnp.asarray([0, 1]),
                           jnp.asarray(np.log(probs), jnp.float32))
  outputs = outputs._replace(positions=jnp.asarray([[0, 1], [1, 0]]),
                             weights=jnp.asarray([[0.75, 0.25], [0.75, 0.25]]),
                             sources=jnp.asarray([[7, 4], [4, 7]]))
  area = importance.difficulty_tracker(attribution="area")
  table = jax.device_get(area.update(area.init(8), outputs))["difficulty"]
  # id 7 (label 0): .75·(1 − .6) + .25·(1 − .3); id 4 (label 1): .75·(1 − .7) + .25·(1 − .4).
  assert table[7] == pytest.approx(0.75 * 0.4 + 0.25 * 0.7, rel=1e-5)
  assert table[4] == pytest.approx(0.75 * 0.3 + 0.25 * 0.6, rel=1e-5)
  # The reference's attribution: row i's prediction at row i's label, to row i.
  own = importance.difficulty_tracker(attribution="own")
  table = jax.device_get(own.update(own.init(8), outputs))["difficulty"]
  assert (table[7], table[4]) == (pytest.approx(0.4, rel=1e-5), pytest.approx(0.3, rel=1e-5))
  with pytest.raises(ValueError, match="unknown attribution 'x'; valid: own, area"):
    importance.difficulty_tracker(attribution="x")
