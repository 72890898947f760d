"""Budgeted importance sampling (Arazo et al., BMVC 2021) on Fashion-MNIST and MNIST-1D.

    python -m experiments.budgeted_importance_sampling

runs, in this process and one after the other (sharing each loaded dataset), with
``configs/papers/budgeted_importance_sampling.py`` and 3 seeds of the reference's pool:

1. 100 % budget, standard training (the dashed line of the paper's Figure 1);
2. the 30 % column in full: budgeted SGD, a fixed random subset, unif-SGD, p-SGD, c-SGD and
   selective backprop, each with standard augmentation, mixup, RICAP and RandAugment
   (RandAugment on images only);
3. the p-SGD ablations of Figure 1 at 30 %: no ε; no ε and the last value instead of the
   average; both with a step schedule; and RICAP with the reference's score attribution;
4. 100 % budget with each augmentation;
5. the other budgets, 20 / 50 / 70 %, with standard augmentation (last, so that a grid cut
   short still has the 30 % column);
6. on MNIST-1D, the paper's "Core-set" baseline: one training-dynamics run per seed, then
   a CCS coreset of the averaged scores fixed for all epochs at each budget;

then writes ``experiments/results/budgeted_importance_sampling.{md,csv}``, its
``_claims.json`` and figures (or, with ``--report_only``, only those files, from the runs
found). A run whose workdir holds ``summary.json`` is not run again, so an interrupted grid
resumes where it stopped; two invocations with different ``--datasets`` can run side by
side. Each run is equivalent to the command in the csv file.

The length and the seeds can be chosen per dataset, e.g. a longer Fashion-MNIST grid on
the first five seeds of the pool:

    python -m experiments.budgeted_importance_sampling --datasets=fashion_mnist \\
        --epochs=fashion_mnist=30 --num_seeds=5 --output=PREFIX

A length other than the paper config's runs under ``WORKDIR/epochs<E>``, so runs of
different lengths never share a directory.

``--cells=augmentation`` runs only the long augmentation grid (the 30 % cells of unif-SGD,
p-SGD, selective backprop and budgeted SGD, and 100 % standard training, each with every
augmentation); its 30 % runs evaluate on validation every ``AUGMENTATION_EVAL_EVERY``
epochs instead of every epoch.
"""

import os
import time
from typing import NamedTuple

from absl import app, flags, logging

from configs.papers import budgeted_importance_sampling as paper
from experiments import grid
from jaxsel import train

DATASETS = ("fashion_mnist", "mnist1d", "fashion_mnist_small")
CONFIG_FILE = "configs/papers/budgeted_importance_sampling.py"
COMMAND = "python -m experiments.budgeted_importance_sampling"
METHODS = ("sgd", "random", "unif", "p", "c", "sb")
# The long augmentation grid (``--cells=augmentation``): the samplers the paper's
# augmentation claims are about, at the main budget, and standard training with each
# augmentation on all data.
AUGMENTATION_METHODS = ("sgd", "unif", "p", "sb")
# Its 30 % runs evaluate on validation every this many epochs (and after the last), not
# every epoch: at 30 % a per-epoch validation pass costs about a third of the run, and the
# report reads only the last epoch's numbers, which do not depend on it (tests/test_train.py).
# The 100 % runs are the length search's, and keep its per-epoch evaluation.
AUGMENTATION_EVAL_EVERY = 5
# In that grid, the cells no claim is decided on (budgeted SGD at 30 %, and 100 % training
# with an augmentation: the length search's own runs) keep to the first this many seeds.
FEW_SEEDS = 3
MAIN_BUDGET = 0.3
DEFAULT_SEEDS = paper.SEED_POOL[:3]
# Where the Figure-1 "Core-set" baseline runs (CCS on the averaged training-dynamics scores
# of one full-data run per seed); its scoring runs make it too slow for Fashion-MNIST here.
CORESET_DATASETS = ("mnist1d",)
OTHER_BUDGETS = (0.2, 0.5, 0.7)
# The Figure-1 ablations of p-SGD: (label, config overrides).
ABLATIONS = (
    ("no_eps", {"method.smoothing": False}),
    ("no_eps_last", {"method.smoothing": False, "method.difficulty": "last"}),
    ("no_eps_last_step_lr", {"method.smoothing": False, "method.difficulty": "last",
                             "schedule.name": "multistep"}),
)


