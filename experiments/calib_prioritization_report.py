"""Tables, figures and claim checks of the calibrated-prioritization grid.

``results`` is a list of ``{"arg", "seed", "summary", "command"}`` (see
``calib_prioritization.py``); a cell is every seed of one config argument, e.g.
``mnist1d,mixup,10`` (Table 1), ``mnist1d,mixup,10,target`` (Table 2) or
``mnist1d,none,10,random`` (the random-subset baseline).
"""

import os
import statistics

import numpy as np

from configs.papers import calib_prioritization as paper
from experiments import claims as claims_lib
from experiments import grid as grid_lib
from experiments import paired
from jaxsel import plotting

PAPER_NAME = "Tata et al. 2022, calibrated sample prioritization"
CALIBRATION_NAMES = {"none": "cross-entropy", "label_smoothing": "label smoothing",
                     "mixup": "mixup", "focal": "focal"}
HPARAM_SYMBOL = {"label_smoothing": "ε", "mixup": "α", "focal": "γ"}
COLORS = {"none": "tab:gray", "label_smoothing": "tab:orange", "mixup": "tab:blue",
          "focal": "tab:green"}

# The paper's CIFAR-10 / CIFAR-100 numbers (accuracy, ECE), columns 100/30/20/10 %.
PAPER = {
    (1, "cifar10"): {"none": [(94.10, 4.10), (93.60, 5.33), (93.86, 4.01), (93.23, 5.20)],
                     "label_smoothing": [(94.00, 1.84), (91.74, 3.17), (91.48, 3.56),
                                         (91.72, 2.71)],
                     "mixup": [(95.10, 2.10), (94.39, 2.67), (93.35, 2.59), (93.17, 1.78)],
                     "focal": [(94.69, 1.71), (93.19, 1.20), (92.60, 1.25), (92.25, 1.42)]},
    (2, "cifar10"): {"none": [(94.10, 4.10), (93.95, 4.04), (93.43, 4.90), (93.16, 4.11)],
                     "label_smoothing": [(94.00, 1.84), (93.62, 2.93), (93.30, 3.32),
                                         (93.27, 1.90)],
                     "mixup": [(95.10, 2.10), (94.70, 2.88), (93.79, 2.73), (93.22, 2.16)],
                     "focal": [(94.69, 1.71), (93.15, 1.06), (92.65, 1.58), (92.84, 1.89)]},
    (1, "cifar100"): {"none": [(77.48, 5.42), (73.13, 10.77), (71.54, 13.16),
                               (69.65, 14.47)],
                      "label_smoothing": [(77.05, 4.88), (72.21, 3.45), (70.93, 5.75),
                                          (68.63, 5.67)],
                      "mixup": [(78.68, 3.59), (73.57, 1.49), (72.02, 2.40), (69.10, 1.16)],
                      "focal": [(78.59, 3.57), (71.86, 1.67), (70.61, 3.25), (65.81, 1.82)]},
    (2, "cifar100"): {"none": [(77.48, 5.42), (75.38, 9.36), (75.04, 9.39), (71.07, 9.27)],
                      "label_smoothing": [(77.05, 4.88), (76.06, 2.28), (75.27, 2.67),
                                          (72.59, 1.63)],
                      "mixup": [(78.68, 3.59), (75.62, 0.86), (74.78, 1.43), (70.32, 0.86)],
                      "focal": [(78.59, 3.57), (74.89, 2.37), (73.73, 1.43), (70.89, 1.51)]},
}
METRICS = ("test_accuracy", "test_ece", "test_mce", "test_oe", "test_nll", "test_brier",
           "train_seconds", "scoring_seconds", "selection_seconds", "examples_backpropagated",
           "examples_forwarded")


def parse(arg: str) -> dict:
  dataset, *rest = arg.split(",")
  if rest == ["target_model"]:
    return {"dataset": dataset, "calibration": "mixup", "percent": 100,
            "variant": "target_model"}
  return {"dataset": dataset, "calibration": rest[0], "percent": int(rest[1]),
          "variant": rest[2] if len(rest) > 2 else "top_k" if int(rest[1]) < 100 else ""}


