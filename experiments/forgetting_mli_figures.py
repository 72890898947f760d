"""The figures of the forgetting / MLI / Gradient Loss grid: test accuracy against the number
removed, against the window's first rank, the forgetting-count histograms and the share of
changed labels among the highest scores (``forgetting_mli_report`` describes the runs)."""

import os
import statistics

from experiments import forgetting_mli_report as report
from jaxsel import plotting


def _curve(cells, name, sizes, num_train):
  points = [cells[("none", 0, 0)]] + [cells[(name, r, 0)] for r in sizes]
  return {"label": report.NAMES[name], "color": report.COLORS[name],
          "x": [0.0] + [100.0 * r / num_train for r in sizes],
          "y": [report._acc(c)[0] for c in points],
          "yerr": [report._acc(c)[1] for c in points]}


def figures(removal_runs, window_runs, analysis, prefix: str, *, num_train: int,
            fashion=None) -> dict:
  cells, sizes = report._cells(removal_runs + window_runs), report._sizes(removal_runs)
  names = [n for n in report.NAMES if all((n, r, 0) in cells for r in sizes)]
  written = {}
  path = prefix + "_removal.png"
  plotting.line_panels([("MNIST-1D, test accuracy after removal (mean ± std over seeds)",
                         [_curve(cells, n, sizes, num_train) for n in names])],
                       path, xlabel="training examples removed (%)",
                       ylabel="test accuracy (%)")
  written["removal"] = os.path.basename(path)
  window = window_runs[0]["removed"] if window_runs else None
  if window:
    series = []
    for name in sorted({r["ordering"] for r in window_runs}):
      starts, _ = report._window_points(cells, analysis, name, window, num_train)
      accs = [report._acc(cells[(name, window, k)]) for k in starts]
      series.append({"label": report.NAMES[name], "color": report.COLORS[name],
                     "x": [100.0 * k / num_train for k in starts],
                     "y": [a for a, _ in accs], "yerr": [s for _, s in accs]})
    if ("random", window, 0) in cells:
      mean, std = report._acc(cells[("random", window, 0)])
      series.append({"label": "Random", "color": report.COLORS["random"], "linestyle": "--",
                     "x": [0.0, 100.0 * (num_train - window) / num_train],
                     "y": [mean, mean], "yerr": [std, std]})
    path = prefix + "_window.png"
    plotting.line_panels([(f"removing {100 * window // num_train} % from rank k", series)],
                         path, xlabel="window start k (% of the ordering)",
                         ylabel="test accuracy (%)")
    written["window"] = os.path.basename(path)
  noise = analysis["noise"][0]
  path = prefix + "_forgetting_histogram.png"
  panels = [("MNIST-1D, clean labels", report._histogram_series(analysis)),
            (f"MNIST-1D, 20 % label noise, seed {noise['seed']}",
             [{"label": "noisy labels", "counts": noise["noisy_counts"], "color": "tab:red"},
              {"label": "clean labels", "counts": noise["clean_counts"],
               "color": "tab:blue"}])]
  if fashion:
    panels.append(("Fashion-MNIST", fashion.histogram))
  plotting.count_histograms(panels, path, xlabel="forgetting events", max_count=20)
  written["histogram"] = os.path.basename(path)
  path = prefix + "_noise.png"
  series = []
  tops = list(report.TOP_PERCENTS)
  for name in report.NOISE_KEYS:
    shares = [[run["shares"][name][p] for run in analysis["noise"]] for p in tops]
    series.append({"label": report.NAMES[name], "color": report.COLORS[name], "x": tops,
                   "y": [statistics.fmean(s) for s in shares],
                   "yerr": [statistics.pstdev(s) for s in shares]})
  series.append({"label": "base rate", "color": "black", "linestyle": ":", "x": tops,
                 "y": [noise["noise_rate"]] * len(tops)})
  plotting.line_panels([("share of changed labels among the highest scores", series)], path,
                       xlabel="top p % of the ordering", ylabel="noisy labels (%)")
  written["noise"] = os.path.basename(path)
  return written
