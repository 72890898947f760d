"""Host-only matplotlib figures: reliability diagrams, training curves, score histograms.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas rather than through
``pyplot``, so this module touches no global plotting state, needs no display and is safe
to call from any thread. Core modules never import it.

Every figure is written atomically: it is saved to a temporary file in the destination
directory and then renamed over the final path, so a reader never sees a half-written
image and an interrupted run leaves no partial file under the final name.
"""

from collections.abc import Mapping, Sequence
import math
import os
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

from jaxsel import files


def _new_figure(width: float, height: float, *, left: float = 0.75, right: float = 0.2,
                bottom: float = 0.55, top: float = 0.4, wspace: float = 0.3,
                hspace: float = 0.15) -> Figure:
  """A figure of ``width`` x ``height`` inches with fixed margins (inches; ``wspace`` and
  ``hspace`` as fractions of the mean axes size).

  Fixed margins rather than matplotlib's constrained or tight layout: those re-measure
  every text element when the figure is saved, which doubled the cost of a run's figures
  (about 0.25 s of a 4 s run). The margins fit one line of axis labels and a title.
  """
  figure = Figure(figsize=(width, height))
  figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                         top=1 - top / height, wspace=wspace, hspace=hspace)
  FigureCanvasAgg(figure)
  return figure


def _save_atomically(figure: Figure, path: str | os.PathLike, *, dpi: int = 120) -> str:
  """Saves ``figure`` to ``path`` via a temporary file renamed into place."""
  path = os.fspath(path)
  file_format = (os.path.splitext(path)[1] or ".png")[1:].lower()
  with files.atomic_output(path) as temp_path, open(temp_path, "wb") as f:
    figure.savefig(f, format=file_format, dpi=dpi)
  return path


def reliability_diagram(
    diagram_data: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    ece: float | None = None,
) -> str:
  """Accuracy per confidence bin against the diagonal, with a count histogram below.

  Args:
    diagram_data: output of ``metrics.reliability_diagram_data`` (per-bin
      ``bin_lower``, ``bin_upper``, ``count``, ``accuracy``, ``confidence``).
    path: destination image; the format follows the extension (PNG if none).
    title: optional axes title.
    ece: optional ECE as a fraction in [0, 1]; shown in percent in the legend.

  Returns:
    The path written.
  """
  return reliability_grid([(title, diagram_data, ece)], path)


def reliability_grid(
    panels: Sequence[tuple[str | None, Mapping[str, Any], float | None]],
    path: str | os.PathLike,
) -> str:
  """Reliability diagrams side by side: one ``(title, diagram_data, ece)`` per panel."""
  figure = _new_figure(4.2 * len(panels) + 0.8, 6.0)
  axes = figure.subplots(2, len(panels), sharex=True, squeeze=False,
                         gridspec_kw={"height_ratios": [3, 1]})
  for column, (title, diagram_data, ece) in enumerate(panels):
    _draw_reliability(axes[0, column], axes[1, column], diagram_data, title=title, ece=ece)
  return _save_atomically(figure, path)


def _draw_reliability(top, bottom, diagram_data, *, title, ece) -> None:
  lower = np.asarray(diagram_data["bin_lower"], np.float64)
  upper = np.asarray(diagram_data["bin_upper"], np.float64)
  count = np.asarray(diagram_data["count"], np.float64)
  accuracy = np.asarray(diagram_data["accuracy"], np.float64)
  confidence = np.asarray(diagram_data["confidence"], np.float64)
  width = upper - lower
  occupied = count > 0

  top.bar(
      lower[occupied],
      accuracy[occupied],
      width=width[occupied],
      align="edge",
      color="tab:blue",
      edgecolor="black",
      linewidth=0.5,
      label="accuracy",
  )
  # Shaded from acc_b up or down to conf_b: shading above an accuracy bar is
  # over-confidence, shading inside it under-confidence.
  gap_bottom = np.minimum(accuracy, confidence)[occupied]
  gap_height = np.abs(confidence - accuracy)[occupied]
  top.bar(
      lower[occupied],
      gap_height,
      bottom=gap_bottom,
      width=width[occupied],
      align="edge",
      color="tab:red",
      alpha=0.3,
      edgecolor="tab:red",
      hatch="//",
      linewidth=0.5,
      label="gap to confidence",
  )
  top.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
  if ece is not None:
    # An invisible handle puts the ECE in the legend next to what it summarises.
    top.plot([], [], linestyle="none", label=f"ECE = {100 * float(ece):.2f}%")
  top.set_xlim(0, 1)
  top.set_ylim(0, 1)
  top.set_ylabel("accuracy")
  top.legend(loc="upper left", fontsize="small")
  if title:
    top.set_title(title)

  bottom.bar(
      lower,
      count,
      width=width,
      align="edge",
      color="gray",
      edgecolor="black",
      linewidth=0.5,
  )
  bottom.set_xlabel("confidence")
  bottom.set_ylabel("count")




