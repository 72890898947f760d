"""Training dynamics: per-example statistics of every presentation, kept on the device.

One tracker (``tracker``) updates, inside the jitted train step and from the logits of the
very forward pass the gradient comes from (train mode, augmented inputs, parameters before
the update: the "PUTF" statistics of ALGORITHMS.md 0.1), these ``[N]`` tables (stored packed,
one array per dtype; ``unpack`` names them):

  presentations            int32    times the example was trained on
  correct                  int32    presentations with argmax z = y
  forgetting_events        int32    presentations with c_t = 0 after c_{t-1} = 1
  last_correct             bool     c of the latest presentation (c_{-1} = 0)
  probability_margin_sum   float32  Σ_t (p_y − max_{k≠y} p_k)    (AUM as the CCS reference)
  logit_margin_sum         float32  Σ_t (z_y − max_{k≠y} z_k)    (AUM as Pleiss et al.)
  el2n_sum                 float32  Σ_{t < E0} ‖p − e_y‖₂        (EL2N over the first E0 epochs)
  first_learned            int32    the 1-based presentation of the first c_t = 1 (0: never)
  last_incorrect           int32    the 1-based presentation of the last c_t = 0 (0: never)
  last_loss                float32  the latest per-example loss
  max_loss_increase        float32  max_t (loss_t − loss_{t−1}); −inf before two presentations
  max_relative_loss_increase  float32  max_t (loss_t − loss_{t−1}) / (loss_{t−1} + δ)
  loss_mean                float32  the mean loss over the presentations
  loss_comoment            float32  Σ_t (t − t̄)(loss_t − l̄), t = 1, 2, … the presentation

and, only when asked (``per_epoch=E``), ``correct_by_epoch`` (uint8) and ``loss_by_epoch``
(float32) ``[N, E]``: the full trajectories. Sums are float32 and counts int32, so nothing
like the reference's per-iteration float16 log of all K probabilities (ALGORITHMS.md C.8)
is kept. Presentations of an example are its epochs when every example is trained once an
epoch (here the loss is the training loss, mixed under mixup, and correctness and margins
use the example's own label).

The loss trend (the ``trajectory_slope`` form of Gradient Loss, ALGORITHMS.md D.5) is the
least-squares slope of loss against presentation, ``loss_comoment / Σ_t (t − t̄)²`` with
``Σ_t (t − t̄)² = n(n² − 1)/12`` for t = 1…n. It is kept as a running mean and co-moment
(Welford's update) rather than as the raw sums Σt·ℓ and Σℓ, whose difference cancels
catastrophically in float32 after a few hundred presentations.

``scores`` turns the tables into the named per-example scores of a score file, on the host.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel import scores as score_fns
from jaxsel.trackers import StepOutputs, Tracker, scatter_set

NEVER_LEARNED_VALUES = ("zero", "presentations")


RELATIVE_LOSS_DELTA = 1e-3  # δ of the relative loss increase (ALGORITHMS.md D.4)


# The [N] tables are stored as the columns of one float32 array [N, 14], the int32 ones by
# their bits (``bitcast_convert_type``: exact, no range limit), so that an update is one
# gather and one scatter instead of one per table: with 14 separate tables the tracker made
# an MNIST-1D epoch 1.09-1.10x as long, with one per dtype 1.05-1.07x, with one array
# 1.02-1.04x (benchmarks/coreset_overhead.py). ``unpack`` gives the named tables back.
INT_TABLES = ("presentations", "correct", "forgetting_events", "last_correct",
              "first_learned", "last_incorrect")
FLOAT_TABLES = ("probability_margin_sum", "logit_margin_sum", "el2n_sum", "last_loss",
                "max_loss_increase", "max_relative_loss_increase", "loss_mean",
                "loss_comoment")
_UNDEFINED_UNTIL_SEEN_TWICE = ("max_loss_increase", "max_relative_loss_increase")


def unpack(tables: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The tracker's state as named tables: each of ``INT_TABLES`` (``last_correct`` as
  bool) and ``FLOAT_TABLES`` ``[N]``, plus the trajectories ``[N, E]`` if kept."""
  packed = np.ascontiguousarray(tables["packed"], np.float32)
  ints = packed[:, :len(INT_TABLES)].view(np.int32)  # the bits, as stored
  out = {name: ints[:, k] for k, name in enumerate(INT_TABLES)}
  out["last_correct"] = out["last_correct"].astype(bool)
  out.update({name: packed[:, len(INT_TABLES) + k] for k, name in enumerate(FLOAT_TABLES)})
  out.update({name: np.asarray(values) for name, values in tables.items() if name != "packed"})
  return out