def cells(results) -> dict[str, dict]:
  """Config argument -> {'summaries', 'commands', 'seeds', 'hparam', **parsed argument}.

  ``hparam`` ('α=0.2') is the results' own ``hparam`` where they carry one (a tuned
  grid), otherwise the paper config's value for the cell. One grid is one dataset.
  """
  labels = {r["arg"]: r["hparam"] for r in results if "hparam" in r}
  out = {}
  for arg, cell in grid_lib.cells(results).items():
    cell = {**parse(arg), **cell}
    cell["hparam"] = labels.get(arg, "" if cell["variant"] == "target_model"
                                else _hparam(cell))
    out[arg] = cell
  if len({cell["dataset"] for cell in out.values()}) > 1:
    raise ValueError("a calibrated-prioritization grid holds one dataset, got "
                     f"{sorted({cell['dataset'] for cell in out.values()})}")
  return out


_stats = grid_lib.stats


def _hparam(cell) -> str:
  config = paper.get_config(",".join(
      [cell["dataset"], cell["calibration"], str(cell["percent"])]
      + (["target"] if cell["variant"] == "target" else [])))
  method = cell["calibration"]
  if method == "none":
    return ""
  return f"{HPARAM_SYMBOL[method]}={paper.calibration_hparam(config, method):g}"


def rows(results) -> list[dict]:
  """One CSV row per cell: its settings and mean / std over seeds of every metric."""
  out = []
  for arg, cell in cells(results).items():
    row = {"config_arg": arg, "calibration": cell["calibration"],
           "hyper_parameter": cell["hparam"],
           "percent": cell["percent"], "variant": cell["variant"],
           "seeds": " ".join(map(str, cell["seeds"])),
           "command_first_seed": cell["commands"][0]}
    for key in METRICS:
      mean, std = _stats(cell, key)
      row[f"{key}_mean"], row[f"{key}_std"] = round(mean, 4), round(std, 4)
    out.append(row)
  return out


def find_cell(grid, calibration, percent, variant):
  """The cell of a (calibration, percent, variant); variant '' or 'top_k' is Table 1."""
  suffix = f",{variant}" if variant in ("target", "random") else ""
  dataset = next(iter(grid.values()))["dataset"] if grid else ""
  return grid.get(f"{dataset},{calibration},{percent}{suffix}")


def fmt(cell) -> str:
  if cell is None:
    return "—"
  acc, acc_std = _stats(cell, "test_accuracy")
  ece, ece_std = _stats(cell, "test_ece")
  return f"{acc:.2f} ± {acc_std:.2f} / {ece:.2f} ± {ece_std:.2f}"


def table(grid, variant: str, percents) -> list[str]:
  lines = ["| calibration | " + " | ".join(f"{p} %" for p in percents) + " |",
           "|---|" + "---|" * len(percents)]
  for calibration in paper.CALIBRATIONS:
    hparams = [(c["hparam"] if (c := find_cell(grid, calibration, p,
                                            variant if p < 100 else "")) else "")
               for p in percents]
    label = CALIBRATION_NAMES[calibration]
    if calibration != "none":
      label += " (" + " / ".join(h.split("=")[1] for h in hparams if h) + ")"
    lines.append(f"| {label} | " + " | ".join(
        fmt(find_cell(grid, calibration, p, variant if p < 100 else "")) for p in percents)
                 + " |")
  return lines


def paper_table(table: int, dataset: str) -> list[str]:
  numbers = PAPER[(table, dataset)]
  lines = ["| calibration | 100 % | 30 % | 20 % | 10 % |", "|---|---|---|---|---|"]
  for calibration in paper.CALIBRATIONS:
    lines.append(f"| {CALIBRATION_NAMES[calibration]} | " + " | ".join(
        f"{a:.2f} / {e:.2f}" for a, e in numbers[calibration]) + " |")
  return lines


def _line(label: str, linestyle: str, color: str, points) -> dict:
  """A ``plotting.metric_vs_subset`` series from [(percent, cell)]."""
  keys = ("test_accuracy", "test_ece")
  return {"label": label, "linestyle": linestyle, "color": color,
          "percent": [p for p, _ in points],
          "mean": {k: [_stats(c, k)[0] for _, c in points] for k in keys},
          "std": {k: [_stats(c, k)[1] for _, c in points] for k in keys}}


