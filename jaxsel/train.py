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

from jaxsel import checkpoint, config_checks, files, losses, metrics, models, optim, steps
from jaxsel.data import iterators, loading
from jaxsel.state import TrainState, create_train_state

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


def _device_split(inputs: np.ndarray, labels: np.ndarray) -> dict[str, jax.Array]:
  return {"inputs": jax.device_put(inputs), "labels": jax.device_put(labels)}


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

  def sums(self, state: TrainState, data, ids: np.ndarray) -> metrics.CalibrationSums:
    plan = iterators.full_pass_plan(ids, batch_size=self._config.train.eval_batch_size,
                                    steps_per_chunk=1)
    total = metrics.empty_sums(self._config.metrics.num_bins)
    for chunk_ids, chunk_mask in plan.chunks():
      total = jax.tree.map(jnp.add, total,
                           self._eval_chunk(state, data, chunk_ids, chunk_mask))
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
  parts.append(f"{record['seconds']:.2f}s")
  return "  ".join(parts)


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    on_epoch_end: EpochHook | None = None,
) -> dict:
  """Trains, evaluates and writes everything to ``workdir``; returns the summary.

  Outputs: ``config.json``, ``metrics.jsonl`` (one record per epoch), ``checkpoints/``,
  and at the end ``summary.json``, ``reliability_test.png`` and ``curves.png``.
  ``on_epoch_end(epoch, record)`` is called after each epoch's record is written.
  """
  config_checks.check_config(config)
  config_path = _check_workdir(config, workdir)
  summary_path = os.path.join(workdir, "summary.json")
  if os.path.exists(summary_path):
    print(f"{workdir} is complete; summary: {summary_path}", flush=True)
    with open(summary_path) as f:
      return json.load(f)

  dataset = _load_data(config)
  config_checks.check_against_data(config, num_train=len(dataset.train_ids))
  # Written only once every check has passed, so a rejected config leaves nothing behind.
  if not os.path.exists(config_path):
    files.write_json(config_path, json.loads(config.to_json()))
  train_cfg = config.train

  model = models.get_model(config.model.name, num_classes=dataset.num_classes,
                           **config.model.kwargs)
  tx = optim.make_optimizer(config)
  full_steps = optim.steps_per_epoch(len(dataset.train_ids), batch_size=train_cfg.batch_size,
                                     drop_remainder=train_cfg.drop_remainder)
  learning_rate_fn = optim.make_schedule(config, steps_per_epoch=full_steps)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(config.seed),
                             input_shape=dataset.input_shape)

  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                 max_to_keep=config.checkpoint.max_to_keep)
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  host = {"next_epoch": 0, "num_train_examples_seen": 0, "train_seconds": 0.0}
  latest = ckpt.latest_epoch()
  if latest is not None:
    state, host = ckpt.restore(latest, state)
    print(f"resuming {workdir} after epoch {latest + 1}", flush=True)
  # Records past the checkpoint belong to epochs that will run again.
  records = [r for r in files.read_jsonl(metrics_path) if r["epoch"] < host["next_epoch"]]
  files.write_jsonl(metrics_path, records)

  pool = _device_split(dataset.pool.inputs, dataset.pool.labels)
  step_fn = functools.partial(
      steps.train_step, loss_fn=losses.get_loss(config.loss.name),
      learning_rate_fn=learning_rate_fn, schedule_unit=config.schedule.unit)
  train_chunk = steps.jit_train_chunk(step_fn)
  evaluator = _Evaluator(config)

  num_epochs = train_cfg.num_epochs
  for epoch in range(host["next_epoch"], num_epochs):
    epoch_ids = dataset.train_ids  # the seam where selection methods choose a subset
    plan = iterators.train_plan(
        epoch_ids, batch_size=train_cfg.batch_size, steps_per_chunk=train_cfg.steps_per_chunk,
        shuffle_seed=(config.seed, epoch), drop_remainder=train_cfg.drop_remainder)

    compile_before, start = steps.CompileClock.seconds(), time.perf_counter()
    totals = steps.empty_train_sums()
    with _progress(config, plan.num_chunks, f"epoch {epoch + 1}") as bar:
      for chunk_ids, chunk_mask in plan.chunks():
        state, sums = train_chunk(state, pool, chunk_ids, chunk_mask, np.int32(epoch))
        totals = jax.tree.map(jnp.add, totals, sums)
        bar.update()
    totals = jax.device_get(totals)  # the epoch's only host sync
    train_seconds = (time.perf_counter() - start
                     - (steps.CompileClock.seconds() - compile_before))

    train_loss = float(totals["loss"] / totals["count"])
    if not math.isfinite(train_loss):
      ckpt.wait()
      last_good = ckpt.latest_epoch()
      kept = (f"the last good checkpoint (after epoch {last_good + 1}) is kept in {workdir}"
              if last_good is not None else "no checkpoint had been written yet")
      raise NonFiniteLossError(
          f"training loss became {train_loss} in epoch {epoch + 1}; {kept}. Lower "
          "optimizer.learning_rate or check the inputs.")

    host["next_epoch"] = epoch + 1
    host["num_train_examples_seen"] += plan.num_examples
    host["train_seconds"] += train_seconds
    position = epoch if config.schedule.unit == "epoch" else int(state.step) - 1
    record = {
        "epoch": epoch,
        "lr": float(learning_rate_fn(position)),
        "train_loss": train_loss,
        "train_accuracy": 100.0 * float(totals["correct"] / totals["count"]),
        "num_train_examples": plan.num_examples,
        "num_steps": plan.num_steps,
        "train_seconds": train_seconds,
    }
    if len(dataset.validation_ids):
      record.update(_percent_summary(evaluator.sums(state, pool, dataset.validation_ids),
                                     "val"))
    record["seconds"] = time.perf_counter() - start
    records.append(record)
    files.write_jsonl(metrics_path, records)
    print(_epoch_line(record, num_epochs), flush=True)

    if (epoch + 1) % config.checkpoint.every_epochs == 0 or epoch + 1 == num_epochs:
      ckpt.save(epoch, state, host)
    if on_epoch_end is not None:
      on_epoch_end(epoch, record)

  ckpt.wait()
  ckpt.close()
  return _finish(config, workdir, state, dataset, evaluator, host, records)


