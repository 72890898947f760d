"""Example forgetting (Toneva et al., ICLR 2019) and Max Loss Increase / Gradient Loss
removal curves on MNIST-1D.

    python -m experiments.forgetting_mli

runs, in this process and one after the other (sharing the loaded dataset), with
``configs/papers/example_forgetting.py``:

1. one ordering run per seed (``mnist1d,order``: full data, every presentation recorded);
2. four orderings from the seeds' score files (``jaxsel.orderings``): forgetting,
   max loss increase, and Gradient Loss in both forms (trajectory slope, gradient norm);
3. the removal curves (Figure 5 left): for each ordering, remove the lowest-scored r % of
   the training set (``removal.keep_lowest_n = 0``), and r % at random, r ∈
   ``REMOVAL_PERCENTS``, plus no removal, 5 seeds each;
4. the sliding window (Figure 5 right): remove ``WINDOW_PERCENT`` % starting at rank k of
   the forgetting and the max-loss-increase orderings, k every ``WINDOW_PERCENT`` %;
5. label noise (Figure 3): one ordering run per seed with 20 % of the training labels
   changed, to see where the noisy examples land in each ordering;
6. Fashion-MNIST (``fashion_mnist,order`` / ``train``, the paper's MNIST CNN and settings
   for 20 epochs), smaller: the forgetting statistics of one ordering run per seed, and
   removal of ``FASHION_REMOVAL_PERCENTS`` by forgetting and at random;

then writes ``experiments/results/forgetting_mli_mnist1d.{md,csv}``, the claims
(``_claims.json``, decided seed by seed) and figures. A run whose workdir already holds
``summary.json`` is not run again, so an interrupted grid resumes where it stopped;
``--report_only`` writes the results files from the finished runs and runs nothing. Each run
is equivalent to the command in the csv file.
"""

import os
import time

from absl import app, flags, logging

from configs.papers import example_forgetting as paper
from experiments import claims as claims_lib
from experiments import forgetting_mli_fashion_report as fashion_report
from experiments import forgetting_mli_figures as report_figures
from experiments import forgetting_mli_report as report
from experiments import grid
from jaxsel import artifacts, files, orderings, train

_WORKDIR = flags.DEFINE_string("workdir", "runs/forgetting_mli", "Parent directory of the runs.")
_OUTPUT = flags.DEFINE_string("output", "experiments/results/forgetting_mli_mnist1d",
                              "Path prefix of the .md / .csv / figure / claims files.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"],
                           "Seeds of every cell (every cell decides a claim).")
_FASHION = flags.DEFINE_bool("fashion_mnist", True, "Also run the Fashion-MNIST part.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False,
                                 "Write the results files from finished runs; run nothing.")

CONFIG_FILE = "configs/papers/example_forgetting.py"
ORDER_ARG, TRAIN_ARG = "mnist1d,order", "mnist1d,train"
NOISE_PERCENT = 20
REMOVAL_PERCENTS = (10, 20, 30, 40, 50, 60, 70)
WINDOW_PERCENT = 10
WINDOW_ORDERINGS = ("forgetting", "max_loss_increase")
FASHION_ORDER_ARG, FASHION_TRAIN_ARG = "fashion_mnist,order", "fashion_mnist,train"
FASHION_REMOVAL_PERCENTS = (30, 60)
# Name -> how the ordering is made (ties: one permutation from seed 0, see jaxsel.orderings).
ORDERINGS = {
    "forgetting": orderings.OrderingSpec(key="forgetting"),
    "max_loss_increase": orderings.OrderingSpec(key="max_loss_increase"),
    "gradient_loss_slope": orderings.OrderingSpec(key="gradient_loss",
                                                  gradient_loss_form="trajectory_slope"),
    "gradient_loss_norm": orderings.OrderingSpec(key="gradient_loss",
                                                 gradient_loss_form="grad_norm"),
    # The slope read the other way (loss rising most / falling least removed first) and by
    # its magnitude (the flattest trajectories first): D.5 leaves the direction open.
    "gradient_loss_slope_desc": orderings.OrderingSpec(key="gradient_loss", descending=True),
    "gradient_loss_abs_slope": orderings.OrderingSpec(key="gradient_loss", absolute=True),
}


