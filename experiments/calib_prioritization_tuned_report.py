"""The results files of the validation-tuned calibrated-prioritization grid
(``calib_prioritization_tuned.py``): the choices, Tables 1 and 2 at the chosen values, the
figures and the claims, decided seed by seed.

A result is ``{"arg", "calibration", "value", "seed", "stage", "summary", "command"}``;
``value`` is the run's ε / α / γ (None for untuned cells). A choice is ``{"arg",
"calibration", "val_ece": {value: mean validation ECE over the tuning seeds}, "chosen"}``.
"""

import dataclasses
import statistics

from configs.papers import calib_prioritization as paper
from experiments import calib_prioritization_report as report
from experiments import claims as claims_lib
from experiments import grid
from jaxsel import files

PAPER_NAME = report.PAPER_NAME
COMMAND = "python -m experiments.calib_prioritization_tuned"
METRICS = report.METRICS + ("val_ece", "val_accuracy")


@dataclasses.dataclass(frozen=True)
class Regime:
  """One over-confident setting of ``configs/papers/calib_prioritization.py`` and the shape
  of its grid."""
  dataset: str  # the config's DATASET
  title: str
  subsets: tuple[int, ...]  # subset sizes (%) below 100
  tuning_seeds: tuple[int, ...]
  values: dict  # calibration -> the values tried
  target_alphas: tuple[float, ...]
  workdir: str
  data: str  # the data, model and training, for the text
  regime: str  # one line, for the claims page


REGIMES = {
    "mnist1d_small": Regime(
        "mnist1d_small", "MNIST-1D", (30, 20, 10), (0, 1, 2), paper.TUNING_VALUES,
        paper.TARGET_ALPHAS, "runs/calib_prioritization_tuned",
        "the default MNIST-1D (`mnist1d`), the MNIST-1D CNN, batch 32, SGD momentum 0.9, "
        "weight decay 5e-4, lr 0.01 with per-epoch cosine annealing, 200 epochs of which "
        "the first 10 on all data",
        "MNIST-1D default (3,600 train), CNN, 200 epochs, lr 0.01; CE over-confident"),
    "fashion_mnist_small": Regime(
        "fashion_mnist_small", "Fashion-MNIST", (30, 10), (0, 1),
        paper.FASHION_TUNING_VALUES, paper.FASHION_TARGET_ALPHAS,
        "runs/calib_prioritization_tuned_fashion_mnist_small",
        "Fashion-MNIST on a fixed random 12,000 of its training images (shortened to fit "
        "2 CPU cores), the MNIST CNN, batch 128, SGD momentum 0.9, weight decay 5e-4, lr "
        "0.05 with per-epoch cosine annealing, 30 epochs of which the first 2 on all data "
        "(the paper's 200 and 10, shortened)",
        "Fashion-MNIST (a fixed 12,000 train), MNIST CNN, 30 epochs; CE over-confident"),
}


def hparam_label(calibration: str, value) -> str:
  return "" if value is None else f"{report.HPARAM_SYMBOL[calibration]}={value:g}"


def chosen_results(results, choices) -> list[dict]:
  """The untuned runs and, of each tuned cell, the runs at its chosen value, labelled with
  that value (``hparam``) for the tables."""
  chosen = {c["arg"]: c["chosen"] for c in choices}
  return [{**r, "hparam": hparam_label(r["calibration"], r["value"])} for r in results
          if r["value"] is None or chosen.get(r["arg"]) == r["value"]]


def rows(results, choices) -> list[dict]:
  """One CSV row per (cell, value): its settings, whether it was chosen, and mean / std
  over its seeds of every metric."""
  chosen = {c["arg"]: c["chosen"] for c in choices}
  groups = {}
  for r in results:
    groups.setdefault((r["arg"], r["value"]), []).append(r)
  out = []
  for (arg, value), runs in groups.items():
    cell = {"summaries": [r["summary"] for r in runs]}
    out.append({"config_arg": arg, "stage": runs[0]["stage"],
                "hyper_parameter": hparam_label(runs[0]["calibration"], value),
                "chosen": "" if value is None else chosen.get(arg) == value,
                "seeds": " ".join(str(r["seed"]) for r in runs),
                "command_first_seed": runs[0]["command"],
                **grid.stat_columns(cell, METRICS)})
  return out


