"""Tables, figures and seed-by-seed claims of the forgetting / MLI / Gradient Loss grid.

A *run* is ``{"arg" (its label), "seed", "summary", "workdir", "command", "wall_seconds"}``;
removal runs also hold ``ordering`` (a name of ``forgetting_mli.ORDERINGS``, ``random`` or
``none``), ``removed`` (r) and ``k`` (the window's first rank). ``fashion`` is the
Fashion-MNIST part, a ``forgetting_mli_fashion_report.Part``.
"""

import os
import statistics

import numpy as np

from experiments import claims as claims_lib
from experiments import grid
from experiments import paired
from jaxsel import artifacts, orderings

PAPER_NAME = "Toneva et al. 2019, example forgetting (with max loss increase)"
COMMAND = "python -m experiments.forgetting_mli"

NAMES = {"forgetting": "Forgetting", "max_loss_increase": "Max loss increase",
         "gradient_loss_slope": "Gradient loss (trajectory slope)",
         "gradient_loss_norm": "Gradient loss (gradient norm)",
         "gradient_loss_slope_desc": "Gradient loss (slope, descending)",
         "gradient_loss_abs_slope": "Gradient loss (|slope|)", "random": "Random"}
COLORS = {"forgetting": "tab:green", "max_loss_increase": "tab:red",
          "gradient_loss_slope": "tab:purple", "gradient_loss_norm": "tab:orange",
          "gradient_loss_slope_desc": "tab:pink", "gradient_loss_abs_slope": "tab:brown",
          "random": "tab:gray"}
# Per-seed orderings of a noisy run: where do the changed labels land?
NOISE_KEYS = {"forgetting": orderings.OrderingSpec(key="forgetting"),
              "max_loss_increase": orderings.OrderingSpec(key="max_loss_increase"),
              "gradient_loss_slope": orderings.OrderingSpec(key="gradient_loss"),
              "gradient_loss_norm": orderings.OrderingSpec(key="gradient_loss",
                                                           gradient_loss_form="grad_norm")}
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
    out.append({"label": label, "ordering": first.get("ordering", ""),
                "removed": first.get("removed", ""), "window_start": first.get("k", ""),
                "seeds": " ".join(map(str, cell["seeds"])),
                "command_first_seed": cell["commands"][0],
                **grid.stat_columns(cell, METRICS)})
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
  return {"seed": run["seed"], "shares": shares, "noisy_counts": counts[noisy],
          "clean_counts": counts[~noisy], "noise_rate": 100.0 * noisy.mean()}


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


def _sizes(removal_runs) -> list[int]:
  return sorted({r["removed"] for r in removal_runs if r["removed"]})


def _window_points(cells, analysis, name, window, num_train):
  starts = sorted(k for (n, r, k) in cells if n == name and r == window)
  scores = analysis["window_scores"][name]
  return starts, [float(np.mean(scores[k:k + window])) for k in starts]


def _histogram_series(analysis) -> list[dict]:
  return [{"label": "seed 0", "counts": analysis["per_seed_counts"][0], "color": "tab:blue"},
          {"label": f"sum over {len(analysis['per_seed_counts'])} seeds",
           "counts": analysis["summed_counts"], "color": "tab:green"}]


def _fmt(cell) -> str:
  return "{:.2f} ± {:.2f}".format(*_acc(cell))


LITTLE_COST = 0.2  # points lost: the paper removes 30-35 % of CIFAR-10 at less than this
CLAIMED_REMOVAL = 30  # % removed that claim is tested up to


def _by_seed(cells, name, r) -> dict | None:
  """{seed: test accuracy} after removing r by ``name`` ('none': no removal), or None."""
  cell = cells.get(("none", 0, 0) if name == "none" else (name, r, 0))
  return None if cell is None else paired.by_seed(cell, "test_accuracy")


def removal_differences(cells, name, other, sizes, num_train) -> dict | None:
  """{'r %': paired difference of test accuracy, removing r by ``name`` − by ``other``}; None
  if there is no size or a cell is missing."""
  return paired.differences(lambda key: _by_seed(cells, *key),
                            [(f"{100 * r // num_train} %", (name, r), (other, r))
                             for r in sizes])


