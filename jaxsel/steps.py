"""Pure, jitted training and evaluation steps.

The unit of work handed to the device is a *chunk*: ``steps_per_chunk`` batches of example
ids run as one ``lax.scan``. The dataset stays on the device and batches are gathered inside
jit, so an epoch is a handful of asynchronous calls with no host synchronisation, and every
call has the same shapes whatever the size of the index set (see ``data/iterators.py``).
Steps whose mask is all False (padding at the end of an epoch or pass) are skipped with
``lax.cond``, so they cost nothing and neither update parameters nor advance the
optimizer's step count.

The standard train step (``make_train_step``) is built from small pieces that a method
with a step of its own (e.g. selective backprop, which scores a batch before choosing what
to train on) reuses: ``prepare_inputs`` (augmentation, mixing), ``loss_and_grads``,
``apply_gradients`` and ``step_outputs`` (what the trackers see).
"""

import concurrent.futures
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsel import augment, compilation, distributed, metrics, trackers
from jaxsel.data import streaming
from jaxsel.state import Predictor, TrainState, predictor

Batch = dict[str, jax.Array]
# (state, batch, epoch) -> (state, sums): one optimizer step; what a chunk scans over.
StepFn = Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict[str, jax.Array]]]
# (state, batch) -> float32 [B]: each row's loss weight.
LossWeightsFn = Callable[[TrainState, Batch], jax.Array]
# (state, epoch) -> the per-step schedule's position for this update.
PositionFn = Callable[[TrainState, jax.Array], jax.Array]


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


def train_sums(per_example_loss, logits, batch) -> dict[str, jax.Array]:
  """Loss, correct and count sums of a batch's real rows (what an epoch's line reports)."""
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


def prepare_inputs(state: TrainState, batch: Batch, epoch: jax.Array, *,
                   augment_fn: augment.AugmentFn | None,
                   mixing_fn: augment.MixingFn | None) -> tuple[Batch, augment.Mixed | None]:
  """The batch with augmented inputs, and its mixing (None without one).

  Augmentation draws ``fold_in(fold_in(rngs['augmentation'], epoch), example_id)``: an
  example is augmented the same way whatever batch it lands in. Mixing draws
  ``fold_in(rngs['mixing'], step)``: one draw per batch, by definition.
  """
  if augment_fn is not None:
    epoch_key = jax.random.fold_in(state.rngs["augmentation"], epoch)
    batch = dict(batch, inputs=augment_fn(epoch_key, batch["inputs"], batch["example_ids"]))
  if mixing_fn is None:
    return batch, None
  mixing_key = jax.random.fold_in(state.rngs["mixing"], state.step)
  return batch, mixing_fn(mixing_key, batch["inputs"], batch["mask"])


def forward(state: TrainState, params, inputs: jax.Array, mask: jax.Array):
  """Train-mode logits [B, K] and the new BatchNorm statistics; dropout draws
  ``fold_in(rngs['dropout'], step)``."""
  dropout_key = jax.random.fold_in(state.rngs["dropout"], state.step)
  return state.apply_fn(_variables(state, params), inputs, train=True, mask=mask,
                        rngs={"dropout": dropout_key}, mutable=["batch_stats"])


def loss_and_grads(state: TrainState, batch: Batch, mixed: augment.Mixed | None, *,
                   loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
                   loss_weights: jax.Array | None = None):
  """Gradients of the masked mean of the per-example loss, and (logits, per-example loss
  [B], new model state) of that forward pass.

  The loss is divided by the number of real examples, not the batch size, so a padded
  final batch weighs its examples like any other batch does. ``loss_weights`` (float32
  [B]), when given, multiply each row's loss before that mean (the denominator stays the
  number of real rows: a weight scales an example's gradient, it is not a sampling
  probability); the per-example loss returned is the unweighted one.
  """
  inputs = batch["inputs"] if mixed is None else mixed.inputs
  real = batch["mask"].astype(jnp.float32)
  # A Python branch: an unweighted step traces exactly as it did before weights existed.
  weights = real if loss_weights is None else real * loss_weights

  def objective(params):
    logits, new_model_state = forward(state, params, inputs, batch["mask"])
    if mixed is None:
      per_example = loss_fn(logits, batch["labels"])
    else:
      per_example = augment.mixed_loss(loss_fn, logits, batch["labels"], mixed.positions,
                                       mixed.weights)
    loss = jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(real), 1.0)
    return loss, (logits, per_example, new_model_state)

  grads, aux = jax.grad(objective, has_aux=True)(state.params)
  return grads, aux


