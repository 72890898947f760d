"""``train_and_evaluate(config, workdir)``: the outer loop of a run, orchestration only.

Per epoch: choose the epoch's example ids → lay them out as a fixed-shape batch plan →
jitted train chunks (no host sync until the epoch ends) → validation metrics → one log
line and one ``metrics.jsonl`` record → checkpoint. At the end: test metrics,
``summary.json`` and figures. Re-running on an interrupted workdir resumes from its last
checkpoint and produces the same numbers as an uninterrupted run.
"""

import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from jaxsel import (calibration, checkpoint, config_checks, epoch_selection, files, metrics,
                    models, optim, scores, steps, target, trackers)
from jaxsel.data import iterators, loading
from jaxsel.state import TrainState, abstract_train_state, create_train_state

EpochHook = Callable[[int, dict], None]


class NonFiniteLossError(FloatingPointError):
  pass


def _load_data(config) -> loading.Dataset:
  return loading.load_dataset(
      config.dataset.name, data_dir=config.dataset.data_dir or None,
      train_fraction=config.dataset.train_fraction, split_seed=config.dataset.split_seed)


def _check_workdir(config, workdir: str) -> str:
  """Refuses to continue a run that had another config; returns the config.json path."""
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    current = json.loads(config.to_json())
    if previous != current:
      changed = sorted(k for k in set(previous) | set(current)
                       if previous.get(k) != current.get(k))
      raise ValueError(
          f"{workdir} holds a run with a different config (top-level fields that differ: "
          f"{', '.join(changed)}); use a new --workdir. Existing run directories are never "
          "overwritten.")
  return path


def _device_data(dataset: loading.Dataset) -> dict[str, jax.Array]:
  """The pool rows (indexed by example id) followed by the test rows, on the device.

  One array for both, so validation and test passes share one compiled function; test
  example ``i`` is row ``len(pool) + i`` (see ``_test_rows``). Training ids are pool ids,
  so training never sees a test row.
  """
  return {"inputs": jax.device_put(np.concatenate([dataset.pool.inputs,
                                                   dataset.test.inputs])),
          "labels": jax.device_put(np.concatenate([dataset.pool.labels,
                                                   dataset.test.labels]))}


def _test_rows(dataset: loading.Dataset) -> np.ndarray:
  return np.arange(len(dataset.pool), len(dataset.pool) + len(dataset.test), dtype=np.int32)


def _progress(config, total: int, desc: str):
  mode = config.progress_bar
  enabled = mode == "on" or (mode == "auto" and sys.stderr.isatty())
  return tqdm.tqdm(total=total, desc=desc, leave=False, disable=not enabled)


class _Evaluator:
  """Full passes (padded, masked) that reduce to calibration sums on the device."""

  def __init__(self, config):
    self._config = config
    self._eval_chunk = steps.jit_eval_chunk(
        num_bins=config.metrics.num_bins,
        reference_binning=config.metrics.reference_binning)
    self._ahead = None

  def _plan(self, ids: np.ndarray) -> iterators.BatchPlan:
    # Every plan has chunks of one shape, whatever len(ids): one compiled program.
    return iterators.full_pass_plan(ids, batch_size=self._config.train.eval_batch_size,
                                    steps_per_chunk=self._config.train.steps_per_chunk)

  def compile_ahead(self, state: TrainState, data, ids: np.ndarray) -> None:
    """Starts compiling the pass in the background; the first ``sums`` waits for it."""
    chunk_ids, chunk_mask = next(iter(self._plan(ids).chunks()))
    self._ahead = self._eval_chunk.compile_ahead(
        state, metrics.empty_sums(self._config.metrics.num_bins), data, chunk_ids,
        chunk_mask)

  def sums(self, state: TrainState, data, ids: np.ndarray) -> metrics.CalibrationSums:
    if self._ahead is not None:
      self._ahead.result()
      self._ahead = None
    total = metrics.empty_sums(self._config.metrics.num_bins)
    for chunk_ids, chunk_mask in self._plan(ids).chunks():
      total = self._eval_chunk(state, total, data, chunk_ids, chunk_mask)
    return jax.device_get(total)


def _percent_summary(sums, prefix: str) -> dict[str, float]:
  """Accuracy and calibration errors in percent (as the papers report), NLL/Brier raw."""
  summary = metrics.summarize(sums)
  out = {}
  for key in ("accuracy", "ece", "mce", "oe"):
    out[f"{prefix}_{key}"] = 100.0 * float(summary[key])
  for key in ("nll", "brier"):
    out[f"{prefix}_{key}"] = float(summary[key])
  return out