def removal_finding(cells, name, other, sizes, num_train, *, text, margin=0.0, more=""):
  """Removing by ``name`` costs less (or at most −``margin`` more) than by ``other``, every
  size a paired test; ``more`` ends the evidence. None if a cell is missing."""
  finding = claims_lib.per_cell(
      removal_differences(cells, name, other, sizes, num_train), 1, margin, text=text,
      unit=f"test accuracy, {NAMES.get(name, 'no removal')} − "
           f"{NAMES.get(other, 'no removal')} (points)")
  return finding and finding._replace(evidence=finding.evidence + more)


def _removal_finding(cells, analysis, sizes, num_train):
  claimed = [r for r in sizes if 100 * r <= CLAIMED_REMOVAL * num_train]
  rest = removal_differences(cells, "forgetting", "none",
                             [r for r in sizes if r not in claimed], num_train)
  return removal_finding(
      cells, "forgetting", "none", claimed, num_train, margin=-LITTLE_COST,
      text="A large fraction can be removed at little cost when the least-forgotten go "
           f"first: removing up to {CLAIMED_REMOVAL} % loses less than {LITTLE_COST} points, "
           "at every size (the paper: 30-35 % of CIFAR-10 with < 0.2 points lost)",
      more=(f"; beyond {CLAIMED_REMOVAL} % (not part of the claim): "
            f"{paired.format_differences(rest)}" if rest else "")
      + f"; {analysis['unforgettable_all_seeds']:.1f} % of the examples are unforgettable "
      "in every seed (counted)")


def _noise_finding(noise):
  shares = {n["seed"]: n["shares"]["forgetting"]["k"] for n in noise}
  diff = paired.paired_difference(shares, {n["seed"]: 2 * n["noise_rate"] for n in noise})
  rate = statistics.fmean(n["noise_rate"] for n in noise)
  return claims_lib.Finding(
      f"Noisy labels are forgotten most: among the {rate:.0f} % most forgotten examples (as "
      "many as labels were changed), the share of changed labels is over twice the base "
      "rate", paired.claim_verdict(diff, 1),
      "share of changed labels − twice the base rate (points; one noisy run per seed, the "
      f"interval over seeds): {paired.format_difference(diff)}; mean share "
      f"{statistics.fmean(shares.values()):.1f} %, base rate {rate:.0f} %")


def _window_finding(cells, analysis, window, num_train):
  """The window from the lowest ranks against the one from the highest (None without two)."""
  starts, means = _window_points(cells, analysis, "forgetting", window, num_train)
  if len(starts) < 2:
    return None
  accs = [_acc(cells[("forgetting", window, k)])[0] for k in starts]
  diff = paired.cell_difference(cells[("forgetting", window, starts[0])],
                                cells[("forgetting", window, starts[-1])], "test_accuracy")
  return claims_lib.Finding(
      "Removing more-forgotten examples costs more (Figure 5 right): a window of the "
      "least-forgotten costs less than a window of the most-forgotten",
      paired.claim_verdict(diff, 1),
      f"test accuracy, the {100 * window // num_train} % window from the lowest ranks − from "
      f"the highest (points): {paired.format_difference(diff)} ({accs[0]:.2f} % against "
      f"{accs[-1]:.2f} %); Spearman correlation of the {len(starts)} windows' accuracy with "
      f"their mean forgetting count {spearman(np.asarray(means), np.asarray(accs)):+.2f} "
      "(computed, not tested)")


def _ordering_finding(cells, name, sizes, num_train):
  if not (per_size := removal_differences(cells, name, "forgetting", sizes, num_train)):
    return None
  mean = paired.mean_paired_difference(
      (_by_seed(cells, name, r), _by_seed(cells, "forgetting", r)) for r in sizes)
  return claims_lib.Finding(
      f"(Not a claim of the paper.) Removing the lowest-scored by {NAMES[name]} costs at "
      f"most {LITTLE_COST} points more than by forgetting, averaged over the removal sizes",
      paired.claim_verdict(mean, 1, -LITTLE_COST),
      f"test accuracy, {NAMES[name]} − Forgetting (points), mean over the sizes "
      f"{paired.format_difference(mean)}; per size: {paired.format_differences(per_size)}")