def ordering_path(name: str) -> str:
  return os.path.join(_WORKDIR.value, "orderings", f"{name}.npz")


def _ordering(name: str, spec: orderings.OrderingSpec, order_runs, seeds) -> str:
  """The ordering file ``name`` from the seeds' score files, made once and then reused. One
  made from other seeds is an error rather than reused: the removal runs would mix two
  orderings."""
  path = ordering_path(name)
  if os.path.exists(path):
    made_from = tuple(artifacts.load(path).seeds)
    if made_from != tuple(sorted(seeds)):
      raise ValueError(f"{path} was made from seeds {made_from}, not {tuple(sorted(seeds))}: "
                       "pass those --seeds or another --workdir")
  elif _REPORT_ONLY.value:
    raise ValueError(f"--report_only: no ordering {path} yet (the ordering runs of every "
                     "seed make it); nothing to report")
  else:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    artifacts.save(path, orderings.build([r["workdir"] for r in order_runs], spec))
  return path


def _run(label: str, arg: str, seed: int, dataset, progress, overrides=None,
         **fields) -> dict | None:
  """Runs (or reads) one run; returns its result record (``fields`` are kept in it), or
  None under ``--report_only`` for a run that has not finished."""
  workdir = grid.run_dir(_WORKDIR.value, label, seed)
  if _REPORT_ONLY.value and not grid.is_done(workdir):
    return None
  overrides = overrides or {}
  start = time.perf_counter()
  summary, finished = grid.read_or_run(paper.get_config, arg, seed, overrides, workdir,
                                       dataset)
  progress.done(f"{label} seed {seed}", summary, time.perf_counter() - start,
                earlier=finished)
  return {"arg": label, "seed": seed, "summary": summary, "workdir": workdir,
          "command": grid.command(CONFIG_FILE, arg, seed, workdir, overrides),
          "wall_seconds": grid.wall_seconds(workdir), **fields}


def _finished(runs) -> list[dict]:
  """The runs that have a result (under ``--report_only``, those that finished)."""
  return [r for r in runs if r is not None]


def _fashion_mnist(seeds, progress) -> dict | None:
  """Forgetting statistics and removal by forgetting / at random on Fashion-MNIST; None
  under ``--report_only`` before its ordering runs have finished."""
  dataset = train.load_data(paper.get_config(FASHION_ORDER_ARG))
  num_train = len(dataset.train_ids)
  # The no-removal cells: training is the same with or without the tracker.
  order_runs = _finished(_run("fashion_order", FASHION_ORDER_ARG, s, dataset, progress,
                              {"method.grad_norm_epoch": 0}, ordering="none", removed=0, k=0)
                         for s in seeds)
  if _REPORT_ONLY.value and not (order_runs
                                 and os.path.exists(ordering_path("fashion_forgetting"))):
    return None
  paths = {"forgetting": _ordering("fashion_forgetting", ORDERINGS["forgetting"],
                                   order_runs, seeds)}
  removal_runs = []
  for percent in FASHION_REMOVAL_PERCENTS:
    removed = num_train * percent // 100
    for name in ("forgetting", "random"):
      label, overrides = _removal(name, removed, 0, paths)
      removal_runs += _finished(_run("fashion_" + label, FASHION_TRAIN_ARG, s, dataset,
                                     progress, overrides, ordering=name, removed=removed, k=0)
                                for s in seeds)
  return {"order_runs": order_runs, "removal_runs": removal_runs, "num_train": num_train}


def _removal(name: str, removed: int, k: int, paths) -> tuple[str, dict]:
  """(label, overrides) of a run without ``removed`` examples: the window from rank k of
  ordering ``name``, or at random (``name == 'random'``)."""
  if name == "random":
    return f"random_r{removed}", {"removal.remove_n": removed, "removal.keep_lowest_n": -1}
  label = f"{name}_r{removed}" + (f"_k{k}" if k else "")
  return label, {"removal.ordering_path": paths[name], "removal.remove_n": removed,
                 "removal.keep_lowest_n": k}


