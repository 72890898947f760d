"""``train_and_evaluate(config, workdir)``: the generic loop of a run, orchestration only.

Per epoch: the method chooses the epoch's example ids → they are laid out as a fixed-shape
batch plan → jitted train chunks (no host sync until the epoch ends) → the method's epoch
bookkeeping → one ``metrics.jsonl`` record → validation and a log line when evaluation is
due → a checkpoint when one is due. At the end: test metrics of the last model (and of the
best-validation model), ``summary.json``, figures and the method's artifacts. Re-running on
an interrupted workdir resumes from its last checkpoint and produces the same numbers as an
uninterrupted run. Nothing here knows which method runs: that is ``jaxsel.methods``.
"""

import importlib
import json
import math
import os
import sys
import threading
import time

import jax
import ml_collections
import numpy as np
import tqdm

from jaxsel import (augment, checkpoint, compilation, config_checks, console, distributed,
                    durations, evaluation, files, losses, methods, metrics, models, optim,
                    selection, steps)
from jaxsel import workdir as workdir_lib
from jaxsel.config_errors import UserError
from jaxsel.data import iterators, loading, streaming, variants
from jaxsel.state import abstract_train_state, create_train_state

# Cost accounting, summed over epochs and kept in checkpoints.
COST_KEYS = ("train_seconds", "scoring_seconds", "selection_seconds",
             "examples_forwarded", "examples_backpropagated", "eval_seconds",
             "checkpoint_seconds")


class NonFiniteLossError(UserError, FloatingPointError):
  """The training loss became NaN or infinite; the message names the likely fields."""


def load_data(config: ml_collections.ConfigDict) -> loading.Dataset:
  """The dataset ``config.dataset`` describes."""
  data = config.dataset
  normalization = None
  if len(data.normalization_mean) or len(data.normalization_std):
    normalization = loading.Normalization(tuple(data.normalization_mean),
                                          tuple(data.normalization_std))
  dataset = loading.load_dataset(
      data.name, data_dir=data.data_dir or None, train_fraction=data.train_fraction,
      split_seed=data.split_seed, normalization=normalization, storage=data.storage,
      test_split=data.test_split,
      memory_budget_mb=data.memory_budget_mb, view=streaming.HostView(
          image_size=data.image_size, eval_crop_fraction=data.eval_crop_fraction))
  if data.train_subset_size:
    dataset = loading.subsample_train(dataset, data.train_subset_size, seed=data.split_seed)
  return dataset


def _say(line: str) -> None:
  """A line of the run's console output; process 0's alone on a multi-host run."""
  if distributed.is_writer():
    print(line, flush=True)


def _progress(config, total: int, desc: str):
  mode = config.progress_bar
  enabled = distributed.is_writer() and (mode == "on" or (mode == "auto" and
                                                          sys.stderr.isatty()))
  return tqdm.tqdm(total=total, desc=desc, leave=False, disable=not enabled)


def _run_chunks(config, train_chunk, state, data, plan, epoch):
  """Trains on one epoch's plan; returns (state, host-side sums, seconds without compile)."""
  compile_before, start = compilation.CompileClock.seconds(), time.perf_counter()
  totals = steps.empty_train_sums()
  with _progress(config, plan.num_chunks, f"epoch {epoch + 1}") as bar:
    for chunk_ids, chunk_mask in plan.chunks():
      state, totals = train_chunk(state, totals, data, chunk_ids, chunk_mask,
                                  np.int32(epoch))
      bar.update()
  totals = jax.device_get(totals)  # the epoch's only host sync
  seconds = (time.perf_counter() - start
             - (compilation.CompileClock.seconds() - compile_before))
  return state, totals, seconds


# Inputs this large overflow float32 activations in a few layers: the data is at fault then,
# not the step size.
_HUGE_INPUT = 1e6


