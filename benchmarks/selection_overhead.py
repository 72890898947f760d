"""What selection costs and saves on MNIST-1D (``mnist1d/large``, 45,000 training examples).

    python -m benchmarks.selection_overhead

Runs the calibrated-prioritization config (``configs/papers/calib_prioritization.py``,
cross-entropy) three times in this process and prints, as ratios measured in this one run:

1. one ``full_pass`` scoring pass over all training examples / one full-data training epoch
   (target <= 0.5);
2. one 10 % epoch / one full-data epoch, with ``train_step`` scores (target <= 0.15) and with
   ``full_pass`` scores (target <= 0.6); an epoch here is its training plus its scoring and
   selection, compilation excluded, validation excluded;
3. XLA compilations after the first selection epoch has ended (target 0);
4. the wall-clock speedup of the paper's protocol (200 epochs, the first 10 on all data,
   then 10 % per epoch, ``train_step`` scores) over 200 full-data epochs (target >= 4x), with
   both runs' test accuracy. Wall clock is the whole ``train_and_evaluate`` call with the
   dataset already loaded: validation every epoch, checkpoints, test, figures, and every
   compilation the run needs. A short throwaway run first warms up the process (XLA
   start-up, matplotlib); then JAX's caches are cleared before each measured run, so
   neither reuses the other's compiled programs (within one process runs otherwise share
   init, eval, scoring and selection, as in a seed loop or a grid).
"""

import contextlib
import io
import os
import shutil
import statistics
import tempfile
import time

import jax
from absl import app, flags, logging

from configs.papers import calib_prioritization as paper
from jaxsel import compilation, files, train

_EPOCHS = flags.DEFINE_integer("epochs", 200, "Epochs of the end-to-end comparison.")
_WARMUP = flags.DEFINE_integer("warmup_epochs", 10, "Full-data epochs before selecting.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where runs go (default: a temp dir).")
_DATASET = flags.DEFINE_string("dataset", None,
                               "TFDS name (default: the paper config's mnist1d/large).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default: TFDS's).")


def _config(*, percent: int, epochs: int, warmup: int, score_source: str = "train_step"):
  config = paper.get_config(f"mnist1d,none,{percent}")
  with config.unlocked():
    config.train.num_epochs = epochs
    config.method.warmup_epochs = warmup
    config.method.score_source = score_source
    config.progress_bar = "off"
    config.dataset.name = _DATASET.value or config.dataset.name
    config.dataset.data_dir = _DATA_DIR.value or config.dataset.data_dir
  return config


def _run(config, workdir, dataset, *, first_selection_epoch=None):
  """(summary + its compile seconds, records, wall seconds, compilations from the end of
  the first selection epoch to the end of the last epoch)."""
  compilations = {}

  def hook(epoch, record):
    del record
    if epoch == first_selection_epoch:
      compilations["after"] = compilation.CompileClock.compilations()
    if epoch == config.train.num_epochs - 1:
      compilations["end"] = compilation.CompileClock.compilations()

  jax.clear_caches()  # every run compiles what it runs, as a fresh process would
  compile_before, start = compilation.CompileClock.seconds(), time.perf_counter()
  with contextlib.redirect_stdout(io.StringIO()):
    summary = train.train_and_evaluate(config, workdir, dataset=dataset, on_epoch_end=hook)
  wall = time.perf_counter() - start
  summary["compile_seconds"] = compilation.CompileClock.seconds() - compile_before
  late = (compilations["end"] - compilations["after"] if "after" in compilations
          else None)
  return summary, files.read_jsonl(os.path.join(workdir, "metrics.jsonl")), wall, late


def _epoch_seconds(records, *, selection: bool) -> float:
  """Median training + scoring + selection seconds of warm-up or selection epochs
  (epoch 0, which compiles, left out)."""
  return statistics.median(
      r["train_seconds"] + r["scoring_seconds"] + r["selection_seconds"]
      for r in records[1:] if r["selection_epoch"] == selection)


