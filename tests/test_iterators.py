"""Batch plans: fixed shapes, exact coverage, determinism."""

import numpy as np
import pytest

from jaxsel.data import iterators


def _real_ids(plan):
  return plan.example_ids[plan.mask]


@pytest.mark.parametrize("num_ids", [1, 31, 32, 33, 100, 257])
def test_train_plan_visits_every_id_once_with_fixed_shape(num_ids):
  ids = np.arange(1000, 1000 + num_ids)
  plan = iterators.train_plan(ids, batch_size=8, steps_per_chunk=4, shuffle_seed=(0, 3))
  assert plan.example_ids.shape[1:] == (4, 8)
  assert plan.mask.shape == plan.example_ids.shape
  np.testing.assert_array_equal(np.sort(_real_ids(plan)), ids)
  assert plan.num_examples == num_ids
  assert plan.num_steps == -(-num_ids // 8)
  # Padding only at the end: once a slot is masked, all later slots are too.
  flat = plan.mask.reshape(-1)
  assert not np.any(flat[np.argmin(flat):]) or flat.all()


def test_drop_remainder_keeps_only_full_batches():
  ids = np.arange(37)
  plan = iterators.train_plan(ids, batch_size=8, steps_per_chunk=2, shuffle_seed=(1, 0),
                              drop_remainder=True)
  assert plan.num_examples == 32
  assert plan.num_steps == 4
  assert len(np.unique(_real_ids(plan))) == 32
  # Every batch that holds anything is full.
  per_step = plan.mask.sum(-1).reshape(-1)
  assert set(per_step.tolist()) <= {0, 8}


def test_shuffle_is_seeded_and_changes_with_epoch():
  ids = np.arange(64)
  plan = lambda seed: iterators.train_plan(  # noqa: E731
      ids, batch_size=16, steps_per_chunk=2, shuffle_seed=seed).example_ids
  np.testing.assert_array_equal(plan((0, 1)), plan((0, 1)))
  assert not np.array_equal(plan((0, 1)), plan((0, 2)))
  assert not np.array_equal(plan((0, 1)), plan((1, 1)))


def test_full_pass_keeps_order_and_pads_with_valid_ids():
  ids = np.array([5, 3, 9, 1, 7], dtype=np.int32)
  plan = iterators.full_pass_plan(ids, batch_size=2, steps_per_chunk=2)
  assert plan.example_ids.shape == (2, 2, 2)
  np.testing.assert_array_equal(_real_ids(plan), ids)
  assert plan.mask.sum() == 5
  assert np.all(plan.example_ids[~plan.mask] == 0)  # padding gathers row 0, masked out
  assert len(list(plan.chunks())) == 2


def test_chunk_shapes_do_not_depend_on_subset_size():
  shapes = {iterators.train_plan(np.arange(n), batch_size=4, steps_per_chunk=3,
                                 shuffle_seed=(0, 0)).example_ids.shape[1:]
            for n in (5, 50, 500)}
  assert shapes == {(3, 4)}


def test_rejects_non_positive_sizes():
  with pytest.raises(ValueError, match="batch_size"):
    iterators.full_pass_plan(np.arange(3), batch_size=0, steps_per_chunk=1)
