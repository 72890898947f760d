"""Calibrated sample prioritization where cross-entropy is over-confident, with each
calibration's ε / α / γ chosen by validation ECE: Tables 1 and 2 of Tata et al. (2022).

    python -m experiments.calib_prioritization_tuned                # MNIST-1D, whole grid
    python -m experiments.calib_prioritization_tuned --dataset=fashion_mnist_small
    python -m experiments.calib_prioritization_tuned --report_only  # tables from its runs

Two regimes (``calib_prioritization_tuned_report.REGIMES``) of
``configs/papers/calib_prioritization.py`` where plain cross-entropy ends over-confident:
``mnist1d_small``, the default MNIST-1D (3,600 training / 400 validation / 1,000 test),
200 epochs of which 10 on all data, lr 0.01, batch 32 (test ECE about 4.5 %, most of it
over-confidence), and ``fashion_mnist_small``, the MNIST CNN on a fixed 12,000 Fashion-MNIST
training images for 30 epochs (test ECE 6.2 %; its runs are ~10 times longer, so it tunes
three values per calibration on two seeds and keeps the 30 % and 10 % subsets). Stages,
one after the other in this process (the dataset is loaded once):

1. **Target model** (Table 2's ranker): the wider CNN with mixup α ∈ ``TARGET_ALPHAS``
   on the tuning seeds; the α with the lowest mean *validation* ECE is chosen, then run on
   the other seeds. Seed s's Table 2 runs rank by seed s's target.
2. **Table 1**: cross-entropy at 100 / 30 / 20 / 10 % and the random-subset baseline at
   30 / 20 / 10 %, on every seed; each calibration × subset size runs every value of
   ``TUNING_VALUES`` on the tuning seeds, the value with the lowest mean validation ECE is
   chosen and run on the other seeds.
3. **Table 2**: the same with the max-entropy ranking taken from the target model.

Test metrics are never looked at for a choice. Each run's workdir is
``WORKDIR/<arg>[_<value>][_by<target α>]/seed<N>``; a workdir holding ``summary.json`` is
read, not re-run, so a killed grid continues where it stopped. The tables, the choices and every
command go to ``experiments/results/calib_prioritization_tuned_<dataset>.*``.
"""

import dataclasses
import statistics
import time

from absl import app, flags, logging

from configs.papers import calib_prioritization as paper
from experiments import calib_prioritization_tuned_report as report
from experiments import grid
from jaxsel import train

CONFIG_FILE = "configs/papers/calib_prioritization.py"
CALIBRATED = ("label_smoothing", "mixup", "focal")


def define_flags() -> None:
  """The command line's flags; defined only when the grid runs, so that importing this
  module (in tests) adds no global flags that could clash with other modules'."""
  flags.DEFINE_enum("dataset", "mnist1d_small", list(report.REGIMES),
                    "The regime (see calib_prioritization_tuned_report.REGIMES).")
  flags.DEFINE_string("workdir", None, "Parent directory of the runs (default: "
                      "runs/calib_prioritization_tuned[_fashion_mnist_small]).")
  flags.DEFINE_string("output", None, "Path prefix of the .md / .csv / figure / claims "
                      "files (default: experiments/results/calib_prioritization_tuned_"
                      "<dataset>).")
  flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds of every cell.")
  flags.DEFINE_list("tuning_seeds", None, "Seeds whose mean validation ECE chooses each "
                    "value (default: the regime's).")
  flags.DEFINE_bool("report_only", False,
                    "Write the results files from finished runs; run nothing.")


@dataclasses.dataclass(frozen=True)
class Cell:
  """One tuned or untuned cell: a config argument and, if tuned, its hyper-parameter."""
  arg: str
  calibration: str  # 'none' or a CALIBRATED name (the target model: 'mixup')
  value: float | None = None

  @property
  def label(self) -> str:
    return self.arg if self.value is None else f"{self.arg}@{self.value:g}"


def target_arg(dataset: str) -> str:
  return f"{dataset},target_model"


def run_dir(root: str, cell: Cell, seed: int, target_alpha: float | None = None) -> str:
  """``root/<arg>[_<value>][_by<target α>]/seed<N>``: a Table 2 run's directory names the
  target it ranks by, so that a new choice of target never reads runs ranked by another."""
  name = cell.arg if cell.value is None else f"{cell.arg}_{cell.value:g}"
  if cell.arg.endswith(",target"):
    if target_alpha is None:
      raise ValueError(f"{cell.arg}: a target-guided run needs the target model's α")
    name += f"_by{target_alpha:g}"
  return grid.run_dir(root, name, seed)


