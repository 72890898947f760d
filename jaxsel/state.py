"""The whole on-device state of a run, as one pytree."""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """``params`` and ``opt_state`` as in flax, plus what data selection needs.

  batch_stats: BatchNorm running statistics ({} for models without BatchNorm).
  rng: the run key; every random draw folds something into it (step, epoch, example id).
  trackers: per-example tables keyed by example id, updated inside the jitted train step
    ({} until a selection method registers some).
  """

  batch_stats: Any
  rng: jax.Array
  trackers: Any


def create_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    *,
    rng: jax.Array,
    input_shape: tuple[int, ...],
    trackers: Any = None,
) -> TrainState:
  """Initialises parameters from ``rng`` with a dummy batch of two examples."""
  init_rng, run_rng = jax.random.split(rng)
  # Jitted: run eagerly, every layer's ops would compile one by one (seconds for im2col).
  init = jax.jit(functools.partial(model.init, train=False))
  variables = init(init_rng, jnp.zeros((2, *input_shape), jnp.float32))
  return TrainState.create(
      apply_fn=model.apply,
      params=variables["params"],
      tx=tx,
      batch_stats=variables.get("batch_stats", {}),
      rng=run_rng,
      trackers={} if trackers is None else trackers,
  )