def apply_gradients(state: TrainState, grads, new_model_state, epoch: jax.Array, *,
                    learning_rate_fn: optax.Schedule, schedule_unit: str,
                    position: jax.Array | None = None) -> TrainState:
  """One optimizer update at the learning rate of the schedule's position: the epoch, or
  the step before this update, or for a per-step schedule ``position`` when given (a
  method whose steps are not its schedule's unit, e.g. selective backprop's rate that
  follows forward batches)."""
  if schedule_unit == "epoch":
    position = epoch
  elif position is None:
    position = state.step
  hyperparams = dict(state.opt_state.hyperparams, learning_rate=learning_rate_fn(position))
  state = state.replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))
  return state.apply_gradients(
      grads=grads, batch_stats=new_model_state.get("batch_stats", state.batch_stats))


def step_outputs(state: TrainState, batch: Batch, logits: jax.Array, loss: jax.Array,
                 mixed: augment.Mixed | None, epoch: jax.Array) -> trackers.StepOutputs:
  """What the trackers see of one step (``state`` before the update)."""
  outputs = trackers.StepOutputs.of(batch["example_ids"], batch["labels"], logits,
                                    mask=batch["mask"], loss=loss, epoch=epoch,
                                    step=state.step)
  if mixed is None:
    return outputs
  return outputs._replace(sources=batch["example_ids"][mixed.positions],
                          weights=mixed.weights, positions=mixed.positions)


def make_train_step(*, loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
                    learning_rate_fn: optax.Schedule, schedule_unit: str,
                    augment_fn: augment.AugmentFn | None = None,
                    mixing_fn: augment.MixingFn | None = None,
                    tracker: trackers.Tracker | None = None,
                    clean_view: bool = False,
                    loss_weights: LossWeightsFn | None = None,
                    schedule_position: PositionFn | None = None) -> StepFn:
  """The standard step: augment, mix, one SGD step on the masked mean loss, trackers.

  Trackers see the logits of the very forward pass the gradient comes from (train mode,
  augmented and mixed inputs, parameters before the update), as in the references. With
  ``clean_view`` and a mixing, they see instead a train-mode forward pass of the un-mixed
  (augmented) inputs with the same parameters, which costs one more forward pass per step.

  Two inputs for methods that need them (None: the plain step, traced exactly as without
  them): ``loss_weights(state, batch)`` gives each row's loss weight (float32 [B], see
  ``loss_and_grads``), e.g. from a per-example table in ``state.method_state``; and
  ``schedule_position(state, epoch)`` the position of a per-step schedule when it is not
  the optimizer's step count (a method whose epochs are shorter than planned).
  """

  def train_step(state: TrainState, batch: Batch, epoch: jax.Array):
    batch, mixed = prepare_inputs(state, batch, epoch, augment_fn=augment_fn,
                                  mixing_fn=mixing_fn)
    grads, (logits, per_example, new_model_state) = loss_and_grads(
        state, batch, mixed, loss_fn=loss_fn,
        loss_weights=None if loss_weights is None else loss_weights(state, batch))
    sums = train_sums(per_example, logits, batch)
    if tracker is not None:
      score_logits = logits
      if clean_view and mixed is not None:
        score_logits = jax.lax.stop_gradient(
            forward(state, state.params, batch["inputs"], batch["mask"])[0])
      outputs = step_outputs(state, batch, score_logits, per_example, mixed, epoch)
      state = state.replace(trackers=tracker.update(state.trackers, outputs))
    position = None if schedule_position is None else schedule_position(state, epoch)
    state = apply_gradients(state, grads, new_model_state, epoch,
                            learning_rate_fn=learning_rate_fn, schedule_unit=schedule_unit,
                            position=position)
    return state, sums

  return train_step


