"""Calibrated sample prioritization where cross-entropy is over-confident, with each
calibration's ε / α / γ chosen by validation ECE: Tables 1 and 2 of Tata et al. (2022).

    python -m experiments.calib_prioritization_tuned                # the whole grid
    python -m experiments.calib_prioritization_tuned --report_only  # tables from its runs

The regime is ``configs/papers/calib_prioritization.py:mnist1d_small``: the default
MNIST-1D (3,600 training / 400 validation / 1,000 test), 200 epochs of which 10 on all
data, lr 0.01, batch 32, cosine; plain cross-entropy ends there with test ECE about 4.5 %,
most of it over-confidence. Stages, one after the other in this process (the dataset is
loaded once):

1. **Target model** (Table 2's ranker): the wider CNN with mixup α ∈ ``TARGET_ALPHAS``
   on the tuning seeds; the α with the lowest mean *validation* ECE is chosen, then run on
   the other seeds. Seed s's Table 2 runs rank by seed s's target.
2. **Table 1**: cross-entropy at 100 / 30 / 20 / 10 % and the random-subset baseline at
   30 / 20 / 10 %, on every seed; each calibration × subset size runs every value of
   ``TUNING_VALUES`` on the tuning seeds, the value with the lowest mean validation ECE is
   chosen and run on the other seeds.
3. **Table 2**: the same with the max-entropy ranking taken from the target model.

Test metrics are never looked at for a choice. Each run's workdir is
``WORKDIR/<arg>[_<value>]/seed<N>``; a workdir holding ``summary.json`` is read, not
re-run, so a killed grid continues where it stopped. The tables, the choices and every
command go to ``experiments/results/calib_prioritization_tuned_mnist1d_small.*``.
"""

import dataclasses
import statistics
import time

from absl import app, flags, logging

from configs.papers import calib_prioritization as paper
from experiments import calib_prioritization_tuned_report as report
from experiments import grid
from jaxsel import train

_WORKDIR = flags.DEFINE_string("workdir", "runs/calib_prioritization_tuned",
                               "Parent directory of the runs.")
_OUTPUT = flags.DEFINE_string(
    "output", "experiments/results/calib_prioritization_tuned_mnist1d_small",
    "Path prefix of the .md / .csv / figure / claims files.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds of every cell.")
_TUNING_SEEDS = flags.DEFINE_list("tuning_seeds", ["0", "1", "2"],
                                  "Seeds whose mean validation ECE chooses each value.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False,
                                 "Write the results files from finished runs; run nothing.")

DATASET = report.DATASET
CONFIG_FILE = "configs/papers/calib_prioritization.py"
TARGET_ARG = f"{DATASET},target_model"
SUBSETS = (30, 20, 10)
CALIBRATED = ("label_smoothing", "mixup", "focal")


@dataclasses.dataclass(frozen=True)
class Cell:
  """One tuned or untuned cell: a config argument and, if tuned, its hyper-parameter."""
  arg: str
  calibration: str  # 'none' or a CALIBRATED name (the target model: 'mixup')
  value: float | None = None

  @property
  def label(self) -> str:
    return self.arg if self.value is None else f"{self.arg}@{self.value:g}"


def run_dir(cell: Cell, seed: int) -> str:
  name = cell.arg if cell.value is None else f"{cell.arg}_{cell.value:g}"
  return grid.run_dir(_WORKDIR.value, name, seed)


def overrides(cell: Cell, seed: int, target_alpha: float | None) -> dict:
  """The fields a run sets beyond its config argument: the tuned value, and for Table 2
  the score file of the same seed's target model (trained with the chosen α)."""
  out = {}
  if cell.value is not None:
    section, field = paper.HPARAM_FIELD[cell.calibration]
    out[f"{section}.{field}"] = cell.value
  if cell.arg.endswith(",target"):
    out["method.target.path"] = run_dir(Cell(TARGET_ARG, "mixup", target_alpha), seed)
  return out


