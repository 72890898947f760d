"""The figures of the budgeted importance sampling grid: test accuracy against the budget
per method (standard augmentation), and the 30 % column (method × augmentation) as bars."""

import math

from experiments import budgeted_importance_sampling_report as report
from jaxsel import plotting

METHOD_COLORS = {"sgd": "tab:gray", "random": "tab:brown", "coreset": "tab:purple",
                 "unif": "tab:blue", "p": "tab:red", "c": "tab:orange", "sb": "tab:green"}
# The report's cell look-ups are shared with it, not part of a public interface.
# pylint: disable=protected-access


def _budget_series(cells, dataset) -> list[dict]:
  series = []
  for method, name in report.METHOD_NAMES.items():
    points = [(100 * b, report._stat(cells, (dataset, method, "standard", b, "")))
              for b in report.BUDGETS]
    points = [(x, s) for x, s in points if s is not None]
    if points:
      series.append({"label": name, "x": [x for x, _ in points],
                     "y": [s[0] for _, s in points], "yerr": [s[1] for _, s in points],
                     "color": METHOD_COLORS[method]})
  full = report._stat(cells, (dataset, "sgd", "standard", 1.0, ""))
  if full is not None:
    series.append({"label": "100 % budget", "x": [20, 70], "y": [full[0]] * 2,
                   "color": "black", "linestyle": "--"})
  return series


def _column_bars(cells, dataset, augmentations) -> list[dict]:
  def stat(method, augmentation):
    return report._stat(cells, (dataset, method, augmentation, report.MAIN_BUDGET, ""))

  return [{"label": name, "color": METHOD_COLORS[method],
           "y": [(stat(method, a) or (math.nan, 0))[0] for a in augmentations],
           "yerr": [(stat(method, a) or (0, 0))[1] for a in augmentations]}
          for method, name in report._methods(cells, dataset)]


def figures(cells, prefix: str, datasets) -> dict[str, str]:
  """Writes ``<prefix>_budgets.png`` and ``<prefix>_budget30.png``; {name: path}."""
  budget_panels, column_panels = [], []
  for dataset in datasets:
    budget_panels.append((report.DATASET_NAMES[dataset], _budget_series(cells, dataset)))
    augmentations = [a for a in report.AUGMENTATION_NAMES
                     if any(k[0] == dataset and k[2] == a for k in cells)]
    column_panels.append((f"{report.DATASET_NAMES[dataset]}, 30 % budget",
                          [report.AUGMENTATION_NAMES[a] for a in augmentations],
                          _column_bars(cells, dataset, augmentations)))
  paths = {"budgets": plotting.line_panels(budget_panels, prefix + "_budgets.png",
                                           xlabel="budget (% of examples per epoch)",
                                           ylabel="test accuracy (%)")}
  paths["column"] = plotting.grouped_bars(column_panels, prefix + "_budget30.png",
                                          ylabel="test accuracy (%)")
  return paths