def metric_vs_subset(
    series: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    metrics: Sequence[tuple[str, str]] = (("test_accuracy", "test accuracy (%)"),
                                          ("test_ece", "test ECE (%)")),
) -> str:
  """One panel per metric against the subset size, one line (mean ± std) per series.

  Each series is a mapping with ``label``, ``percent`` ([n] subset sizes in %), and for
  every metric key ``mean`` / ``std`` dicts of [n] values; ``linestyle`` and ``color``
  are optional.
  """
  figure = _new_figure(5.0 * len(metrics), 4.2)
  axes = figure.subplots(1, len(metrics), squeeze=False)[0]
  for ax, (key, label) in zip(axes, metrics):
    for line in series:
      ax.errorbar(line["percent"], line["mean"][key], yerr=line["std"][key],
                  label=line["label"], linestyle=line.get("linestyle", "-"),
                  color=line.get("color"), marker="o", markersize=4, capsize=3)
    ax.set_xlabel("examples per epoch after warm-up (%)")
    ax.set_ylabel(label)
    ax.set_xticks(sorted({p for line in series for p in line["percent"]}))
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize="small")
  return _save_atomically(figure, path)


def _finite_series(
    records: Sequence[Mapping[str, Any]], key: str
) -> tuple[np.ndarray, np.ndarray]:
  """(epoch, value) of the records holding a finite number under ``key``.

  The x value is the record's ``epoch`` if present, else its position in ``records``.
  """
  xs, ys = [], []
  for position, record in enumerate(records):
    value = record.get(key)
    if value is None:
      continue
    try:
      value = float(value)
    except (TypeError, ValueError):
      continue
    if not math.isfinite(value):
      continue
    xs.append(float(record.get("epoch", position)))
    ys.append(value)
  return np.asarray(xs), np.asarray(ys)


def training_curves(
    records: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    keys: Sequence[str] = ("train_loss", "val_accuracy", "val_ece"),
) -> str:
  """Small multiples, one panel per key, of metric value against epoch.

  Args:
    records: metrics.jsonl-style dicts, e.g. ``{"epoch": 3, "train_loss": 0.4, ...}``.
      Keys absent from every record are skipped, as are missing or non-finite values.
    path: destination image.
    keys: metrics to plot, in panel order.

  Returns:
    The path written.
  """
  series = {key: _finite_series(records, key) for key in keys}
  series = {key: xy for key, xy in series.items() if xy[0].size}

  num_panels = max(len(series), 1)
  figure = _new_figure(3.2 * num_panels, 2.8)
  axes = figure.subplots(1, num_panels, squeeze=False)[0]
  if not series:
    axes[0].text(0.5, 0.5, "no data", ha="center", va="center")
    axes[0].set_axis_off()
  for ax, (key, (xs, ys)) in zip(axes, series.items()):
    ax.plot(xs, ys, marker="o" if xs.size < 30 else None, markersize=3)
    ax.set_title(key)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
  return _save_atomically(figure, path)


def score_histogram(
    scores: Any,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    bins: int = 50,
) -> str:
  """Histogram of a per-example score table (any shape; flattened).

  Non-finite scores (e.g. never-scored examples stored as NaN) are left out of the
  histogram and their number is noted on the figure.

  Returns:
    The path written.
  """
  values = np.asarray(scores, np.float64).ravel()
  finite = np.isfinite(values)
  shown = values[finite]

  figure = _new_figure(5.0, 3.5)
  ax = figure.subplots()
  if shown.size:
    ax.hist(shown, bins=bins, color="tab:blue", edgecolor="black", linewidth=0.3)
  ax.set_xlabel("score")
  ax.set_ylabel("examples")
  note = f"n = {shown.size}"
  if shown.size != values.size:
    note += f", {values.size - shown.size} non-finite omitted"
  ax.text(
      0.98, 0.95, note, transform=ax.transAxes, ha="right", va="top",
      fontsize="small",
  )
  if title:
    ax.set_title(title)
  return _save_atomically(figure, path)


def _label_axes(ax, *, xlabel: str, ylabel: str, title: str | None) -> None:
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.legend(fontsize="small")
  if title:
    ax.set_title(title)


def coreset_histogram(all_scores: Any, coreset_scores: Any, path: str | os.PathLike, *,
                      score_name: str, title: str | None = None, bins: int = 50) -> str:
  """Histogram of a score over all training examples, with the coreset's share of each
  bin drawn over it: where on the score axis the coreset comes from."""
  values = np.asarray(all_scores, np.float64)
  chosen = np.asarray(coreset_scores, np.float64)
  finite = values[np.isfinite(values)]
  edges = np.histogram_bin_edges(finite, bins=bins) if finite.size else bins
  figure = _new_figure(5.5, 3.6)
  ax = figure.subplots()
  ax.hist(finite, bins=edges, color="lightgray", edgecolor="gray", linewidth=0.3,
          label=f"all training examples (n = {finite.size})")
  ax.hist(chosen[np.isfinite(chosen)], bins=edges, color="tab:blue", alpha=0.8,
          label=f"coreset (n = {chosen.size})")
  _label_axes(ax, xlabel=score_name, ylabel="examples", title=title)
  return _save_atomically(figure, path)


