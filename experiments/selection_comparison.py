"""Which data-selection method for my dataset and my budget? Every family, cost accounted.

    python -m experiments.selection_comparison

runs, in this process and one after the other (sharing each loaded dataset), with
``configs/papers/selection_comparison.py`` and seeds 0, 1, 2, per dataset:

1. the runs every budget needs first (BUDGET 1): ``full`` (the reference: its last-epoch
   validation accuracy sets each seed's target, its passes are 100 %), ``scores`` (the
   training-dynamics score file of CCS, and the forgetting ordering made from it with
   ``jaxsel.orderings``), ``irreducible`` (RHO-LOSS's irreducible-loss model) and
   ``infobatch`` at full length (the paper's "lossless" setting, whose measured
   back-propagated fraction f sets the length of the budgeted InfoBatch runs);
2. the 30 % column: every method at ``BUDGETS[0]``;
3. the 50 % column;

then writes ``experiments/results/selection_comparison.{md,csv}`` and
``selection_comparison_pareto.png`` (or, with ``--report_only``, only the report from the
runs found). A run whose workdir holds ``summary.json`` is not run again, so a killed grid
resumes where it stopped. Each run is equivalent to the command in the csv file (the
forgetting runs also need their ordering file, made by the command in the .md file).

InfoBatch's back-propagations depend on the data, so for a budget b its runs train for
E' = max(2, round(b · E / f)) epochs (``infobatch_epochs``), f the mean over the seeds of
the full-length runs' ``examples_backpropagated / (E · N)``; E' is in the run's directory
name and its summary (``num_epochs``).
"""

import json
import os
import statistics
import time

from absl import app, flags, logging

from configs.papers import selection_comparison as paper
from experiments import grid
from jaxsel import artifacts, files, orderings, train


def define_flags() -> None:
  """The command line's flags; defined only when the grid runs, so that importing this
  module (for its rules, in tests) adds no global flags that could clash with others."""
  flags.DEFINE_string("workdir", "runs/selection_comparison", "Parent directory of the runs.")
  flags.DEFINE_string("output", "experiments/results/selection_comparison",
                      "Path prefix of the .md / .csv / figure files.")
  flags.DEFINE_list("datasets", list(paper.DATASETS),
                    f"Datasets to run (of {', '.join(paper.DATASETS)}).")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every cell.")
  flags.DEFINE_bool("report_only", False,
                    "Write the report from the finished runs; train nothing.")


CONFIG_FILE = "configs/papers/selection_comparison.py"


def label(dataset: str, method: str, budget: float) -> str:
  """A run's label: its config argument."""
  return f"{dataset},{method},{budget:g}"


def infobatch_epochs(budget: float, num_epochs: int, fraction: float) -> int:
  """E' = max(2, round(b · E / f)): InfoBatch epochs that back-propagate about b · E · N
  when a full-length run back-propagates f of E · N (f is re-measured per run: shorter runs
  anneal a different share of their epochs)."""
  return max(2, round(budget * num_epochs / fraction))


def backprop_fraction(summaries, num_epochs: int, num_train: int) -> float | None:
  """Mean over the runs of ``examples_backpropagated / (E · N)`` (None without runs)."""
  if not summaries:
    return None
  return statistics.fmean(s["examples_backpropagated"] / (num_epochs * num_train)
                          for s in summaries)


def ordering_path(root: str, dataset: str, seed: int) -> str:
  return os.path.join(root, "orderings", f"{dataset}_forgetting_seed{seed}.npz")


def ordering_command(root: str, dataset: str, seed: int) -> str:
  scores = grid.run_dir(root, label(dataset, "scores", 1), seed)
  return (f"python -m jaxsel.orderings --scores={scores} --key=forgetting --seed={seed} "
          f"--out={ordering_path(root, dataset, seed)}")