def _series(grid) -> list[dict]:
  series = []
  for variant, style, suffix in (("top_k", "-", "max entropy"),
                                 ("target", "--", "target-guided")):
    for calibration in paper.CALIBRATIONS:
      points = [(p, find_cell(grid, calibration, p, variant if p < 100 else ""))
                for p in (10, 20, 30, 100)]
      points = [(p, c) for p, c in points if c is not None]
      if len(points) >= 2:
        series.append(_line(f"{CALIBRATION_NAMES[calibration]}, {suffix}", style,
                            COLORS[calibration], points))
  points = [(p, find_cell(grid, "none", p, "random")) for p in (10, 20, 30)]
  points = [(p, c) for p, c in points if c is not None]
  if points:
    series.append(_line("cross-entropy, random subset", ":", "black", points))
  return series


def figures(results, prefix: str) -> dict[str, str]:
  """Writes the figures next to ``prefix``; returns {name: file name}."""
  grid = cells(results)
  written = {}
  path = prefix + "_vs_subset.png"
  plotting.metric_vs_subset(_series(grid), path)
  written["vs_subset"] = os.path.basename(path)
  panels = []
  for calibration in paper.CALIBRATIONS:
    cell = find_cell(grid, calibration, 10, "top_k")
    if cell is None:
      continue
    summary = cell["summaries"][0]
    data = {k: np.asarray(v) for k, v in summary["test_reliability"].items()}
    panels.append((f"{CALIBRATION_NAMES[calibration]}, 10 %, seed {cell['seeds'][0]}",
                   data, summary["test_ece"] / 100))
  if panels:
    path = prefix + "_reliability_10.png"
    plotting.reliability_grid(panels, path)
    written["reliability_10"] = os.path.basename(path)
  return written


SUBSETS = (30, 20, 10)
CALIBRATED = ("label_smoothing", "mixup", "focal")
SHORT = {"none": "CE", "label_smoothing": "LS", "mixup": "mixup", "focal": "focal"}


def _seeds(grid, calibration, percent, variant, key):
  """{seed: value} of one cell, or None if the grid lacks it."""
  cell = find_cell(grid, calibration, percent, variant if percent < 100 else "")
  return None if cell is None else paired.by_seed(cell, key)


def _differences(grid, pairs, key):
  """{label: PairedDifference} of cell a − cell b for each (label, a, b), a and b given as
  (calibration, percent, variant); None if any cell is missing."""
  return paired.differences(lambda cell: _seeds(grid, *cell, key), pairs)


def _average_difference(grid, a_cells, b_cells, key):
  """The paired difference of the per-seed average over cells of a − b (one interval for a
  claim about an average over subset sizes); None if a cell is missing."""
  pairs = [(_seeds(grid, *a, key), _seeds(grid, *b, key)) for a, b in zip(a_cells, b_cells)]
  if any(x is None for pair in pairs for x in pair):
    return None
  return paired.mean_paired_difference(pairs)


def _per_cell(grid, key, direction, compare, margin=0.0, *, text, unit):
  """A claim made of one paired test per (label, a, b) of ``compare``: every part must
  hold; None if a cell is missing."""
  return claims_lib.per_cell(_differences(grid, compare, key), direction, margin,
                             text=text, unit=unit)


