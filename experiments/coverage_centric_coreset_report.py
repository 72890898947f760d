"""Tables, figures and claim checks of the coverage-centric coreset grid.

``results`` are the coreset runs of ``coverage_centric_coreset.py`` (``{"arg", "seed",
"beta", "summary", "command", "wall_seconds"}``), ``score_runs`` its training-dynamics runs
(one per seed, on all data) and ``search_runs`` the seed-0 CCS runs of the β search.
"""

import os
import shutil
import statistics

from configs.papers import coverage_centric_coreset as paper
from experiments import grid
from jaxsel import plotting

NAMES = {"random": "Random", "entropy": "Entropy", "forgetting": "Forgetting",
         "el2n": "EL2N", "aum": "AUM", "ccs": "CCS (AUM)"}
COLORS = {"random": "tab:gray", "entropy": "tab:orange", "forgetting": "tab:green",
          "el2n": "tab:purple", "aum": "tab:red", "ccs": "tab:blue"}
MONOTONIC = ("entropy", "forgetting", "el2n", "aum")
# The paper's Table 1, CIFAR-10, ResNet-18, test accuracy (%), pruning 30/50/70/80/90 %
# (ALGORITHMS.md C.7); full data ≈ 95.2.
PAPER = {"random": (94.33, 93.40, 90.94, 87.98, 79.04),
         "entropy": (94.44, 92.11, 85.67, 79.08, 66.52),
         "forgetting": (95.36, 95.29, 90.56, 62.74, 34.03),
         "el2n": (95.44, 94.61, 87.48, 70.32, 22.33),
         "aum": (95.07, 95.26, 91.36, 57.84, 28.06),
         "ccs": (95.40, 95.04, 93.00, 91.04, 86.08)}
PAPER_FULL = 95.2
METRICS = ("test_accuracy", "test_ece", "test_nll", "val_accuracy", "train_seconds")


def _cells(results) -> dict[tuple[str, int], dict]:
  """(method, pruning percent) -> the cell of its seeds."""
  return {(arg.split(",")[1], int(arg.split(",")[2])): cell
          for arg, cell in grid.cells(results).items()}


def _mean(cells, method, percent, key="test_accuracy"):
  cell = cells.get((method, percent))
  return None if cell is None else grid.stats(cell, key)[0]


def _std(cells, method, percent, key="test_accuracy"):
  return grid.stats(cells[(method, percent)], key)[1]


def rows(results, score_runs, search_runs) -> list[dict]:
  """CSV rows: every coreset cell (mean / std over seeds), the full-data score runs, and
  the β search."""
  out = []

  def row(kind, arg, cell, beta=""):
    entry = {"kind": kind, "config_arg": arg, "beta": beta,
             "seeds": " ".join(map(str, cell["seeds"])),
             "command_first_seed": cell["commands"][0]}
    entry.update(grid.stat_columns(cell, METRICS))
    return entry

  betas = {r["arg"]: r["beta"] for r in results}
  for arg, cell in grid.cells(results).items():
    beta = betas[arg]
    out.append(row("coreset", arg, cell, "" if beta is None else beta))
  out.append(row("full data (scores)", "mnist1d,scores",
                 grid.cells(score_runs)["mnist1d,scores"]))
  for run in search_runs:
    out.append(row("beta search", run["arg"], grid.cells([run])[run["arg"]], run["beta"]))
  return out


def _series(cells, percents) -> list[dict]:
  series = []
  for method in paper.METHODS:
    if all((method, p) in cells for p in percents):
      series.append({"label": NAMES[method], "x": list(percents), "color": COLORS[method],
                     "y": [_mean(cells, method, p) for p in percents],
                     "yerr": [_std(cells, method, p) for p in percents]})
  return series


def figures(results, prefix: str, *, strata_dir: str) -> dict:
  """Accuracy against pruning rate (ours beside the paper's), and the CCS strata of the
  90 % coreset of seed 0 (``strata_dir``'s figure); returns {name: file name}."""
  cells = _cells(results)
  percents = paper.PRUNING_PERCENTS
  paper_series = [{"label": NAMES[m], "x": list(percents), "y": list(PAPER[m]),
                   "color": COLORS[m], "linestyle": "--"} for m in paper.METHODS]
  written = {}
  path = prefix + "_vs_pruning.png"
  plotting.line_panels([("MNIST-1D, 1-D CNN (this grid, mean ± std over seeds)",
                         _series(cells, percents)),
                        ("CIFAR-10, ResNet-18 (the paper's Table 1)", paper_series)],
                       path, xlabel="pruning rate (%)", ylabel="test accuracy (%)")
  written["vs_pruning"] = os.path.basename(path)
  strata = os.path.join(strata_dir, "coreset_strata.png")
  if os.path.exists(strata):
    path = prefix + "_ccs_strata_90.png"
    shutil.copyfile(strata, path)
    written["strata"] = os.path.basename(path)
  return written


