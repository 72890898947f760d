"""Tables and paired claim checks of the budgeted importance sampling grid (its figures:
``budgeted_importance_sampling_figures``).

A *run* is ``{"arg" (its label), "seed", "summary", "workdir", "command", "wall_seconds"}``;
its label is ``DATASET,METHOD,AUGMENTATION,BUDGET`` (the config argument), with a fifth
part naming an ablation.
"""

import math

from configs.papers import budgeted_importance_sampling as paper
from experiments import budgeted_importance_sampling as budgeted
from experiments import claims as claims_lib
from experiments import grid, paired
from jaxsel import files

PAPER_NAME = "Arazo et al. 2021, importance sampling for deep budgeted training"
COMMAND = "python -m experiments.budgeted_importance_sampling"
MAIN_BUDGET = 0.3

METHOD_NAMES = {"sgd": "SGD (budgeted: fewer steps)", "random": "Random (fixed subset)",
                "coreset": "Core-set (fixed CCS subset)", "unif": "unif-SGD", "p": "p-SGD",
                "c": "c-SGD", "sb": "Selective backprop"}
AUGMENTATION_NAMES = {"standard": "standard", "mixup": "mixup", "ricap": "RICAP",
                      "randaugment": "RandAugment"}
ABLATION_NAMES = {"no_eps_last_step_lr": "p-SGD, step LR, no ε, no average",
                  "no_eps_last": "p-SGD, no ε, no average", "no_eps": "p-SGD, no ε",
                  "": "p-SGD", "reference_ricap_scores": "p-SGD + RICAP, reference scores"}
# The p-SGD ablations from furthest from uniform to full p-SGD, and each step's change.
ABLATION_ORDER = ("no_eps_last_step_lr", "no_eps_last", "no_eps", "")
ABLATION_STEPS = ("linear − step LR", "average − last value", "ε − no ε")
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "mnist1d": "MNIST-1D",
                 "fashion_mnist_small": "Fashion-MNIST, 12,000 images"}
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


def _seeds(cells, key, metric="test_accuracy") -> dict | None:
  """{seed: metric} of one cell; None if the grid lacks it or a run lacks the metric."""
  cell = cells.get(key)
  if cell is None or not all(metric in s for s in cell["summaries"]):
    return None
  return paired.by_seed(cell, metric)


def _stat(cells, key, metric="test_accuracy") -> tuple[float, float] | None:
  """Mean and population std over the cell's seeds; None as for ``_seeds``."""
  return None if _seeds(cells, key, metric) is None else grid.stats(cells[key], metric)


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
  p = lambda a, ablation="": (dataset, "p", a, MAIN_BUDGET, ablation)  # noqa: E731
  unif = lambda ablation="": (dataset, "unif", "standard", MAIN_BUDGET, ablation)  # noqa: E731
  variants = [(ABLATION_NAMES[a], p("standard", a), PAPER_ENTROPY[a]) for a in ABLATION_ORDER]
  variants += [("p-SGD + RICAP", p("ricap"), PAPER_ENTROPY["ricap"]),
               (ABLATION_NAMES["reference_ricap_scores"], p("ricap", "reference_ricap_scores"),
                None), ("unif-SGD, step LR", unif("step_lr"), None),
               ("unif-SGD (for scale)", unif(), None)]
  for name, key, reference in variants:
    if key[1] == "unif" and key not in cells:
      continue
    lines.append(f"| {name} | {_fmt(_stat(cells, key))} | "
                 f"{_fmt(_stat(cells, key, 'coverage_entropy'), 3)} | "
                 + ("–" if reference is None else f"{reference[0]:.2f} / {reference[1]:.2f}")
                 + " |")
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


SHORT_NAMES = {**METHOD_NAMES, "sgd": "SGD", "random": "Random", "coreset": "Core-set"}
SETTINGS = {
    "fashion_mnist": "Fashion-MNIST (54,000 training / 6,000 validation / 10,000 test images), "
                     "the example-forgetting MNIST CNN (21,840 parameters)",
    "mnist1d": "MNIST-1D large (45,000 / 5,000 / 10,000 signals), the MNIST-1D CNN",
    "fashion_mnist_small": "Fashion-MNIST on a fixed random 12,000 of its training images "
                           "(6,000 validation / 10,000 test), the example-forgetting MNIST "
                           "CNN",
}
REGIMES = {"fashion_mnist": "Fashion-MNIST (54,000 train), example-forgetting MNIST CNN",
           "mnist1d": "MNIST-1D large (45,000 train), MNIST-1D CNN",
           "fashion_mnist_small": "Fashion-MNIST (a fixed 12,000 train), MNIST CNN"}
