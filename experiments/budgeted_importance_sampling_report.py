"""Tables, figures and claim checks of the budgeted importance sampling grid.

A *run* is ``{"arg" (its label), "seed", "summary", "workdir", "command", "wall_seconds"}``;
its label is ``DATASET,METHOD,AUGMENTATION,BUDGET`` (the config argument), with a fifth
part naming an ablation.
"""

import math
import statistics

from experiments import grid
from jaxsel import files, plotting

METHOD_NAMES = {"sgd": "SGD (budgeted: fewer steps)", "random": "Random (fixed subset)",
                "coreset": "Core-set (fixed CCS subset)", "unif": "unif-SGD", "p": "p-SGD",
                "c": "c-SGD", "sb": "Selective backprop"}
METHOD_COLORS = {"sgd": "tab:gray", "random": "tab:brown", "coreset": "tab:purple",
                 "unif": "tab:blue",
                 "p": "tab:red", "c": "tab:orange", "sb": "tab:green"}
AUGMENTATION_NAMES = {"standard": "standard", "mixup": "mixup", "ricap": "RICAP",
                      "randaugment": "RandAugment"}
ABLATION_NAMES = {"no_eps_last_step_lr": "p-SGD, step LR, no ε, no average",
                  "no_eps_last": "p-SGD, no ε, no average", "no_eps": "p-SGD, no ε",
                  "": "p-SGD", "reference_ricap_scores": "p-SGD + RICAP, reference scores"}
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "mnist1d": "MNIST-1D"}
BUDGETS = (0.2, 0.3, 0.5, 0.7)
METRICS = ("test_accuracy", "test_ece", "test_nll", "train_seconds",
           "num_train_examples_seen", "examples_forwarded", "coverage_entropy",
           "coverage_entropy_max", "backprop_fraction")
# ALGORITHMS.md B.8: the paper's Figure 1 (ResNet-18, read off the bar chart, ±0.5).
PAPER_FIGURE1 = {
    "CIFAR-10": {"random": (84.5, 87.6, 90.2, 91.8), "coreset": (83.9, 88.8, 92.0, 92.2),
                 "unif": (92.0, 92.9, 93.8, 94.0), "full": 94.6},
    "CIFAR-100": {"random": (46.2, 54.2, 61.5, 65.8), "coreset": (33.3, 47.3, 65.3, 71.9),
                  "unif": (70.5, 71.7, 73.0, 74.5), "full": 74.8},
}
# Figure 1 right: H(c) of p-SGD ablations at 30 % (max ln 50,000 = 10.82): CIFAR-10, -100.
PAPER_ENTROPY = {"no_eps_last_step_lr": (10.37, 10.56), "no_eps_last": (10.40, 10.59),
                 "no_eps": (10.68, 10.77), "": (10.77, 10.80), "ricap": (10.81, 10.81)}


def parse(label: str) -> tuple[str, str, str, float, str]:
  """(dataset, method, augmentation, budget, ablation or '') of a run label."""
  parts = label.split(",")
  return parts[0], parts[1], parts[2], float(parts[3]), (parts[4] if len(parts) > 4 else "")


def _cells(results) -> dict[tuple, dict]:
  return {parse(label): cell for label, cell in grid.cells(results).items()}


def _stat(cells, key, metric="test_accuracy") -> tuple[float, float] | None:
  cell = cells.get(key)
  if cell is None or not all(metric in s for s in cell["summaries"]):
    return None
  return grid.stats(cell, metric)


def _fmt(stat, digits=2) -> str:
  return "–" if stat is None else f"{stat[0]:.{digits}f} ± {stat[1]:.{digits}f}"


def rows(results) -> list[dict]:
  """CSV rows, one per cell (mean / std over seeds)."""
  out = []
  for label, cell in grid.cells(results).items():
    dataset, method, augmentation, budget, ablation = parse(label)
    out.append({"dataset": dataset, "method": method, "augmentation": augmentation,
                "budget": budget, "ablation": ablation,
                "seeds": " ".join(map(str, cell["seeds"])),
                **grid.stat_columns(cell, METRICS),
                "command_first_seed": cell["commands"][0]})
  return out