def _nonfinite_cause(config, dataset) -> str:
  """Which fields to look at, from what the inputs look like."""
  smaller_steps = (f"lower config.optimizer.learning_rate (now "
                   f"{config.optimizer.learning_rate}) or check config.loss, config.mixing "
                   "and config.optimizer.momentum")
  if dataset.streamed and not dataset.uint8_inputs:  # float inputs, not read to inspect
    return ("the inputs stream from the files and were not inspected: check "
            "config.dataset.normalization_mean and config.dataset.normalization_std, or "
            + smaller_steps)
  if not dataset.uint8_inputs:
    inputs = dataset.pool.inputs
    finite = np.isfinite(inputs)
    largest = float(np.abs(inputs[finite]).max()) if finite.any() else math.inf
    if not finite.all() or largest > _HUGE_INPUT:
      what = "non-finite" if not finite.all() else f"as large as {largest:.3g}"
      return (f"the inputs are {what}: check config.dataset.normalization_mean, "
              "config.dataset.normalization_std, config.noise.value_mean and "
              "config.noise.value_std")
  return "the inputs are finite and moderate, so the steps are too large: " + smaller_steps


def _check_finite(train_loss: float, epoch: int, ckpt, workdir: str, config,
                  dataset) -> None:
  if math.isfinite(train_loss):
    return
  ckpt.wait()
  latest = ckpt.latest_epoch()
  # Not "good": it is verified only when a run resumes from it.
  kept = (f"the latest checkpoint (after epoch {latest + 1}) is kept in {workdir}"
          if latest is not None else "no checkpoint had been written yet")
  raise NonFiniteLossError(f"training loss became {train_loss} in epoch {epoch + 1}; "
                           f"{kept}; {_nonfinite_cause(config, dataset)}")


def _epoch_steps(config, method, plan, epoch: int, num_chosen: int) -> int:
  """The steps epoch ``epoch`` trains for on the ``num_chosen`` ids its method chose: the
  planned ones, or fewer where the method's epochs may shrink (``epoch_size_varies``)."""
  planned = method.examples_in_epoch(epoch)
  varies = method.epoch_size_varies and 0 < num_chosen <= planned
  if num_chosen != planned and not varies:
    raise RuntimeError(f"method {config.method.name!r} chose {num_chosen} examples in epoch "
                       f"{epoch}, not the {planned} it planned")
  available = durations.steps_per_epoch(num_chosen, batch_size=config.train.batch_size,
                                        drop_remainder=config.train.drop_remainder)
  if available == 0:
    raise UserError(f"epoch {epoch + 1} of method {config.method.name!r} kept {num_chosen} "
                    f"examples, fewer than config.train.batch_size="
                    f"{config.train.batch_size} with config.train.drop_remainder=True")
  return min(plan.epoch_steps[epoch], available)


class _Periodic:
  """When evaluation and checkpoints are due: every k epochs, every n steps, every s
  seconds (checkpoints only) and always after the last epoch."""

  def __init__(self, section: ml_collections.ConfigDict, plan: durations.TrainingPlan):
    self._section, self._plan = section, plan
    self._last_time = time.monotonic()

  def due(self, epoch: int) -> bool:
    section, plan = self._section, self._plan
    if epoch + 1 == plan.num_epochs:
      return True
    if durations.crossed(section.every_epochs, epoch, epoch + 1):
      return True
    if durations.crossed(section.every_steps, plan.steps_before(epoch),
                         plan.steps_before(epoch + 1)):
      return True
    seconds = section.get("every_seconds", 0)
    return bool(seconds) and time.monotonic() - self._last_time >= seconds

  def done(self) -> None:
    self._last_time = time.monotonic()


def _method_and_plan(config, dataset):
  method = methods.get_method(config.method.name)(config, dataset)
  plan = durations.plan_training(
      num_epochs=config.train.num_epochs, num_train_steps=config.train.num_train_steps,
      examples_in_epoch=method.examples_in_epoch, batch_size=config.train.batch_size,
      drop_remainder=config.train.drop_remainder)
  method.plan = plan
  return method, plan


