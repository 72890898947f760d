"""Table 1 of coverage-centric coreset selection (Zheng et al., ICLR 2023) on MNIST-1D or
Fashion-MNIST.

    python -m experiments.coverage_centric_coreset                          # MNIST-1D
    python -m experiments.coverage_centric_coreset --dataset=fashion_mnist  # 12,000 images

runs, in this process and one after the other (sharing the loaded dataset), with
``configs/papers/coverage_centric_coreset.py``:

1. one training-dynamics run per seed (``DATASET,scores``), which writes the seed's scores;
2. the choice of CCS's β for every pruning rate of the sweep on the validation split: the
   first seed's CCS coresets for every β of ``BETA_GRID`` that leaves enough examples, and
   the β of the best last-step validation accuracy (ties: the smaller β);
3. every run of the config's ``sweep(DATASET)``: {random, entropy, forgetting, EL2N, AUM,
   CCS} × pruning {30, 50, 70, 80, 90} % (Fashion-MNIST: {50, 80, 90} %) × 5 seeds, each
   seed's coresets chosen from that seed's scores, CCS with the chosen β;

then writes ``experiments/results/coverage_centric_coreset_<DATASET>.{md,csv}``, the claims
(``_claims.json``, decided seed by seed) and figures. A run whose workdir already holds
``summary.json`` is not run again, so an interrupted grid resumes where it stopped;
``--report_only`` writes the results files from the finished runs and runs nothing. Each run
is equivalent to the command in the table file.
"""

import time

from absl import app, flags, logging

from configs.papers import coverage_centric_coreset as paper
from experiments import coverage_centric_coreset_report as report
from experiments import grid
from jaxsel import train

DATASETS = ("mnist1d", "fashion_mnist")
_DATASET = flags.DEFINE_enum("dataset", "mnist1d", DATASETS, "The grid's dataset.")
_WORKDIR = flags.DEFINE_string(
    "workdir", "", "Parent directory of the runs; default runs/coverage_centric_coreset "
    "(MNIST-1D) or runs/coverage_centric_coreset_<dataset>.")
_OUTPUT = flags.DEFINE_string(
    "output", "", "Path prefix of the .md / .csv / figure / claims files; default "
    "experiments/results/coverage_centric_coreset_<dataset>.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"],
                           "Seeds of every cell (every cell decides a claim).")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False,
                                 "Write the results files from finished runs; run nothing.")

CONFIG_FILE = "configs/papers/coverage_centric_coreset.py"
BETA_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def workdir(dataset: str) -> str:
  """The parent of the grid's runs (MNIST-1D's as before the other datasets came)."""
  if _WORKDIR.value:
    return _WORKDIR.value
  return ("runs/coverage_centric_coreset" if dataset == "mnist1d"
          else f"runs/coverage_centric_coreset_{dataset}")


def output_prefix(dataset: str) -> str:
  return _OUTPUT.value or f"experiments/results/coverage_centric_coreset_{dataset}"


def scores_arg() -> str:
  return f"{_DATASET.value},scores"


def run_dir(arg: str, seed: int, beta: float | None = None) -> str:
  suffix = "" if beta is None else f"_beta{beta:g}"
  return grid.run_dir(workdir(_DATASET.value), arg + suffix, seed)


def _run(arg: str, seed: int, dataset, beta: float | None, progress) -> dict | None:
  """Runs (or reads) one run (``beta``: CCS's, else None); returns its result record, or
  None under ``--report_only`` for a run that has not finished."""
  workdir = run_dir(arg, seed, beta)
  if _REPORT_ONLY.value and not grid.is_done(workdir):
    return None
  overrides = {}
  if arg != scores_arg():  # a coreset run: chosen from this seed's scores
    overrides["method.scores_path"] = run_dir(scores_arg(), seed)
  if beta is not None:
    overrides["method.beta"] = beta
  start = time.perf_counter()
  summary, finished = grid.read_or_run(paper.get_config, arg, seed, overrides, workdir,
                                       dataset)
  label = f"{arg} seed {seed}" + ("" if beta is None else f" β={beta:g}")
  progress.done(label, summary, time.perf_counter() - start, earlier=finished)
  return {"arg": arg, "seed": seed, "beta": beta, "summary": summary,
          "command": grid.command(CONFIG_FILE, arg, seed, workdir, overrides),
          "wall_seconds": grid.wall_seconds(workdir)}


def _betas(percent: int) -> list[float]:
  """The β of the grid that leave at least the coreset after the cutoff (β ≤ pruning)."""
  return [beta for beta in BETA_GRID if beta <= percent / 100 + 1e-9]


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  seeds = [int(s) for s in _SEEDS.value]
  name, prefix = _DATASET.value, output_prefix(_DATASET.value)
  dataset = None if _REPORT_ONLY.value else train.load_data(paper.get_config(scores_arg()))
  sweep = paper.sweep(name, seeds=seeds)
  percents = paper.SWEEP_PERCENTS.get(name, paper.PRUNING_PERCENTS)
  search = [p for p in percents for _ in _betas(p)]
  progress = grid.Progress(len(seeds) + len(search) + len(sweep))
  finished = lambda runs: [r for r in runs if r is not None]  # noqa: E731

  score_runs = finished(_run(scores_arg(), seed, dataset, None, progress) for seed in seeds)
  search_runs, chosen_beta = [], {}
  for percent in percents:
    arg = f"{name},ccs,{percent}"
    runs = finished(_run(arg, seeds[0], dataset, beta, progress) for beta in _betas(percent))
    search_runs += runs
    if runs:  # none under --report_only before the search reached this rate
      best = max(runs, key=lambda r: (r["summary"]["val_accuracy"], -r["beta"]))
      chosen_beta[percent] = best["beta"]
  results = []
  for arg, seed in sweep:
    method, percent = arg.split(",")[1], int(arg.split(",")[2])
    if method != "ccs":
      results.append(_run(arg, seed, dataset, None, progress))
    elif percent in chosen_beta:
      results.append(_run(arg, seed, dataset, chosen_beta[percent], progress))
  results = finished(results)
  # The seeds with a finished run: fewer than --seeds under --report_only.
  reported = [s for s in seeds if any(r["seed"] == s for r in results)]

  strata_dir = (run_dir(f"{name},ccs,90", seeds[0], chosen_beta[90])
                if 90 in chosen_beta else None)
  report.write(results, score_runs, search_runs, chosen_beta=chosen_beta,
               prefix=prefix, seeds=reported, strata_dir=strata_dir)
  print(f"wrote {prefix}.md, .csv, _claims.json "
        f"({len(score_runs) + len(search_runs) + len(results)} runs)")


if __name__ == "__main__":
  app.run(main)