def _scan_real_steps(step, carry, data, example_ids, mask):
  """Folds ``step(carry, batch) -> carry`` over the batches of ``example_ids: [S, B]``;
  batches that are all padding are skipped (``lax.cond``) and cost nothing.

  ``data`` is the device-held dataset (each batch gathered from it by id) or, on the
  streaming path, the chunk's own ``streaming.Rows`` ``[S, B, ...]`` (scanned over).
  """
  streamed = isinstance(data, streaming.Rows)

  def real_step(carry, xs):
    ids, step_mask, rows = xs
    if streamed:
      batch = {"inputs": rows.inputs, "labels": rows.labels, "example_ids": ids,
               "mask": step_mask}
    else:  # gathered inside the branch: a skipped step gathers nothing
      batch = gather_batch(data, ids, step_mask)
    return step(carry, batch)

  def body(carry, xs):
    carry = jax.lax.cond(jnp.any(xs[1]), real_step, lambda c, _: c, carry, xs)
    return distributed.replicated(carry), None

  xs = (example_ids, mask, data if streamed else None)
  return jax.lax.scan(body, carry, xs)[0]


def train_chunk(state, sums, data, example_ids, mask, epoch, *, step_fn):
  """Runs ``step_fn`` over ``example_ids: [S, B]``, skipping all-padding steps.

  ``sums`` (loss, correct, count) are carried in and out, so an epoch's totals build up on
  the device with no per-chunk host work.
  """

  def step(carry, batch):
    state, sums = carry
    state, step_sums = step_fn(state, batch, epoch)
    return state, jax.tree.map(jnp.add, sums, step_sums)

  return _scan_real_steps(step, (state, sums), data, example_ids, mask)


def predict(model: Predictor | TrainState, inputs: jax.Array, mask: jax.Array) -> jax.Array:
  """Eval-mode logits (BatchNorm running averages, no dropout)."""
  return model.model.apply(_variables(model, model.params), inputs, train=False, mask=mask)


def eval_chunk(model: Predictor, sums, data, example_ids, mask, *, num_bins,
               reference_binning):
  """Adds the accuracy / NLL / Brier / calibration sums of ``example_ids: [S, B]``."""

  def step(sums, batch):
    logits = predict(model, batch["inputs"], batch["mask"])
    step_sums = metrics.calibration_sums(
        logits, batch["labels"], batch["mask"], num_bins=num_bins,
        reference_binning=reference_binning)
    return jax.tree.map(jnp.add, sums, step_sums)

  return _scan_real_steps(step, sums, data, example_ids, mask)


def score_chunk(model: Predictor, tables, data, example_ids, mask, *, score_fn):
  """Writes eval-mode scores of ``example_ids: [S, B]`` into ``tables: {name: [N]}``.

  ``score_fn(logits [B, K], labels [B]) -> {name: [B]}``, one entry per table. Eval mode
  (BatchNorm running averages), un-augmented and un-mixed inputs, current parameters: a
  fresh score for every example, unlike the training-pass scores.
  """

  def step(tables, batch):
    scores = score_fn(predict(model, batch["inputs"], batch["mask"]), batch["labels"])
    return {name: trackers.scatter_set(table, batch["example_ids"], scores[name],
                                       batch["mask"])
            for name, table in tables.items()}

  return _scan_real_steps(step, tables, data, example_ids, mask)


def per_example_grad_norms(model: Predictor, inputs: jax.Array, labels: jax.Array, *,
                           loss_fn) -> jax.Array:
  """‖∇_θ loss_fn(f_θ(x_i), y_i)‖₂ over all parameters, per example: [B].

  Eval mode (BatchNorm running averages, no dropout), one example at a time through
  ``vmap(grad)``: exact per-example gradients (GraNd), not the last-layer approximation,
  at a cost of one backward pass per example (small for the models here).
  """
  one = jnp.ones((1,), bool)

  def loss_of_one(params, x, y):
    logits = model.model.apply(_variables(model, params), x[None], train=False, mask=one)
    return loss_fn(logits, y[None])[0]

  grads = jax.vmap(jax.grad(loss_of_one), in_axes=(None, 0, 0))(model.params, inputs, labels)
  squares = [jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1)
             for g in jax.tree.leaves(grads)]
  return jnp.sqrt(sum(squares))


def grad_norm_chunk(model: Predictor, table, data, example_ids, mask, *, loss_fn):
  """Writes ``per_example_grad_norms`` of ``example_ids: [S, B]`` into ``table: [N]``."""

  def step(table, batch):
    norms = per_example_grad_norms(model, batch["inputs"], batch["labels"], loss_fn=loss_fn)
    return trackers.scatter_set(table, batch["example_ids"], norms, batch["mask"])

  return _scan_real_steps(step, table, data, example_ids, mask)