def _cell_name(arg: str) -> str:
  parsed = report.parse(arg)
  if parsed["variant"] == "target_model":
    return "target model"
  name = f"{report.CALIBRATION_NAMES[parsed['calibration']]}, {parsed['percent']} %"
  return name + (", target-guided" if parsed["variant"] == "target" else "")


def choice_table(choices) -> list[str]:
  """Every tuned cell: each value's mean validation ECE, the chosen one in bold."""
  lines = ["| cell | value: mean validation ECE (%) over the tuning seeds | chosen |",
           "|---|---|---|"]
  for c in choices:
    if not c["val_ece"]:
      continue
    values = ", ".join(
        (f"**{hparam_label(c['calibration'], v)}: {e:.2f}**" if v == c["chosen"]
         else f"{hparam_label(c['calibration'], v)}: {e:.2f}")
        for v, e in c["val_ece"].items())
    lines.append(f"| {_cell_name(c['arg'])} | {values} | "
                 f"{hparam_label(c['calibration'], c['chosen'])} |")
  return lines


def edge_note(choices) -> str:
  """Which choices sit at an end of their grid, where a value beyond it might do better."""
  ends = {"smallest": [], "largest": []}
  for c in choices:
    values = list(c["val_ece"])
    if c["chosen"] is None or len(values) < 2:
      continue
    if c["chosen"] == min(values):
      ends["smallest"].append(_cell_name(c["arg"]))
    elif c["chosen"] == max(values):
      ends["largest"].append(_cell_name(c["arg"]))
  tuned = sum(1 for c in choices if c["chosen"] is not None)
  parts = [f"{len(names)} of {tuned} choices are the grid's {end} value ({'; '.join(names)})"
           for end, names in ends.items() if names]
  if not parts:
    return "Every choice lies inside its grid."
  return ("; ".join(parts) + ": a value beyond the grid might calibrate better still, so "
          "these cells show the grid's best, not necessarily the method's.")


def _mean_std(cell, key) -> str:
  mean, std = grid.stats(cell, key)
  return f"{mean:.2f} ± {std:.2f}"


def regime_check(cells, dataset: str) -> str:
  """Cross-entropy on all data, the regime's premise: over-confident or not."""
  full = cells.get(f"{dataset},none,100")
  if full is None:
    return "(The cross-entropy 100 % cell has not run.)"
  oe, ece = grid.stats(full, "test_oe")[0], grid.stats(full, "test_ece")[0]
  kind = "over-confident" if oe > ece / 2 else "not over-confident"
  return (f"Cross-entropy on all data here: test accuracy {_mean_std(full, 'test_accuracy')} "
          f"%, ECE {_mean_std(full, 'test_ece')} %, over-confidence error "
          f"{_mean_std(full, 'test_oe')} % ({len(full['seeds'])} seeds): {kind} "
          f"(OE is {100 * oe / ece:.0f} % of ECE).")