def _line(name, value, target, met):
  print(f"  {name:<62} {value:>8}   target {target:<7} {'met' if met else 'NOT met'}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  root = _WORKDIR.value or tempfile.mkdtemp(prefix="selection_overhead_")
  epochs, warmup = _EPOCHS.value, _WARMUP.value
  data_config = _config(percent=100, epochs=epochs, warmup=warmup).dataset
  dataset = train.load_data(_config(percent=100, epochs=epochs, warmup=warmup))
  print(f"{data_config.name}: {len(dataset.train_ids):,} training examples; runs in {root}")
  # A throwaway run first, so that what a process pays once (XLA start-up, eager ops
  # compiled on first use) does not fall on whichever measured run happens to come first.
  print("[0/3] warm-up: 3 epochs, 10 % after 1")
  _run(_config(percent=10, epochs=3, warmup=1), os.path.join(root, "warm_up"), dataset)

  print(f"[1/3] {epochs} epochs, 10 % after {warmup} warm-up epochs, train_step scores")
  sel, sel_records, sel_wall, late = _run(
      _config(percent=10, epochs=epochs, warmup=warmup), os.path.join(root, "top_k_10"),
      dataset, first_selection_epoch=warmup)
  print(f"[2/3] {epochs} epochs on all data")
  full, full_records, full_wall, _ = _run(
      _config(percent=100, epochs=epochs, warmup=warmup), os.path.join(root, "full"), dataset)
  short = min(epochs, warmup + 10)
  print(f"[3/3] {short} epochs, 10 % after {warmup} warm-up epochs, full_pass scores")
  _, fp_records, _, fp_late = _run(
      _config(percent=10, epochs=short, warmup=warmup, score_source="full_pass"),
      os.path.join(root, "top_k_10_full_pass"), dataset, first_selection_epoch=warmup)

  full_epoch = _epoch_seconds(full_records, selection=False)
  scoring_pass = statistics.median(r["scoring_seconds"] for r in fp_records
                                   if r["selection_epoch"])
  ratio_train_step = _epoch_seconds(sel_records, selection=True) / full_epoch
  ratio_full_pass = _epoch_seconds(fp_records, selection=True) / full_epoch
  speedup = full_wall / sel_wall

  print(f"\nfull-data epoch: {full_epoch:.3f} s (training only, median)")
  _line("full_pass scoring pass / full-data epoch", f"{scoring_pass / full_epoch:.3f}",
        "<= 0.5", scoring_pass / full_epoch <= 0.5)
  _line("10 % epoch / full-data epoch, train_step scores", f"{ratio_train_step:.3f}",
        "<= 0.15", ratio_train_step <= 0.15)
  _line("10 % epoch / full-data epoch, full_pass scores", f"{ratio_full_pass:.3f}",
        "<= 0.6", ratio_full_pass <= 0.6)
  _line("compilations after the first selection epoch (train_step, full_pass)",
        f"{late}, {fp_late}", "0", late == 0 and fp_late == 0)
  _line(f"wall-clock speedup, {epochs} epochs ({warmup} warm-up, 10 %) vs all data",
        f"{speedup:.2f}x", ">= 4x", speedup >= 4)
  # The same comparison without what both runs pay once (compilation, which falls in
  # epoch 0, start-up, the test pass and the figures): epochs 1.. with their validation.
  steady = (sum(r["seconds"] for r in full_records[1:])
            / sum(r["seconds"] for r in sel_records[1:]))
  print(f"  {'(epochs 1.. only, validation included: ' + f'{steady:.2f}x)':<62}")
  print(f"\n  {'run':<26} {'wall s':>8} {'train s':>8} {'compile s':>9} {'test acc %':>10} "
        f"{'test ECE %':>10}")
  for name, summary, wall in (("all data", full, full_wall), ("10 % max entropy", sel,
                                                               sel_wall)):
    print(f"  {name:<26} {wall:>8.1f} {summary['train_seconds']:>8.1f} "
          f"{summary['compile_seconds']:>9.1f} {summary['test_accuracy']:>10.2f} "
          f"{summary['test_ece']:>10.2f}")
  if _WORKDIR.value is None:
    shutil.rmtree(root)


if __name__ == "__main__":
  app.run(main)