def _finish(config, workdir, state, dataset, evaluator, host, records) -> dict:
  """Test metrics with the last-epoch model, figures and ``summary.json``."""
  from jaxsel import plotting  # host-only; kept out of the core import path

  test = _device_split(dataset.test.inputs, dataset.test.labels)
  test_sums = evaluator.sums(state, test, np.arange(len(dataset.test), dtype=np.int32))
  summary = {
      **_percent_summary(test_sums, "test"),
      "num_epochs": config.train.num_epochs,
      "num_train_examples_seen": host["num_train_examples_seen"],
      "train_seconds": host["train_seconds"],
      "num_train": len(dataset.train_ids),
      "num_validation": len(dataset.validation_ids),
      "num_test": len(dataset.test),
      "dataset_fingerprint": loading.dataset_fingerprint(dataset),
  }
  if records and "val_accuracy" in records[-1]:
    summary["val_accuracy"] = records[-1]["val_accuracy"]
    summary["val_ece"] = records[-1]["val_ece"]
  diagram = metrics.reliability_diagram_data(test_sums)
  plotting.reliability_diagram(diagram, os.path.join(workdir, "reliability_test.png"),
                               title=f"{config.dataset.name} test", ece=summary["test_ece"])
  plotting.training_curves(records, os.path.join(workdir, "curves.png"))
  files.write_json(os.path.join(workdir, "summary.json"), summary)
  print("test: " + "  ".join(f"{k} {summary[k]:.4g}" for k in (
      "test_accuracy", "test_ece", "test_nll")) + f"  train {summary['train_seconds']:.1f}s",
        flush=True)
  return summary