def _train_step(config, method, dataset, plan):
  augment_fn = augment.get_augmentation(
      config.augmentation, input_shape=dataset.input_shape,
      normalized_black=dataset.normalization.normalized(0.0),
      normalization=dataset.normalization, uint8_inputs=dataset.uint8_inputs)
  return method.make_train_step(
      loss_fn=losses.from_config(config.loss),
      learning_rate_fn=optim.make_schedule(config, epoch_steps=plan.epoch_steps),
      schedule_unit=config.schedule.unit, augment_fn=augment_fn,
      mixing_fn=augment.get_mixing(config.mixing, input_shape=dataset.input_shape))


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    on_epoch_end=None,
    dataset: loading.Dataset | None = None,
) -> dict:
  """Trains, evaluates and writes everything to ``workdir``; returns the summary.

  ``dataset``, if given, must be what ``config.dataset`` loads (callers running many
  configs on one dataset pass it to skip re-reading it).

  Outputs: ``config.json``, the dataset variant's records (``variants.write_records``),
  ``metrics.jsonl`` (one record per epoch), ``checkpoints/``, and at the end
  ``summary.json``, ``reliability_test.png``, ``curves.png`` and the method's own files.
  ``on_epoch_end(epoch, record)`` is called after each epoch's record is written.

  The workdir is held (``jaxsel.workdir.held``) for the whole run, so a second process on
  it is refused; every check of the config, the data and the files it names runs before
  anything is written, so a refused run leaves the workdir as it was.

  Raises:
    UserError: bad input (a config value, a file it names, the workdir), before writing.
  """
  started = time.perf_counter()
  config_checks.check_config(config)
  with distributed.using(distributed.placement_for(config.num_devices)):
    workdir_lib.check_layout(workdir)
    with workdir_lib.held(workdir):
      return _train_and_evaluate(config, workdir, on_epoch_end, dataset, started)