class ChunkPass:
  """A jitted chunk function ``f(x, carry, data, ids, mask, *rest)``, called with host
  ``ids`` and ``mask`` ``[S, B]``: they are laid out for the run's devices first
  (``distributed.Placement.batch``: on several devices, padded and sharded over them).

  On the streaming path ``data`` is a ``streaming.StreamedData``: the chunk's examples are
  read here (``rows``), in the training view of epoch ``rest[0]`` for a train chunk and in
  the eval view otherwise, and the jitted function gets them instead. The read overlaps the
  previous chunk's computation; then the call waits for that computation (its ``carry``,
  the previous call's result) before handing the next chunk over, so that no more than two
  chunks are ever held, on the host or the devices.
  """

  def __init__(self, jitted, *, trains: bool = False):
    self._jitted = jitted
    self._trains = trains  # a train chunk: (state, sums, data, ids, mask, epoch)

  def _placed(self, args: tuple, *, abstract: bool = False) -> tuple:
    placement = distributed.current()
    data = args[2]
    if isinstance(data, streaming.StreamedData):
      if abstract:
        data = data.abstract_rows(np.shape(args[3]), placement)
      else:
        epoch = int(args[5]) if self._trains else None
        data = data.rows(args[3], args[4], epoch=epoch, placement=placement)
        jax.block_until_ready(args[1])
    ids, mask = placement.batch(args[3], args[4])
    return (*placement.placed((*args[:2], data)), ids, mask, *placement.placed(args[5:]))

  def __call__(self, *args):
    return self._jitted(*self._placed(args))

  def compile_ahead(self, *args) -> concurrent.futures.Future:
    """Compiles for these arguments' shapes in the background (``compile_ahead``); on the
    streaming path nothing is read for it."""
    return compilation.compile_ahead(self._jitted, self._placed(args, abstract=True))


def jit_train_chunk(step_fn: StepFn) -> ChunkPass:
  """``(state, sums, data, ids, mask, epoch) -> (state, sums)``, jitted; the state is
  donated (the sums are a few scalars, not worth it)."""
  return ChunkPass(jax.jit(functools.partial(train_chunk, step_fn=step_fn),
                           donate_argnums=0), trains=True)


# Eval-mode passes take a ``Predictor``, whose tree structure is the same in every run with
# the same architecture, and are jitted once per process (lru_cache): later runs in the
# process (seeds, grids) reuse their compiled programs instead of paying ~1 s each again.
@functools.lru_cache(maxsize=None)
def _shared_eval_chunk(num_bins: int, reference_binning: bool):
  return jax.jit(functools.partial(eval_chunk, num_bins=num_bins,
                                   reference_binning=reference_binning))


@functools.lru_cache(maxsize=None)
def _shared_score_chunk(score_fn):
  return jax.jit(functools.partial(score_chunk, score_fn=score_fn), donate_argnums=1)


@functools.lru_cache(maxsize=None)
def _shared_grad_norm_chunk(loss_fn):
  return jax.jit(functools.partial(grad_norm_chunk, loss_fn=loss_fn), donate_argnums=1)


def _as_predictor(model: TrainState | Predictor) -> Predictor:
  return predictor(model) if isinstance(model, TrainState) else model


class PredictorPass(ChunkPass):
  """An eval-mode pass jitted once per process, called with a ``TrainState`` or a
  ``Predictor``: ``pass_(model, carry, data, ids, mask) -> carry``."""

  def _placed(self, args: tuple, *, abstract: bool = False) -> tuple:
    return super()._placed((_as_predictor(args[0]), *args[1:]), abstract=abstract)


def jit_eval_chunk(*, num_bins: int, reference_binning: bool) -> PredictorPass:
  """``(state, sums, data, ids, mask) -> CalibrationSums``, jitted (shared across runs)."""
  return PredictorPass(_shared_eval_chunk(num_bins, reference_binning))


def jit_score_chunk(score_fn) -> PredictorPass:
  """``(state, tables, data, ids, mask) -> tables``, jitted (shared across runs); the tables
  are donated. ``score_fn`` must be hashable (a module-level function)."""
  return PredictorPass(_shared_score_chunk(score_fn))


def jit_grad_norm_chunk(loss_fn) -> PredictorPass:
  """``(state, table, data, ids, mask) -> table``: per-example gradient norms, jitted
  (shared across runs); the table is donated. ``loss_fn`` must be hashable."""
  return PredictorPass(_shared_grad_norm_chunk(loss_fn))