def _epoch_line(record: dict, num_epochs: int) -> str:
  parts = [f"epoch {record['epoch'] + 1:>3}/{num_epochs}",
           f"lr {record['lr']:.4g}",
           f"train_loss {record['train_loss']:.4f}",
           f"train_acc {record['train_accuracy']:5.2f}%"]
  if "val_accuracy" in record:
    parts += [f"val_acc {record['val_accuracy']:5.2f}%", f"val_ece {record['val_ece']:5.2f}%"]
  if record["selection_epoch"]:
    overlap = record["overlap_with_previous"]
    parts.append(f"selected {record['num_selected']}"
                 + ("" if overlap is None else f" (overlap {overlap:.0f}%)"))
  parts.append(f"{record['seconds']:.2f}s")
  return "  ".join(parts)


def _run_chunks(config, train_chunk, state, data, plan, epoch):
  """Trains on one epoch's plan; returns (state, host-side sums, seconds without compile)."""
  compile_before, start = steps.CompileClock.seconds(), time.perf_counter()
  totals = steps.empty_train_sums()
  with _progress(config, plan.num_chunks, f"epoch {epoch + 1}") as bar:
    for chunk_ids, chunk_mask in plan.chunks():
      state, totals = train_chunk(state, totals, data, chunk_ids, chunk_mask,
                                  np.int32(epoch))
      bar.update()
  totals = jax.device_get(totals)  # the epoch's only host sync
  seconds = time.perf_counter() - start - (steps.CompileClock.seconds() - compile_before)
  return state, totals, seconds


def _planned_epoch_steps(config, selector: epoch_selection.EpochSelector,
                         num_train: int) -> list[int]:
  """Optimizer steps of every epoch: all data during warm-up, the subset after."""
  def steps_for(n):
    return optim.steps_per_epoch(n, batch_size=config.train.batch_size,
                                 drop_remainder=config.train.drop_remainder)
  return [steps_for(selector.num_selected if selector.is_selection_epoch(e) else num_train)
          for e in range(config.train.num_epochs)]


def _check_finite(train_loss: float, epoch: int, ckpt, workdir: str) -> None:
  if math.isfinite(train_loss):
    return
  ckpt.wait()
  last_good = ckpt.latest_epoch()
  kept = (f"the last good checkpoint (after epoch {last_good + 1}) is kept in {workdir}"
          if last_good is not None else "no checkpoint had been written yet")
  raise NonFiniteLossError(
      f"training loss became {train_loss} in epoch {epoch + 1}; {kept}. Lower "
      "optimizer.learning_rate or check the inputs.")


def _initial_trackers(config, num_ids: int) -> tuple[trackers.Tracker, dict]:
  """The per-example tables the train step keeps, and their initial values."""
  tables = {epoch_selection.SCORE_TABLE: trackers.last_score(scores.entropy)}
  if config.target.save_artifact:
    # [epochs, N] snapshots of the score table, written at the end of each epoch (the
    # train step leaves them alone).
    num_epochs = config.train.num_epochs
    tables[TRAJECTORY] = trackers.Tracker(
        init=lambda n: jnp.zeros((num_epochs, n), jnp.float32),
        update=lambda table, batch, logits, epoch: table)
  tracker = trackers.combine(tables)
  return tracker, tracker.init(num_ids)


