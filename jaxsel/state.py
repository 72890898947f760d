"""The whole on-device state of a run, as one pytree."""

import functools
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax
from flax import struct
from flax.training import train_state


class TrainState(train_state.TrainState):
  """``params`` and ``opt_state`` as in flax, plus what data selection needs.

  batch_stats: BatchNorm running statistics ({} for models without BatchNorm).
  rng: the run key; every random draw folds something into it (step, epoch, example id).
  trackers: per-example tables keyed by example id, updated inside the jitted train step
    ({} until a selection method registers some).
  model: the module itself (static). Unlike ``apply_fn`` it compares equal across runs
    with the same architecture, which lets eval-mode passes be compiled once per process
    (see ``Predictor``).
  """

  batch_stats: Any
  rng: jax.Array
  trackers: Any
  model: nn.Module = struct.field(pytree_node=False)


@struct.dataclass
class Predictor:
  """What an eval-mode forward pass needs: the model (static) and its variables.

  A ``TrainState`` carries run-specific static data (the optimizer's closures), so a jitted
  function taking the state compiles again in every run. A ``Predictor`` of the same
  architecture has the same tree structure in every run, so eval, scoring and test passes
  compile once per process and later runs (seeds, grids) reuse them.
  """

  model: nn.Module = struct.field(pytree_node=False)
  params: Any
  batch_stats: Any


def predictor(state: TrainState) -> Predictor:
  return Predictor(model=state.model, params=state.params, batch_stats=state.batch_stats)


def _init_compiler_options() -> dict | None:
  """XLA options for the one-shot init program.

  Init runs once, so compiling it is all it costs. On CPU, XLA's default optimisation level
  spends 1.5-2 s on the threefry initialisers of even the 1-D CNN (5.7 s for ResNet-18);
  level 2 compiles it 2-2.7x faster and gives bit-identical parameters (asserted for the
  MLP and CNNs in ``tests/test_state.py``; checked once for ResNet-18 and -50, whose
  compiles are too slow for the test suite). Other backends keep their defaults.
  """
  if jax.default_backend() != "cpu":
    return None
  return {"xla_backend_optimization_level": 2}


@functools.lru_cache(maxsize=16)
def _jitted_init(model: nn.Module):
  """``(rng, dummy batch) -> (variables, run rng)``, one jitted function per architecture,
  so runs in one process compile it once (``jax.clear_caches()`` forgets it like any
  other). Run eagerly, every op (each layer's, the key split) would compile on its own."""

  def init(rng, dummy):
    init_rng, run_rng = jax.random.split(rng)
    return model.init(init_rng, dummy, train=False), run_rng

  return jax.jit(init, compiler_options=_init_compiler_options())


def _assemble(model: nn.Module, tx: optax.GradientTransformation, variables, run_rng,
              trackers) -> TrainState:
  return TrainState(
      step=0,
      apply_fn=model.apply,
      params=variables["params"],
      tx=tx,
      # One compiled call instead of an eager op (and its compilation) per parameter shape.
      opt_state=jax.jit(tx.init)(variables["params"]),
      batch_stats=variables.get("batch_stats", {}),
      rng=run_rng,
      trackers={} if trackers is None else trackers,
      model=model,
  )


def create_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    *,
    rng: jax.Array,
    input_shape: tuple[int, ...],
    trackers: Any = None,
) -> TrainState:
  """Initialises parameters from ``rng`` with a dummy batch of two examples."""
  variables, run_rng = _jitted_init(model)(rng, np.zeros((2, *input_shape), np.float32))
  return _assemble(model, tx, variables, run_rng, trackers)


def abstract_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    *,
    rng: jax.Array,
    input_shape: tuple[int, ...],
    trackers: Any = None,
) -> TrainState:
  """What ``create_train_state`` returns, as ``jax.ShapeDtypeStruct`` leaves (weak types
  included), found by tracing only: nothing is compiled or run."""
  variables, run_rng = _jitted_init(model).eval_shape(
      rng, jax.ShapeDtypeStruct((2, *input_shape), np.float32))
  return jax.eval_shape(lambda v, r: _assemble(model, tx, v, r, trackers), variables,
                        run_rng)
