"""Runs one config over several seeds and tabulates last-epoch test metrics.

    python -m experiments.seeds --config=configs/default.py --seeds=0,1,2 \\
        --workdir=runs/default_seeds --output=experiments/results/default_mnist1d.md

Each seed runs through ``jaxsel.main`` in its own process (so compile and start-up costs
are the ones a user sees) into ``WORKDIR/seed<N>``; finished seeds are not re-run. The
table reports mean ± std (population std over seeds) of the last-epoch model.
"""

import json
import os
import shlex
import statistics
import subprocess
import sys
import time

from absl import app, flags

from jaxsel import files

_CONFIG = flags.DEFINE_string("config", "configs/default.py", "Config file (with :arg).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/default_seeds", "Parent run directory.")
_OUTPUT = flags.DEFINE_string("output", None, "Markdown table to write (optional).")
_OVERRIDES = flags.DEFINE_multi_string("override", [], "Extra --config.field=value flags.")

# (summary key, column title, decimals)
METRICS = (("test_accuracy", "test accuracy (%)", 2), ("test_ece", "test ECE (%)", 2),
           ("test_nll", "test NLL", 3), ("train_seconds", "train s (no compile)", 2),
           ("wall_seconds", "wall s (whole command)", 1))


def _run_seed(seed: str) -> dict:
  workdir = os.path.join(_WORKDIR.value, f"seed{seed}")
  summary_path = os.path.join(workdir, "summary.json")
  command = [sys.executable, "-m", "jaxsel.main", f"--config={_CONFIG.value}",
             f"--workdir={workdir}", f"--config.seed={seed}", *_OVERRIDES.value]
  wall = None
  if not os.path.exists(summary_path):
    print("$ " + shlex.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
  with open(summary_path) as f:
    summary = json.load(f)
  summary["wall_seconds"] = wall if wall is not None else float("nan")
  return summary


def _mean_std(values, decimals: int) -> str:
  values = [v for v in values if v == v]  # drop NaN (seeds finished earlier)
  if not values:
    return "—"
  return f"{statistics.mean(values):.{decimals}f} ± {statistics.pstdev(values):.{decimals}f}"


def main(argv):
  del argv
  summaries = [_run_seed(seed) for seed in _SEEDS.value]
  command = ("python -m experiments.seeds " + f"--config={_CONFIG.value} "
             f"--seeds={','.join(_SEEDS.value)}" +
             "".join(f" --override={o}" for o in _OVERRIDES.value))
  lines = [f"Command: `{command}`", "",
           f"{len(summaries)} seeds ({', '.join(_SEEDS.value)}), last-epoch model, "
           "mean ± std over seeds.", "",
           "| " + " | ".join(label for _, label, _ in METRICS) + " |",
           "|" + "---|" * len(METRICS),
           "| " + " | ".join(_mean_std([s[key] for s in summaries], decimals)
                             for key, _, decimals in METRICS) + " |"]
  table = "\n".join(lines) + "\n"
  print(table)
  if _OUTPUT.value:
    files.write_text(_OUTPUT.value, table)


if __name__ == "__main__":
  app.run(main)