def _methods(cells, dataset) -> list[tuple[str, str]]:
  """(method, name) of the methods with at least one run on ``dataset``."""
  return [(m, n) for m, n in METHOD_NAMES.items()
          if any(k[0] == dataset and k[1] == m for k in cells)]


def _column_table(cells, dataset, augmentations) -> list[str]:
  names = " | ".join(AUGMENTATION_NAMES[a] for a in augmentations)
  lines = [f"| method (30 % budget) | {names} |", "|---" * (len(augmentations) + 1) + "|"]
  for method, name in _methods(cells, dataset):
    lines.append(f"| {name} | " + " | ".join(
        _fmt(_stat(cells, (dataset, method, a, 0.3, ""))) for a in augmentations) + " |")
  lines.append("| *100 % budget, SGD* | " + " | ".join(
      _fmt(_stat(cells, (dataset, "sgd", a, 1.0, ""))) for a in augmentations) + " |")
  return lines


def _budget_table(cells, dataset) -> list[str]:
  lines = ["| method (standard augmentation) | 20 % | 30 % | 50 % | 70 % | 100 % |",
           "|---|---|---|---|---|---|"]
  full = _fmt(_stat(cells, (dataset, "sgd", "standard", 1.0, "")))
  for method, name in _methods(cells, dataset):
    lines.append(f"| {name} | " + " | ".join(
        _fmt(_stat(cells, (dataset, method, "standard", b, ""))) for b in BUDGETS)
        + f" | {full if method == 'sgd' else ''} |")
  return lines


def _cost_table(cells, dataset, num_train, num_epochs) -> list[str]:
  """Per method at 30 % (standard): measured passes and seconds."""
  lines = ["| method (30 %, standard) | backward passes (% of full) | forward passes (% of "
           "full) | train seconds | H(c) (max ln N) |", "|---|---|---|---|---|"]
  for method, name in METHOD_NAMES.items():
    key = (dataset, method, "standard", 0.3, "")
    if key not in cells:
      continue
    total = num_train * num_epochs
    backward = _stat(cells, key, "num_train_examples_seen")
    forward = _stat(cells, key, "examples_forwarded")
    seconds = _stat(cells, key, "train_seconds")
    entropy = _stat(cells, key, "coverage_entropy")
    if method in ("random", "coreset"):
      entropy = (math.log(math.floor(round(0.3 * num_train, 6))), 0.0)
    lines.append(f"| {name} | {100 * backward[0] / total:.1f} | "
                 f"{100 * forward[0] / total:.1f} | {_fmt(seconds, 1)} | "
                 + ("–" if entropy is None else f"{entropy[0]:.3f}") + " |")
  lines.append(f"\nH(c) maximum here: ln {num_train} = {math.log(num_train):.3f}. The fixed "
               "subsets' H(c) is ln ⌊0.3 N⌋ (every chosen example equally often); "
               "budgeted SGD sees every example about equally often. Seconds come from "
               "a machine running other work at the same time (the two grids side by "
               "side, tests): read them as rough; `benchmarks/README.md` has clean "
               "ratios.")
  return lines


def _entropy_table(cells, dataset) -> list[str]:
  lines = ["| p-SGD variant (30 %) | test accuracy | H(c) | paper H(c) CIFAR-10 / -100 |",
           "|---|---|---|---|"]
  variants = [(ablation, (dataset, "p", "standard", 0.3, ablation))
              for ablation in ("no_eps_last_step_lr", "no_eps_last", "no_eps", "")]
  variants += [("ricap", (dataset, "p", "ricap", 0.3, "")),
               ("reference_ricap_scores", (dataset, "p", "ricap", 0.3,
                                           "reference_ricap_scores"))]
  for ablation, key in variants:
    name = "p-SGD + RICAP" if ablation == "ricap" else ABLATION_NAMES[ablation]
    paper = PAPER_ENTROPY.get(ablation)
    lines.append(f"| {name} | {_fmt(_stat(cells, key))} | "
                 f"{_fmt(_stat(cells, key, 'coverage_entropy'), 3)} | "
                 + ("–" if paper is None else f"{paper[0]:.2f} / {paper[1]:.2f}") + " |")
  step = (dataset, "unif", "standard", 0.3, "step_lr")
  if step in cells:
    lines.append(f"| unif-SGD, step LR | {_fmt(_stat(cells, step))} | "
                 f"{_fmt(_stat(cells, step, 'coverage_entropy'), 3)} | – |")
  unif = _stat(cells, (dataset, "unif", "standard", 0.3, ""), "coverage_entropy")
  if unif is not None:
    lines.append(f"| unif-SGD (for scale) | "
                 f"{_fmt(_stat(cells, (dataset, 'unif', 'standard', 0.3, '')))} | "
                 f"{_fmt(unif, 3)} | – |")
  return lines


