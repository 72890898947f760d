"""The selection comparison's figure: test accuracy against total wall clock, per dataset,
with the Pareto front (``experiments/selection_comparison_report.py`` writes it)."""

from experiments import selection_comparison_report as report
from jaxsel import files


def figure(all_cells, path: str) -> str:
  """Per dataset: test accuracy (mean ± std) against total seconds (mean) of every cell,
  the Pareto front as a line, full data as a black star."""
  import matplotlib  # host-only, and only here
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  from matplotlib.lines import Line2D
  datasets = [d for d in report.DATASET_NAMES if any(k[0] == d for k in all_cells)]
  fig = Figure(figsize=(6.5 * len(datasets) + 2.2, 5))
  FigureCanvasAgg(fig)
  palette = matplotlib.colormaps["tab20"]
  colors = {m: palette(i % 20) for i, m in enumerate(report.SHORT)}
  for panel, dataset in enumerate(datasets, start=1):
    ax = fig.add_subplot(1, len(datasets), panel)
    points = []
    for key, cell in all_cells.items():
      if key[0] != dataset or key[1] not in report.SHORT:
        continue
      seconds = report.mean_std(cell, "total_seconds")
      accuracy = report.mean_std(cell, "test_accuracy")
      if seconds is None:
        continue
      points.append((seconds[0], accuracy[0]))
      full = key[1] == "full"
      ax.errorbar(seconds[0], accuracy[0], yerr=accuracy[1],
                  fmt=report.MARKERS.get(key[2], "D"),
                  color="black" if full else colors[key[1]],
                  markersize=14 if full else 6, capsize=2)
      ax.annotate(f"{report.SHORT[key[1]]} {100 * key[2]:.0f}", (seconds[0], accuracy[0]),
                  textcoords="offset points", xytext=(4, 3), fontsize=7)
    front = [points[i] for i in report.pareto_front(points)]
    ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1)
    ax.set(title=report.DATASET_NAMES[dataset],
           xlabel="total wall seconds (scoring + run, mean)",
           ylabel="test accuracy (%, mean ± std)")
    ax.grid(alpha=0.3)
  shown = {k[1] for k in all_cells if k[1] in report.SHORT}
  handles = [Line2D([], [], marker="o", ls="", color="black" if m == "full" else colors[m],
                    label=report.METHOD_NAMES[m]) for m in report.SHORT if m in shown]
  handles += [Line2D([], [], marker=marker, ls="", color="gray", label=f"budget {100 * b:.0f} %")
              for b, marker in report.MARKERS.items()]
  handles.append(Line2D([], [], ls="--", color="black", label="Pareto front"))
  fig.legend(handles=handles, loc="center right", fontsize=7)
  fig.subplots_adjust(left=0.07, right=1 - 2.3 / fig.get_figwidth(), bottom=0.12, top=0.92)
  with files.atomic_output(path) as tmp:
    fig.savefig(tmp, dpi=110, format="png")
  return path
