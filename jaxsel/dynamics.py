"""Training dynamics: per-example statistics of every presentation, kept on the device.

One tracker (``tracker``) updates, inside the jitted train step and from the logits of the
very forward pass the gradient comes from (train mode, augmented inputs, parameters before
the update: the "PUTF" statistics of ALGORITHMS.md 0.1), these ``[N]`` tables:

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


def tracker(*, el2n_epochs: int = 10, per_epoch: int = 0,
            relative_delta: float = RELATIVE_LOSS_DELTA) -> Tracker:
  """The training-dynamics tracker; ``el2n_epochs`` = E0, ``per_epoch`` = E (0: no
  ``[N, E]`` trajectories), ``relative_delta`` = δ of the relative loss increase (it keeps
  a jump from a loss of 1e-7 from counting as a million-fold increase)."""

  def init(num_ids: int) -> dict[str, jax.Array]:
    # One array per table (never one shared zeros array): the train state is donated,
    # and a buffer may be donated only once.
    def zeros(dtype):
      return jnp.zeros((num_ids,), dtype)

    tables = {
        "presentations": zeros(jnp.int32), "correct": zeros(jnp.int32),
        "forgetting_events": zeros(jnp.int32), "last_correct": zeros(bool),
        "probability_margin_sum": zeros(jnp.float32), "logit_margin_sum": zeros(jnp.float32),
        "el2n_sum": zeros(jnp.float32), "last_loss": zeros(jnp.float32),
        "first_learned": zeros(jnp.int32), "last_incorrect": zeros(jnp.int32),
        "max_loss_increase": jnp.full((num_ids,), -jnp.inf, jnp.float32),
        "max_relative_loss_increase": jnp.full((num_ids,), -jnp.inf, jnp.float32),
        "loss_mean": zeros(jnp.float32), "loss_comoment": zeros(jnp.float32),
    }
    if per_epoch:
      tables["correct_by_epoch"] = jnp.zeros((num_ids, per_epoch), jnp.uint8)
      tables["loss_by_epoch"] = jnp.zeros((num_ids, per_epoch), jnp.float32)
    return tables

  def update(tables, outputs: StepOutputs):
    ids, mask, labels = outputs.example_ids, outputs.mask, outputs.labels
    logits = outputs.logits.astype(jnp.float32)
    loss = outputs.loss.astype(jnp.float32)
    correct = outputs.correct
    seen = tables["presentations"][ids]
    presentation = seen + 1  # 1-based index t of this presentation
    was_correct = tables["last_correct"][ids]
    previous_loss = tables["last_loss"][ids]
    first_learned = tables["first_learned"][ids]
    # Welford: the mean of t = 1…n−1 is n/2, so t − t̄_old = n/2 for t = n.
    loss_mean = tables["loss_mean"][ids]
    new_loss_mean = loss_mean + (loss - loss_mean) / presentation
    comoment_step = 0.5 * presentation * (loss - new_loss_mean)

    def put(name, values):
      return scatter_set(tables[name], ids, values, mask)

    new = {
        "presentations": put("presentations", seen + 1),
        "correct": put("correct", tables["correct"][ids] + correct),
        "forgetting_events": put("forgetting_events",
                                 tables["forgetting_events"][ids] + (was_correct & ~correct)),
        "last_correct": put("last_correct", correct),
        "probability_margin_sum": put(
            "probability_margin_sum", tables["probability_margin_sum"][ids]
            + score_fns.probability_margin(logits, labels)),
        "logit_margin_sum": put("logit_margin_sum", tables["logit_margin_sum"][ids]
                                + score_fns.logit_margin(logits, labels)),
        "el2n_sum": put("el2n_sum", tables["el2n_sum"][ids] + jnp.where(
            outputs.epoch < el2n_epochs, score_fns.el2n(logits, labels), 0.0)),
        "first_learned": put("first_learned", jnp.where(
            (first_learned == 0) & correct, presentation, first_learned)),
        "last_incorrect": put("last_incorrect", jnp.where(
            correct, tables["last_incorrect"][ids], presentation)),
        "last_loss": put("last_loss", loss),
        "max_loss_increase": put("max_loss_increase", jnp.where(
            seen > 0, jnp.maximum(tables["max_loss_increase"][ids], loss - previous_loss),
            tables["max_loss_increase"][ids])),
        "max_relative_loss_increase": put("max_relative_loss_increase", jnp.where(
            seen > 0, jnp.maximum(tables["max_relative_loss_increase"][ids],
                                  (loss - previous_loss) / (previous_loss + relative_delta)),
            tables["max_relative_loss_increase"][ids])),
        "loss_mean": put("loss_mean", new_loss_mean),
        "loss_comoment": put("loss_comoment", tables["loss_comoment"][ids] + comoment_step),
    }
    if per_epoch:
      # Column ``epoch`` of the rows; epochs past E (and padding rows) write nothing.
      in_range = mask & (outputs.epoch < per_epoch)
      column = jnp.minimum(outputs.epoch, per_epoch - 1)
      for name, values in (("correct_by_epoch", correct.astype(jnp.uint8)),
                           ("loss_by_epoch", loss)):
        safe_ids = jnp.where(in_range, ids, tables[name].shape[0])
        new[name] = tables[name].at[safe_ids, column].set(values, mode="drop")
    return new

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
  table = {name: np.asarray(values)[rows] for name, values in tables.items()}
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