def _verdict(holds: bool) -> str:
  return "**holds**" if holds else "**does not hold**"


def claims(cells, *, percents=paper.PRUNING_PERCENTS) -> list[str]:
  """The paper's claims, checked against this grid's means, with the numbers. Claims whose
  cells are missing are left out."""
  out = []
  high = [p for p in (80, 90) if p in percents]
  if all((m, p) in cells for m in ("random", *MONOTONIC) for p in high):
    below = {(m, p): _mean(cells, m, p) - _mean(cells, "random", p)
             for m in MONOTONIC for p in high}
    collapsed = [k for k, gap in below.items() if gap < 0]
    out.append(
        "Importance-only (monotonic) selection collapses at high pruning rates, below random "
        f"at 80 % and 90 %: {_verdict(len(collapsed) == len(below))} — "
        f"{len(collapsed)} of {len(below)} (method, rate) cells below random; difference to "
        "random: " + ", ".join(f"{NAMES[m]} {p} % {gap:+.2f}" for (m, p), gap in below.items())
        + " points.")
  if all((m, 90) in cells for m in ("ccs", "random", *MONOTONIC)):
    gap = _mean(cells, "ccs", 90) - _mean(cells, "random", 90)
    noise = statistics.fmean([_std(cells, "ccs", 90), _std(cells, "random", 90)])
    out.append(f"CCS beats random at 90 % pruning (the paper: +7.04 points): "
               f"{_verdict(gap > 0)} — {gap:+.2f} points"
               + (" (smaller than the seed std, so not a measurable effect)"
                  if abs(gap) < noise else "") + ".")
    best = max(MONOTONIC, key=lambda m: _mean(cells, m, 90))
    gap = _mean(cells, "ccs", 90) - _mean(cells, best, 90)
    out.append("CCS beats the best importance-only method at 90 % (the paper: by at least "
               f"19.56 points): {_verdict(gap > 0)} — {gap:+.2f} points against "
               f"{NAMES[best]}.")
  low = [p for p in (30, 50) if p in percents]
  if all((m, p) in cells for m in ("ccs", "random", *MONOTONIC) for p in low):
    gaps = {p: _mean(cells, "ccs", p) - max(_mean(cells, m, p) for m in paper.METHODS)
            for p in low}
    out.append("At low pruning rates CCS is as good as the best method (within 0.5 points): "
               f"{_verdict(all(g >= -0.5 for g in gaps.values()))} — CCS minus the best: "
               + ", ".join(f"{p} % {g:+.2f}" for p, g in gaps.items()) + " points.")
    gaps = {p: max(_mean(cells, m, p) for m in MONOTONIC) - _mean(cells, "random", p)
            for p in low}
    out.append("At low pruning rates some importance score beats random (as forgetting and "
               f"EL2N do in the paper): {_verdict(all(g > 0 for g in gaps.values()))} — best "
               "importance-only minus random: "
               + ", ".join(f"{p} % {g:+.2f}" for p, g in gaps.items()) + " points.")
  return out


def _table(cells, percents) -> list[str]:
  lines = ["| method | " + " | ".join(f"{p} %" for p in percents) + " |",
           "|---|" + "---|" * len(percents)]
  for method in paper.METHODS:
    values = []
    for p in percents:
      cell = cells.get((method, p))
      if cell is None:
        values.append("—")
        continue
      mean, std = grid.stats(cell, "test_accuracy")
      values.append(f"{mean:.2f} ± {std:.2f}")
    lines.append(f"| {NAMES[method]} | " + " | ".join(values) + " |")
  return lines


