"""Tables 1 and 2 of calibrated sample prioritization (Tata et al., 2022) on MNIST-1D.

    python -m experiments.calib_prioritization

runs, in this process and one after the other (sharing the loaded dataset):

1. the target model (``mnist1d,target_model``: a wider CNN with BatchNorm and mixup α = 0.3,
   trained on all data) which writes its entropies to ``scores.npz``;
2. every run of ``configs/papers/calib_prioritization.py``'s ``sweep('mnist1d')``:
   calibration ∈ {none, label smoothing, mixup, focal} × subset ∈ {100, 30, 20, 10} %
   (Table 1), the random-subset baseline at {30, 20, 10} %, and calibration × {30, 20, 10} %
   ranked by the target model (Table 2), each for 5 seeds;

then writes ``experiments/results/calib_prioritization_mnist1d.{md,csv}``, the claims
(``_claims.json``, decided seed by seed) and figures (``--report_only``: from finished runs). A run
whose workdir already holds ``summary.json`` is not run again, so an interrupted grid
resumes where it stopped. Each run is equivalent to the command printed in the table file.
"""

import os
import time

from absl import app, flags, logging

from configs.papers import calib_prioritization as paper
from experiments import calib_prioritization_report as report
from experiments import claims, grid
from jaxsel import files, train

_WORKDIR = flags.DEFINE_string("workdir", "runs/calib_prioritization",
                               "Parent directory of the runs.")
_OUTPUT = flags.DEFINE_string("output", "experiments/results/calib_prioritization_mnist1d",
                              "Path prefix of the .md / .csv / figure files.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"],
                           "Seeds of every cell (every cell decides a claim).")
_TABLES = flags.DEFINE_list("tables", ["1", "2"], "Which tables to run (1, 2).")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False,
                                 "Write the results files from finished runs; run nothing.")

DATASET = "mnist1d"
CONFIG_FILE = "configs/papers/calib_prioritization.py"
TARGET_ARG = f"{DATASET},target_model"


def run_dir(arg: str, seed: int) -> str:
  return grid.run_dir(_WORKDIR.value, arg, seed)


def command(arg: str, seed: int, target_path: str | None) -> str:
  overrides = {"method.target.path": target_path} if target_path else {}
  return grid.command(CONFIG_FILE, arg, seed, run_dir(arg, seed), overrides)


def _run(arg: str, seed: int, dataset, target_path: str | None) -> dict:
  config = paper.get_config(arg)
  with config.unlocked():
    config.seed = seed
    if target_path:
      config.method.target.path = target_path
  return grid.run(config, run_dir(arg, seed), dataset)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  seeds = [int(s) for s in _SEEDS.value]
  dataset = None if _REPORT_ONLY.value else train.load_data(paper.get_config(DATASET))
  jobs = []  # (arg, seed, needs_target)
  if "2" in _TABLES.value:
    jobs.append((TARGET_ARG, 0, False))
  for arg, seed in paper.sweep(DATASET, seeds=seeds):
    is_table2 = arg.endswith(",target")
    if str(2 if is_table2 else 1) in _TABLES.value:
      jobs.append((arg, seed, is_table2))
  target_path = run_dir(TARGET_ARG, 0)

  results, progress = [], grid.Progress(len(jobs))
  for arg, seed, needs_target in jobs:
    run_start = time.perf_counter()
    finished = grid.is_done(run_dir(arg, seed))
    if _REPORT_ONLY.value and not finished:
      continue
    summary = _run(arg, seed, dataset, target_path if needs_target else None)
    progress.done(f"{arg} seed {seed}", summary, time.perf_counter() - run_start,
                  earlier=finished)
    results.append({"arg": arg, "seed": seed, "summary": summary,
                    "command": command(arg, seed, target_path if needs_target else None),
                    "wall_seconds": grid.wall_seconds(run_dir(arg, seed))})

  grid.write_csv(_OUTPUT.value + ".csv", report.rows(results))
  figures = report.figures(results, _OUTPUT.value)
  grid_minutes = sum(r["wall_seconds"] for r in results) / 60
  files.write_text(_OUTPUT.value + ".md", report.markdown(
      results, figures=figures, seeds=seeds, grid_minutes=grid_minutes))
  claims.write(_OUTPUT.value + "_claims.json", claims.attach(
      report.claims(report.cells(results)), paper=report.PAPER_NAME,
      regime=f"MNIST-1D large (45,000 train), CNN, 100 epochs, lr 0.05; CE already "
             f"calibrated; the paper's CIFAR-10 ε/α/γ; {len(seeds)} seeds",
      table=os.path.basename(_OUTPUT.value) + ".md",
      command="python -m experiments.calib_prioritization"))
  print(f"wrote {_OUTPUT.value}.md and .csv ({len(results)} runs)")


if __name__ == "__main__":
  app.run(main)