def claims(grid, subsets=SUBSETS) -> list:
  """The paper's claims, each decided seed by seed (``experiments.paired``): a list of
  ``claims.Finding``. A claim whose cells are not all in ``grid`` is left out; ``subsets``
  are the subset sizes (%) the grid ran."""
  sizes = "/".join(map(str, subsets)) + " %"
  topk = lambda c, p: (c, p, "top_k")  # noqa: E731
  found = []

  def add(finding):
    if finding is not None:
      found.append(finding)

  add(_per_cell(
      grid, "test_ece", -1,
      [(f"{SHORT[c]} {p} %", topk(c, p), topk("none", p)) for c in CALIBRATED
       for p in subsets],
      text="Calibration during training lowers test ECE under selection, at every subset "
           "size and for every calibration (vs cross-entropy, the same subset size)",
      unit="ECE difference (points)"))
  add(_per_cell(
      grid, "test_accuracy", 1,
      [(f"{SHORT[c]} {p} %", topk(c, p), topk("none", p)) for c in CALIBRATED
       for p in subsets], margin=-1.0,
      text="...at no large accuracy cost: each calibrated cell is within 1 point of "
           "cross-entropy (the interval lies above −1)",
      unit="accuracy difference (points)"))
  for best, text in (("mixup", "Mixup is the most consistent calibration: lowest ECE "
                               f"averaged over {sizes}"),
                     ("label_smoothing", "Label smoothing is the weakest calibration: "
                                         f"highest ECE averaged over {sizes}")):
    direction = -1 if best == "mixup" else 1
    diffs = {f"{SHORT[best]} − {SHORT[o]}": _average_difference(
        grid, [topk(best, p) for p in subsets], [topk(o, p) for p in subsets], "test_ece")
        for o in CALIBRATED if o != best}
    if None not in diffs.values():
      add(claims_lib.per_cell(diffs, direction, text=text,
                              unit="mean ECE difference (points)"))
  gains = {c: _average_difference(grid, [(c, p, "target") for p in subsets],
                                  [topk(c, p) for p in subsets], "test_accuracy")
           for c in paper.CALIBRATIONS}
  if None not in gains.values():
    add(claims_lib.per_cell(
        {SHORT[c]: d for c, d in gains.items()}, 1,
        text="Target guidance improves accuracy over the current model alone (every "
             f"calibration, averaged over {sizes})",
        unit="accuracy gain of target-guided over self-scored (points)"))
    gain = {c: {s: statistics.fmean(
        _seeds(grid, c, p, "target", "test_accuracy")[s]
        - _seeds(grid, *topk(c, p), "test_accuracy")[s] for p in subsets)
        for s in _seeds(grid, c, subsets[0], "target", "test_accuracy")}
        for c in paper.CALIBRATIONS}
    most = {f"LS − {SHORT[c]}": paired.paired_difference(gain["label_smoothing"], gain[c])
            for c in paper.CALIBRATIONS if c != "label_smoothing"}
    add(claims_lib.per_cell(
        most, 1, text="...most for label smoothing (its gain exceeds every other "
                      "calibration's)", unit="difference of gains (points)"))
  add(_per_cell(
      grid, "test_accuracy", 1, [("10 % − 100 %", topk("none", 10), ("none", 100, ""))],
      margin=-1.5,
      text="10 % subsets after warm-up lose only about 1 point of accuracy (cross-entropy; "
           "tested as: the loss is under 1.5 points)",
      unit="accuracy difference (points)"))
  add(_per_cell(
      grid, "test_accuracy", 1,
      [(f"{p} %", topk("none", p), ("none", p, "random")) for p in subsets],
      text="Max-entropy subsets beat fresh random subsets in accuracy (cross-entropy), at "
           "every subset size", unit="accuracy difference (points)"))
  add(_per_cell(
      grid, "test_ece", -1,
      [(f"{p} %", topk("none", p), ("none", p, "random")) for p in subsets],
      text="(Not a claim of the paper.) Max-entropy subsets give lower test ECE than random "
           "subsets (cross-entropy), at every subset size", unit="ECE difference (points)"))
  return found


def diagnosis(grid, subsets=SUBSETS) -> str | None:
  """Over-confidence error against ECE per calibration, averaged over the subset sizes."""
  means = {}
  for c in paper.CALIBRATIONS:
    cells = [find_cell(grid, c, p, "top_k") for p in subsets]
    if None in cells:
      return None
    means[c] = tuple(statistics.fmean(_stats(cell, k)[0] for cell in cells)
                     for k in ("test_oe", "test_ece"))
  sizes = "/".join(map(str, subsets)) + " %"
  return (f"(Diagnosis.) Over-confidence error against ECE, averaged over {sizes}: "
          + ", ".join(f"{CALIBRATION_NAMES[c]} {oe:.2f} of {ece:.2f}"
                      for c, (oe, ece) in means.items())
          + " %: where OE is a small part of ECE the model is under-confident, i.e. the "
          "calibration method over-corrects.")


