"""The whole on-device state of a run, as one pytree, and the run's random streams."""

import functools
import zlib
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
  rngs: one key per random stream of the train step (``DEVICE_STREAMS``: dropout,
    augmentation, mixing), each from its own named derivation of the run seed
    (``stream_key``); a step folds the step or epoch (and the example id) into its
    stream's key, so no two streams ever share draws.
  trackers: per-example tables keyed by example id, updated inside the jitted train step
    ({} unless the method registers some).
  method_state: whatever else a method's own train step carries from step to step (a loss
    history, a queue of kept examples; {} for the standard step).
  model: the module itself (static). Unlike ``apply_fn`` it compares equal across runs
    with the same architecture, which lets eval-mode passes be compiled once per process
    (see ``Predictor``).
  """

  batch_stats: Any
  rngs: dict[str, jax.Array]
  trackers: Any
  method_state: Any
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


# Random streams of a run. Each is derived from the seed by its own name, so adding a
# stream never changes the draws of another, and no two streams share a counter.
# ``params`` initialises the model; the ``DEVICE_STREAMS`` live in ``TrainState.rngs``;
# ``selection`` and ``tie_break`` are derived where they are used (epoch selection);
# ``coreset`` draws one-shot host-side selections (``host_rng``); ``removal``,
# ``label_noise`` and ``value_noise`` draw a run's dataset variant on the host
# (``jaxsel.data.variants``: random removal or the subsample, noisy labels, noisy inputs).
DEVICE_STREAMS = ("dropout", "augmentation", "mixing")
STREAMS = ("params", *DEVICE_STREAMS, "selection", "tie_break", "coreset", "removal",
           "label_noise", "value_noise")


def _stream_id(name: str) -> int:
  if name not in STREAMS:
    raise ValueError(f"unknown random stream {name!r}; valid: {', '.join(STREAMS)}")
  return zlib.crc32(name.encode()) % 2**31


def stream_key(seed, name: str) -> jax.Array:
  """The key of stream ``name`` of run ``seed`` (an int, or an int32 array inside jit):
  ``fold_in(PRNGKey(seed), crc32(name) mod 2**31)``."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), _stream_id(name))


def host_rng(seed: int, name: str) -> np.random.Generator:
  """A numpy generator for host-side draws of stream ``name`` of run ``seed`` (one-shot
  selections on the host): ``default_rng([seed, crc32(name) mod 2**31])``."""
  return np.random.default_rng([int(seed), _stream_id(name)])


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
  """``(seed, dummy batch) -> (variables, stream keys)``, one jitted function per
  architecture, so runs in one process compile it once (``jax.clear_caches()`` forgets it
  like any other). Run eagerly, every op (each layer's, each key derivation) would compile
  on its own."""

  def init(seed, dummy):
    variables = model.init(stream_key(seed, "params"), dummy, train=False)
    return variables, {name: stream_key(seed, name) for name in DEVICE_STREAMS}

  return jax.jit(init, compiler_options=_init_compiler_options())


def _assemble(model: nn.Module, tx: optax.GradientTransformation, variables, rngs,
              trackers, method_state) -> TrainState:
  return TrainState(
      step=0,
      apply_fn=model.apply,
      params=variables["params"],
      tx=tx,
      # One compiled call instead of an eager op (and its compilation) per parameter shape.
      opt_state=jax.jit(tx.init)(variables["params"]),
      batch_stats=variables.get("batch_stats", {}),
      rngs=rngs,
      trackers={} if trackers is None else trackers,
      method_state={} if method_state is None else method_state,
      model=model,
  )


def create_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    *,
    seed: int,
    input_shape: tuple[int, ...],
    trackers: Any = None,
    method_state: Any = None,
) -> TrainState:
  """Initialises parameters from the run seed's ``params`` stream with a dummy batch of
  two examples; the step's streams (``rngs``) come from the same seed."""
  variables, rngs = _jitted_init(model)(np.int32(seed),
                                        np.zeros((2, *input_shape), np.float32))
  return _assemble(model, tx, variables, rngs, trackers, method_state)


def abstract_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    *,
    seed: int,
    input_shape: tuple[int, ...],
    trackers: Any = None,
    method_state: Any = None,
) -> TrainState:
  """What ``create_train_state`` returns, as ``jax.ShapeDtypeStruct`` leaves (weak types
  included), found by tracing only: nothing is compiled or run."""
  variables, rngs = _jitted_init(model).eval_shape(
      np.int32(seed), jax.ShapeDtypeStruct((2, *input_shape), np.float32))
  return jax.eval_shape(
      lambda v, r: _assemble(model, tx, v, r, trackers, method_state), variables, rngs)