def define_flags() -> None:
  """The command line's flags; defined only when the grid runs, so that importing this
  module (for its plan, in tests) adds no global flags that could clash with others."""
  flags.DEFINE_string("workdir", "runs/budgeted_importance_sampling",
                      "Parent directory of the runs.")
  flags.DEFINE_string("output", "experiments/results/budgeted_importance_sampling",
                      "Path prefix of the .md / .csv / _claims.json / figure files.")
  flags.DEFINE_list("datasets", list(DATASETS), f"Datasets to run (of {', '.join(DATASETS)}).")
  flags.DEFINE_list("seeds", [str(s) for s in DEFAULT_SEEDS],
                    "Seeds of every cell (where --num_seeds does not name the dataset).")
  flags.DEFINE_list("num_seeds", [],
                    "The first N seeds of the reference's pool instead of --seeds: N for every "
                    "dataset, or DATASET=N for one (e.g. fashion_mnist=5).")
  flags.DEFINE_list("epochs", [],
                    "Epochs of every run: E for every dataset, or DATASET=E for one; default "
                    "the paper config's (" + ", ".join(
                        f"{d} {paper.EPOCHS[d]}" for d in DATASETS) + ").")
  flags.DEFINE_bool("report_only", False,
                    "Write the results files from the finished runs; train nothing.")
  flags.DEFINE_enum("cells", "all", ["all", "augmentation"],
                    "all: the whole grid; augmentation: only the 30 % cells of "
                    f"{', '.join(AUGMENTATION_METHODS)} and 100 % standard training, each "
                    "with every augmentation (the long Fashion-MNIST grid).")


class Plan(NamedTuple):
  """What one dataset's grid runs: its length, its seeds and where its runs live."""
  dataset: str
  epochs: int
  seeds: tuple[int, ...]
  root: str


def plan(dataset: str, workdir: str, *, epochs: int | None = None,
         seeds=DEFAULT_SEEDS) -> Plan:
  """The paper config's length unless ``epochs``; a different length gets its own root."""
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
  default = paper.EPOCHS[dataset]
  epochs = default if epochs is None else epochs
  if epochs < 1:
    raise ValueError(f"{dataset}: epochs must be >= 1, got {epochs}")
  root = workdir if epochs == default else os.path.join(workdir, f"epochs{epochs}")
  return Plan(dataset, epochs, tuple(int(s) for s in seeds), root)


def per_dataset(values, datasets) -> dict[str, int]:
  """{dataset: N} from a list flag's values: 'N' for every dataset, 'DATASET=N' for one
  (which wins over a bare N)."""
  every, named = {}, {}
  for value in values:
    name, _, number = value.rpartition("=")
    if name and name not in DATASETS:
      raise ValueError(f"unknown dataset {name!r} in {value!r}; valid: {', '.join(DATASETS)}")
    try:
      count = int(number)
    except ValueError:
      raise ValueError(f"{value!r}: expected N or DATASET=N") from None
    if name:
      named[name] = count
    else:
      every = {d: count for d in datasets}
  return {**every, **{d: n for d, n in named.items() if d in datasets}}