def markdown(results, *, figures: dict, seeds, grid_minutes: float) -> str:
  grid = cells(results)
  base = paper.get_config("mnist1d")
  target_cell = grid.get("mnist1d,target_model")
  lines = [
      "# Calibrated sample prioritization on MNIST-1D: Tables 1 and 2",
      "",
      "Reproduction of Tata et al., \"Can Calibration Improve Sample Prioritization?\" "
      "(NeurIPS 2022 HITY workshop) on data that runs on a 2-core CPU: "
      f"`{base.dataset.name}` ({results[0]['summary']['num_train']:,} training / "
      f"{results[0]['summary']['num_validation']:,} validation / "
      f"{results[0]['summary']['num_test']:,} test examples), the MNIST-1D paper's CNN, "
      f"batch {base.train.batch_size}, SGD momentum 0.9, weight decay 5e-4, lr "
      f"{base.optimizer.learning_rate:g} with per-epoch cosine annealing, "
      f"{base.train.num_epochs} epochs of which the first {base.method.warmup_epochs} on "
      "all data, then the max-entropy (`top_k`) subset of each epoch, scored by each "
      "example's last training-pass entropy (`method.score_source=train_step`). 15-bin ECE, "
      f"last-epoch model, mean ± std over {len(seeds)} seeds ({', '.join(map(str, seeds))}).",
      "",
      "Whole grid: `python -m experiments.calib_prioritization` "
      f"({len(results)} runs, {grid_minutes:.0f} min of run wall time on 2 CPU cores, one "
      "run after the other). "
      "Each cell's command (first seed; the others differ only in `--config.seed` and "
      "`--workdir`) is in the `.csv` beside this file, e.g.",
      "",
      "```bash",
      *(grid[arg]["commands"][0] for arg in list(grid)[:2] if arg in grid),
      "python -m jaxsel.main --config=configs/papers/calib_prioritization.py:"
      "mnist1d,mixup,10,target --workdir=runs/calib_prioritization/mnist1d_mixup_10_target/"
      "seed0 --config.seed=0 --config.method.target.path="
      "runs/calib_prioritization/mnist1d_target_model/seed0",
      "```",
      "",
      "Cells are test accuracy / ECE in %, mean ± std over seeds. The calibration "
      "hyper-parameter of each column (ε, α, γ) is the paper's CIFAR-10 choice for that "
      "cell.",
      "",
      "## Table 1: the current model scores its own examples",
      "",
      *table(grid, "top_k", (100, 30, 20, 10)),
      "",
      "Random-subset baseline (cross-entropy, a fresh uniformly random subset each epoch): "
      + ", ".join(f"{p} %: {fmt(find_cell(grid, 'none', p, 'random'))}" for p in (30, 20, 10)),
      "",
      "The paper, CIFAR-10, ResNet-34 (accuracy / ECE, %):",
      "",
      *paper_table(1, "cifar10"),
      "",
      "## Table 2: a calibrated target model scores the examples",
      "",
  ]
  if target_cell:
    summary = target_cell["summaries"][0]
    lines += [
        "Target: the CNN widened to 64 channels with BatchNorm, trained on all data with "
        f"mixup α = {paper.TARGET_MIXUP_ALPHA['mnist1d']} (`mnist1d,target_model`): test "
        f"accuracy {summary['test_accuracy']:.2f} %, ECE {summary['test_ece']:.2f} %. "
        "Runs rank examples by its per-epoch training-pass entropies "
        "(`method.target.mode=trajectory`).",
        "",
        *table(grid, "target", (100, 30, 20, 10)),
        "",
        "(The 100 % column trains on all data, so it is Table 1's.) The paper, CIFAR-10:",
        "",
        *paper_table(2, "cifar10"),
        "",
    ]
  lines += ["## Cost", "",
            "| subset | examples back-propagated (mean) | train s, no compile (mean) | "
            "scoring + selection s (mean) |", "|---|---|---|---|"]
  for percent in (100, 30, 20, 10):
    cell = find_cell(grid, "none", percent, "top_k" if percent < 100 else "")
    if cell:
      lines.append(
          f"| {percent} % | {_stats(cell, 'examples_backpropagated')[0]:,.0f} | "
          f"{_stats(cell, 'train_seconds')[0]:.1f} | "
          f"{_stats(cell, 'scoring_seconds')[0] + _stats(cell, 'selection_seconds')[0]:.2f} |")
  lines += ["", "## Figures", ""]
  if "vs_subset" in figures:
    lines += [f"![accuracy and ECE against subset size]({figures['vs_subset']})", ""]
  if "reliability_10" in figures:
    lines += [f"![test reliability diagrams, 10 % subsets]({figures['reliability_10']})", ""]
  lines += claims_lib.section(claims(grid), seeds_note=f"{len(seeds)} seeds")
  if (line := diagnosis(grid)) is not None:
    lines += ["", line]
  return "\n".join(lines) + "\n"