def overrides(root: str, cell: Cell, seed: int, target_alpha: float | None) -> dict:
  """The fields a run sets beyond its config argument: the tuned value, and for Table 2
  the score file of the same seed's target model (trained with the chosen α)."""
  out = {}
  if cell.value is not None:
    section, field = paper.HPARAM_FIELD[cell.calibration]
    out[f"{section}.{field}"] = cell.value
  if cell.arg.endswith(",target"):
    dataset = cell.arg.split(",")[0]
    out["method.target.path"] = run_dir(root, Cell(target_arg(dataset), "mixup",
                                                   target_alpha), seed)
  return out


class Runner:
  """Runs (or reads) each (cell, seed) once and keeps every result."""

  def __init__(self, root: str, dataset, total: int, report_only: bool):
    self.results, self._dataset, self._report_only = [], dataset, report_only
    self.root = root
    self.target_alpha = None  # chosen in stage 1, before any Table 2 run
    self._progress = grid.Progress(total)

  def __call__(self, cell: Cell, seed: int, stage: str) -> dict | None:
    workdir = run_dir(self.root, cell, seed, self.target_alpha)
    extra = overrides(self.root, cell, seed, self.target_alpha)
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


def jobs_total(regime, seeds, tuning_seeds) -> int:
  """Runs in the whole grid: a tuned cell is every value on the tuning seeds plus the
  chosen value on the others; untuned: cross-entropy at 100 % and each subset size and
  random subsets in Table 1, cross-entropy at each size in Table 2; tuned cells at every
  size of Table 1 (with 100 %) and of Table 2."""
  extra = len(set(seeds) - set(tuning_seeds))
  tuned = lambda values: len(values) * len(tuning_seeds) + extra  # noqa: E731
  sizes = len(regime.subsets)
  return (tuned(regime.target_alphas) + (1 + 3 * sizes) * len(seeds)
          + (1 + 2 * sizes) * sum(tuned(regime.values[c]) for c in CALIBRATED))


def run_grid(runner, regime, seeds, tuning_seeds) -> list[dict]:
  """Every stage, in order, through ``runner(cell, seed, stage)``; returns the choices."""
  dataset = regime.dataset
  choices = [tune(runner, target_arg(dataset), "mixup", regime.target_alphas, seeds,
                  tuning_seeds, "target model")]
  runner.target_alpha = choices[0]["chosen"]
  for variant, percents in (("", (100, *regime.subsets)), ("target", regime.subsets)):
    if variant and runner.target_alpha is None:
      break  # --report_only before any target model finished
    stage = "table 2" if variant else "table 1"
    suffix = f",{variant}" if variant else ""
    for percent in percents:
      for seed in seeds:
        runner(Cell(f"{dataset},none,{percent}{suffix}", "none"), seed, stage)
        if not variant and percent < 100:
          runner(Cell(f"{dataset},none,{percent},random", "none"), seed, stage)
      for calibration in CALIBRATED:
        choices.append(tune(runner, f"{dataset},{calibration},{percent}{suffix}",
                            calibration, regime.values[calibration], seeds, tuning_seeds,
                            stage))
  return choices


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  args = flags.FLAGS
  regime = report.REGIMES[args.dataset]
  seeds = [int(s) for s in args.seeds]
  tuning_seeds = [int(s) for s in (args.tuning_seeds or regime.tuning_seeds)]
  if not set(tuning_seeds) <= set(seeds):
    raise app.UsageError(f"--tuning_seeds {tuning_seeds} must be among --seeds {seeds}")
  root = args.workdir or regime.workdir
  output = args.output or f"experiments/results/calib_prioritization_tuned_{regime.dataset}"
  dataset = None if args.report_only else train.load_data(paper.get_config(regime.dataset))
  runner = Runner(root, dataset, jobs_total(regime, seeds, tuning_seeds), args.report_only)
  choices = run_grid(runner, regime, seeds, tuning_seeds)
  report.write(runner.results, choices, regime=regime, prefix=output, seeds=seeds,
               tuning_seeds=tuning_seeds)
  print(f"wrote {output}.md, .csv, _claims.json ({len(runner.results)} runs)")


if __name__ == "__main__":
  define_flags()
  app.run(main)
