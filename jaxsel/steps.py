"""Pure, jitted training and evaluation steps.

The unit of work handed to the device is a *chunk*: ``steps_per_chunk`` batches of example
ids run as one ``lax.scan``. The dataset stays on the device and batches are gathered inside
jit, so an epoch is a handful of asynchronous calls with no host synchronisation, and every
call has the same shapes whatever the size of the index set (see ``data/iterators.py``).
Steps whose mask is all False (padding at the end of an epoch or pass) are skipped with
``lax.cond``, so they cost nothing and neither update parameters nor advance the
optimizer's step count.
"""

import collections
import concurrent.futures
import functools
import threading
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsel import augment, metrics, trackers
from jaxsel.state import Predictor, TrainState, predictor

Batch = dict[str, jax.Array]
# (trackers, batch, logits, epoch) -> trackers; the seam for per-example statistics.
TrackerUpdate = Callable[[Any, Batch, jax.Array, jax.Array], Any]


def no_trackers(trackers, batch, logits, epoch):
  del batch, logits, epoch
  return trackers


def gather_batch(data: Batch, example_ids: jax.Array, mask: jax.Array) -> Batch:
  """Rows ``example_ids`` of the device-resident ``data`` ({'inputs', 'labels'})."""
  return {
      "inputs": jnp.take(data["inputs"], example_ids, axis=0),
      "labels": jnp.take(data["labels"], example_ids, axis=0),
      "example_ids": example_ids,
      "mask": mask,
  }


def _variables(state: Predictor | TrainState, params) -> dict:
  if state.batch_stats:
    return {"params": params, "batch_stats": state.batch_stats}
  return {"params": params}


def _train_sums(per_example_loss, logits, batch) -> dict[str, jax.Array]:
  weights = batch["mask"].astype(jnp.float32)
  correct = (jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32)
  return {
      "loss": jnp.sum(per_example_loss * weights),
      "correct": jnp.sum(correct * weights),
      "count": jnp.sum(weights),
  }


def empty_train_sums() -> dict[str, np.ndarray]:
  # Host zeros: a jit input like any other, with no eager device op to compile.
  return {k: np.zeros((), np.float32) for k in ("loss", "correct", "count")}


_AUGMENT_STREAM = 7  # folded into the run key so augmentation draws are their own stream


