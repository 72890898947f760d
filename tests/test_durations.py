"""Training plans from epochs or steps, and periodic triggers."""

import pytest

from jaxsel import durations


def _plan(num_epochs=0, num_train_steps=0, sizes=(100,), batch=32, drop=False):
  return durations.plan_training(
      num_epochs=num_epochs, num_train_steps=num_train_steps,
      examples_in_epoch=lambda e: sizes[min(e, len(sizes) - 1)], batch_size=batch,
      drop_remainder=drop)


def test_plan_from_epochs_with_warm_up_then_subsets():
  # 2 full epochs of 100 examples (4 batches of 32, the last partial), then 10 % subsets.
  plan = _plan(num_epochs=5, sizes=(100, 100, 10))
  assert plan.epoch_steps == (4, 4, 1, 1, 1)
  assert plan.num_epochs == 5 and plan.total_steps == 11
  assert plan.steps_before(0) == 0 and plan.steps_before(2) == 8
  assert plan.epoch_starts().tolist() == [0, 4, 8, 9, 10, 11]


def test_drop_remainder_counts_only_full_batches():
  assert _plan(num_epochs=2, sizes=(100,), drop=True).epoch_steps == (3, 3)


def test_plan_from_steps_stops_exactly_there():
  # 10 examples of a coreset in batches of 4: 3 steps an epoch; 20 steps = 6 epochs + 2.
  plan = _plan(num_train_steps=20, sizes=(10,), batch=4)
  assert plan.epoch_steps == (3, 3, 3, 3, 3, 3, 2)
  assert plan.total_steps == 20
  # A multiple of the epoch length ends on a whole epoch.
  assert _plan(num_train_steps=9, sizes=(10,), batch=4).epoch_steps == (3, 3, 3)
  # Epochs of different lengths: 4 steps, then 1-step subsets.
  assert _plan(num_train_steps=7, sizes=(100, 10), batch=32).epoch_steps == (4, 1, 1, 1)


@pytest.mark.parametrize("num_epochs,num_train_steps", [(0, 0), (3, 10)])
def test_exactly_one_duration(num_epochs, num_train_steps):
  with pytest.raises(ValueError, match="exactly one of config.train.num_epochs and "
                                       "config.train.num_train_steps"):
    _plan(num_epochs=num_epochs, num_train_steps=num_train_steps)


def test_epoch_without_steps_is_an_error_not_a_loop():
  with pytest.raises(ValueError, match="epoch 0 would have no optimizer step"):
    _plan(num_train_steps=5, sizes=(10,), batch=32, drop=True)


@pytest.mark.parametrize("period,before,after,expected", [
    (3, 0, 1, False), (3, 2, 3, True), (3, 3, 4, False), (3, 5, 7, True),
    (10, 4, 25, True),  # an interval longer than the period fires once
    (0, 0, 100, False),  # 0 never fires
])
def test_crossed(period, before, after, expected):
  assert durations.crossed(period, before, after) == expected
