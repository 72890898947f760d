"""Schedule values at known positions and PyTorch-SGD semantics of the optimizer."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from jaxsel import optim
from jaxsel.config_errors import UserError
from tests.conftest import override


def _config(**fields):
  return override(default.get_config(), **fields)


def test_per_epoch_cosine_matches_torch_cosine_annealing():
  # lr_e = 0.005 (1 + cos(pi e / 200)) for lr 0.01, T_max = 200 (the calibration paper).
  config = _config(**{"optimizer.learning_rate": 0.01, "train.num_epochs": 200})
  schedule = optim.make_schedule(config, epoch_steps=[1407] * 200)
  for epoch in (0, 1, 50, 100, 199):
    expected = 0.005 * (1 + math.cos(math.pi * epoch / 200))
    assert float(schedule(epoch)) == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_per_step_cosine_with_linear_warmup():
  config = _config(**{"optimizer.learning_rate": 0.1, "train.num_epochs": 10,
                      "schedule.unit": "step", "schedule.lr_warmup_epochs": 2.0})
  schedule = optim.make_schedule(config, epoch_steps=[5] * 10)  # 50 steps, 10 of warm-up
  assert float(schedule(0)) == pytest.approx(0.0)
  assert float(schedule(5)) == pytest.approx(0.05)
  assert float(schedule(10)) == pytest.approx(0.1)
  # Half-way through the 40 decay steps: cos(pi/2) = 0 -> lr / 2.
  assert float(schedule(30)) == pytest.approx(0.05, rel=1e-5)
  assert float(schedule(50)) == pytest.approx(0.0, abs=1e-7)


def test_per_step_schedule_follows_epochs_of_different_lengths():
  # 2 full epochs of 10 steps, then 3 subset epochs of 2 steps: 26 steps in all.
  config = _config(**{"optimizer.learning_rate": 1.0, "train.num_epochs": 5,
                      "schedule.unit": "step", "schedule.name": "multistep",
                      "schedule.milestone_epochs": (2, 4), "schedule.decay_factor": 0.1,
                      "schedule.lr_warmup_epochs": 1.0})
  schedule = optim.make_schedule(config, epoch_steps=[10, 10, 2, 2, 2])
  assert float(schedule(5)) == pytest.approx(0.5)  # half-way through the warm-up epoch
  # Milestone epoch 2 starts at step 20, epoch 4 at step 24.
  np.testing.assert_allclose([float(schedule(s)) for s in (19, 20, 23, 24)],
                             [1.0, 0.1, 0.1, 0.01], rtol=1e-6)


def test_multistep_and_constant():
  config = _config(**{"optimizer.learning_rate": 0.1, "train.num_epochs": 200,
                      "schedule.name": "multistep", "schedule.milestone_epochs": (60, 120),
                      "schedule.decay_factor": 0.2})
  schedule = optim.make_schedule(config, epoch_steps=[10] * 200)
  np.testing.assert_allclose([float(schedule(e)) for e in (0, 59, 60, 119, 120, 199)],
                             [0.1, 0.1, 0.02, 0.02, 0.004, 0.004], rtol=1e-6)
  config = _config(**{"schedule.name": "constant"})
  assert float(optim.make_schedule(config, epoch_steps=[3] * 60)(17)) == pytest.approx(
      config.optimizer.learning_rate)


def test_sgd_is_coupled_weight_decay_then_momentum():
  # Two steps by hand: g' = g + wd θ; v = μ v + g'; θ -= lr v (first v = g').
  config = _config(**{"optimizer.learning_rate": 0.1, "optimizer.momentum": 0.9,
                      "optimizer.weight_decay": 0.5})
  tx = optim.make_optimizer(config)
  theta = jnp.array([1.0, -2.0])
  grad = jnp.array([0.5, 0.25])
  state = tx.init(theta)
  updates, state = tx.update(grad, state, theta)
  theta1 = optax.apply_updates(theta, updates)
  v1 = grad + 0.5 * theta
  np.testing.assert_allclose(theta1, theta - 0.1 * v1, rtol=1e-6)
  updates, state = tx.update(grad, state, theta1)
  v2 = 0.9 * v1 + grad + 0.5 * theta1
  np.testing.assert_allclose(optax.apply_updates(theta1, updates), theta1 - 0.1 * v2,
                             rtol=1e-6)


def test_injected_learning_rate_is_used():
  config = _config(**{"optimizer.learning_rate": 1.0, "optimizer.momentum": 0.0,
                      "optimizer.weight_decay": 0.0})
  tx = optim.make_optimizer(config)
  state = tx.init(jnp.zeros(1))
  state = state._replace(hyperparams=dict(state.hyperparams, learning_rate=0.25))
  updates, _ = jax.jit(tx.update)(jnp.ones(1), state, jnp.zeros(1))
  np.testing.assert_allclose(updates, [-0.25])


@pytest.mark.parametrize("field,value,match", [
    ("optimizer.name", "lbfgs", "adam, adamw, sgd"),
    ("schedule.name", "exp", "constant, cosine, linear, multistep"),
    ("schedule.unit", "batch", "epoch, step"),
])
def test_unknown_names_list_valid_ones(field, value, match):
  config = _config(**{field: value})
  with pytest.raises(ValueError, match=match):
    if field.startswith("optimizer"):
      optim.make_optimizer(config)
    else:
      optim.make_schedule(config, epoch_steps=[1] * config.train.num_epochs)


def _forgetting_schedule(late, unit="epoch", epoch_steps=(10,) * 200):
  config = _config(**{"optimizer.learning_rate": 0.1, "train.num_epochs": len(epoch_steps),
                      "schedule.name": "multistep", "schedule.unit": unit,
                      "schedule.milestone_epochs": (60, 120, 160),
                      "schedule.decay_factor": 0.2, "schedule.late_multistep_decay": late})
  return optim.make_schedule(config, epoch_steps=list(epoch_steps))


EPOCHS = (0, 59, 60, 61, 119, 120, 121, 160, 161, 199)


@pytest.mark.parametrize("late,expected", [
    # At the milestones: 0.1 for epochs 0-59, 0.02 for 60-119, 0.004 for 120-159, then
    # 0.0008.
    (False, [0.1, 0.1, 0.02, 0.02, 0.02, 0.004, 0.004, 0.0008, 0.0008, 0.0008]),
    # The reference's step(epoch) after epoch e (ALGORITHMS.md D.7): 0.1 for 0-60, 0.02
    # for 61-120, 0.004 for 121-160, 0.0008 for 161-199.
    (True, [0.1, 0.1, 0.1, 0.02, 0.02, 0.02, 0.004, 0.004, 0.0008, 0.0008]),
])
def test_multistep_decay_at_or_one_epoch_after_the_milestones(late, expected):
  schedule = _forgetting_schedule(late)
  np.testing.assert_allclose([float(schedule(e)) for e in EPOCHS], expected, rtol=1e-6)


def test_late_multistep_decay_per_step():
  # 3 steps per epoch: epoch e starts at step 3e. The decays land on the first step of
  # epoch 61 (step 183), 121 (363) and 161 (483); without the delay on 180, 360, 480.
  steps = (179, 180, 182, 183, 359, 360, 362, 363, 479, 480, 482, 483)
  late = _forgetting_schedule(True, "step", (3,) * 200)
  np.testing.assert_allclose(
      [float(late(s)) for s in steps],
      [0.1, 0.1, 0.1, 0.02, 0.02, 0.02, 0.02, 0.004, 0.004, 0.004, 0.004, 0.0008],
      rtol=1e-6)
  on_time = _forgetting_schedule(False, "step", (3,) * 200)
  np.testing.assert_allclose(
      [float(on_time(s)) for s in steps],
      [0.1, 0.02, 0.02, 0.02, 0.02, 0.004, 0.004, 0.004, 0.004, 0.0008, 0.0008, 0.0008],
      rtol=1e-6)


def test_late_multistep_decay_with_epochs_of_different_lengths():
  # Epochs of 10, 10, 2, 2, 2 steps start at steps 0, 10, 20, 22, 24 (26 in all);
  # milestones (1, 3) decay late at the starts of epochs 2 and 4: steps 20 and 24.
  config = _config(**{"optimizer.learning_rate": 1.0, "train.num_epochs": 5,
                      "schedule.unit": "step", "schedule.name": "multistep",
                      "schedule.milestone_epochs": (1, 3), "schedule.decay_factor": 0.1,
                      "schedule.late_multistep_decay": True})
  schedule = optim.make_schedule(config, epoch_steps=[10, 10, 2, 2, 2])
  np.testing.assert_allclose([float(schedule(s)) for s in (10, 19, 20, 23, 24, 25)],
                             [1.0, 1.0, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_on_time_multistep_is_the_plain_piecewise_constant_schedule(unit):
  # late_multistep_decay=False builds what make_schedule built before the option existed:
  # optax's piecewise constant schedule with the milestones' own boundaries.
  schedule = _forgetting_schedule(False, unit, (3,) * 200)
  scale = 3 if unit == "step" else 1
  expected = optax.piecewise_constant_schedule(
      0.1, {60 * scale: 0.2, 120 * scale: 0.2, 160 * scale: 0.2})
  positions = jnp.arange(200 * scale + 1)
  np.testing.assert_array_equal(jax.vmap(schedule)(positions), jax.vmap(expected)(positions))


def test_late_multistep_decay_must_be_a_bool():
  import ml_collections  # pylint: disable=import-outside-toplevel
  from jaxsel import config_checks  # pylint: disable=import-outside-toplevel
  config = default.get_config()
  with config.unlocked():
    # The field is typed bool; a section replaced wholesale (as paper configs do) is not.
    config.schedule = ml_collections.ConfigDict(
        dict(config.schedule.to_dict(), late_multistep_decay=1))
  with pytest.raises(ValueError, match=r"config.schedule.late_multistep_decay must be True "
                                       r"or False, got 1"):
    config_checks.check_config(config)


@pytest.mark.parametrize("field,value,message", [
    ("optimizer.learning_rate", float("inf"), "config.optimizer.learning_rate must be a finite"),
    ("optimizer.momentum", 1.0, r"config.optimizer.momentum must be in \[0, 1\)"),
    ("optimizer.weight_decay", float("nan"), "config.optimizer.weight_decay must be a finite"),
])
def test_make_optimizer_refuses_what_cannot_work(field, value, message):
  with pytest.raises(UserError, match=message):
    optim.make_optimizer(_config(**{field: value}))


def test_nesterov_without_momentum_is_refused_for_sgd():
  config = _config(**{"optimizer.nesterov": True, "optimizer.momentum": 0.0})
  with pytest.raises(UserError, match="config.optimizer.momentum must be > 0 with "
                                      "config.optimizer.nesterov=True"):
    optim.make_optimizer(config)
  optim.make_optimizer(override(config, **{"optimizer.name": "adamw"}))  # ignores both


@pytest.mark.parametrize("unit,late,epochs,message", [
    # A run of 5 epochs: milestone 5 would fall after its last epoch (4).
    ("epoch", False, (2, 5), "at most 4 for a run of 5 epochs"),
    ("step", False, (2, 5), "at most 4 for a run of 5 epochs"),
    # One epoch late, milestone 4 would decay in epoch 5.
    ("step", True, (4,), "at most 3 for a run of 5 epochs"),
    ("epoch", False, (3, 2), "strictly increasing"),
    ("epoch", False, (2.5,), r"integers >= 0"),
])
def test_milestones_are_checked_in_epochs_of_the_run(unit, late, epochs, message):
  config = _config(**{"train.num_epochs": 5, "schedule.name": "multistep",
                      "schedule.unit": unit, "schedule.milestone_epochs": epochs,
                      "schedule.late_multistep_decay": late})
  with pytest.raises(UserError, match="config.schedule.milestone_epochs must be .*" + message):
    optim.make_schedule(config, epoch_steps=[10, 10, 2, 2, 2])


def test_the_last_epoch_can_be_a_milestone():
  config = _config(**{"optimizer.learning_rate": 1.0, "train.num_epochs": 5,
                      "schedule.name": "multistep", "schedule.unit": "step",
                      "schedule.milestone_epochs": (4,), "schedule.decay_factor": 0.5})
  schedule = optim.make_schedule(config, epoch_steps=[10, 10, 2, 2, 2])
  # Epoch 4 starts at step 24.
  np.testing.assert_allclose([float(schedule(s)) for s in (23, 24, 25)], [1.0, 0.5, 0.5])


def test_onecycle_rises_by_cosine_to_the_peak_then_falls_to_its_floor():
  """PyTorch's OneCycleLR shape (cos both ways): 0.1 / 25 at step 0, the peak at ⌊0.3 T⌋,
  0.1 / (25 · 1e4) at T; halfway up, the mean of the two ends."""
  config = _config(**{"schedule.name": "onecycle", "schedule.unit": "step",
                      "optimizer.learning_rate": 0.1})
  schedule = optim.make_schedule(config, epoch_steps=[25] * 4)  # T = 100, peak at 30
  assert float(schedule(0)) == pytest.approx(0.1 / 25, rel=1e-5)
  assert float(schedule(15)) == pytest.approx((0.1 / 25 + 0.1) / 2, rel=1e-5)
  assert float(schedule(30)) == pytest.approx(0.1, rel=1e-5)
  down = 0.1 / 25 / 1e4 + (0.1 - 0.1 / 25 / 1e4) * (1 + math.cos(math.pi * 35 / 70)) / 2
  assert float(schedule(65)) == pytest.approx(down, rel=1e-5)
  assert float(schedule(100)) == pytest.approx(0.1 / 25 / 1e4, rel=1e-4)
  with pytest.raises(UserError, match="schedule.onecycle_pct_start"):
    optim.check_schedule(override(config, **{"schedule.onecycle_pct_start": 1.0}),
                         num_epochs=4)
  with pytest.raises(UserError, match="schedule.lr_warmup_epochs"):
    optim.check_schedule(override(config, **{"schedule.lr_warmup_epochs": 1.0}),
                         num_epochs=4)