NUM_TRAIN = {"fashion_mnist": 54_000, "mnist1d": 45_000, "fashion_mnist_small": 12_000}


def _augmentations(cells, dataset) -> list[str]:
  """The augmentations of the dataset's 30 % unif-SGD runs, in the paper's order."""
  return [a for a in AUGMENTATION_NAMES if (dataset, "unif", a, MAIN_BUDGET, "") in cells]


def dataset_seeds(cells, dataset) -> list[int]:
  """Every seed of the dataset's runs, in the order they appear."""
  return list(dict.fromkeys(s for key, cell in cells.items() if key[0] == dataset
                            for s in cell["seeds"]))


def dataset_epochs(cells, dataset) -> int:
  """The epochs the dataset's runs report (budgeted SGD aside: it is a step count); the
  paper config's length where none does."""
  epochs = {s["num_epochs"] for key, cell in cells.items()
            if key[0] == dataset and not (key[1] == "sgd" and key[3] < 1)
            for s in cell["summaries"] if "num_epochs" in s}
  if len(epochs) > 1:
    raise ValueError(f"{dataset}: runs of different lengths {sorted(epochs)} in one report")
  return epochs.pop() if epochs else paper.EPOCHS[dataset]


def _seeds_text(seeds) -> str:
  listed = ", ".join(map(str, seeds))
  if tuple(seeds) == paper.SEED_POOL[:len(seeds)]:
    return f"{len(seeds)} seeds of the reference's pool, its first {len(seeds)}: {listed}"
  return f"{len(seeds)} seeds: {listed}"


def seeds_note(cells, datasets) -> str:
  """The seeds behind the claims: one list, or one per dataset where they differ."""
  seeds = {d: dataset_seeds(cells, d) for d in datasets}
  if len({tuple(s) for s in seeds.values()}) == 1:
    return _seeds_text(seeds[datasets[0]])
  return "; ".join(f"{DATASET_NAMES[d]}, {_seeds_text(s)}" for d, s in seeds.items())


def fewer_seeds_note(cells, dataset) -> str:
  """' Fewer seeds: …' naming the dataset's cells with fewer seeds than the most any has
  (the augmentation grid runs the cells no claim uses on 3), or ''."""
  counts = {key: len(cell["seeds"]) for key, cell in cells.items() if key[0] == dataset}
  most = max(counts.values(), default=0)
  fewer = [f"{SHORT_NAMES[m]} {AUGMENTATION_NAMES[a]} {100 * b:.0f} % ({n})"
           for (_, m, a, b, ablation), n in counts.items() if n < most and not ablation]
  return f" Fewer seeds (no claim is decided on these cells): {', '.join(fewer)}." if fewer \
      else ""


def regime(cells, dataset) -> str:
  """One line: the data, model, length and seeds the dataset's claims were tested on."""
  return (f"{REGIMES[dataset]}, {dataset_epochs(cells, dataset)} epochs, lr 0.05, linear "
          f"decay per step; {len(dataset_seeds(cells, dataset))} seeds")


def claim_records(cells, datasets, *, table: str, command: str = COMMAND) -> list:
  """Every dataset's claims as ``claims.Claim`` records, each with its dataset's regime."""
  claims = _claims_module().claims
  return [claim for d in datasets for claim in claims_lib.attach(
      claims(cells, d), paper=PAPER_NAME, regime=regime(cells, d), table=table,
      command=command)]


def _dataset_section(cells, dataset) -> list[str]:
  epochs = dataset_epochs(cells, dataset)
  return [
      f"## {DATASET_NAMES[dataset]}", "",
      f"{SETTINGS[dataset]}, {epochs} epochs; {_seeds_text(dataset_seeds(cells, dataset))}."
      + fewer_seeds_note(cells, dataset),
      "", "### The 30 % column (test accuracy %, last epoch, mean ± std over seeds)", "",
      *_column_table(cells, dataset, _augmentations(cells, dataset)), "",
      "### Budgets, standard augmentation", "", *_budget_table(cells, dataset), "",
      "### What each method cost (30 %, standard)", "",
      *_cost_table(cells, dataset, NUM_TRAIN[dataset], epochs), "",
      "### Coverage entropy H(c) of p-SGD and its ablations (Figure 1, right)", "",
      *_entropy_table(cells, dataset), "", *_claims_module().step_lr_note(cells, dataset)]


