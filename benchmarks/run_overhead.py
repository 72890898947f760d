"""Where the wall clock of one short run goes: imports, data, compilation, training epochs,
evaluation, checkpoints, figures; cold and with JAX's persistent compilation cache.

    python -m benchmarks.run_overhead

Runs, each in a fresh process as a user's ``python -m jaxsel.main`` would, the 10 % protocol
of calibrated prioritization on the default MNIST-1D (3,600 training examples): 200 epochs,
the first 10 on all data, then the 10 % of highest entropy each epoch, validation every
epoch, default checkpointing. Three settings: the persistent cache off; on but empty (the
first run on a machine, which also fills it); on and filled (every later run). Each is run
``--repeats`` times and the median of every part is printed, as seconds and as a share of
the process wall clock, with the two targets of this benchmark:

- everything except training epochs and evaluation <= 35 % of the process wall clock
  (judged on the default setting, the filled cache);
- checkpoints <= 5 % of the training epochs' time.

The parts (from the run's ``summary.json`` timings and a clock in the child process):
imports (interpreter start-up, imports and exit; the child exits as ``jaxsel.main`` does,
without tearing the interpreter down), data (loading the dataset), compilation
(model init, waiting for the programs compiled ahead, and what the main thread compiles
during the epochs), training epochs (the epochs' wall clock without their evaluation,
checkpoints and compilation: train steps, selection, logging), evaluation (validation and
test passes), checkpoints (the time the loop spends saving, and waiting for the last save),
figures (figures and the method's artifacts) and other (the rest).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PARTS = ("imports", "data", "compilation", "training epochs", "evaluation", "checkpoints",
         "figures", "other")
OVERRIDES = {"method.subset_fraction": 0.1, "progress_bar": "off"}


def _child(workdir: str, cache: str, args) -> None:
  """Runs one training run in this process and prints its timings as JSON."""
  start = time.perf_counter()
  import jaxsel.main  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from configs import default  # pylint: disable=import-outside-toplevel
  from jaxsel import compilation, train  # pylint: disable=import-outside-toplevel
  imports = time.perf_counter() - start
  compilation.enable_persistent_cache(compilation.cache_dir(cache))
  config = default.get_config("prioritization")
  with config.unlocked():
    overrides = dict(OVERRIDES, **{"train.num_epochs": args.epochs,
                                   "method.warmup_epochs": args.warmup_epochs})
    for dotted, value in overrides.items():
      section, _, field = dotted.rpartition(".")
      (config[section] if section else config)[field] = value
    config.dataset.name = args.dataset or config.dataset.name
    config.dataset.data_dir = args.data_dir or config.dataset.data_dir
  summary = train.train_and_evaluate(config, workdir)
  print(json.dumps({"imports": imports, "inside": time.perf_counter() - start,
                    "summary": summary}), flush=True)
  os._exit(0)  # as jaxsel.main does: no interpreter teardown  pylint: disable=protected-access


def _parts(wall: float, child: dict) -> dict[str, float]:
  summary = child["summary"]
  timings = summary["timings"]
  with open(os.path.join(child["workdir"], "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  epochs_wall = sum(r["seconds"] for r in records)
  in_loop_checkpoints = summary["checkpoint_seconds"] - timings["final_checkpoint_seconds"]
  parts = {
      "imports": child["imports"] + (wall - child["inside"]),
      "data": timings["data_seconds"],
      "compilation": timings["setup_seconds"] + timings["loop_compile_seconds"],
      "evaluation": summary["eval_seconds"] + timings["test_seconds"],
      "checkpoints": summary["checkpoint_seconds"],
      "figures": timings["figures_seconds"] + timings["finish_seconds"],
  }
  parts["training epochs"] = (epochs_wall - summary["eval_seconds"] - in_loop_checkpoints
                              - timings["loop_compile_seconds"])
  parts["other"] = wall - sum(parts.values())
  return parts


def _measure(cache: str, args, root: str) -> dict[str, float]:
  workdir = tempfile.mkdtemp(dir=root)
  shutil.rmtree(workdir)
  command = [sys.executable, "-m", "benchmarks.run_overhead", "--child", workdir,
             "--cache", cache, f"--epochs={args.epochs}",
             f"--warmup_epochs={args.warmup_epochs}"]
  command += [f"--dataset={args.dataset}"] if args.dataset else []
  command += [f"--data_dir={args.data_dir}"] if args.data_dir else []
  start = time.perf_counter()
  done = subprocess.run(command, check=True, capture_output=True, text=True)
  wall = time.perf_counter() - start
  child = json.loads(done.stdout.strip().splitlines()[-1])
  child["workdir"] = workdir
  return {"wall": wall, **_parts(wall, child),
          "test_accuracy": child["summary"]["test_accuracy"]}


def _table(name: str, runs: list[dict[str, float]]) -> dict[str, float]:
  median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
  print(f"\n{name}: process wall clock {median['wall']:.2f} s (median of {len(runs)}: "
        + ", ".join(f"{r['wall']:.2f}" for r in runs) + ")")
  for part in PARTS:
    print(f"  {part:<16} {median[part]:>6.2f} s  {100 * median[part] / median['wall']:>5.1f} %")
  overhead = median["wall"] - median["training epochs"] - median["evaluation"]
  median["overhead_share"] = overhead / median["wall"]
  median["checkpoint_share"] = median["checkpoints"] / median["training epochs"]
  print(f"  everything but training epochs and evaluation: {overhead:.2f} s = "
        f"{100 * median['overhead_share']:.1f} % of the wall clock")
  print(f"  checkpoints / training epochs: {100 * median['checkpoint_share']:.1f} %")
  return median


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=200)
  parser.add_argument("--warmup_epochs", type=int, default=10)
  parser.add_argument("--dataset", default=None, help="default: the config's (mnist1d)")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: TFDS's)")
  parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--cache", default="off", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    _child(args.child, args.cache, args)
    return
  root = tempfile.mkdtemp(prefix="run_overhead_")
  cache = os.path.join(root, "xla_cache")
  try:
    print(f"{args.epochs} epochs, {args.warmup_epochs} warm-up, then 10 % by max entropy; "
          f"{args.dataset or 'default MNIST-1D'}; each run a fresh process")
    off = _table("persistent cache off",
                 [_measure("off", args, root) for _ in range(args.repeats)])
    empty = []
    for _ in range(args.repeats):
      shutil.rmtree(cache, ignore_errors=True)
      empty.append(_measure(cache, args, root))
    _table("persistent cache on, empty (first run; fills it)", empty)
    filled = _table("persistent cache on, filled (the default, every later run)",
                    [_measure(cache, args, root) for _ in range(args.repeats)])
    print(f"\nspeedup of the filled cache over no cache: {off['wall'] / filled['wall']:.2f}x "
          "(process wall clock)")
    met = filled["overhead_share"] <= 0.35
    print(f"target: everything but training epochs and evaluation <= 35 % of the wall "
          f"clock: {100 * filled['overhead_share']:.1f} % ({'met' if met else 'NOT met'})")
    met = filled["checkpoint_share"] <= 0.05
    print(f"target: checkpoints <= 5 % of training epochs: "
          f"{100 * filled['checkpoint_share']:.1f} % ({'met' if met else 'NOT met'})")
    print(f"test accuracy (identical in every run): "
          f"{sorted({round(m['test_accuracy'], 4) for m in (off, filled)})}")
  finally:
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
  main()
