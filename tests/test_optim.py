"""Schedule values at known positions and PyTorch-SGD semantics of the optimizer."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from jaxsel import optim
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