def train_step(
    state: TrainState,
    batch: Batch,
    epoch: jax.Array,
    *,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
    learning_rate_fn: optax.Schedule,
    schedule_unit: str,
    update_trackers: TrackerUpdate = no_trackers,
    mixup_alpha: float = 0.0,
    score_unmixed_view: bool = False,
    augmentation: str = "none",
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on the masked mean of the per-example loss.

  The loss is divided by the number of real examples, not the batch size, so a padded
  final batch weighs its examples like any other batch does.

  Trackers see the logits of this very forward pass (train mode, mixed inputs under
  mixup, parameters before the update), as in the references. With
  ``score_unmixed_view`` (mixup only) they see instead a train-mode forward pass of the
  un-mixed inputs with the same parameters, which costs one more forward pass per step.
  ``augmentation='crop_flip'`` augments each example with a key folded from the epoch and
  its example id.
  """
  dropout_rng, mixup_rng = jax.random.split(jax.random.fold_in(state.rng, state.step))
  if augmentation == "crop_flip":
    epoch_key = jax.random.fold_in(jax.random.fold_in(state.rng, _AUGMENT_STREAM), epoch)
    batch = dict(batch, inputs=augment.crop_flip(epoch_key, batch["inputs"],
                                                 batch["example_ids"]))
  inputs, example_loss = batch["inputs"], loss_fn
  if mixup_alpha > 0:
    inputs, partner, lam = augment.mixup(mixup_rng, inputs, batch["mask"], alpha=mixup_alpha)
    example_loss = functools.partial(augment.mixup_loss, loss_fn, partner=partner, lam=lam)

  def forward(params, x):
    return state.apply_fn(_variables(state, params), x, train=True, mask=batch["mask"],
                          rngs={"dropout": dropout_rng}, mutable=["batch_stats"])

  def objective(params):
    outputs, new_model_state = forward(params, inputs)
    per_example = example_loss(outputs, batch["labels"])
    weights = batch["mask"].astype(jnp.float32)
    loss = jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1.0)
    return loss, (outputs, per_example, new_model_state)

  grads, (logits, per_example, new_model_state) = jax.grad(objective, has_aux=True)(
      state.params)
  score_logits = logits
  if mixup_alpha > 0 and score_unmixed_view:
    score_logits = jax.lax.stop_gradient(forward(state.params, batch["inputs"])[0])
  position = epoch if schedule_unit == "epoch" else state.step
  hyperparams = dict(state.opt_state.hyperparams,
                     learning_rate=learning_rate_fn(position))
  state = state.replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))
  state = state.apply_gradients(
      grads=grads,
      batch_stats=new_model_state.get("batch_stats", state.batch_stats),
      trackers=update_trackers(state.trackers, batch, score_logits, epoch),
  )
  return state, _train_sums(per_example, logits, batch)


def _scan_real_steps(step, carry, example_ids, mask):
  """Folds ``step(carry, ids [B], mask [B]) -> carry`` over the rows of ``example_ids:
  [S, B]``; rows that are all padding are skipped (``lax.cond``) and cost nothing."""

  def body(carry, xs):
    ids, step_mask = xs
    return jax.lax.cond(jnp.any(step_mask), step, lambda c, *_: c,
                        carry, ids, step_mask), None

  return jax.lax.scan(body, carry, (example_ids, mask))[0]


def train_chunk(state, sums, data, example_ids, mask, epoch, *, step_fn):
  """Runs ``step_fn`` over ``example_ids: [S, B]``, skipping all-padding steps.

  ``sums`` (loss, correct, count) are carried in and out, so an epoch's totals build up on
  the device with no per-chunk host work.
  """

  def step(carry, ids, step_mask):
    state, sums = carry
    state, step_sums = step_fn(state, gather_batch(data, ids, step_mask), epoch)
    return state, jax.tree.map(jnp.add, sums, step_sums)

  return _scan_real_steps(step, (state, sums), example_ids, mask)


def predict(model: Predictor | TrainState, inputs: jax.Array, mask: jax.Array) -> jax.Array:
  """Eval-mode logits (BatchNorm running averages, no dropout)."""
  return model.model.apply(_variables(model, model.params), inputs, train=False, mask=mask)


def eval_chunk(model: Predictor, sums, data, example_ids, mask, *, num_bins,
               reference_binning):
  """Adds the accuracy / NLL / Brier / calibration sums of ``example_ids: [S, B]``."""

  def step(sums, ids, step_mask):
    batch = gather_batch(data, ids, step_mask)
    logits = predict(model, batch["inputs"], step_mask)
    step_sums = metrics.calibration_sums(
        logits, batch["labels"], step_mask, num_bins=num_bins,
        reference_binning=reference_binning)
    return jax.tree.map(jnp.add, sums, step_sums)

  return _scan_real_steps(step, sums, example_ids, mask)


def score_chunk(model: Predictor, table, data, example_ids, mask, *, score_fn):
  """Writes eval-mode scores of ``example_ids: [S, B]`` into ``table: [N]``.

  Eval mode (BatchNorm running averages), un-augmented and un-mixed inputs, current
  parameters: a fresh score for every example, unlike the training-pass scores.
  """

  def step(table, ids, step_mask):
    batch = gather_batch(data, ids, step_mask)
    scores = score_fn(predict(model, batch["inputs"], step_mask))
    return trackers.scatter_set(table, ids, scores, step_mask)

  return _scan_real_steps(step, table, example_ids, mask)


# Python-side trace counts of the jitted functions below, keyed by name. A function is
# traced again only when it is about to recompile, so tests use this to prove that a
# change of subset size costs no compilation.
TRACE_COUNTS: collections.Counter = collections.Counter()


def _counting_traces(name: str, fn):
  @functools.wraps(fn)
  def traced(*args, **kwargs):
    TRACE_COUNTS[name] += 1
    return fn(*args, **kwargs)
  return traced


def jit_train_chunk(step_fn, *, name: str = "train_chunk"):
  """``(state, sums, data, ids, mask, epoch) -> (state, sums)``, jitted; the state is
  donated (the sums are a few scalars, not worth it)."""
  fn = functools.partial(train_chunk, step_fn=step_fn)
  return jax.jit(_counting_traces(name, fn), donate_argnums=0)


# Eval-mode passes take a ``Predictor``, whose tree structure is the same in every run with
# the same architecture, and are jitted once per process (lru_cache): later runs in the
# process (seeds, grids) reuse their compiled programs instead of paying ~1 s each again.
@functools.lru_cache(maxsize=None)
def _shared_eval_chunk(num_bins: int, reference_binning: bool, name: str):
  fn = functools.partial(eval_chunk, num_bins=num_bins, reference_binning=reference_binning)
  return jax.jit(_counting_traces(name, fn))


@functools.lru_cache(maxsize=None)
def _shared_score_chunk(score_fn, name: str):
  fn = functools.partial(score_chunk, score_fn=score_fn)
  return jax.jit(_counting_traces(name, fn), donate_argnums=1)


class PredictorPass:
  """An eval-mode pass jitted once per process, called with a ``TrainState``:
  ``pass_(state, carry, data, ids, mask) -> carry``."""

  def __init__(self, jitted):
    self._jitted = jitted

  def __call__(self, state: TrainState, carry, data, ids, mask):
    return self._jitted(predictor(state), carry, data, ids, mask)

  def compile_ahead(self, state: TrainState, carry, data, ids,
                    mask) -> concurrent.futures.Future:
    """Compiles the pass for these shapes in the background (see ``compile_ahead``)."""
    return compile_ahead(self._jitted, (predictor(state), carry, data, ids, mask))


def jit_eval_chunk(*, num_bins: int, reference_binning: bool,
                   name: str = "eval_chunk") -> PredictorPass:
  """``(state, sums, data, ids, mask) -> CalibrationSums``, jitted (shared across runs)."""
  return PredictorPass(_shared_eval_chunk(num_bins, reference_binning, name))


def jit_score_chunk(score_fn, *, name: str = "score_chunk") -> PredictorPass:
  """``(state, table, data, ids, mask) -> table``, jitted (shared across runs); the table
  is donated. ``score_fn`` must be hashable (a module-level function)."""
  return PredictorPass(_shared_score_chunk(score_fn, name))


# One background thread: compiling is single-threaded in XLA and runs outside the GIL, so
# one extra compile at a time is what a 2-core host can overlap with the main thread's.
_COMPILER = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                  thread_name_prefix="jaxsel-compile")


def _abstract(x) -> jax.ShapeDtypeStruct:
  if isinstance(x, jax.ShapeDtypeStruct):
    return x
  # No sharding: arrays that jit placed on the default device are uncommitted, and the
  # real call lowers them without one; stating it here would compile a different program.
  if isinstance(x, jax.Array):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, weak_type=x.weak_type)
  x = np.asarray(x)
  return jax.ShapeDtypeStruct(x.shape, x.dtype)


def compile_ahead(jitted, args: tuple = (), kwargs: dict | None = None, *,
                  static: dict | None = None) -> concurrent.futures.Future:
  """Traces, lowers and compiles ``jitted`` for the shapes of ``args`` and ``kwargs``
  (arrays) with the static arguments ``static``, on a background thread; the future's
  result is the compiled program.

  The program lands in ``jitted``'s own cache, so a later call with arguments of these
  shapes runs it without compiling again. A run uses this to compile its train step while
  the main thread compiles model init, then its eval and selection programs while the
  main thread trains. Arguments may be ``jax.ShapeDtypeStruct``s. Only shapes are read,
  here on the calling thread, so ``args`` may be donated or deleted right after. Call
  ``result()`` before the first real call, or both threads may compile the same program.
  """
  abstract_args, abstract_kwargs = jax.tree.map(_abstract, (args, kwargs or {}))
  return _COMPILER.submit(
      lambda: jitted.lower(*abstract_args, **abstract_kwargs, **(static or {})).compile())


class CompileClock:
  """Seconds the calling thread has spent tracing, lowering and compiling, and XLA
  compilations in any thread, since the clock was first read.

  Read it before and after a region and subtract, so timings can exclude compilation
  without a separate warm-up run. Seconds are per thread so that a program compiled in the
  background (``compile_ahead``) is not subtracted from the main thread's wall clock.
  """

  _EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
             "/jax/core/compile/jaxpr_to_mlir_module_duration",
             "/jax/core/compile/backend_compile_duration")
  _BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
  _seconds: collections.Counter = collections.Counter()  # thread id -> seconds
  _compilations = 0
  _registered = False
  _lock = threading.Lock()

  @classmethod
  def _listen(cls, event, duration, **kwargs):
    del kwargs
    with cls._lock:
      if event in cls._EVENTS:
        cls._seconds[threading.get_ident()] += duration
      if event == cls._BACKEND_COMPILE:
        cls._compilations += 1

  @classmethod
  def compilations(cls) -> int:
    """XLA compilations since the clock was first read (any function, eager ops too)."""
    cls.seconds()
    return cls._compilations

  @classmethod
  def seconds(cls, *, all_threads: bool = False) -> float:
    if not cls._registered:
      jax.monitoring.register_event_duration_secs_listener(cls._listen)
      cls._registered = True
    with cls._lock:
      if all_threads:
        return sum(cls._seconds.values())
      return cls._seconds[threading.get_ident()]