def claims(removal_runs, window_runs, analysis, *, num_train) -> list[claims_lib.Finding]:
  """The MNIST-1D claims, decided seed by seed; one whose cells are missing is left out."""
  cells, sizes = _cells(removal_runs + window_runs), _sizes(removal_runs)
  window = window_runs[0]["removed"] if window_runs else None
  found = [
      _removal_finding(cells, analysis, sizes, num_train),
      removal_finding(cells, "forgetting", "random", sizes, num_train,
                      text="Random removal costs more than removing the least-forgotten, "
                           "at every size"),
      _noise_finding(analysis["noise"]) if analysis["noise"] else None,
      _window_finding(cells, analysis, window, num_train),
      *(_ordering_finding(cells, name, sizes, num_train)
        for name in NAMES if name not in ("forgetting", "random"))]
  return [f for f in found if f is not None]


def _removal_table(cells, sizes, num_train) -> list[str]:
  names = [n for n in NAMES if all((n, r, 0) in cells for r in sizes)]
  lines = ["| removed | " + " | ".join(NAMES[n] for n in names) + " |",
           "|---|" + "---|" * len(names),
           f"| 0 | {_fmt(cells[('none', 0, 0)])} (no removal) |" + " |" * (len(names) - 1)]
  return lines + [f"| {100 * r // num_train} % ({r:,}) | "
                  + " | ".join(_fmt(cells[(n, r, 0)]) for n in names) + " |" for r in sizes]


def _window_table(cells, analysis, window, num_train) -> list[str]:
  names = sorted({n for (n, r, k) in cells if r == window and n in ("forgetting",
                                                                    "max_loss_increase")})
  lines = ["| window start k | " + " | ".join(
      f"{NAMES[n]}: mean score / accuracy" for n in names) + " |",
      "|---|" + "---|" * len(names)]
  for k in sorted({k for (n, r, k) in cells if r == window and n in names}):
    parts = [f"{np.mean(analysis['window_scores'][n][k:k + window]):.3g} / "
             f"{_fmt(cells[(n, window, k)])}" if (n, window, k) in cells else "—"
             for n in names]
    lines.append(f"| {100 * k / num_train:.0f} % | " + " | ".join(parts) + " |")
  if ("random", window, 0) in cells:
    lines.append(f"| random {100 * window // num_train} % | "
                 + " | ".join([_fmt(cells[("random", window, 0)])] * len(names)) + " |")
  return lines


def _noise_table(analysis) -> list[str]:
  lines = ["| ordering (highest first) | " + " | ".join(f"top {p} %" for p in TOP_PERCENTS)
           + " | top 20 % (= the noisy count) |", "|---|" + "---|" * (len(TOP_PERCENTS) + 1)]
  for name in NOISE_KEYS:
    values = [[run["shares"][name][key] for run in analysis["noise"]]
              for key in (*TOP_PERCENTS, "k")]
    lines.append(f"| {NAMES[name]} | " + " | ".join(
        f"{statistics.fmean(v):.1f} ± {statistics.pstdev(v):.1f}" for v in values) + " |")
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
      ""]


def markdown(order_runs, noisy_runs, removal_runs, window_runs, analysis, *, figures,
             findings, seeds, num_train, grid_minutes, num_runs, fashion=None) -> str:
  cells, sizes = _cells(removal_runs + window_runs), _sizes(removal_runs)
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
      f"gradient norms) the {len(order_runs)} seeds' scores, ties broken by one seeded "
      "permutation.",
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
      f"Full-data accuracy of the ordering runs: {_fmt(order)} %.",
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
      f"values are over 5 seeds (here {len(order_runs)}; more seeds can only lower the "
      "all-seeds fraction).",
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
      *(fashion.section if fashion else []),
      "## How the orderings relate",
      "",
      "| ordering | Spearman with forgetting | lowest 30 % shared with forgetting's |",
      "|---|---|---|",
      *[f"| {NAMES[n]} | {analysis['spearman'][n]:+.2f} | "
        f"{analysis['overlap_lowest_30'][n]:.0f} % |" for n in analysis["spearman"]],
      "",
      *_slope_note(analysis),
  ]
  lines += claims_lib.section(findings, seeds_note=f"{len(seeds)} seeds, "
                              f"{', '.join(map(str, seeds))}")
  return "\n".join(lines) + "\n"