def _paper_table() -> list[str]:
  lines = ["| paper, Figure 1 | budget | Random | Core-set | unif-SGD | 100 % |",
           "|---|---|---|---|---|---|"]
  for dataset, values in PAPER_FIGURE1.items():
    for i, budget in enumerate(BUDGETS):
      lines.append(f"| {dataset} | {100 * budget:.0f} % | ≈{values['random'][i]} | "
                   f"≈{values['coreset'][i]} | ≈{values['unif'][i]} | "
                   + (f"≈{values['full']}" if i == 0 else "") + " |")
  return lines


def _mean(cells, key, metric="test_accuracy") -> float | None:
  stat = _stat(cells, key, metric)
  return None if stat is None else stat[0]


def claims(cells, dataset, augmentations) -> list[str]:
  """The paper's claims, checked on this dataset's means."""
  out = []
  # 1. Importance sampling vs uniform, every (augmentation at 30 %) and (budget, standard).
  pairs = [(a, 0.3) for a in augmentations] + [("standard", b) for b in BUDGETS if b != 0.3]
  comparisons = []
  for augmentation, budget in pairs:
    unif = _stat(cells, (dataset, "unif", augmentation, budget, ""))
    for method in ("p", "c"):
      other = _stat(cells, (dataset, method, augmentation, budget, ""))
      if unif and other:
        noise = max(unif[1], other[1])
        comparisons.append((method, augmentation, budget, other[0] - unif[0], noise))
  if comparisons:
    counts = {}
    for method in ("p", "c"):
      gaps = [(d, n) for m, *_, d, n in comparisons if m == method]
      counts[method] = (sum(d > n for d, n in gaps), sum(d < -n for d, n in gaps), len(gaps))
    mean_gap = statistics.fmean(d for *_, d, _ in comparisons)
    wins = {m: b > t / 2 for m, (b, _, t) in counts.items()}
    verdict = ("Holds." if not any(wins.values()) else
               "Does not hold here: " + " and ".join(
                   f"{METHOD_NAMES[m]} beats uniform in most comparisons" for m, w in
                   wins.items() if w) + ".")
    out.append("**Importance sampling does not consistently beat uniform sampling** "
               "(p-SGD and c-SGD against unif-SGD at the same budget and augmentation; "
               "better / worse = by more than the larger seed std): "
               + "; ".join(f"{METHOD_NAMES[m]} better in {b}, worse in {w}, within the std in "
                           f"{t - b - w} of {t}" for m, (b, w, t) in counts.items())
               + f"; mean difference {mean_gap:+.2f} points. {verdict}")
  # 2. 30 % + the best augmentation vs 100 % standard.
  full = _mean(cells, (dataset, "sgd", "standard", 1.0, ""))
  best = [(a, _mean(cells, (dataset, "unif", a, 0.3, ""))) for a in augmentations
          if a != "standard"]
  best = [b for b in best if b[1] is not None]
  if full is not None and best:
    augmentation, value = max(best, key=lambda b: b[1])
    out.append(f"**With a 30 % budget, uniform sampling + a suitable augmentation matches "
               f"100 %-budget standard training**: unif-SGD + "
               f"{AUGMENTATION_NAMES[augmentation]} {value:.2f} % against {full:.2f} % "
               f"({value - full:+.2f} points). "
               + ("Holds." if value >= full - 0.1 else "Does not hold here."))
  # 3. Augmentation matters more than the sampler at 30 %.
  by_sampler = [_mean(cells, (dataset, m, "standard", 0.3, "")) for m in ("unif", "p", "c")]
  by_augmentation = [_mean(cells, (dataset, "unif", a, 0.3, "")) for a in augmentations]
  if None not in by_sampler and None not in by_augmentation:
    sampler_spread = max(by_sampler) - min(by_sampler)
    augmentation_spread = max(by_augmentation) - min(by_augmentation)
    standard = by_augmentation[augmentations.index("standard")]
    hurts = max(by_augmentation) <= standard
    out.append(f"**Data augmentation matters more than the sampler** (30 %): the spread "
               f"over unif/p/c-SGD with standard augmentation is {sampler_spread:.2f} points, "
               f"over the augmentations with unif-SGD {augmentation_spread:.2f} points. "
               + ("Does not hold here." if augmentation_spread <= sampler_spread else
                  "Holds, but only because the added augmentations all lower accuracy "
                  "at this training length." if hurts else "Holds."))
  # 4. Figure 1: a new random subset every epoch beats one fixed random subset.
  gaps = [(b, _mean(cells, (dataset, "unif", "standard", b, "")),
           _mean(cells, (dataset, "random", "standard", b, ""))) for b in BUDGETS]
  gaps = [(b, u - r) for b, u, r in gaps if u is not None and r is not None]
  if gaps:
    out.append("**unif-SGD beats a fixed random subset of the same size** (Figure 1): "
               + ", ".join(f"{100 * b:.0f} %: {g:+.2f}" for b, g in gaps) + " points. "
               + ("Holds at every budget." if all(g > 0 for _, g in gaps) else
                  "Does not hold at every budget."))
  gaps = [(b, _mean(cells, (dataset, "unif", "standard", b, "")),
           _mean(cells, (dataset, "coreset", "standard", b, ""))) for b in BUDGETS]
  gaps = [(b, u - c) for b, u, c in gaps if u is not None and c is not None]
  if gaps:
    listed = ", ".join(f"{100 * b:.0f} %: {g:+.2f}" for b, g in gaps)
    out.append("**... and a fixed core-set of the same size** (Figure 1; CCS on the "
               f"accumulated margin): {listed} points. "
               + ("Holds at every budget." if all(g > 0 for _, g in gaps) else
                  "Does not hold at every budget."))
  # 5. Figure 1 right: ingredients that make p-SGD closer to uniform raise H(c).
  order = ["no_eps_last_step_lr", "no_eps_last", "no_eps", ""]
  entropies = [_mean(cells, (dataset, "p", "standard", 0.3, a), "coverage_entropy")
               for a in order]
  if None not in entropies:
    rising = all(a <= b for a, b in zip(entropies, entropies[1:]))
    out.append("**Each ingredient that brings p-SGD closer to uniform raises H(c)** "
               "(step LR → linear, last value → average, no ε → ε): "
               + " → ".join(f"{e:.3f}" for e in entropies) + ". "
               + ("Holds." if rising else "Not monotone here."))
    accuracies = [_mean(cells, (dataset, "p", "standard", 0.3, a)) for a in order]
    if None not in accuracies:
      helps = all(a <= b for a, b in zip(accuracies, accuracies[1:]))
      out.append("**... and that helps accuracy** (the same order): "
                 + " → ".join(f"{a:.2f}" for a in accuracies) + " %. "
                 + ("Holds." if helps else "Does not hold here."))
  step = _stat(cells, (dataset, "unif", "standard", 0.3, "step_lr"))
  linear = _stat(cells, (dataset, "unif", "standard", 0.3, ""))
  if step and linear:
    out.append(f"(The step schedule alone, with unif-SGD: {_fmt(step)} % against "
               f"{_fmt(linear)} % with the linear decay, {step[0] - linear[0]:+.2f} points; "
               "the step-LR ablation changes the schedule as well as the sampling.)")
  return out


