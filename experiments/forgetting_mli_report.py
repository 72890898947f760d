"""Tables, figures and claim checks of the forgetting / MLI / Gradient Loss grid.

A *run* is ``{"arg" (its label), "seed", "summary", "workdir", "command", "wall_seconds"}``;
removal runs also hold ``ordering`` (a name of ``forgetting_mli.ORDERINGS``, ``random`` or
``none``), ``removed`` (r) and ``k`` (the window's first rank).
"""

import collections
import os
import statistics

import numpy as np

from experiments import grid
from jaxsel import artifacts, orderings, plotting

NAMES = {"forgetting": "Forgetting", "max_loss_increase": "Max loss increase",
         "gradient_loss_slope": "Gradient loss (trajectory slope)",
         "gradient_loss_norm": "Gradient loss (gradient norm)", "random": "Random"}
COLORS = {"forgetting": "tab:green", "max_loss_increase": "tab:red",
          "gradient_loss_slope": "tab:purple", "gradient_loss_norm": "tab:orange",
          "random": "tab:gray"}
# Per-seed orderings of a noisy run: where do the changed labels land?
NOISE_KEYS = {"forgetting": orderings.OrderingSpec(key="forgetting"),
              "max_loss_increase": orderings.OrderingSpec(key="max_loss_increase"),
              "gradient_loss_slope": orderings.OrderingSpec(key="gradient_loss"),
              "gradient_loss_norm": orderings.OrderingSpec(
                  key="gradient_loss", gradient_loss_form="grad_norm")}
TOP_PERCENTS = (1, 5, 10, 20)
# ALGORITHMS.md D.9: unforgettable examples across 5 seeds (paper text) and per seed (read
# off Figure 1's histograms).
PAPER_UNFORGETTABLE = {"MNIST": (91.7, 95), "permuted MNIST": (75.3, 88),
                       "CIFAR-10": (31.3, 34)}
# Figure 5 left (CIFAR-10, ResNet-18 + cutout, read off the plot): % removed -> accuracy.
PAPER_SELECTED = {0: 96.2, 35: 96.0, 60: 94.3}
PAPER_RANDOM = {0: 96.2, 35: 95.0, 62: 92.7}
METRICS = ("test_accuracy", "test_ece", "test_nll", "num_train", "train_seconds",
           "unforgettable_fraction", "never_learned_fraction")


def rows(runs) -> list[dict]:
  """CSV rows, one per cell (mean / std over seeds)."""
  out = []
  for label, cell in grid.cells(runs).items():
    first = next(r for r in runs if r["arg"] == label)
    entry = {"label": label, "ordering": first.get("ordering", ""),
             "removed": first.get("removed", ""), "window_start": first.get("k", ""),
             "seeds": " ".join(map(str, cell["seeds"])),
             "command_first_seed": cell["commands"][0]}
    entry.update(grid.stat_columns(cell, METRICS))
    out.append(entry)
  return out


def average_ranks(values: np.ndarray) -> np.ndarray:
  """Ranks 1..n with ties given their mean rank (what Spearman's correlation needs)."""
  _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
  ends = np.cumsum(counts)
  return ((ends - counts + 1 + ends) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.corrcoef(average_ranks(a), average_ranks(b))[0, 1])


def _forgetting_counts(workdir: str) -> np.ndarray:
  """One run's forgetting counts, never-learned examples counted as T."""
  return orderings.run_score(artifacts.load(workdir),
                             orderings.OrderingSpec(key="forgetting")).astype(np.int64)