def make_ordering(root: str, dataset: str, seed: int) -> float:
  """The seed's forgetting ordering from its ``scores`` run (made once; never-learned
  examples count their presentations, ties by the seed's permutation); returns the
  seconds it took to make, kept beside it so that a resumed grid still counts them."""
  path = ordering_path(root, dataset, seed)
  timing = path + ".json"
  if not (os.path.exists(path) and os.path.exists(timing)):
    start = time.perf_counter()
    scores = grid.run_dir(root, label(dataset, "scores", 1), seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    artifacts.save(path, orderings.build([scores], orderings.OrderingSpec(
        key="forgetting", seed=seed)))
    files.write_json(timing, {"seconds": time.perf_counter() - start})
  with open(timing) as f:
    return json.load(f)["seconds"]


def overrides(root: str, dataset: str, method: str, budget: float, seed: int, *,
              epochs: int | None = None) -> dict:
  """Fields the grid sets on top of the config argument: the seed's scoring runs, and
  InfoBatch's epochs ``epochs`` under a budget."""
  def scoring_dir(kind):
    return grid.run_dir(root, label(dataset, kind, 1), seed)

  if method == "ccs":
    return {"method.scores_path": scoring_dir("scores")}
  if method == "forgetting":
    return {"removal.ordering_path": ordering_path(root, dataset, seed)}
  if method == "rho":
    return {"method.irreducible_loss_path": scoring_dir("irreducible")}
  if method == "infobatch" and budget < 1:
    return {"train.num_epochs": epochs}
  return {}


def run_directory(root: str, dataset: str, method: str, budget: float, seed: int,
                  overrides_: dict) -> str:
  """Budgeted InfoBatch runs carry E' in their directory: a different f (other seeds)
  makes another run, never a clash with a finished one."""
  name = label(dataset, method, budget)
  if "train.num_epochs" in overrides_:
    name += f",e{overrides_['train.num_epochs']}"
  return grid.run_dir(root, name, seed)


def run_one(root: str, dataset_name: str, method: str, budget: float, seed: int, dataset,
            progress, *, train_now: bool, epochs: int | None = None) -> dict | None:
  """Runs (or reads) one run under ``root``; its result record, or None if not run (not
  ``train_now``) and not found."""
  arg = label(dataset_name, method, budget)
  fields = overrides(root, dataset_name, method, budget, seed, epochs=epochs)
  workdir = run_directory(root, dataset_name, method, budget, seed, fields)
  finished = grid.is_done(workdir)
  if not (finished or train_now):
    return None
  start = time.perf_counter()
  extra = make_ordering(root, dataset_name, seed) if method == "forgetting" else 0.0
  summary, _ = grid.read_or_run(paper.get_config, arg, seed, fields, workdir, dataset)
  progress.done(f"{arg} seed {seed}", summary, time.perf_counter() - start,
                earlier=finished)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return {"arg": arg, "seed": seed, "summary": summary, "records": records,
          "workdir": workdir, "command": grid.command(CONFIG_FILE, arg, seed, workdir, fields),
          "wall_seconds": grid.wall_seconds(workdir), "extra_scoring_seconds": extra}


def _load(name: str):
  dataset = train.load_data(paper.get_config(label(name, "full", 1)))
  if len(dataset.train_ids) != paper.NUM_TRAIN[name]:
    raise RuntimeError(f"{name} has {len(dataset.train_ids)} training examples here, not the "
                       f"{paper.NUM_TRAIN[name]} of paper.NUM_TRAIN that the budgets use")
  return dataset


def run_dataset(root: str, name: str, seeds, progress, *, train_now: bool) -> list[dict]:
  """Every run of dataset ``name``, in the grid's order (only those found, unless
  ``train_now``)."""
  dataset = _load(name) if train_now else None
  results = []

  def run(method, budget, seed, **kwargs):
    result = run_one(root, name, method, budget, seed, dataset, progress,
                     train_now=train_now, **kwargs)
    if result is not None:
      results.append(result)
    return result

  first = {m: [run(m, 1.0, s) for s in seeds] for m in paper.FIRST_RUNS}
  scored = {s for s, r in zip(seeds, first["scores"]) if r is not None}
  infobatch = [r["summary"] for r in first["infobatch"] if r is not None]
  fraction = backprop_fraction(infobatch, paper.EPOCHS[name], paper.NUM_TRAIN[name])
  for budget in paper.BUDGETS:
    for method in paper.METHODS:
      if method == "full":
        continue
      if method == "infobatch" and fraction is None:
        print(f"skipping {label(name, method, budget)}: no full-length InfoBatch run")
        continue
      epochs = infobatch_epochs(budget, paper.EPOCHS[name], fraction) if (
          method == "infobatch") else None
      for seed in seeds:
        if method in ("ccs", "forgetting") and seed not in scored:
          continue
        run(method, budget, seed, epochs=epochs)
  return results


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  args = flags.FLAGS
  seeds = [int(s) for s in args.seeds]
  results = []
  for name in args.datasets:
    if name not in paper.DATASETS:
      raise app.UsageError(f"--datasets: unknown {name!r}; valid: {', '.join(paper.DATASETS)}")
    count = len(paper.FIRST_RUNS) + len(paper.BUDGETS) * (len(paper.METHODS) - 1)
    results += run_dataset(args.workdir, name, seeds, grid.Progress(count * len(seeds)),
                           train_now=not args.report_only)
  from experiments import selection_comparison_report as report
  report.write(results, args.output, seeds=seeds, ordering_command=ordering_command(
      args.workdir, args.datasets[0], seeds[0]))


if __name__ == "__main__":
  define_flags()
  app.run(main)