TRAJECTORY = "entropy_trajectory"


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    on_epoch_end: EpochHook | None = None,
    dataset: loading.Dataset | None = None,
) -> dict:
  """Trains, evaluates and writes everything to ``workdir``; returns the summary.

  ``dataset``, if given, must be what ``config.dataset`` loads (callers running many
  configs on one dataset pass it to skip re-reading it).

  Outputs: ``config.json``, ``metrics.jsonl`` (one record per epoch), ``checkpoints/``,
  and at the end ``summary.json``, ``reliability_test.png``, ``curves.png``,
  ``scores_final.png`` and, with ``target.save_artifact``, ``target.npz``.
  ``on_epoch_end(epoch, record)`` is called after each epoch's record is written.
  """
  config_checks.check_config(config)
  config_path = _check_workdir(config, workdir)
  summary_path = os.path.join(workdir, "summary.json")
  if os.path.exists(summary_path):
    print(f"{workdir} is complete; summary: {summary_path}", flush=True)
    with open(summary_path) as f:
      return json.load(f)

  dataset = dataset or _load_data(config)
  config_checks.check_against_data(config, num_train=len(dataset.train_ids))
  target_artifact = None
  if config.target.path:
    target_artifact = target.load(config.target.path,
                                  fingerprint=loading.dataset_fingerprint(dataset),
                                  example_ids=dataset.train_ids)
  selector = epoch_selection.EpochSelector(config, dataset, target=target_artifact)
  # Written only once every check has passed, so a rejected config leaves nothing behind.
  if not os.path.exists(config_path):
    files.write_json(config_path, json.loads(config.to_json()))

  model = models.get_model(config.model.name, num_classes=dataset.num_classes,
                           **config.model.kwargs)
  learning_rate_fn = optim.make_schedule(
      config, epoch_steps=_planned_epoch_steps(config, selector, len(dataset.train_ids)))
  tracker, tables = _initial_trackers(config, len(dataset.pool))
  state_args = dict(model=model, tx=optim.make_optimizer(config),
                    rng=jax.random.PRNGKey(config.seed), input_shape=dataset.input_shape,
                    trackers=tables)
  data = _device_data(dataset)
  loss_fn, mixup_alpha = calibration.loss_and_mixup(config.calibration)
  score_unmixed = config.selection.score_unmixed_view and mixup_alpha > 0
  train_chunk = steps.jit_train_chunk(functools.partial(
      steps.train_step, loss_fn=loss_fn, learning_rate_fn=learning_rate_fn,
      schedule_unit=config.schedule.unit, update_trackers=tracker.update,
      mixup_alpha=mixup_alpha, score_unmixed_view=score_unmixed,
      augmentation=config.augmentation))

  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                 max_to_keep=config.checkpoint.max_to_keep)
  latest = ckpt.latest_epoch()
  train_ahead = None
  if latest is None:
    # The train step compiles on a background thread (XLA compiles outside the GIL) while
    # this one compiles model init; it needs only the state's shapes. (A resumed state's
    # restored leaves may differ in weak type, so it compiles on first use instead.)
    chunk = np.zeros((config.train.steps_per_chunk, config.train.batch_size), np.int32)
    train_ahead = steps.compile_ahead(train_chunk, (
        abstract_train_state(**state_args), steps.empty_train_sums(), data, chunk,
        chunk.astype(bool), np.int32(0)))
  state = create_train_state(**state_args)

  metrics_path = os.path.join(workdir, "metrics.jsonl")
  host = {"next_epoch": 0, "previous_ids": None, **{k: 0 for k in COST_KEYS}}
  if latest is not None:
    state, host = ckpt.restore(latest, state)
    print(f"resuming {workdir} after epoch {latest + 1}", flush=True)
  # Records past the checkpoint belong to epochs that will run again.
  records = [r for r in files.read_jsonl(metrics_path) if r["epoch"] < host["next_epoch"]]
  # Each record is serialised once; the file is rewritten (atomically) from these lines.
  lines = [files.jsonl_line(r) for r in records]
  files.write_text(metrics_path, "".join(lines))

  evaluator = _Evaluator(config)
  # Queued behind the train step on the same background thread; the first validation and
  # the first selection epoch wait for them.
  evaluator.compile_ahead(state, data, dataset.validation_ids if len(dataset.validation_ids)
                          else _test_rows(dataset))
  selector.compile_ahead(state, data)
  if train_ahead is not None:
    train_ahead.result()

  num_epochs = config.train.num_epochs
  # Kept as an array; it goes into ``host`` (a JSON list) only when a checkpoint is written.
  previous_ids = (None if host["previous_ids"] is None
                  else np.asarray(host["previous_ids"], np.int32))
  for epoch in range(host["next_epoch"], num_epochs):
    start = time.perf_counter()
    epoch_ids, state, costs = selector.choose(epoch, state, data)
    plan = iterators.train_plan(
        epoch_ids, batch_size=config.train.batch_size,
        steps_per_chunk=config.train.steps_per_chunk, shuffle_seed=(config.seed, epoch),
        drop_remainder=config.train.drop_remainder)
    state, totals, train_seconds = _run_chunks(config, train_chunk, state, data, plan, epoch)
    train_loss = float(totals["loss"] / totals["count"])
    _check_finite(train_loss, epoch, ckpt, workdir)
    if TRAJECTORY in state.trackers:
      snapshot = state.trackers[TRAJECTORY].at[epoch].set(
          state.trackers[epoch_selection.SCORE_TABLE])
      state = state.replace(trackers={**state.trackers, TRAJECTORY: snapshot})

    host["next_epoch"] = epoch + 1
    host["train_seconds"] += train_seconds
    host["scoring_seconds"] += costs["scoring_seconds"]
    host["selection_seconds"] += costs["selection_seconds"]
    host["examples_backpropagated"] += plan.num_examples
    host["examples_forwarded"] += (plan.num_examples * (2 if score_unmixed else 1)
                                   + costs["examples_scored"])
    record = {
        "epoch": epoch,
        # The rate the train step last set (per-epoch schedules: this epoch's).
        "lr": float(state.opt_state.hyperparams["learning_rate"]),
        "train_loss": train_loss,
        "train_accuracy": 100.0 * float(totals["correct"] / totals["count"]),
        "selection_epoch": selector.is_selection_epoch(epoch),
        **epoch_selection.subset_diagnostics(epoch_ids, previous_ids, dataset.pool.labels,
                                             dataset.num_classes),
        "num_train_examples": plan.num_examples,
        "num_steps": plan.num_steps,
        "train_seconds": train_seconds,
        **costs,
    }
    previous_ids = epoch_ids
    if len(dataset.validation_ids):
      record.update(_percent_summary(evaluator.sums(state, data, dataset.validation_ids),
                                     "val"))
    record["seconds"] = time.perf_counter() - start
    records.append(record)
    lines.append(files.jsonl_line(record))
    files.write_text(metrics_path, "".join(lines))
    print(_epoch_line(record, num_epochs), flush=True)

    if (epoch + 1) % config.checkpoint.every_epochs == 0 or epoch + 1 == num_epochs:
      host["previous_ids"] = previous_ids.tolist()
      ckpt.save(epoch, state, host)
    if on_epoch_end is not None:
      on_epoch_end(epoch, record)

  return _finish(config, workdir, state, dataset, data, evaluator, selector, host, records,
                 ckpt)