def regime(seeds, num_train: int, fashion: bool) -> str:
  """Where the claims were tested, in one line: data, model, lengths, seeds."""
  config = paper.get_config(ORDER_ARG)
  return (f"MNIST-1D large ({num_train:,} train), 1-D CNN, {config.train.num_epochs} epochs, "
          f"lr {config.optimizer.learning_rate:g}, step decay; removal runs train as long"
          + ("; Fashion-MNIST: the MNIST CNN, 20 epochs" if fashion else "")
          + f"; {len(seeds)} seeds")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  seeds = [int(s) for s in _SEEDS.value]
  dataset = train.load_data(paper.get_config(ORDER_ARG))
  num_train = len(dataset.train_ids)
  sizes = [num_train * p // 100 for p in REMOVAL_PERCENTS]
  window = num_train * WINDOW_PERCENT // 100
  starts = list(range(window, num_train - window + 1, window))  # k = 0 is in the curves
  total = (2 + len(ORDERINGS) * len(sizes) + len(sizes)
           + len(WINDOW_ORDERINGS) * len(starts) + 1) * len(seeds)
  if _FASHION.value:
    total += (1 + 2 * len(FASHION_REMOVAL_PERCENTS)) * len(seeds)
  progress = grid.Progress(total)

  order_runs = _finished(_run("order", ORDER_ARG, s, dataset, progress) for s in seeds)
  paths = {name: _ordering(name, spec, order_runs, seeds) for name, spec in ORDERINGS.items()}
  noisy_runs = _finished(_run(f"order_noise{NOISE_PERCENT}", ORDER_ARG, s, dataset, progress,
                              {"noise.label_percent": float(NOISE_PERCENT)}) for s in seeds)
  removal_runs = _finished(_run("full", TRAIN_ARG, s, dataset, progress, ordering="none",
                                removed=0, k=0) for s in seeds)
  for removed in sizes:
    for name in (*ORDERINGS, "random"):
      label, overrides = _removal(name, removed, 0, paths)
      removal_runs += _finished(_run(label, TRAIN_ARG, s, dataset, progress, overrides,
                                     ordering=name, removed=removed, k=0) for s in seeds)
  window_runs = []
  for name in WINDOW_ORDERINGS:
    for k in starts:
      label, overrides = _removal(name, window, k, paths)
      window_runs += _finished(_run(label, TRAIN_ARG, s, dataset, progress, overrides,
                                    ordering=name, removed=window, k=k) for s in seeds)
  if not (order_runs and noisy_runs and any(r["ordering"] == "none" for r in removal_runs)):
    raise ValueError("--report_only: an ordering run, a noisy-label run and a full-data run "
                     "must have finished; nothing to report")
  fashion_runs = _fashion_mnist(seeds, progress) if _FASHION.value else None
  fashion = fashion_report.part(fashion_runs) if fashion_runs else None
  # The seeds with a finished run: fewer than --seeds under --report_only.
  seeds = [s for s in seeds if any(r["seed"] == s for r in removal_runs)]

  everything = order_runs + noisy_runs + removal_runs + window_runs
  everything += fashion.runs if fashion else []
  grid.write_csv(_OUTPUT.value + ".csv", report.rows(everything))
  analysis = report.analyse(order_runs, noisy_runs, paths, num_train=num_train)
  figures = report_figures.figures(removal_runs, window_runs, analysis, _OUTPUT.value,
                           num_train=num_train, fashion=fashion)
  findings = (report.claims(removal_runs, window_runs, analysis, num_train=num_train)
              + (fashion.findings if fashion else []))
  minutes = sum(r["wall_seconds"] for r in everything) / 60
  files.write_text(_OUTPUT.value + ".md", report.markdown(
      order_runs, noisy_runs, removal_runs, window_runs, analysis, figures=figures,
      findings=findings, seeds=seeds, num_train=num_train, grid_minutes=minutes,
      num_runs=len(everything), fashion=fashion))
  claims_lib.write(_OUTPUT.value + "_claims.json", claims_lib.attach(
      findings, paper=report.PAPER_NAME, regime=regime(seeds, num_train, bool(fashion)),
      table=os.path.basename(_OUTPUT.value) + ".md", command=report.COMMAND))
  print(f"wrote {_OUTPUT.value}.md, .csv, _claims.json ({len(everything)} runs, "
        f"{minutes:.0f} min of runs)")


if __name__ == "__main__":
  app.run(main)