def figures(cells, prefix: str, datasets) -> dict[str, str]:
  budget_panels, column_panels = [], []
  for dataset in datasets:
    series = []
    for method, name in METHOD_NAMES.items():
      points = [(100 * b, _stat(cells, (dataset, method, "standard", b, ""))) for b in BUDGETS]
      points = [(x, s) for x, s in points if s is not None]
      if points:
        series.append({"label": name, "x": [x for x, _ in points],
                       "y": [s[0] for _, s in points], "yerr": [s[1] for _, s in points],
                       "color": METHOD_COLORS[method]})
    full = _stat(cells, (dataset, "sgd", "standard", 1.0, ""))
    if full is not None:
      series.append({"label": "100 % budget", "x": [20, 70], "y": [full[0]] * 2,
                     "color": "black", "linestyle": "--"})
    budget_panels.append((DATASET_NAMES[dataset], series))
    augmentations = [a for a in AUGMENTATION_NAMES
                     if any(k[0] == dataset and k[2] == a for k in cells)]
    bars = [{"label": name, "color": METHOD_COLORS[method],
             "y": [(_stat(cells, (dataset, method, a, 0.3, "")) or (math.nan, 0))[0]
                   for a in augmentations],
             "yerr": [(_stat(cells, (dataset, method, a, 0.3, "")) or (0, 0))[1]
                      for a in augmentations]} for method, name in _methods(cells, dataset)]
    column_panels.append((f"{DATASET_NAMES[dataset]}, 30 % budget",
                          [AUGMENTATION_NAMES[a] for a in augmentations], bars))
  paths = {"budgets": plotting.line_panels(budget_panels, prefix + "_budgets.png",
                                           xlabel="budget (% of examples per epoch)",
                                           ylabel="test accuracy (%)")}
  paths["column"] = plotting.grouped_bars(column_panels, prefix + "_budget30.png",
                                          ylabel="test accuracy (%)")
  return paths


