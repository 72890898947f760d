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

then writes ``experiments/results/budgeted_importance_sampling.{md,csv}`` and figures (or,
with ``--report_only``, only the report from the runs found). A run whose workdir holds
``summary.json`` is not run again, so an interrupted grid resumes where it stopped; two
invocations with different ``--datasets`` can run side by side. Each run is equivalent to
the command in the csv file.
"""

import time

from absl import app, flags, logging

from configs.papers import budgeted_importance_sampling as paper
from experiments import grid
from jaxsel import train

_WORKDIR = flags.DEFINE_string("workdir", "runs/budgeted_importance_sampling",
                               "Parent directory of the runs.")
_OUTPUT = flags.DEFINE_string("output", "experiments/results/budgeted_importance_sampling",
                              "Path prefix of the .md / .csv / figure files.")
_DATASETS = flags.DEFINE_list("datasets", ["fashion_mnist", "mnist1d"],
                              "Datasets to run (of fashion_mnist, mnist1d).")
_SEEDS = flags.DEFINE_list("seeds", [str(s) for s in paper.SEED_POOL[:3]],
                           "Seeds of every cell.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False,
                                 "Write the report from the finished runs; train nothing.")

CONFIG_FILE = "configs/papers/budgeted_importance_sampling.py"
METHODS = ("sgd", "random", "unif", "p", "c", "sb")
MAIN_BUDGET = 0.3
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


def _step_lr(epochs: int) -> dict:
  """The reference's alternative step schedule (B.6): ×0.1 at half and three quarters of
  the epochs (the paper's milestones for this ablation are not known)."""
  return {"schedule.name": "multistep", "schedule.unit": "epoch",
          "schedule.decay_factor": 0.1,
          "schedule.milestone_epochs": (epochs // 2, 3 * epochs // 4)}


def augmentations(dataset: str) -> tuple[str, ...]:
  """The augmentations that apply: RandAugment needs images."""
  if dataset == "mnist1d":
    return ("standard", "mixup", "ricap")
  return paper.AUGMENTATIONS


def planned_runs(dataset: str) -> list[tuple[str, str, dict]]:
  """(label, config argument, overrides) of every cell of ``dataset``, in run order."""
  def arg(method, augmentation, budget):
    return f"{dataset},{method},{augmentation},{budget:g}"

  cells = [(arg("sgd", "standard", 1.0), arg("sgd", "standard", 1.0), {})]
  for augmentation in augmentations(dataset):
    cells += [(arg(m, augmentation, MAIN_BUDGET),) * 2 + ({},) for m in METHODS]
  epochs = paper.EPOCHS[dataset]
  for label, overrides in ABLATIONS:
    if "schedule.name" in overrides:
      overrides = {**overrides, **_step_lr(epochs)}
    cells.append((arg("p", "standard", MAIN_BUDGET) + f",{label}",
                  arg("p", "standard", MAIN_BUDGET), overrides))
  # unif-SGD with the step schedule: how much of the step-LR ablation is the schedule.
  cells.append((arg("unif", "standard", MAIN_BUDGET) + ",step_lr",
                arg("unif", "standard", MAIN_BUDGET), _step_lr(epochs)))
  cells.append((arg("p", "ricap", MAIN_BUDGET) + ",reference_ricap_scores",
                arg("p", "ricap", MAIN_BUDGET), {"method.reference_ricap_scores": True}))
  cells += [(arg("sgd", a, 1.0),) * 2 + ({},) for a in augmentations(dataset)
            if a != "standard"]
  for budget in OTHER_BUDGETS:
    cells += [(arg(m, "standard", budget),) * 2 + ({},) for m in METHODS]
  if dataset in CORESET_DATASETS:
    scores = arg("scores", "standard", 1.0)
    paths = ",".join(grid.run_dir(_WORKDIR.value, scores, s) for s in _SEEDS.value)
    cells.append((scores, scores, {}))
    cells += [(arg("coreset", "standard", b),) * 2 + ({"method.scores_path": paths},)
              for b in (0.2, 0.3, 0.5, 0.7)]
  return cells


def run_one(label: str, arg: str, overrides: dict, seed: int, dataset, progress,
            *, train_now: bool) -> dict | None:
  """Runs (or reads) one run; its result record, or None if not run and not found."""
  workdir = grid.run_dir(_WORKDIR.value, label, seed)
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


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  seeds = [int(s) for s in _SEEDS.value]
  results = []
  for name in _DATASETS.value:
    if name not in ("fashion_mnist", "mnist1d"):
      raise app.UsageError(f"--datasets: unknown {name!r}; valid: fashion_mnist, mnist1d")
    runs = planned_runs(name)
    progress = grid.Progress(len(runs) * len(seeds))
    dataset = None if _REPORT_ONLY.value else train.load_data(
        paper.get_config(f"{name},sgd,standard,1"))
    for label, arg, overrides in runs:
      for seed in seeds:
        result = run_one(label, arg, overrides, seed, dataset, progress,
                         train_now=not _REPORT_ONLY.value)
        if result is not None:
          results.append(result)
  from experiments import budgeted_importance_sampling_report as report
  report.write(results, _OUTPUT.value, seeds=seeds)


if __name__ == "__main__":
  app.run(main)