def markdown(results, score_runs, search_runs, *, chosen_beta, figures, seeds,
             grid_minutes) -> str:
  cells = _cells(results)
  percents = paper.PRUNING_PERCENTS
  scores_config = paper.get_config("mnist1d,scores")
  coreset_config = paper.get_config("mnist1d,ccs,90")
  full = grid.cells(score_runs)["mnist1d,scores"]
  full_acc, full_std = grid.stats(full, "test_accuracy")
  summary = score_runs[0]["summary"]
  example = [c["commands"][0] for c in grid.cells(results).values()]
  lines = [
      "# Coverage-centric coreset selection on MNIST-1D: Table 1",
      "",
      "Reproduction of Zheng et al., \"Coverage-centric Coreset Selection for High Pruning "
      "Rates\" (ICLR 2023) on data that runs on a 2-core CPU: "
      f"`{scores_config.dataset.name}` ({summary['num_train']:,} training / "
      f"{summary['num_validation']:,} validation / {summary['num_test']:,} test examples) "
      "with the MNIST-1D paper's CNN, batch 256, SGD momentum 0.9 Nesterov, weight decay "
      "5e-4, cosine annealing per step to 1e-4 (the paper's optimizer and schedule), at lr "
      f"{scores_config.optimizer.learning_rate:g} rather than the paper's 0.1, which made "
      "this BatchNorm-free CNN diverge in some runs. "
      f"Stage 1: {scores_config.train.num_epochs} epochs on all training examples record "
      "each example's training dynamics (forgetting, accumulated margin, EL2N over the "
      "first 10 epochs) and the final model's entropy; stage 2: a fresh model trains on "
      f"the coreset for {coreset_config.train.num_train_steps:,} steps (as many as "
      f"{scores_config.train.num_epochs} full-data epochs), whatever its size. Last-step "
      f"model, test accuracy (%), mean ± std over {len(seeds)} seeds "
      f"({', '.join(map(str, seeds))}); each seed's coresets come from that seed's scores.",
      "",
      f"Whole grid: `python -m experiments.coverage_centric_coreset` "
      f"({len(score_runs) + len(search_runs) + len(results)} runs, {grid_minutes:.0f} min "
      "of run wall time on 2 CPU cores). Each cell's command (first seed) is in the `.csv` "
      "beside this file, e.g.",
      "",
      "```bash",
      score_runs[0]["command"],
      *example[:1],
      *[c for c in example if ",ccs,90" in c][:1],
      "```",
      "",
      f"Full data (the stage-1 runs): {full_acc:.2f} ± {full_std:.2f} %.",
      "",
      "## Table 1: test accuracy (%) against the pruning rate",
      "",
      *_table(cells, percents),
      "",
      "Importance-only baselines keep the hardest examples: highest final entropy, most "
      "forgetting events, highest EL2N, lowest accumulated margin (AUM). CCS stratifies on "
      "the accumulated margin after cutting the β hardest.",
      "",
      "The paper, CIFAR-10, ResNet-18 (full data ≈ 95.2):",
      "",
      "| method | " + " | ".join(f"{p} %" for p in percents) + " |",
      "|---|" + "---|" * len(percents),
      *[f"| {NAMES[m]} | " + " | ".join(f"{v:.2f}" for v in PAPER[m]) + " |"
        for m in paper.METHODS],
      "",
      "## CCS's β, chosen on the validation split",
      "",
      "Seed 0's CCS coreset for every β that leaves enough examples; the β of the best "
      "last-step validation accuracy is used for every seed (the paper tunes β too; its "
      "CIFAR-10 values are beside).",
      "",
      "| pruning | " + " | ".join(f"β = {b:g}" for b in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5))
      + " | chosen | paper (CIFAR-10) |",
      "|---|" + "---|" * 8,
  ]
  for percent in percents:
    by_beta = {r["beta"]: r["summary"]["val_accuracy"] for r in search_runs
               if r["arg"].endswith(f",{percent}")}
    lines.append(f"| {percent} % | " + " | ".join(
        f"{by_beta[b]:.2f}" if b in by_beta else "—" for b in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5))
        + f" | {chosen_beta[percent]:g} | {paper.BETA[percent]:g} |")
  lines += ["", "(validation accuracy, %, seed 0)", "", "## Figures", ""]
  if "vs_pruning" in figures:
    lines += [f"![test accuracy against pruning rate]({figures['vs_pruning']})", ""]
  if "strata" in figures:
    lines += [f"![CCS strata of the 90 % coreset, seed 0]({figures['strata']})", ""]
  lines += grid.claims_section(
      claims(cells), note="differences smaller than the seed std are not meaningful")
  return "\n".join(lines) + "\n"