def tracker(*, el2n_epochs: int = 10, per_epoch: int = 0,
            relative_delta: float = RELATIVE_LOSS_DELTA) -> Tracker:
  """The training-dynamics tracker; ``el2n_epochs`` = E0, ``per_epoch`` = E (0: no
  ``[N, E]`` trajectories), ``relative_delta`` = δ of the relative loss increase (it keeps
  a jump from a loss of 1e-7 from counting as a million-fold increase)."""

  def init(num_ids: int) -> dict[str, jax.Array]:
    # One array per entry (never one shared zeros array): the train state is donated, and
    # a buffer may be donated only once.
    undefined = np.asarray([name in _UNDEFINED_UNTIL_SEEN_TWICE for name in FLOAT_TABLES])
    # Integer zeros are float32 zeros bit for bit.
    undefined = np.concatenate([np.zeros(len(INT_TABLES), bool), undefined])
    tables = {"packed": jnp.where(undefined, -jnp.inf, jnp.zeros(
        (num_ids, len(INT_TABLES) + len(FLOAT_TABLES)), jnp.float32))}
    if per_epoch:
      tables["correct_by_epoch"] = jnp.zeros((num_ids, per_epoch), jnp.uint8)
      tables["loss_by_epoch"] = jnp.zeros((num_ids, per_epoch), jnp.float32)
    return tables

  def update(tables, outputs: StepOutputs):
    ids, mask, labels = outputs.example_ids, outputs.mask, outputs.labels
    logits = outputs.logits.astype(jnp.float32)
    loss = outputs.loss.astype(jnp.float32)
    correct = outputs.correct
    rows = tables["packed"][ids]  # [B, I + F]
    ints = jax.lax.bitcast_convert_type(rows[:, :len(INT_TABLES)], jnp.int32)
    floats = rows[:, len(INT_TABLES):]
    old = {name: ints[:, k] for k, name in enumerate(INT_TABLES)}
    old.update({name: floats[:, k] for k, name in enumerate(FLOAT_TABLES)})
    seen = old["presentations"]
    presentation = seen + 1  # 1-based index t of this presentation
    was_correct = old["last_correct"] > 0
    previous_loss = old["last_loss"]
    # Welford: the mean of t = 1…n−1 is n/2, so t − t̄_old = n/2 for t = n.
    new_loss_mean = old["loss_mean"] + (loss - old["loss_mean"]) / presentation
    increase = loss - previous_loss
    new = {
        "presentations": presentation,
        "correct": old["correct"] + correct,
        "forgetting_events": old["forgetting_events"] + (was_correct & ~correct),
        "last_correct": correct,
        "first_learned": jnp.where((old["first_learned"] == 0) & correct, presentation,
                                   old["first_learned"]),
        "last_incorrect": jnp.where(correct, old["last_incorrect"], presentation),
        "probability_margin_sum": old["probability_margin_sum"]
                                  + score_fns.probability_margin(logits, labels),
        "logit_margin_sum": old["logit_margin_sum"] + score_fns.logit_margin(logits, labels),
        "el2n_sum": old["el2n_sum"] + jnp.where(outputs.epoch < el2n_epochs,
                                                score_fns.el2n(logits, labels), 0.0),
        "last_loss": loss,
        "max_loss_increase": jnp.where(seen > 0, jnp.maximum(old["max_loss_increase"],
                                                             increase),
                                       old["max_loss_increase"]),
        "max_relative_loss_increase": jnp.where(
            seen > 0, jnp.maximum(old["max_relative_loss_increase"],
                                  increase / (previous_loss + relative_delta)),
            old["max_relative_loss_increase"]),
        "loss_mean": new_loss_mean,
        "loss_comoment": old["loss_comoment"] + 0.5 * presentation * (loss - new_loss_mean),
    }
    new_ints = jnp.stack([new[name].astype(jnp.int32) for name in INT_TABLES], axis=1)
    new_floats = jnp.stack([new[name].astype(jnp.float32) for name in FLOAT_TABLES], axis=1)
    out = {"packed": scatter_set(tables["packed"], ids, jnp.concatenate(
        [jax.lax.bitcast_convert_type(new_ints, jnp.float32), new_floats], axis=1), mask)}
    if per_epoch:
      # Column ``epoch`` of the rows; epochs past E (and padding rows) write nothing.
      in_range = mask & (outputs.epoch < per_epoch)
      column = jnp.minimum(outputs.epoch, per_epoch - 1)
      for name, values in (("correct_by_epoch", correct.astype(jnp.uint8)),
                           ("loss_by_epoch", loss)):
        safe_ids = jnp.where(in_range, ids, tables[name].shape[0])
        out[name] = tables[name].at[safe_ids, column].set(values, mode="drop")
    return out

  return Tracker(init=init, update=update)