SETTINGS = {
    "fashion_mnist": "Fashion-MNIST (54,000 training / 6,000 validation / 10,000 test images), "
                     "the example-forgetting MNIST CNN (21,840 parameters), 10 epochs",
    "mnist1d": "MNIST-1D large (45,000 / 5,000 / 10,000 signals), the MNIST-1D CNN, 30 epochs",
}
NUM_TRAIN = {"fashion_mnist": 54_000, "mnist1d": 45_000}
NUM_EPOCHS = {"fashion_mnist": 10, "mnist1d": 30}


def _dataset_section(cells, dataset) -> list[str]:
  augmentations = [a for a in AUGMENTATION_NAMES
                   if (dataset, "unif", a, 0.3, "") in cells]
  return [
      f"## {DATASET_NAMES[dataset]}", "", SETTINGS[dataset] + ".", "",
      "### The 30 % column (test accuracy %, last epoch, mean ± std over seeds)", "",
      *_column_table(cells, dataset, augmentations), "",
      "### Budgets, standard augmentation", "", *_budget_table(cells, dataset), "",
      "### What each method cost (30 %, standard)", "",
      *_cost_table(cells, dataset, NUM_TRAIN[dataset], NUM_EPOCHS[dataset]), "",
      "### Coverage entropy H(c) of p-SGD and its ablations (Figure 1, right)", "",
      *_entropy_table(cells, dataset), "",
      "### The paper's claims here", "",
      *[f"- {claim}" for claim in claims(cells, dataset, augmentations)], ""]