def _has_checkpoints(directory: str) -> bool:
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def _train_and_evaluate(config, workdir, on_epoch_end, dataset, started) -> dict:
  config_path = workdir_lib.check_same_config(workdir, json.loads(config.to_json()))
  summary = workdir_lib.completed_summary(workdir)
  if summary is not None:
    _say(f"{workdir} is complete; summary: {os.path.join(workdir, 'summary.json')}")
    return summary
  if distributed.is_writer():
    workdir_lib.remove_stale_temporaries(workdir)

  timings = {}
  data_start = time.perf_counter()
  dataset = dataset or load_data(config)
  # Removal and noise (config.removal, config.noise); the same object when none is asked.
  dataset, variant = variants.apply(config, dataset)
  dataset = methods.get_method(config.method.name).run_dataset(config, dataset)
  timings["data_seconds"] = time.perf_counter() - data_start
  config_checks.check_against_data(config, dataset)
  method, plan = _method_and_plan(config, dataset)
  train_chunk = steps.jit_train_chunk(_train_step(config, method, dataset, plan))
  model = models.get_model(config.model.name, num_classes=dataset.num_classes,
                           **config.model.kwargs)
  state_args = dict(model=model, tx=optim.make_optimizer(config), seed=config.seed,
                    input_shape=dataset.input_shape,
                    trackers={name: t.init(len(dataset.pool))
                              for name, t in method.trackers().items()},
                    method_state=method.initial_method_state(plan))
  data = evaluation.run_data(dataset, config)
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  train_ahead = None
  if not _has_checkpoints(checkpoint_dir):
    # The train step compiles on a background thread (XLA compiles outside the GIL) while
    # this one compiles model init; it needs only the state's shapes. (A resumed state's
    # restored leaves may differ in weak type, so it compiles on first use instead.)
    chunk = np.zeros((config.train.steps_per_chunk, config.train.batch_size), np.int32)
    train_ahead = train_chunk.compile_ahead(
        abstract_train_state(**state_args), steps.empty_train_sums(), data, chunk,
        chunk.astype(bool), np.int32(0))
  state = distributed.current().replicate(create_train_state(**state_args))
  has_validation = len(dataset.validation_ids) > 0
  best = evaluation.snapshot(state) if has_validation else {}
  # Written only once every check has passed and the model has been built, so a rejected
  # config leaves nothing behind.
  if not os.path.exists(config_path):
    files.write_json(config_path, json.loads(config.to_json()))
  variants.write_records(variant, workdir)

  ckpt = checkpoint.Checkpointer(checkpoint_dir, max_to_keep=config.checkpoint.max_to_keep)
  # ``records``: every finished epoch's metrics record. Checkpoints hold them, so the log
  # is rewritten whole, contiguous, from the checkpoint a run resumes from (whatever
  # happened to metrics.jsonl meanwhile), and epochs past it run again.
  host = {"next_epoch": 0, "previous_ids": None, "best_val": None, "records": [],
          **{k: 0 for k in COST_KEYS}}
  latest = ckpt.restore_latest({"state": state, "best": best})
  if latest is not None:
    restored_epoch, restored, host = latest
    state, best = restored["state"], restored["best"]
  _say(console.start_line(config, dataset, plan, num_params=console.parameter_count(
      state.params), workdir=workdir, resumed_after=None if latest is None
      else restored_epoch, epochs_shrink=method.epoch_size_varies))
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  records = list(host["records"])
  files.write_text(metrics_path, "".join(files.jsonl_line(r) for r in records))

  evaluator = evaluation.Evaluator(config)
  # Queued behind the train step on the same background thread; the first evaluation and
  # the first selection epoch wait for them.
  evaluator.compile_ahead(state, data, dataset.validation_ids if has_validation
                          else evaluation.test_rows(dataset))
  method.compile_ahead(state, data)
  if train_ahead is not None:
    train_ahead.result()
  timings["setup_seconds"] = time.perf_counter() - started - timings["data_seconds"]

  evaluate, save = _Periodic(config.eval, plan), _Periodic(config.checkpoint, plan)
  loop_compile_start = compilation.CompileClock.seconds()
  if config.figures:
    # matplotlib takes ~0.3 s to import, only needed at the end; import it meanwhile, while
    # the main thread mostly waits on the device (which releases the GIL).
    threading.Thread(target=importlib.import_module, args=("jaxsel.plotting",),
                     daemon=True).start()
  # Kept as an array; it goes into ``host`` (a JSON list) only when a checkpoint is written.
  previous_ids = (None if host["previous_ids"] is None
                  else np.asarray(host["previous_ids"], np.int32))
  for epoch in range(host["next_epoch"], plan.num_epochs):
    start = time.perf_counter()
    choice = method.choose(epoch, state, data)
    state = choice.state
    batches = iterators.train_plan(
        choice.example_ids, batch_size=config.train.batch_size,
        steps_per_chunk=config.train.steps_per_chunk, shuffle_seed=(config.seed, epoch),
        drop_remainder=config.train.drop_remainder,
        num_steps=_epoch_steps(config, method, plan, epoch, len(choice.example_ids)))
    state, totals, train_seconds = _run_chunks(config, train_chunk, state, data, batches,
                                               epoch)
    train_loss = float(totals["loss"] / totals["count"])
    ckpt.check()  # a save that failed in the background stops the run now
    _check_finite(train_loss, epoch, ckpt, workdir, config, dataset)
    state = method.end_epoch(epoch, state, choice.example_ids)
    backpropagated, forwarded = method.epoch_examples(state, batches)

    host["next_epoch"] = epoch + 1
    host["train_seconds"] += train_seconds
    host["scoring_seconds"] += choice.costs["scoring_seconds"]
    host["selection_seconds"] += choice.costs["selection_seconds"]
    host["examples_backpropagated"] += backpropagated
    host["examples_forwarded"] += forwarded + choice.costs["examples_scored"]
    record = {
        "epoch": epoch,
        "step": plan.steps_before(epoch + 1),
        # The rate the train step last set (per-epoch schedules: this epoch's).
        "lr": float(state.opt_state.hyperparams["learning_rate"]),
        "train_loss": train_loss,
        "train_accuracy": 100.0 * float(totals["correct"] / totals["count"]),
        "selection_epoch": choice.selected,
        **selection.subset_diagnostics(choice.example_ids, previous_ids, dataset.pool.labels,
                              dataset.num_classes),
        "num_train_examples": batches.num_examples,
        "num_backpropagated": backpropagated,
        "num_steps": batches.num_steps,
        "train_seconds": train_seconds,
        **choice.costs,
    }
    previous_ids = choice.example_ids
    evaluated = evaluate.due(epoch)
    if evaluated and has_validation:
      eval_start = time.perf_counter()
      record.update(evaluation.percent_summary(
          evaluator.sums(state, data, dataset.validation_ids), "val"))
      if host["best_val"] is None or record["val_nll"] < host["best_val"]["nll"]:
        host["best_val"] = {"epoch": epoch, "nll": record["val_nll"]}
        best = evaluation.snapshot(state)
      host["eval_seconds"] += time.perf_counter() - eval_start
    record["seconds"] = time.perf_counter() - start
    records.append(record)
    files.append_text(metrics_path, files.jsonl_line(record))
    if evaluated:
      _say(console.epoch_line(record, plan.num_epochs))

    if save.due(epoch):
      save_start = time.perf_counter()
      host["previous_ids"] = previous_ids.tolist()
      host["records"] = records
      ckpt.save(epoch, {"state": state, "best": best}, host)
      host["checkpoint_seconds"] += time.perf_counter() - save_start
      save.done()
    if on_epoch_end is not None:
      on_epoch_end(epoch, record)

  # What the main thread compiled during the epochs (the first selection, say).
  timings["loop_compile_seconds"] = compilation.CompileClock.seconds() - loop_compile_start
  return _finish(config, workdir, state, best, method, dataset, data, evaluator, host,
                 records, ckpt, plan, timings, started)


