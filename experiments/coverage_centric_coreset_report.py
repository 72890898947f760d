"""Tables, figures and claim checks of the coverage-centric coreset grid.

``results`` are the coreset runs of ``coverage_centric_coreset.py`` (``{"arg", "seed",
"beta", "summary", "command", "wall_seconds"}``), ``score_runs`` its training-dynamics runs
(one per seed, on all data) and ``search_runs`` the seed-0 CCS runs of the β search. The
dataset (MNIST-1D or Fashion-MNIST) is that of the runs' config arguments, and the pruning
rates are its sweep's (``SWEEP_PERCENTS``); claims on rates or cells it lacks are left out.
"""

import os
import shutil

from configs.papers import coverage_centric_coreset as paper
from experiments import claims as claims_lib
from experiments import grid
from experiments import paired
from jaxsel import files, plotting

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
PAPER_NAME = "Zheng et al. 2023, coverage-centric coreset selection"
COMMAND = "python -m experiments.coverage_centric_coreset"
# Per dataset: the title's name, the figure panel's and the regime's data and model.
DATA = {"mnist1d": {"title": "MNIST-1D", "panel": "MNIST-1D, 1-D CNN"},
        "fashion_mnist": {"title": "Fashion-MNIST", "panel": "Fashion-MNIST ("
                          f"{paper.TRAIN_SUBSET_SIZE['fashion_mnist']:,} training images), "
                          "MNIST CNN"}}
METRICS = ("test_accuracy", "test_ece", "test_nll", "val_accuracy", "train_seconds")


def dataset_of(runs) -> str:
  """The dataset of a grid's runs: the first part of their config arguments."""
  names = {r["arg"].split(",")[0] for r in runs}
  if len(names) != 1:
    raise ValueError(f"the runs must be of one dataset, got {sorted(names)}")
  return names.pop()


def percents_of(dataset: str) -> tuple[int, ...]:
  """The pruning rates of ``dataset``'s sweep."""
  return paper.SWEEP_PERCENTS.get(dataset, paper.PRUNING_PERCENTS)


def command(dataset: str) -> str:
  """The grid's command for ``dataset`` (MNIST-1D: the default)."""
  return COMMAND if dataset == "mnist1d" else f"{COMMAND} --dataset={dataset}"


def _rates(percents) -> str:
  return ", ".join(f"{p} %" for p in percents)


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
  scores_arg = f"{dataset_of(score_runs)},scores"
  out.append(row("full data (scores)", scores_arg, grid.cells(score_runs)[scores_arg]))
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


def figures(results, prefix: str, *, strata_dir: str | None) -> dict:
  """Accuracy against pruning rate (ours beside the paper's), and the CCS strata of the
  90 % coreset of seed 0 (``strata_dir``'s figure, if any); returns {name: file name}."""
  cells = _cells(results)
  dataset = dataset_of(results)
  paper_series = [{"label": NAMES[m], "x": list(paper.PRUNING_PERCENTS),
                   "y": list(PAPER[m]), "color": COLORS[m], "linestyle": "--"}
                  for m in paper.METHODS]
  written = {}
  path = prefix + "_vs_pruning.png"
  plotting.line_panels([(f"{DATA[dataset]['panel']} (this grid, mean ± std over seeds)",
                         _series(cells, percents_of(dataset))),
                        ("CIFAR-10, ResNet-18 (the paper's Table 1)", paper_series)],
                       path, xlabel="pruning rate (%)", ylabel="test accuracy (%)")
  written["vs_pruning"] = os.path.basename(path)
  strata = os.path.join(strata_dir, "coreset_strata.png") if strata_dir else None
  if strata and os.path.exists(strata):
    path = prefix + "_ccs_strata_90.png"
    shutil.copyfile(strata, path)
    written["strata"] = os.path.basename(path)
  return written


def _differences(cells, compare) -> dict | None:
  """{label: PairedDifference} of test accuracy, cell a − cell b seed by seed, for each
  (label, a, b) of ``compare`` (a, b: (method, percent)); None if there is none or a cell
  is missing."""
  return paired.differences(
      lambda key: paired.by_seed(cells[key], "test_accuracy") if key in cells else None,
      compare)


def _per_cell(cells, compare, direction, margin=0.0, *, text,
              unit) -> claims_lib.Finding | None:
  """A claim made of one paired test per (label, a, b) of ``compare``: every part must
  hold; None if a cell is missing."""
  return claims_lib.per_cell(_differences(cells, compare), direction, margin, text=text,
                             unit=unit)