def strata_allocation(stratum_sizes: Any, allocation: Any, path: str | os.PathLike, *,
                      lower: float, upper: float, score_name: str,
                      title: str | None = None) -> str:
  """Coverage-centric selection's strata: examples in each equal-width stratum of the
  score (after the hard-example cutoff) and how many the coreset takes from it."""
  sizes = np.asarray(stratum_sizes, np.float64)
  taken = np.asarray(allocation, np.float64)
  edges = np.linspace(lower, upper, len(sizes) + 1)
  width = np.diff(edges)
  figure = _new_figure(5.5, 3.6)
  ax = figure.subplots()
  ax.bar(edges[:-1], sizes, width=width, align="edge", color="lightgray", edgecolor="gray",
         linewidth=0.3, label="examples in the stratum")
  ax.bar(edges[:-1], taken, width=width, align="edge", color="tab:blue", alpha=0.8,
         label="taken into the coreset")
  ax.set_yscale("symlog", linthresh=1)
  _label_axes(ax, xlabel=score_name, ylabel="examples", title=title)
  return _save_atomically(figure, path)


def line_panels(panels: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
                path: str | os.PathLike, *, xlabel: str, ylabel: str) -> str:
  """Side-by-side panels of lines: ``(title, series)`` per panel, each series a mapping
  with ``label``, ``x``, ``y`` and optionally ``yerr`` (error bars), ``color``,
  ``linestyle``."""
  figure = _new_figure(5.0 * len(panels) + 0.5, 4.2, wspace=0.25)
  axes = figure.subplots(1, len(panels), squeeze=False)[0]
  for ax, (title, series) in zip(axes, panels):
    for line in series:
      ax.errorbar(line["x"], line["y"], yerr=line.get("yerr"), label=line["label"],
                  color=line.get("color"), linestyle=line.get("linestyle", "-"),
                  marker="o", markersize=4, capsize=3)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
  return _save_atomically(figure, path)


def count_histograms(panels: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
                     path: str | os.PathLike, *, xlabel: str, max_count: int | None = None,
                     log: bool = True) -> str:
  """Side-by-side panels of histograms of integer counts (e.g. forgetting events), as the
  fraction of examples at each count: ``(title, series)`` per panel, each series a mapping
  with ``label`` and ``counts`` (ints >= 0) and optionally ``color``; the series' bars
  stand side by side. Counts above ``max_count`` are pooled into its bar."""
  figure = _new_figure(5.0 * len(panels) + 0.5, 3.8, wspace=0.25)
  axes = figure.subplots(1, len(panels), squeeze=False)[0]
  for ax, (title, series) in zip(axes, panels):
    top = max_count if max_count is not None else max(
        int(np.max(s["counts"], initial=0)) for s in series)
    width = 0.8 / max(len(series), 1)
    for i, line in enumerate(series):
      counts = np.minimum(np.asarray(line["counts"], np.int64), top)
      fractions = np.bincount(counts, minlength=top + 1) / max(counts.size, 1)
      ax.bar(np.arange(top + 1) + (i - (len(series) - 1) / 2) * width, fractions,
             width=width, label=line["label"], color=line.get("color"))
    if log:
      ax.set_yscale("log")
    _label_axes(ax, xlabel=xlabel + (f" ({top} = {top} or more)" if max_count else ""),
                ylabel="fraction of examples", title=title)
  return _save_atomically(figure, path)


def grouped_bars(panels: Sequence[tuple[str, Sequence[str], Sequence[Mapping[str, Any]]]],
                 path: str | os.PathLike, *, ylabel: str) -> str:
  """Side-by-side panels of grouped bars: ``(title, group names, series)`` per panel, each
  series a mapping with ``label``, ``y`` (one value per group, NaN = missing) and
  optionally ``yerr`` and ``color``; the series' bars stand side by side in each group.
  Each panel's y axis spans its own bars (with room for the legend above them), so small
  differences stay visible."""
  figure = _new_figure(5.5 * len(panels) + 0.5, 4.2, wspace=0.25)
  axes = figure.subplots(1, len(panels), squeeze=False)[0]
  for ax, (title, groups, series) in zip(axes, panels):
    width = 0.8 / max(len(series), 1)
    for i, bars in enumerate(series):
      ax.bar(np.arange(len(groups)) + (i - (len(series) - 1) / 2) * width, bars["y"],
             width=width, yerr=bars.get("yerr"), capsize=2, label=bars["label"],
             color=bars.get("color"))
    values = np.asarray([y for bars in series for y in bars["y"]], np.float64)
    values = values[np.isfinite(values)]
    if values.size:
      low, high = float(values.min()), float(values.max())
      span = max(high - low, 0.5)
      ax.set_ylim(low - 0.15 * span, high + 0.6 * span)
    ax.set_xticks(np.arange(len(groups)), list(groups))
    _label_axes(ax, xlabel="", ylabel=ylabel, title=title)
    ax.legend(fontsize="x-small", ncol=3, loc="upper center")
  return _save_atomically(figure, path)