def _step_lr(epochs: int) -> dict:
  """The reference's alternative step schedule (B.6): ×0.1 at half and three quarters of
  the epochs (the paper's milestones for this ablation are not known)."""
  return {"schedule.name": "multistep", "schedule.unit": "epoch",
          "schedule.decay_factor": 0.1,
          "schedule.milestone_epochs": (epochs // 2, 3 * epochs // 4)}


def _length(dataset: str, method: str, budget: float, epochs: int) -> dict:
  """Overrides that give a run ``epochs`` epochs; none at the paper config's length (so
  the default grid's commands stay as they were). Budgeted SGD is a step count."""
  if epochs == paper.EPOCHS[dataset]:
    return {}
  if method == "sgd" and budget < 1:
    return {"train.num_train_steps": paper.budgeted_sgd_steps(dataset, budget,
                                                              num_epochs=epochs)}
  return {"train.num_epochs": epochs}


def augmentations(dataset: str) -> tuple[str, ...]:
  """The augmentations that apply: RandAugment needs images."""
  if dataset == "mnist1d":
    return ("standard", "mixup", "ricap")
  return paper.AUGMENTATIONS


def planned_runs(run_plan: Plan, *, only_augmentation: bool = False
                 ) -> list[tuple[str, str, dict]]:
  """(label, config argument, overrides) of every cell of the plan's dataset, in run
  order; ``only_augmentation``: just the 30 % cells of ``AUGMENTATION_METHODS`` and 100 %
  standard training, each with every augmentation."""
  dataset, epochs = run_plan.dataset, run_plan.epochs

  def arg(method, augmentation, budget):
    return f"{dataset},{method},{augmentation},{budget:g}"

  def cell(method, augmentation, budget, suffix="", overrides=None):
    label = arg(method, augmentation, budget)
    return (label + suffix, label,
            {**_length(dataset, method, budget, epochs), **(overrides or {})})

  cells = [cell("sgd", "standard", 1.0)]
  if only_augmentation:
    for augmentation in augmentations(dataset):
      cells += [cell(m, augmentation, MAIN_BUDGET,
                     overrides={"eval.every_epochs": AUGMENTATION_EVAL_EVERY})
                for m in AUGMENTATION_METHODS]
    return cells + [cell("sgd", a, 1.0) for a in augmentations(dataset) if a != "standard"]
  for augmentation in augmentations(dataset):
    cells += [cell(m, augmentation, MAIN_BUDGET) for m in METHODS]
  for label, overrides in ABLATIONS:
    if "schedule.name" in overrides:
      overrides = {**overrides, **_step_lr(epochs)}
    cells.append(cell("p", "standard", MAIN_BUDGET, f",{label}", overrides))
  # unif-SGD with the step schedule: how much of the step-LR ablation is the schedule.
  cells.append(cell("unif", "standard", MAIN_BUDGET, ",step_lr", _step_lr(epochs)))
  cells.append(cell("p", "ricap", MAIN_BUDGET, ",reference_ricap_scores",
                    {"method.reference_ricap_scores": True}))
  cells += [cell("sgd", a, 1.0) for a in augmentations(dataset) if a != "standard"]
  for budget in OTHER_BUDGETS:
    cells += [cell(m, "standard", budget) for m in METHODS]
  if dataset in CORESET_DATASETS:
    scores = arg("scores", "standard", 1.0)
    paths = ",".join(grid.run_dir(run_plan.root, scores, s) for s in run_plan.seeds)
    cells.append(cell("scores", "standard", 1.0))
    cells += [cell("coreset", "standard", b, overrides={"method.scores_path": paths})
              for b in (0.2, 0.3, 0.5, 0.7)]
  return cells


def cell_seeds(run_plan: Plan, label: str, *, only_augmentation: bool) -> tuple[int, ...]:
  """The seeds cell ``label`` runs: the plan's, but in the augmentation grid only the first
  ``FEW_SEEDS`` for a cell no claim uses (budgeted SGD at 30 %, 100 % with an
  augmentation)."""
  if only_augmentation:
    _, method, augmentation, budget = label.split(",")[:4]
    # 100 %-budget standard training is the baseline of "30 % + augmentation >= 100 %".
    if method == "sgd" and (float(budget) < 1 or augmentation != "standard"):
      return run_plan.seeds[:FEW_SEEDS]
  return run_plan.seeds


def command_line(args) -> str:
  """The command that reruns this grid: its flags that differ from their defaults (but
  ``--report_only``)."""
  names = ("datasets", "seeds", "num_seeds", "epochs", "cells", "workdir", "output")
  return " ".join([COMMAND] + [args[n].serialize() for n in names
                               if args[n].value != args[n].default])


def run_one(label: str, arg: str, overrides: dict, seed: int, root: str, dataset, progress,
            *, train_now: bool) -> dict | None:
  """Runs (or reads) one run; its result record, or None if not run and not found."""
  workdir = grid.run_dir(root, label, seed)
  finished = grid.is_done(workdir)
  if not (finished or train_now):
    return None
  start = time.perf_counter()
  summary, _ = grid.read_or_run(paper.get_config, arg, seed, overrides, workdir, dataset)
  progress.done(f"{label} seed {seed}", summary, time.perf_counter() - start,
                earlier=finished)
  return {"arg": label, "seed": seed, "summary": summary, "workdir": workdir,
          "command": grid.command(CONFIG_FILE, arg, seed, workdir, overrides),
          "wall_seconds": grid.wall_seconds(workdir)}


def plans_from_flags(args) -> list[Plan]:
  """One plan per ``--datasets`` entry, with its ``--epochs`` and seeds."""
  try:
    epochs = per_dataset(args.epochs, args.datasets)
    counts = per_dataset(args.num_seeds, args.datasets)
    seeds = [int(s) for s in args.seeds]
    for name, count in counts.items():
      if not 1 <= count <= len(paper.SEED_POOL):
        raise ValueError(f"--num_seeds: {name} asks for {count} seeds; the reference's "
                         f"pool has {len(paper.SEED_POOL)}")
    return [plan(name, args.workdir, epochs=epochs.get(name),
                 seeds=paper.SEED_POOL[:counts[name]] if name in counts else seeds)
            for name in args.datasets]
  except ValueError as error:
    raise app.UsageError(str(error)) from None


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  args = flags.FLAGS
  only_augmentation = args.cells == "augmentation"
  results = []
  for run_plan in plans_from_flags(args):
    runs = [(label, arg, overrides,
             cell_seeds(run_plan, label, only_augmentation=only_augmentation))
            for label, arg, overrides in planned_runs(run_plan,
                                                      only_augmentation=only_augmentation)]
    progress = grid.Progress(sum(len(seeds) for *_, seeds in runs))
    dataset = None if args.report_only else train.load_data(
        paper.get_config(f"{run_plan.dataset},sgd,standard,1"))
    for label, arg, overrides, seeds in runs:
      for seed in seeds:
        result = run_one(label, arg, overrides, seed, run_plan.root, dataset, progress,
                         train_now=not args.report_only)
        if result is not None:
          results.append(result)
  from experiments import budgeted_importance_sampling_report as report
  report.write(results, args.output, command=command_line(args),
               augmentation_grid=only_augmentation)


if __name__ == "__main__":
  define_flags()
  app.run(main)