def _noise_shares(run) -> dict:
  """For one noisy run: the share (%) of changed labels among the top p % of each
  ordering (highest scores), and the counts of noisy and clean examples."""
  changed = artifacts.load(os.path.join(run["workdir"], "label_noise.npz")).example_ids
  shares = {}
  for name, spec in NOISE_KEYS.items():
    ranked = orderings.ordered_ids(orderings.build([run["workdir"]], spec))[::-1]
    shares[name] = {p: 100.0 * np.isin(ranked[:max(1, len(ranked) * p // 100)],
                                       changed).mean() for p in TOP_PERCENTS}
    shares[name]["k"] = 100.0 * np.isin(ranked[:len(changed)], changed).mean()
  counts = _forgetting_counts(run["workdir"])
  ids = artifacts.load(run["workdir"]).example_ids
  noisy = np.isin(ids, changed)
  return {"shares": shares, "noisy_counts": counts[noisy], "clean_counts": counts[~noisy],
          "noise_rate": 100.0 * noisy.mean()}


def analyse(order_runs, noisy_runs, paths, *, num_train: int) -> dict:
  """What the report needs beyond the summaries: counts, correlations, noise shares."""
  per_seed = [_forgetting_counts(r["workdir"]) for r in order_runs]
  ordering_files = {name: artifacts.load(path) for name, path in paths.items()}
  scores = {name: f.table("score").astype(np.float64) for name, f in ordering_files.items()}
  lowest = {name: set(orderings.ordered_ids(f)[:num_train * 30 // 100].tolist())
            for name, f in ordering_files.items()}
  return {
      "per_seed_counts": per_seed,
      "summed_counts": np.sum(per_seed, axis=0),
      "unforgettable_per_seed": [100.0 * np.mean(c == 0) for c in per_seed],
      "never_learned_per_seed": [100.0 * r["summary"]["never_learned_fraction"]
                                 for r in order_runs],
      "unforgettable_all_seeds": 100.0 * np.mean(np.sum(per_seed, axis=0) == 0),
      "spearman": {name: spearman(scores["forgetting"], values)
                   for name, values in scores.items() if name != "forgetting"},
      "overlap_lowest_30": {name: 100.0 * len(ids & lowest["forgetting"]) / len(ids)
                            for name, ids in lowest.items() if name != "forgetting"},
      "window_scores": {name: f.table("score")[np.argsort(f.table("rank"))]
                        for name, f in ordering_files.items()},
      "noise": [_noise_shares(r) for r in noisy_runs],
  }


def _cells(runs) -> dict[tuple[str, int, int], dict]:
  """(ordering, removed, k) -> the cell of its seeds; no removal is ('none', 0, 0)."""
  by_label = grid.cells(runs)
  return {(r["ordering"], r["removed"], r["k"]): by_label[r["arg"]] for r in runs}


def _acc(cell) -> tuple[float, float]:
  return grid.stats(cell, "test_accuracy")


def _curve(cells, name, sizes, num_train):
  full = cells[("none", 0, 0)]
  points = [full] + [cells[(name, r, 0)] for r in sizes]
  return {"label": NAMES[name], "color": COLORS[name],
          "x": [0.0] + [100.0 * r / num_train for r in sizes],
          "y": [_acc(c)[0] for c in points], "yerr": [_acc(c)[1] for c in points]}


def _sizes(removal_runs) -> list[int]:
  return sorted({r["removed"] for r in removal_runs if r["removed"]})


def _window_points(cells, analysis, name, window, num_train):
  starts = sorted(k for (n, r, k) in cells if n == name and r == window)
  scores = analysis["window_scores"][name]
  return starts, [float(np.mean(scores[k:k + window])) for k in starts]


def fashion_analysis(fashion) -> dict:
  """Forgetting statistics of the Fashion-MNIST ordering runs."""
  per_seed = [_forgetting_counts(r["workdir"]) for r in fashion["order_runs"]]
  return {"per_seed_counts": per_seed, "summed_counts": np.sum(per_seed, axis=0),
          "unforgettable_per_seed": [100.0 * np.mean(c == 0) for c in per_seed],
          "unforgettable_all_seeds": 100.0 * np.mean(np.sum(per_seed, axis=0) == 0),
          "never_learned_per_seed": [100.0 * r["summary"]["never_learned_fraction"]
                                     for r in fashion["order_runs"]]}


def _histogram_series(analysis) -> list[dict]:
  return [{"label": "seed 0", "counts": analysis["per_seed_counts"][0], "color": "tab:blue"},
          {"label": f"sum over {len(analysis['per_seed_counts'])} seeds",
           "counts": analysis["summed_counts"], "color": "tab:green"}]


def figures(removal_runs, window_runs, analysis, prefix: str, *, num_train: int,
            fashion=None) -> dict:
  cells = _cells(removal_runs + window_runs)
  sizes = _sizes(removal_runs)
  names = [n for n in NAMES if all((n, r, 0) in cells for r in sizes)]
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
      starts, _ = _window_points(cells, analysis, name, window, num_train)
      accs = [_acc(cells[(name, window, k)]) for k in starts]
      series.append({"label": NAMES[name], "color": COLORS[name],
                     "x": [100.0 * k / num_train for k in starts],
                     "y": [a for a, _ in accs], "yerr": [s for _, s in accs]})
    if ("random", window, 0) in cells:
      mean, std = _acc(cells[("random", window, 0)])
      series.append({"label": "Random", "color": COLORS["random"], "linestyle": "--",
                     "x": [0.0, 100.0 * (num_train - window) / num_train],
                     "y": [mean, mean], "yerr": [std, std]})
    path = prefix + "_window.png"
    plotting.line_panels([(f"removing {100 * window // num_train} % from rank k", series)],
                         path, xlabel="window start k (% of the ordering)",
                         ylabel="test accuracy (%)")
    written["window"] = os.path.basename(path)
  noise = analysis["noise"][0]
  path = prefix + "_forgetting_histogram.png"
  panels = [("MNIST-1D, clean labels", _histogram_series(analysis)),
            ("MNIST-1D, 20 % label noise, seed 0",
             [{"label": "noisy labels", "counts": noise["noisy_counts"], "color": "tab:red"},
              {"label": "clean labels", "counts": noise["clean_counts"],
               "color": "tab:blue"}])]
  if fashion:
    panels.append(("Fashion-MNIST", _histogram_series(fashion_analysis(fashion))))
  plotting.count_histograms(panels, path, xlabel="forgetting events", max_count=20)
  written["histogram"] = os.path.basename(path)
  path = prefix + "_noise.png"
  series = []
  for name in NOISE_KEYS:
    shares = [[run["shares"][name][p] for run in analysis["noise"]] for p in TOP_PERCENTS]
    series.append({"label": NAMES[name], "color": COLORS[name], "x": list(TOP_PERCENTS),
                   "y": [statistics.fmean(s) for s in shares],
                   "yerr": [statistics.pstdev(s) for s in shares]})
  series.append({"label": "base rate", "color": "black", "linestyle": ":",
                 "x": list(TOP_PERCENTS), "y": [noise["noise_rate"]] * len(TOP_PERCENTS)})
  plotting.line_panels([("share of changed labels among the highest scores", series)], path,
                       xlabel="top p % of the ordering", ylabel="noisy labels (%)")
  written["noise"] = os.path.basename(path)
  return written


def _fmt(cell) -> str:
  mean, std = _acc(cell)
  return f"{mean:.2f} ± {std:.2f}"


def _verdict(holds: bool) -> str:
  return "**holds**" if holds else "**does not hold**"


def claims(cells, analysis, *, sizes, num_train, window) -> list[str]:
  full, full_std = _acc(cells[("none", 0, 0)])
  out = []

  def acc(name, r):
    return _acc(cells[(name, r, 0)])[0]

  kept = [r for r in sizes if acc("forgetting", r) >= full - 0.2]
  largest = max([r for r in sizes if all(acc("forgetting", q) >= full - 0.2
                                         for q in sizes if q <= r)], default=0)
  out.append(
      "A large fraction can be removed at little cost when the least-forgotten go first "
      "(the paper: 30-35 % of CIFAR-10 with < 0.2 points lost): "
      f"{_verdict(100 * largest / num_train >= 30)} — up to {100 * largest / num_train:.0f} % "
      f"removed stays within 0.2 points of full data ({full:.2f} ± {full_std:.2f} %); "
      f"sizes within 0.2: {', '.join(f'{100 * r // num_train} %' for r in kept) or 'none'}; "
      f"{analysis['unforgettable_all_seeds']:.1f} % of the examples are unforgettable in "
      "every seed.")
  gaps = {r: acc("forgetting", r) - acc("random", r) for r in sizes}
  noise = statistics.fmean(_acc(cells[("random", r, 0)])[1] for r in sizes)
  wins = [r for r, g in gaps.items() if g > 0]
  out.append(
      "Random removal costs more than removing the least-forgotten at the same size: "
      f"{_verdict(len(wins) == len(sizes))} — forgetting minus random: "
      + ", ".join(f"{100 * r // num_train} % {g:+.2f}" for r, g in gaps.items())
      + f" points (mean seed std of the random cells {noise:.2f}).")
  shares = [run["shares"]["forgetting"]["k"] for run in analysis["noise"]]
  rate = analysis["noise"][0]["noise_rate"]
  out.append(
      "Noisy labels are forgotten most: "
      f"{_verdict(statistics.fmean(shares) > 2 * rate)} — among the {rate:.0f} % most "
      f"forgotten examples {statistics.fmean(shares):.1f} ± {statistics.pstdev(shares):.1f} "
      f"% have a changed label (base rate {rate:.0f} %).")
  if window:
    starts, means = _window_points(cells, analysis, "forgetting", window, num_train)
    accs = [_acc(cells[("forgetting", window, k)])[0] for k in starts]
    rho = spearman(np.asarray(means), np.asarray(accs))
    out.append(
        "Removing more-forgotten examples costs more (Figure 5 right): "
        f"{_verdict(rho < 0 and accs[0] > accs[-1])} — a {100 * window // num_train} % "
        f"window from the lowest ranks: {accs[0]:.2f} %, from the highest: {accs[-1]:.2f} %; "
        f"Spearman correlation of accuracy with the window's mean forgetting count "
        f"{rho:+.2f}.")
  for name in ("max_loss_increase", "gradient_loss_slope", "gradient_loss_norm"):
    if not all((name, r, 0) in cells for r in sizes):
      continue
    diffs = {r: acc(name, r) - acc("forgetting", r) for r in sizes}
    worst = min(diffs, key=diffs.get)
    out.append(
        f"{NAMES[name]} against forgetting: mean accuracy difference over the removal sizes "
        f"{statistics.fmean(diffs.values()):+.2f} points (least favourable size "
        f"{100 * worst // num_train} %: {diffs[worst]:+.2f}); "
        f"Spearman correlation of the scores with forgetting "
        f"{analysis['spearman'][name]:+.2f}, {analysis['overlap_lowest_30'][name]:.0f} % of "
        "its lowest 30 % are also among forgetting's lowest 30 %.")
  return out


def _removal_table(cells, sizes, num_train) -> list[str]:
  names = [n for n in NAMES if all((n, r, 0) in cells for r in sizes)]
  lines = ["| removed | " + " | ".join(NAMES[n] for n in names) + " |",
           "|---|" + "---|" * len(names),
           f"| 0 | {_fmt(cells[('none', 0, 0)])} (no removal) |" + " |" * (len(names) - 1)]
  for r in sizes:
    lines.append(f"| {100 * r // num_train} % ({r:,}) | "
                 + " | ".join(_fmt(cells[(n, r, 0)]) for n in names) + " |")
  return lines


def _window_table(cells, analysis, window, num_train) -> list[str]:
  names = sorted({n for (n, r, k) in cells if r == window and n in ("forgetting",
                                                                    "max_loss_increase")})
  lines = ["| window start k | " + " | ".join(
      f"{NAMES[n]}: mean score / accuracy" for n in names) + " |",
      "|---|" + "---|" * len(names)]
  starts = sorted({k for (n, r, k) in cells if r == window and n in names})
  for k in starts:
    parts = []
    for name in names:
      if (name, window, k) not in cells:
        parts.append("—")
        continue
      score = float(np.mean(analysis["window_scores"][name][k:k + window]))
      parts.append(f"{score:.3g} / {_fmt(cells[(name, window, k)])}")
    lines.append(f"| {100 * k / num_train:.0f} % | " + " | ".join(parts) + " |")
  if ("random", window, 0) in cells:
    lines.append(f"| random {100 * window // num_train} % | "
                 + " | ".join([_fmt(cells[("random", window, 0)])] * len(names)) + " |")
  return lines


def _noise_table(analysis) -> list[str]:
  lines = ["| ordering (highest first) | " + " | ".join(f"top {p} %" for p in TOP_PERCENTS)
           + " | top 20 % (= the noisy count) |", "|---|" + "---|" * (len(TOP_PERCENTS) + 1)]
  for name in NOISE_KEYS:
    cells = []
    for key in (*TOP_PERCENTS, "k"):
      values = [run["shares"][name][key] for run in analysis["noise"]]
      cells.append(f"{statistics.fmean(values):.1f} ± {statistics.pstdev(values):.1f}")
    lines.append(f"| {NAMES[name]} | " + " | ".join(cells) + " |")
  return lines


def _slope_note(analysis) -> list[str]:
  rho = analysis["spearman"].get("gradient_loss_slope")
  if rho is None or rho >= 0:
    return []
  return [
      f"The trajectory-slope form runs against forgetting (Spearman {rho:+.2f}). Ascending "
      "(ALGORITHMS.md D.5: most negative slope, \"learned fastest\", first) puts first the "
      "examples whose loss fell the most, i.e. those that started hard and were learned; the "
      "examples never hard have slopes near 0 and come in the middle. Removing them first is "
      "removing informative examples, hence its curve. The descending order was not run.",
      "",
  ]


def _fashion_section(fashion) -> list[str]:
  stats = fashion_analysis(fashion)
  cells = _cells(fashion["order_runs"] + fashion["removal_runs"])
  sizes = _sizes(fashion["removal_runs"])
  num_train = fashion["num_train"]
  unforgettable = stats["unforgettable_per_seed"]
  gaps = {r: _acc(cells[("forgetting", r, 0)])[0] - _acc(cells[("random", r, 0)])[0]
          for r in sizes}
  noise = {r: statistics.fmean([_acc(cells[(n, r, 0)])[1] for n in ("forgetting", "random")])
           for r in sizes}
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
      *_removal_table(cells, sizes, num_train),
      "",
      "Removing the least-forgotten costs less than removing at random: "
      f"{_verdict(all(g > 0 for g in gaps.values()))} — forgetting minus random: "
      + ", ".join(f"{100 * r // num_train} % {g:+.2f}"
                  + (" (within the seed std)" if abs(g) < noise[r] else "")
                  for r, g in gaps.items()) + " points.",
      "",
  ]


def markdown(order_runs, noisy_runs, removal_runs, window_runs, analysis, *, figures,
             seeds, num_train, grid_minutes, num_runs, fashion=None) -> str:
  cells = _cells(removal_runs + window_runs)
  sizes = _sizes(removal_runs)
  window = window_runs[0]["removed"] if window_runs else None
  order = grid.cells(order_runs)["order"]
  summary = order_runs[0]["summary"]
  unforgettable = analysis["unforgettable_per_seed"]
  lines = [
      "# Example forgetting, Max Loss Increase and Gradient Loss on MNIST-1D",
      "",
      "Reproduction of Toneva et al., \"An Empirical Study of Example Forgetting during Deep "
      "Neural Network Learning\" (ICLR 2019), Figures 1, 3 and 5, with the Max Loss Increase "
      "and Gradient Loss orderings in place of forgetting (ALGORITHMS.md D.4-D.5), on "
      f"`mnist1d/large` ({summary['num_train']:,} training / {summary['num_validation']:,} "
      f"validation / {summary['num_test']:,} test examples) with the MNIST-1D CNN and the "
      "paper's CIFAR recipe scaled to 40 epochs: batch 128, SGD lr 0.05 momentum 0.9 "
      "Nesterov, weight decay 5e-4, lr ×0.2 after epochs 12, 24 and 32 (the corrected "
      "schedule, not the reference's one epoch late), no augmentation. Removal runs train "
      "the same 40 epochs on what is left. Last-epoch model, test accuracy (%), mean ± std "
      f"over {len(seeds)} seeds ({', '.join(map(str, seeds))}); the orderings sum (mean for "
      "gradient norms) the three seeds' scores, ties broken by one seeded permutation.",
      "",
      f"Whole experiment: `python -m experiments.forgetting_mli` ({num_runs} runs, "
      f"{grid_minutes:.0f} min of run wall time on 2 CPU cores). Every cell's command (first "
      "seed) is in the `.csv` beside this file; the pipeline by hand:",
      "",
      "```bash",
      *[r["command"] for r in order_runs],
      "python -m jaxsel.orderings --scores=" + ",".join(r["workdir"] for r in order_runs)
      + " --key=forgetting --out=runs/forgetting_mli/orderings/forgetting.npz",
      *[c["commands"][0] for label, c in grid.cells(removal_runs).items()
        if label in ("forgetting_r13500", "random_r13500")],
      noisy_runs[0]["command"] if noisy_runs else "",
      "```",
      "",
      "## Forgetting statistics (Figure 1)",
      "",
      f"Full-data accuracy of the ordering runs: {grid.stats(order, 'test_accuracy')[0]:.2f} "
      f"± {grid.stats(order, 'test_accuracy')[1]:.2f} %.",
      "",
      "| | this grid (MNIST-1D) | " + " | ".join(PAPER_UNFORGETTABLE) + " |",
      "|---|---|" + "---|" * len(PAPER_UNFORGETTABLE),
      f"| unforgettable, per seed (%) | {statistics.fmean(unforgettable):.1f} ± "
      f"{statistics.pstdev(unforgettable):.1f} | "
      + " | ".join(f"≈ {v[1]}" for v in PAPER_UNFORGETTABLE.values()) + " |",
      f"| unforgettable in every seed (%) | {analysis['unforgettable_all_seeds']:.1f} | "
      + " | ".join(f"{v[0]}" for v in PAPER_UNFORGETTABLE.values()) + " |",
      f"| never learned, per seed (%) | "
      f"{statistics.fmean(analysis['never_learned_per_seed']):.2f} | — | — | — |",
      "",
      "The paper's per-seed values are read off Figure 1's histograms and its all-seeds "
      "values are over 5 seeds (here 3; more seeds can only lower the all-seeds fraction).",
      "",
      f"![forgetting histograms]({figures['histogram']})",
      "",
      "## Removal curves (Figure 5 left)",
      "",
      "Test accuracy (%) after removing the lowest-scored examples of each ordering, or as "
      "many at random:",
      "",
      *_removal_table(cells, sizes, num_train),
      "",
      "The paper (CIFAR-10, ResNet-18 + cutout, read off the plot): no removal ≈ "
      f"{PAPER_SELECTED[0]}; least-forgotten removed: ≈ {PAPER_SELECTED[35]} at 35 %, ≈ "
      f"{PAPER_SELECTED[60]} at 60 %; random: ≈ {PAPER_RANDOM[35]} at 35 %, ≈ "
      f"{PAPER_RANDOM[62]} at 62 %.",
      "",
      f"![removal curves]({figures['removal']})",
      "",
  ]
  if window:
    lines += [
        f"## Sliding window (Figure 5 right): remove {window:,} examples from rank k",
        "",
        "The mean aggregated score of the removed window (forgetting events summed over the "
        "seeds; max loss increase summed) and the test accuracy (%). The paper: ≈ 96.2 % "
        "when the window has ~0 forgetting events, falling to ≈ 95.2 % at ~17; random "
        "removal of 5,000 ≈ 95.96 %.",
        "",
        *_window_table(cells, analysis, window, num_train),
        "",
        f"![sliding window]({figures['window']})",
        "",
    ]
  lines += [
      "## Label noise (Figure 3)",
      "",
      f"Ordering runs with {analysis['noise'][0]['noise_rate']:.0f} % of the training labels "
      "changed to another class (a record of every change is the run's `label_noise.npz`). "
      "Share (%) of changed labels among each ordering's highest scores, per seed then mean "
      "± std:",
      "",
      *_noise_table(analysis),
      "",
      f"![noisy labels among the highest scores]({figures['noise']})",
      "",
      *(_fashion_section(fashion) if fashion else []),
      "## How the orderings relate",
      "",
      "| ordering | Spearman with forgetting | lowest 30 % shared with forgetting's |",
      "|---|---|---|",
      *[f"| {NAMES[n]} | {analysis['spearman'][n]:+.2f} | "
        f"{analysis['overlap_lowest_30'][n]:.0f} % |" for n in analysis["spearman"]],
      "",
      *_slope_note(analysis),
  ]
  lines += grid.claims_section(
      claims(cells, analysis, sizes=sizes, num_train=num_train, window=window),
      note="differences smaller than the seed std are not meaningful")
  return "\n".join(lines) + "\n"