def markdown(results, choices, *, regime: Regime, figures: dict, seeds, tuning_seeds,
             findings, grid_minutes: float) -> str:
  chosen = chosen_results(results, choices)
  cells = report.cells(chosen)
  summary = results[0]["summary"]
  target = next((c for c in choices if c["arg"].endswith("target_model")), None)
  target_cell = cells.get(f"{regime.dataset},target_model")
  percents = (100, *regime.subsets)
  command = COMMAND + ("" if regime.dataset == "mnist1d_small"
                       else f" --dataset={regime.dataset}")
  lines = [
      "# Calibrated sample prioritization where cross-entropy is over-confident "
      f"({regime.title}, validation-tuned)", "",
      "Tata et al., \"Can Calibration Improve Sample Prioritization?\" (NeurIPS 2022 HITY "
      "workshop), Tables 1 and 2, in a regime where plain cross-entropy ends "
      f"over-confident: {regime.data} ({summary['num_train']:,} training / "
      f"{summary['num_validation']:,} validation / {summary['num_test']:,} test examples), "
      "then each epoch's max-entropy subset (scored by the last training pass). 15-bin "
      "ECE, last-epoch model.", "",
      regime_check(cells, regime.dataset), "",
      f"Whole grid: `{command}` ({len(results)} runs, {grid_minutes:.0f} min of run wall "
      "time on 2 CPU cores, one after the other; a killed grid resumes). Every run's "
      "command is in the `.csv` beside this file.", "",
      "## How each ε / α / γ was chosen", "",
      "Each calibration × subset size (and, separately, each target-guided cell) ran every "
      "value of a small grid on the tuning seeds "
      f"({', '.join(map(str, tuning_seeds))}); the value with the lowest mean *validation* "
      "ECE was chosen and then also run on the other seeds "
      f"({', '.join(str(s) for s in seeds if s not in tuning_seeds)}). Test numbers "
      "played no part. The target model's mixup α was chosen the same way. Grids: "
      + "; ".join(f"{report.HPARAM_SYMBOL[c]} ∈ {{{', '.join(f'{v:g}' for v in values)}}} "
                  f"({report.CALIBRATION_NAMES[c]})"
                  for c, values in regime.values.items())
      + f"; target α ∈ {{{', '.join(f'{v:g}' for v in regime.target_alphas)}}}.", "",
      *choice_table(choices), "", edge_note(choices), "",
      f"Cells below: test accuracy / ECE (%), mean ± std over {len(seeds)} seeds "
      f"({', '.join(map(str, seeds))}), at the chosen value (in brackets per column).", "",
      "## Table 1: the current model scores its own examples", "",
      *report.table(cells, "top_k", percents),
      "",
      "Random-subset baseline (cross-entropy, a fresh random subset each epoch): "
      + ", ".join(f"{p} %: {report.fmt(report.find_cell(cells, 'none', p, 'random'))}"
                  for p in regime.subsets), "",
      "The paper, CIFAR-10, ResNet-34 (accuracy / ECE, %):", "",
      *report.paper_table(1, "cifar10"), "",
      "## Table 2: a calibrated target model scores the examples", ""]
  if target_cell and target:
    lines += [
        f"Target: `{regime.dataset},target_model` (a wider CNN with BatchNorm), trained on "
        f"all data with mixup α = {target['chosen']:g} (chosen by validation ECE): test accuracy "
        f"{_mean_std(target_cell, 'test_accuracy')} %, ECE "
        f"{_mean_std(target_cell, 'test_ece')} %. Seed s's runs rank examples by seed s's "
        "target (its per-epoch training-pass entropies).", "",
        *report.table(cells, "target", percents), "",
        "(The 100 % column trains on all data, so it is Table 1's.) The paper, CIFAR-10:",
        "", *report.paper_table(2, "cifar10"), ""]
  lines += ["## Figures", ""]
  if "vs_subset" in figures:
    lines += [f"![accuracy and ECE against subset size]({figures['vs_subset']})", ""]
  if "reliability_10" in figures:
    lines += [f"![test reliability diagrams, 10 % subsets]({figures['reliability_10']})", ""]
  lines += claims_lib.section(findings, seeds_note=f"{len(seeds)} seeds, "
                              f"{', '.join(map(str, seeds))}")
  if (line := report.diagnosis(cells, regime.subsets)) is not None:
    lines += ["", line]
  return "\n".join(lines) + "\n"


def write(results, choices, *, regime: Regime, prefix: str, seeds, tuning_seeds) -> None:
  """The .md, .csv, figures and ``_claims.json`` of the grid."""
  if not results:
    raise ValueError("no finished runs to report")
  chosen = chosen_results(results, choices)
  findings = report.claims(report.cells(chosen), regime.subsets)
  figures = report.figures(chosen, prefix)
  grid.write_csv(prefix + ".csv", rows(results, choices))
  name = prefix.rsplit("/", 1)[-1]
  command = COMMAND + ("" if regime.dataset == "mnist1d_small"
                       else f" --dataset={regime.dataset}")
  claims_lib.write(prefix + "_claims.json", claims_lib.attach(
      findings, paper=PAPER_NAME, table=name + ".md", command=command,
      regime=f"{regime.regime}; ε/α/γ by validation ECE; {len(seeds)} seeds"))
  minutes = statistics.fsum(r["wall_seconds"] for r in results) / 60
  files.write_text(prefix + ".md", markdown(
      results, choices, regime=regime, figures=figures, seeds=seeds,
      tuning_seeds=tuning_seeds, findings=findings, grid_minutes=minutes))