class Runner:
  """Runs (or reads) each (cell, seed) once and keeps every result."""

  def __init__(self, dataset, total: int, report_only: bool):
    self.results, self._dataset, self._report_only = [], dataset, report_only
    self.target_alpha = None  # chosen in stage 1, before any Table 2 run
    self._progress = grid.Progress(total)

  def __call__(self, cell: Cell, seed: int, stage: str) -> dict | None:
    workdir, extra = run_dir(cell, seed), overrides(cell, seed, self.target_alpha)
    if self._report_only and not grid.is_done(workdir):
      return None
    start = time.perf_counter()
    summary, earlier = grid.read_or_run(paper.get_config, cell.arg, seed, extra, workdir,
                                        self._dataset)
    self._progress.done(f"{cell.label} seed {seed}", summary,
                        time.perf_counter() - start, earlier=earlier)
    result = {"arg": cell.arg, "calibration": cell.calibration, "value": cell.value,
              "seed": seed, "stage": stage, "summary": summary,
              "command": grid.command(CONFIG_FILE, cell.arg, seed, workdir, extra),
              "wall_seconds": grid.wall_seconds(workdir)}
    self.results.append(result)
    return result


def tune(runner: Runner, arg: str, calibration: str, values, seeds, tuning_seeds,
         stage: str) -> dict:
  """Runs every value on the tuning seeds, chooses the lowest mean validation ECE (the
  first on a tie), runs it on the other seeds; returns the choice record."""
  val_ece = {}
  for value in values:
    found = [runner(Cell(arg, calibration, value), s, stage) for s in tuning_seeds]
    found = [r for r in found if r is not None]
    if found:
      val_ece[value] = statistics.fmean(r["summary"]["val_ece"] for r in found)
  if not val_ece:
    return {"arg": arg, "calibration": calibration, "val_ece": {}, "chosen": None}
  chosen = min(val_ece, key=val_ece.get)
  for seed in seeds:
    if seed not in tuning_seeds:
      runner(Cell(arg, calibration, chosen), seed, stage)
  return {"arg": arg, "calibration": calibration, "val_ece": val_ece, "chosen": chosen}


def jobs_total(seeds, tuning_seeds) -> int:
  """Runs in the whole grid: a tuned cell is every value on the tuning seeds plus the
  chosen value on the others; 7 untuned cells in Table 1 (cross-entropy at 4 sizes, random
  at 3) and 3 in Table 2; tuned cells at 4 sizes in Table 1 and 3 in Table 2."""
  extra = len(set(seeds) - set(tuning_seeds))
  tuned = lambda values: len(values) * len(tuning_seeds) + extra  # noqa: E731
  return (tuned(paper.TARGET_ALPHAS) + 10 * len(seeds)
          + 7 * sum(tuned(paper.TUNING_VALUES[c]) for c in CALIBRATED))


def run_grid(runner, seeds, tuning_seeds) -> list[dict]:
  """Every stage, in order, through ``runner(cell, seed, stage)``; returns the choices."""
  choices = [tune(runner, TARGET_ARG, "mixup", paper.TARGET_ALPHAS, seeds, tuning_seeds,
                  "target model")]
  runner.target_alpha = choices[0]["chosen"]
  for variant, percents in (("", (100, *SUBSETS)), ("target", SUBSETS)):
    if variant and runner.target_alpha is None:
      break  # --report_only before any target model finished
    stage = "table 2" if variant else "table 1"
    suffix = f",{variant}" if variant else ""
    for percent in percents:
      for seed in seeds:
        runner(Cell(f"{DATASET},none,{percent}{suffix}", "none"), seed, stage)
        if not variant and percent < 100:
          runner(Cell(f"{DATASET},none,{percent},random", "none"), seed, stage)
      for calibration in CALIBRATED:
        choices.append(tune(runner, f"{DATASET},{calibration},{percent}{suffix}",
                            calibration, paper.TUNING_VALUES[calibration], seeds,
                            tuning_seeds, stage))
  return choices


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  seeds = [int(s) for s in _SEEDS.value]
  tuning_seeds = [int(s) for s in _TUNING_SEEDS.value]
  if not set(tuning_seeds) <= set(seeds):
    raise ValueError(f"--tuning_seeds {tuning_seeds} must be among --seeds {seeds}")
  dataset = None if _REPORT_ONLY.value else train.load_data(paper.get_config(DATASET))
  runner = Runner(dataset, jobs_total(seeds, tuning_seeds), _REPORT_ONLY.value)
  choices = run_grid(runner, seeds, tuning_seeds)
  results = runner.results
  report.write(results, choices, prefix=_OUTPUT.value, seeds=seeds,
               tuning_seeds=tuning_seeds)
  print(f"wrote {_OUTPUT.value}.md, .csv, _claims.json ({len(results)} runs)")


if __name__ == "__main__":
  app.run(main)