def claims(cells, *, percents=None) -> list[claims_lib.Finding]:
  """The paper's claims, each decided seed by seed on test accuracy (the same seed gives
  the same scores, initialisation and data order in every cell): a list of
  ``claims.Finding``. The pruning rates are ``percents`` (default: those of ``cells``); a
  claim about rates none of which is among them, or whose cells are not all in ``cells``,
  is left out; the low-rate claims are decided on the low rates present (30 % and 50 %, or
  50 % alone on Fashion-MNIST), which their text names."""
  if percents is None:
    percents = sorted({p for _, p in cells})
  found = []

  def add(finding):
    if finding is not None:
      found.append(finding)

  against = lambda a, bs, ps: [(f"{NAMES[b]} {p} %", (a, p), (b, p))  # noqa: E731
                               for b in bs for p in ps]
  high = [p for p in (80, 90) if p in percents]
  add(_per_cell(
      cells, [(f"{NAMES[m]} {p} %", (m, p), ("random", p)) for m in MONOTONIC for p in high],
      -1, text="Importance-only (monotonic) selection collapses at high pruning rates: "
               f"every one is below random at {' and '.join(f'{p} %' for p in high)}",
      unit="test accuracy, method − random (points)"))
  if 90 in percents:
    add(_per_cell(cells, [("90 %", ("ccs", 90), ("random", 90))], 1,
                  text="CCS beats random at 90 % pruning (the paper: +7.04 points)",
                  unit="test accuracy, CCS − random (points)"))
    add(_per_cell(cells, against("ccs", MONOTONIC, [90]), 1,
                  text="CCS beats every importance-only method at 90 % (the paper: the "
                       "best of them by 19.56 points)",
                  unit="test accuracy, CCS − method (points)"))
  low = [p for p in (30, 50) if p in percents]
  others = [m for m in paper.METHODS if m != "ccs"]
  at_low = (f"At low pruning rates ({_rates(low)})" if len(low) > 1
            else f"At a low pruning rate ({_rates(low)})")
  add(_per_cell(cells, against("ccs", others, low), 1, margin=-0.5,
                text=f"{at_low} CCS is as good as the best method: "
                     "within 0.5 points of each other method (the interval lies above "
                     "−0.5)", unit="test accuracy, CCS − method (points)"))
  # "Some score beats random" holds at a rate when one of the four does; picking the best
  # of four makes a chance win likelier than in a single comparison.
  diffs = {p: _differences(cells, [(f"{NAMES[m]} {p} %", (m, p), ("random", p))
                                   for m in MONOTONIC]) for p in low}
  if low and None not in diffs.values():
    verdict = paired.all_hold(
        paired.some_hold(paired.claim_verdict(d, 1) for d in by_p.values())
        for by_p in diffs.values())
    add(claims_lib.Finding(
        f"{at_low} some importance score beats random"
        + (", at each rate" if len(low) > 1 else "")
        + " (as forgetting and EL2N do in the paper)", verdict,
        "test accuracy, method − random (points): "
        + paired.format_differences({k: d for by_p in diffs.values() for k, d in by_p.items()})))
  return found


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
  dataset = dataset_of(results)
  percents = percents_of(dataset)
  scores_config = paper.get_config(f"{dataset},scores")
  coreset_config = paper.get_config(f"{dataset},ccs,90")
  full = grid.cells(score_runs)[f"{dataset},scores"]
  full_acc, full_std = grid.stats(full, "test_accuracy")
  summary = score_runs[0]["summary"]
  example = [c["commands"][0] for c in grid.cells(results).values()]
  lines = [
      f"# Coverage-centric coreset selection on {DATA[dataset]['title']}: Table 1",
      "",
      "Reproduction of Zheng et al., \"Coverage-centric Coreset Selection for High Pruning "
      "Rates\" (ICLR 2023) on data that runs on a 2-core CPU: "
      + _setting(dataset, scores_config, summary) +
      f"Stage 1: {scores_config.train.num_epochs} epochs on all training examples record "
      "each example's training dynamics (forgetting, accumulated margin, EL2N over the "
      "first 10 epochs) and the final model's entropy; stage 2: a fresh model trains on "
      f"the coreset for {coreset_config.train.num_train_steps:,} steps (as many as "
      f"{scores_config.train.num_epochs} full-data epochs), whatever its size. Last-step "
      f"model, test accuracy (%), mean ± std over {len(seeds)} seeds "
      f"({', '.join(map(str, seeds))}); each seed's coresets come from that seed's scores.",
      "",
      f"Whole grid: `{command(dataset)}` "
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
      "| method | " + " | ".join(f"{p} %" for p in paper.PRUNING_PERCENTS) + " |",
      "|---|" + "---|" * len(paper.PRUNING_PERCENTS),
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
        + f" | {_beta(chosen_beta.get(percent))} | {paper.BETA[percent]:g} |")
  lines += ["", "(validation accuracy, %, seed 0)", "", "## Figures", ""]
  if "vs_pruning" in figures:
    lines += [f"![test accuracy against pruning rate]({figures['vs_pruning']})", ""]
  if "strata" in figures:
    lines += [f"![CCS strata of the 90 % coreset, seed 0]({figures['strata']})", ""]
  lines += claims_lib.section(claims(cells, percents=percents),
                              seeds_note=f"{len(seeds)} seeds, {', '.join(map(str, seeds))}")
  return "\n".join(lines) + "\n"