def _scale_note(augmentation_grid: bool) -> str:
  """What the grid's lengths were chosen for."""
  if augmentation_grid:
    return ("The long augmentation grid (`--cells=augmentation`): budgeted SGD, unif-SGD, "
            "p-SGD and selective backprop at 30 % and SGD at 100 %, each with every "
            "augmentation, at the length chosen by `python -m experiments.budgeted_length` "
            "([budgeted_length_fashion_mnist.md](budgeted_length_fashion_mnist.md)), whose "
            "100 % runs these are. Its 30 % runs validate every "
            f"{budgeted.AUGMENTATION_EVAL_EVERY} epochs (the last always), which leaves their last-epoch numbers unchanged. "
            "Run times are rough (the machine may be shared). Still far shorter training "
            "than the paper's 200 ResNet-18 epochs on CIFAR: absolute accuracies and the "
            "size of every gap belong to this scale.")
  return ("The default lengths (10 epochs on Fashion-MNIST, 30 on MNIST-1D) were sized for "
          "a grid of about 90 minutes on this machine, which the runs may share with other "
          "work, so run times are rough. That is far shorter training than the paper's 200 "
          "ResNet-18 epochs: absolute accuracies and the size of every gap belong to this "
          "scale.")


def markdown(results, *, figure_paths, minutes, csv_name, command: str = COMMAND,
             augmentation_grid: bool = False) -> str:
  cells = _cells(results)
  datasets = [d for d in DATASET_NAMES if any(k[0] == d for k in cells)]
  lines = [
      "# Budgeted importance sampling: "
      + " and ".join(DATASET_NAMES[d] for d in datasets), "",
      "Arazo et al., \"How Important is Importance Sampling for Deep Budgeted Training?\" "
      "(BMVC 2021), ALGORITHMS.md section B. Every epoch trains on ⌊b · N⌋ examples for a "
      "fixed number of epochs; SGD with a budget stops after the same number of steps. All "
      "runs: SGD momentum 0.9, weight decay 1e-4, batch 128 with drop-last, the learning "
      "rate decayed linearly per step to 1e-6 at the last step (B.6), lr 0.05.", "",
      f"    {command}   # the whole grid, resumable",
      "    python -m jaxsel.main --config=configs/papers/budgeted_importance_sampling.py:"
      "fashion_mnist,p,ricap,0.3 --workdir=DIR --config.seed=66446573   # one run", "",
      f"{len(results)} runs, {minutes:.0f} minutes of run time on a 2-core CPU; "
      f"{seeds_note(cells, datasets)}. Every cell's command is in `{csv_name}`. "
      + _scale_note(augmentation_grid), "",
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
  # One claims list for both datasets: each claim names the dataset it was tested on.
  findings = [f._replace(text=f"{DATASET_NAMES[d]}: {f.text}") for d in datasets
              for f in _claims_module().claims(cells, d)]
  lines += claims_lib.section(findings, seeds_note=seeds_note(cells, datasets))
  return "\n".join(lines) + "\n"


def _claims_module():
  """Imported when used: the claims build on this module's cell look-ups."""
  # pylint: disable-next=import-outside-toplevel
  from experiments import budgeted_importance_sampling_claims
  return budgeted_importance_sampling_claims


def _name(path: str) -> str:
  return path.rsplit("/", 1)[-1]


def write(results, output: str, *, command: str = COMMAND,
          augmentation_grid: bool = False) -> None:
  """The csv, figures, markdown and ``_claims.json`` of ``results`` at path prefix
  ``output``; ``command`` reruns the grid (``--cells=augmentation`` if
  ``augmentation_grid``)."""
  if not results:
    print("no finished runs to report")
    return
  # Imported here: the figures build on this module's cell look-ups.
  from experiments import budgeted_importance_sampling_figures as figures_lib
  grid.write_csv(output + ".csv", rows(results))
  cells = _cells(results)
  datasets = [d for d in DATASET_NAMES if any(k[0] == d for k in cells)]
  figure_paths = figures_lib.figures(cells, output, datasets)
  minutes = sum(r["wall_seconds"] for r in results) / 60
  name = _name(output)
  files.write_text(output + ".md", markdown(
      results, figure_paths=figure_paths, minutes=minutes, csv_name=name + ".csv",
      command=command, augmentation_grid=augmentation_grid))
  claims_lib.write(output + "_claims.json",
                   claim_records(cells, datasets, table=name + ".md", command=command))
  print(f"wrote {output}.md, .csv and _claims.json ({len(results)} runs, {minutes:.0f} min "
        "of runs)")