def markdown(results, *, seeds, figure_paths, minutes) -> str:
  cells = _cells(results)
  datasets = [d for d in DATASET_NAMES if any(k[0] == d for k in cells)]
  lines = [
      "# Budgeted importance sampling: Fashion-MNIST and MNIST-1D", "",
      "Arazo et al., \"How Important is Importance Sampling for Deep Budgeted Training?\" "
      "(BMVC 2021), ALGORITHMS.md section B. Every epoch trains on ⌊b · N⌋ examples for a "
      "fixed number of epochs; SGD with a budget stops after the same number of steps. All "
      "runs: SGD momentum 0.9, weight decay 1e-4, batch 128 with drop-last, the learning "
      "rate decayed linearly per step to 1e-6 at the last step (B.6), lr 0.05.", "",
      "    python -m experiments.budgeted_importance_sampling   # the whole grid, resumable",
      "    python -m jaxsel.main --config=configs/papers/budgeted_importance_sampling.py:"
      "fashion_mnist,p,ricap,0.3 --workdir=DIR --config.seed=66446573   # one run", "",
      f"{len(results)} runs, {minutes:.0f} minutes of run time on a 2-core CPU; seeds "
      f"{', '.join(map(str, seeds))} (the first three of the reference's pool). Every "
      "cell's command is in `budgeted_importance_sampling.csv`. Models and epochs were "
      "sized for a grid of about 90 minutes on this machine; this run shared it with tests "
      "and benchmarks (the two datasets side by side), so its run time is longer. That is "
      "far shorter training than the paper's 200 ResNet-18 epochs: absolute accuracies and "
      "the size of every gap belong to this scale.", "",
      "How jaxsel runs the paper's methods:", "",
      "- **unif-SGD / p-SGD / c-SGD**: a new subset each epoch, drawn without replacement by "
      "Gumbel-top-k from the weights of B.4 (difficulty = running mean of 1 − p_y from the "
      "training forward pass, ε smoothing, unseen examples as the reference).",
      "- **Random** / **Core-set**: one subset of ⌊b · N⌋ fixed for all epochs (the "
      "`coreset` method): uniformly random, or (MNIST-1D only) CCS with β = 0 and 50 strata "
      "on the accumulated margin averaged over one full-data training-dynamics run per seed "
      "(`scores` runs); the paper does not say which core-set it used.",
      "- **Selective backprop**: β = 1/b − 1 so that the expected back-propagated fraction "
      "is b (the paper's β = 3 is b = 0.25); every example is still forwarded every epoch "
      "(eval-mode scoring pass), so its forward cost is not budgeted. Under mixup it uses "
      "the configured λ as drawn, not the reference's max(λ, 1 − λ).",
      "- **RICAP** attributes each patched image's prediction to its four sources by patch "
      "area (the fix of B.9.1); the reference's attribution is the "
      "`reference_ricap_scores` row. RandAugment (N = 2, M = 4) runs on the uint8 image "
      "before crop and flip; MNIST-1D has no image augmentation, so its `standard` is no "
      "augmentation and it has no RandAugment column.", ""]
  if "budgets" in figure_paths:
    lines += [f"![accuracy against budget]({_name(figure_paths['budgets'])})", "",
              f"![the 30 % column]({_name(figure_paths['column'])})", ""]
  for dataset in datasets:
    lines += _dataset_section(cells, dataset)
  lines += ["## The paper's numbers (CIFAR, ResNet-18, 200 epochs; Figure 1, read off the "
            "bar chart)", "", *_paper_table(), "",
            "H(c) of the paper's p-SGD ablations at 30 % is in the entropy tables above; its "
            "maximum there is ln 50,000 = 10.82. The paper's main tables (every method × "
            "augmentation) were not available to this reproduction.", ""]
  return "\n".join(lines)


def _name(path: str) -> str:
  return path.rsplit("/", 1)[-1]


def write(results, output: str, *, seeds) -> None:
  """The csv, figures and markdown of ``results`` at path prefix ``output``."""
  if not results:
    print("no finished runs to report")
    return
  grid.write_csv(output + ".csv", rows(results))
  cells = _cells(results)
  datasets = [d for d in DATASET_NAMES if any(k[0] == d for k in cells)]
  figure_paths = figures(cells, output, datasets)
  minutes = sum(r["wall_seconds"] for r in results) / 60
  files.write_text(output + ".md", markdown(results, seeds=seeds, figure_paths=figure_paths,
                                            minutes=minutes))
  print(f"wrote {output}.md and .csv ({len(results)} runs, {minutes:.0f} min of runs)")
