"""The Fashion-MNIST part of the forgetting / MLI results file: forgetting statistics of
its ordering runs, removal by forgetting and at random, and its claim, decided seed by seed.

``fashion`` is ``{"order_runs", "removal_runs", "num_train"}`` (see ``forgetting_mli.py``);
``part`` turns it into what ``forgetting_mli_report`` puts in the results files.
"""
# The MNIST-1D report's cell, table and count helpers are shared, not copied.
# pylint: disable=protected-access

import statistics
from typing import NamedTuple

import numpy as np

from experiments import claims as claims_lib
from experiments import forgetting_mli_report as report


class Part(NamedTuple):
  runs: list  # every Fashion-MNIST run, for the csv
  section: list  # the results file's lines
  findings: list  # its claims (claims.Finding)
  histogram: list  # the forgetting-count series of the histogram figure


def analysis(fashion) -> dict:
  """Forgetting statistics of the Fashion-MNIST ordering runs."""
  per_seed = [report._forgetting_counts(r["workdir"]) for r in fashion["order_runs"]]
  return {"per_seed_counts": per_seed, "summed_counts": np.sum(per_seed, axis=0),
          "unforgettable_per_seed": [100.0 * np.mean(c == 0) for c in per_seed],
          "unforgettable_all_seeds": 100.0 * np.mean(np.sum(per_seed, axis=0) == 0),
          "never_learned_per_seed": [100.0 * r["summary"]["never_learned_fraction"]
                                     for r in fashion["order_runs"]]}


def _cells(fashion):
  return report._cells(fashion["order_runs"] + fashion["removal_runs"])


def finding(fashion) -> claims_lib.Finding | None:
  """Removal by forgetting against random removal at every size; None if a cell is
  missing."""
  return report.removal_finding(
      _cells(fashion), "forgetting", "random", report._sizes(fashion["removal_runs"]),
      fashion["num_train"], text="Fashion-MNIST (the MNIST CNN, 20 epochs): random removal "
                                 "costs more than removing the least-forgotten, at every size")


def section(fashion, stats) -> list[str]:
  num_train = fashion["num_train"]
  unforgettable = stats["unforgettable_per_seed"]
  return [
      "## Fashion-MNIST",
      "",
      f"`fashion_mnist_local` ({num_train:,} training images) with the paper's MNIST CNN and "
      "MNIST settings (batch 64, SGD lr 0.01 momentum 0.5, no weight decay, no schedule, no "
      "augmentation) for 20 epochs instead of 200, so that it fits here. Forgetting "
      f"statistics: unforgettable per seed {statistics.fmean(unforgettable):.1f} ± "
      f"{statistics.pstdev(unforgettable):.1f} %, in every seed "
      f"{stats['unforgettable_all_seeds']:.1f} %, never learned per seed "
      f"{statistics.fmean(stats['never_learned_per_seed']):.2f} % (histogram in the figure "
      "above). Test accuracy (%) after removal:",
      "",
      *report._removal_table(_cells(fashion), report._sizes(fashion["removal_runs"]),
                             num_train),
      "",
      "Whether removing the least-forgotten costs less than removing at random is decided, "
      "seed by seed, in the last section.",
      "",
  ]


def part(fashion) -> Part:
  stats = analysis(fashion)
  found = finding(fashion)
  return Part(runs=fashion["order_runs"] + fashion["removal_runs"],
              section=section(fashion, stats), findings=[found] if found else [],
              histogram=report._histogram_series(stats))