# Cost accounting, summed over epochs and kept in checkpoints.
COST_KEYS = ("train_seconds", "scoring_seconds", "selection_seconds",
             "examples_forwarded", "examples_backpropagated")


def _finish(config, workdir, state, dataset, data, evaluator, selector, host, records,
            ckpt) -> dict:
  """Test metrics with the last-epoch model, figures, artifacts and ``summary.json``.

  The last checkpoint is still being written in the background meanwhile; it is complete
  before ``summary.json``, which marks the run as done, is written.
  """
  from jaxsel import plotting  # host-only; kept out of the core import path

  test_sums = evaluator.sums(state, data, _test_rows(dataset))
  summary = {
      **_percent_summary(test_sums, "test"),
      "num_epochs": config.train.num_epochs,
      "num_train_examples_seen": host["examples_backpropagated"],
      **{key: host[key] for key in COST_KEYS},
      "num_train": len(dataset.train_ids),
      "num_validation": len(dataset.validation_ids),
      "num_test": len(dataset.test),
      "num_selected": selector.num_selected,
      "dataset_fingerprint": loading.dataset_fingerprint(dataset),
  }
  if records and "val_accuracy" in records[-1]:
    summary["val_accuracy"] = records[-1]["val_accuracy"]
    summary["val_ece"] = records[-1]["val_ece"]
  diagram = metrics.reliability_diagram_data(test_sums)
  summary["test_reliability"] = {k: np.asarray(v).tolist() for k, v in diagram.items()}
  plotting.reliability_diagram(diagram, os.path.join(workdir, "reliability_test.png"),
                               title=f"{config.dataset.name} test",
                               ece=summary["test_ece"] / 100)  # the plot takes a fraction
  plotting.training_curves(records, os.path.join(workdir, "curves.png"))
  final_scores = np.asarray(state.trackers[epoch_selection.SCORE_TABLE])[dataset.train_ids]
  plotting.score_histogram(final_scores, os.path.join(workdir, "scores_final.png"),
                           title="final score table (normalised entropy, training ids)")
  if config.target.save_artifact:
    fresh = selector.refresh_scores(state, data).trackers[epoch_selection.SCORE_TABLE]
    target.save(os.path.join(workdir, target.FILENAME), target.TargetArtifact(
        example_ids=dataset.train_ids,
        trajectory=np.asarray(state.trackers[TRAJECTORY])[:, dataset.train_ids].T,
        final_entropy=np.asarray(fresh)[dataset.train_ids],
        fingerprint=summary["dataset_fingerprint"], dataset_name=dataset.name,
        checkpoint_dir=os.path.join(os.path.abspath(workdir), "checkpoints")))
  ckpt.wait()
  ckpt.close()
  files.write_json(os.path.join(workdir, "summary.json"), summary)
  print("test: " + "  ".join(f"{k} {summary[k]:.4g}" for k in (
      "test_accuracy", "test_ece", "test_nll")) + f"  train {summary['train_seconds']:.1f}s",
        flush=True)
  return summary