def loss_slope(comoment: np.ndarray, presentations: np.ndarray) -> np.ndarray:
  """Least-squares slope of loss against t = 1…n: ``comoment / (n(n² − 1)/12)``; 0 for
  n < 2 (float32, computed in float64)."""
  n = np.asarray(presentations, np.float64)
  spread = n * (n * n - 1) / 12  # Σ_t (t − t̄)² for t = 1…n
  slope = np.where(n >= 2, np.asarray(comoment, np.float64) / np.maximum(spread, 1.0), 0.0)
  return slope.astype(np.float32)


def scores(tables: Mapping[str, np.ndarray], *, never_learned_value: str = "zero",
           ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """Per-example scores from the tracker's tables (host arrays), rows ``ids`` (all if None):

  correctness (int32), forgetting (int32: events; an example never classified correctly gets
  0 with ``never_learned_value='zero'``, as the CCS reference, or its number of
  presentations with ``'presentations'``, Toneva et al.'s T), never_learned (bool),
  accumulated_margin (the CCS AUM: the summed probability margin), aum (Pleiss et al.: the
  mean logit margin), el2n (summed over the first E0 epochs), last_loss, max_loss_increase
  and max_relative_loss_increase (0 before two presentations), loss_slope (the least-squares
  slope of loss against presentation; 0 before two), first_learned (the 1-based
  presentation of the first correct one; 0: never), presentations_needed_to_learn (the last
  1-based presentation misclassified; 0: never misclassified), presentations, and the
  per-epoch trajectories if kept.
  """
  if never_learned_value not in NEVER_LEARNED_VALUES:
    raise ValueError(f"unknown never_learned_value {never_learned_value!r}; valid: "
                     f"{', '.join(NEVER_LEARNED_VALUES)}")
  rows = slice(None) if ids is None else np.asarray(ids)
  table = {name: values[rows] for name, values in unpack(tables).items()}
  presentations = table["presentations"].astype(np.int32)
  never_learned = table["correct"] == 0
  forgetting = table["forgetting_events"].astype(np.int32)
  if never_learned_value == "presentations":
    forgetting = np.where(never_learned, presentations, forgetting).astype(np.int32)
  out = {
      "correctness": table["correct"].astype(np.int32),
      "forgetting": forgetting,
      "never_learned": never_learned,
      "accumulated_margin": table["probability_margin_sum"].astype(np.float32),
      "aum": (table["logit_margin_sum"] / np.maximum(presentations, 1)).astype(np.float32),
      "el2n": table["el2n_sum"].astype(np.float32),
      "last_loss": table["last_loss"].astype(np.float32),
      "max_loss_increase": np.where(presentations >= 2, table["max_loss_increase"],
                                    0.0).astype(np.float32),
      "max_relative_loss_increase": np.where(
          presentations >= 2, table["max_relative_loss_increase"], 0.0).astype(np.float32),
      "loss_slope": loss_slope(table["loss_comoment"], presentations),
      "first_learned": table["first_learned"].astype(np.int32),
      "presentations_needed_to_learn": table["last_incorrect"].astype(np.int32),
      "presentations": presentations,
  }
  for name in ("correct_by_epoch", "loss_by_epoch"):
    if name in table:
      out[name] = table[name]
  return out