def _finish(config, workdir, state, best, method, dataset, data, evaluator, host, records,
            ckpt, plan, timings, started) -> dict:
  """Test metrics of the last model (and of the best-validation model), figures, the
  method's artifacts and ``summary.json``.

  The last checkpoint is still being written in the background meanwhile; it is complete
  before ``summary.json``, which marks the run as done, is written.
  """
  test_start = time.perf_counter()
  test_sums = evaluator.sums(state, data, evaluation.test_rows(dataset))
  summary = {
      **evaluation.percent_summary(test_sums, "test"),
      "method": config.method.name,
      "num_epochs": plan.num_epochs,
      # The steps taken (fewer than planned where a method's epochs shrank).
      "num_train_steps": int(sum(r["num_steps"] for r in records)),
      "num_train_examples_seen": host["examples_backpropagated"],
      **{key: host[key] for key in COST_KEYS},
      "num_train": len(dataset.train_ids),
      "num_validation": len(dataset.validation_ids),
      "num_test": len(dataset.test),
      "dataset_fingerprint": dataset.fingerprint,
      "num_devices": distributed.current().num_devices,
      "num_processes": distributed.current().num_processes,
  }
  if host["best_val"] is not None:
    best_sums = evaluator.sums(best, data, evaluation.test_rows(dataset))
    summary["best_val_epoch"] = host["best_val"]["epoch"]
    summary.update({f"best_val_{k}": v for k, v in
                    evaluation.percent_summary(best_sums, "test").items()})
  evaluated = [r for r in records if "val_accuracy" in r]
  if evaluated:
    summary["val_accuracy"] = evaluated[-1]["val_accuracy"]
    summary["val_ece"] = evaluated[-1]["val_ece"]
  timings["test_seconds"] = time.perf_counter() - test_start

  figures_start = time.perf_counter()
  from jaxsel import plotting  # host-only: off the core import path
  diagram = metrics.reliability_diagram_data(test_sums)
  summary["test_reliability"] = {k: np.asarray(v).tolist() for k, v in diagram.items()}
  if config.figures:
    plotting.reliability_diagram(diagram, os.path.join(workdir, "reliability_test.png"),
                                 title=f"{config.dataset.name} test",
                                 ece=summary["test_ece"] / 100)  # the plot takes a fraction
    plotting.training_curves(records, os.path.join(workdir, "curves.png"))
  timings["figures_seconds"] = time.perf_counter() - figures_start
  finish_start = time.perf_counter()
  summary.update(method.finish(state, data, workdir, fingerprint=dataset.fingerprint,
                               num_epochs=plan.num_epochs))
  timings["finish_seconds"] = time.perf_counter() - finish_start
  wait_start = time.perf_counter()
  ckpt.wait()
  ckpt.close()
  timings["final_checkpoint_seconds"] = time.perf_counter() - wait_start
  summary["checkpoint_seconds"] += timings["final_checkpoint_seconds"]
  summary["timings"] = {**timings, "run_seconds": time.perf_counter() - started}
  files.write_json(os.path.join(workdir, "summary.json"), summary)
  _say("test: " + "  ".join(f"{k} {summary[k]:.4g}" for k in (
      "test_accuracy", "test_ece", "test_nll")) + f"  train {summary['train_seconds']:.1f}s")
  _say(console.files_line(workdir))
  return summary
