"""Tests for jaxsel.trackers: padding never writes, untrained examples stay stale."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import trackers


def _outputs(ids, mask, logits, epoch=0):
  ids = jnp.asarray(ids, jnp.int32)
  return trackers.StepOutputs(
      example_ids=ids, mask=jnp.asarray(mask, bool), labels=jnp.zeros(ids.shape, jnp.int32),
      logits=jnp.asarray(logits, jnp.float32), loss=jnp.zeros(ids.shape, jnp.float32),
      epoch=jnp.asarray(epoch, jnp.int32), step=jnp.asarray(0, jnp.int32),
      sources=ids[:, None], weights=jnp.ones((ids.shape[0], 1), jnp.float32),
      positions=jnp.arange(ids.shape[0], dtype=jnp.int32)[:, None])


def _max_logit(logits):
  return jnp.max(logits, axis=-1)


# N = 6 examples, B = 4 rows; the last row is padding and carries id 0, like a padded
# final batch. Row i's logits have maximum 10 + i.
IDS = [3, 0, 5, 0]
MASK = [True, True, True, False]
LOGITS = jnp.asarray([[10.0, 1.0], [0.0, 11.0], [12.0, 2.0], [13.0, 3.0]])


def test_scatter_set_padding_does_not_overwrite_a_real_id_0():
  table = jnp.full((6,), -1.0)
  # Real id 0 gets 11; the padding row after it, also id 0, would write 13.
  out = trackers.scatter_set(table, jnp.asarray(IDS), jnp.asarray([10.0, 11.0, 12.0, 13.0]),
                             jnp.asarray(MASK))
  np.testing.assert_array_equal(out, [11.0, -1.0, -1.0, 10.0, -1.0, 12.0])


def test_scatter_set_padding_writes_nothing_when_id_0_is_not_in_the_batch():
  table = jnp.arange(6, dtype=jnp.float32)
  out = trackers.scatter_set(table, jnp.asarray([4, 0, 0]), jnp.asarray([40.0, 99.0, 98.0]),
                             jnp.asarray([True, False, False]))
  np.testing.assert_array_equal(out, [0.0, 1.0, 2.0, 3.0, 40.0, 5.0])


def test_scatter_set_casts_to_the_table_dtype():
  table = jnp.zeros((3,), jnp.int32)
  out = trackers.scatter_set(table, jnp.asarray([2]), jnp.asarray([7.0]), jnp.asarray([True]))
  assert out.dtype == jnp.int32
  np.testing.assert_array_equal(out, [0, 0, 7])


def test_last_score_init():
  table = trackers.last_score(_max_logit, initial_value=-1.0).init(6)
  assert table.shape == (6,) and table.dtype == jnp.float32
  np.testing.assert_array_equal(table, np.full(6, -1.0))


def test_last_score_updates_only_real_ids_and_leaves_others_stale():
  tracker = trackers.last_score(_max_logit, initial_value=-1.0)
  update = jax.jit(tracker.update)
  table = tracker.init(6)

  table = update(table, _outputs(IDS, MASK, LOGITS))
  # ids 3, 0, 5 get 10, 11, 12; the padding row's 13 goes nowhere; 1, 2, 4 untouched.
  np.testing.assert_array_equal(table, [11.0, -1.0, -1.0, 10.0, -1.0, 12.0])

  # Next epoch only ids 1 and 3 are trained: 3 is refreshed, 0 and 5 keep last epoch's.
  table = update(table, _outputs([1, 3, 0, 0], [True, True, False, False], LOGITS + 100.0,
                                 epoch=1))
  np.testing.assert_array_equal(table, [11.0, 110.0, -1.0, 111.0, -1.0, 12.0])


def test_combine_runs_every_tracker_on_its_own_state():
  combined = trackers.combine({
      "last_max_logit": trackers.last_score(_max_logit),
      "last_first_logit": trackers.last_score(lambda logits: logits[:, 0], initial_value=7.0),
  })
  state = combined.init(6)
  assert set(state) == {"last_max_logit", "last_first_logit"}

  state = jax.jit(combined.update)(state, _outputs(IDS, MASK, LOGITS))
  np.testing.assert_array_equal(state["last_max_logit"], [11.0, 0, 0, 10.0, 0, 12.0])
  np.testing.assert_array_equal(state["last_first_logit"], [0.0, 7, 7, 10.0, 7, 12.0])


def test_combine_of_nothing_is_an_empty_state():
  combined = trackers.combine({})
  assert combined.init(6) == {}
  assert combined.update({}, _outputs(IDS, MASK, LOGITS)) == {}


def test_scatter_add_repeated_ids_add_up_and_padding_adds_nothing():
  # Mixed inputs: example 2 is a source of two rows, example 0 of a real row and of a
  # padding row (which must add nothing).
  table = jnp.zeros((4,), jnp.float32)
  out = trackers.scatter_add(table, jnp.asarray([2, 0, 2, 0]),
                             jnp.asarray([0.25, 0.5, 0.75, 9.0]),
                             jnp.asarray([True, True, True, False]))
  np.testing.assert_array_equal(out, [0.5, 0.0, 1.0, 0.0])


def test_correct_compares_the_argmax_with_the_label():
  outputs = _outputs(IDS, MASK, LOGITS)._replace(labels=jnp.asarray([0, 0, 0, 1]))
  # argmax per row: 0, 1, 0, 0.
  np.testing.assert_array_equal(outputs.correct, [True, False, True, False])


def test_scatter_set_refuses_values_of_the_wrong_shape():
  table = jnp.zeros((6,), jnp.float32)
  with pytest.raises(AssertionError):  # [B, K] values into a [N] table
    trackers.scatter_set(table, jnp.asarray(IDS), LOGITS, jnp.asarray(MASK))
  with pytest.raises(AssertionError):  # a mask of another length
    trackers.scatter_set(table, jnp.asarray(IDS), jnp.zeros(4), jnp.asarray(MASK[:3]))
  # [N, E] tables take [B, E] rows.
  wide = trackers.scatter_set(jnp.zeros((6, 2)), jnp.asarray(IDS), LOGITS,
                              jnp.asarray(MASK))
  np.testing.assert_array_equal(wide[5], [12.0, 2.0])