def _beta(beta) -> str:
  return "—" if beta is None else f"{beta:g}"


def _setting(dataset, config, summary) -> str:
  """The introduction's data, model and learning rate."""
  sizes = (f"{summary['num_train']:,} training / {summary['num_validation']:,} validation / "
           f"{summary['num_test']:,} test examples")
  recipe = ("batch 256, SGD momentum 0.9 Nesterov, weight decay 5e-4, cosine annealing per "
            "step to 1e-4 (the paper's optimizer and schedule), at lr "
            f"{config.optimizer.learning_rate:g} rather than the paper's 0.1")
  if dataset == "mnist1d":
    return (f"`{config.dataset.name}` ({sizes}) with the MNIST-1D paper's CNN, {recipe}, "
            "which made this BatchNorm-free CNN diverge in some runs. ")
  return (f"`{config.dataset.name}`, shortened to fit the CPU: a fixed random "
          f"{config.dataset.train_subset_size:,} of its training images, the same for every "
          f"seed ({sizes}), pruned at {_rates(percents_of(dataset))} only, with the "
          f"example-forgetting MNIST CNN and pad-4 crop + flip, {recipe} (as on MNIST-1D, "
          "where 0.1 made the BatchNorm-free CNN diverge in some runs). ")


def regime(score_runs, seeds) -> str:
  """Where the claims were tested, in one line: data, model, lengths, seeds."""
  dataset = dataset_of(score_runs)
  scores_config = paper.get_config(f"{dataset},scores")
  coreset_config = paper.get_config(f"{dataset},ccs,90")
  num_train = score_runs[0]["summary"]["num_train"]
  data = (f"MNIST-1D large ({num_train:,} train), 1-D CNN" if dataset == "mnist1d" else
          f"Fashion-MNIST, a fixed random {scores_config.dataset.train_subset_size:,}-image "
          f"training subset ({num_train:,} train), MNIST CNN, pruning "
          f"{_rates(percents_of(dataset))}")
  return (f"{data}, {scores_config.train.num_epochs}-epoch scores, coresets trained "
          f"{coreset_config.train.num_train_steps:,} steps, lr "
          f"{scores_config.optimizer.learning_rate:g}; CCS β by validation accuracy; "
          f"{len(seeds)} seeds")


def write(results, score_runs, search_runs, *, chosen_beta, prefix: str, seeds,
          strata_dir: str | None) -> None:
  """The .csv, figures, .md and ``_claims.json`` of the grid (``strata_dir``: the run whose
  CCS strata figure is copied, None for none)."""
  if not results or not score_runs:
    raise ValueError("no finished coreset or score runs to report")
  grid.write_csv(prefix + ".csv", rows(results, score_runs, search_runs))
  figs = figures(results, prefix, strata_dir=strata_dir)
  minutes = sum(r["wall_seconds"] for r in score_runs + search_runs + results) / 60
  files.write_text(prefix + ".md", markdown(
      results, score_runs, search_runs, chosen_beta=chosen_beta, figures=figs, seeds=seeds,
      grid_minutes=minutes))
  dataset = dataset_of(results)
  claims_lib.write(prefix + "_claims.json", claims_lib.attach(
      claims(_cells(results), percents=percents_of(dataset)), paper=PAPER_NAME,
      regime=regime(score_runs, seeds), table=os.path.basename(prefix) + ".md",
      command=command(dataset)))
