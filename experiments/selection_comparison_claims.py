"""The paper claims the selection comparison can test, decided seed by seed: InfoBatch's
"lossless" saving at full length, and RHO-LOSS against uniform sampling at the same number
of back-propagated examples (full data, fewer steps)."""

from configs.papers import selection_comparison as paper
from experiments import claims, paired

INFOBATCH = "Qin et al. 2024, InfoBatch (lossless training speed-up by unbiased pruning)"
RHO_LOSS = "Mindermann et al. 2022, RHO-LOSS (prioritized training on learnable points)"
COMMAND = "python -m experiments.selection_comparison"
TABLE = "selection_comparison.md"
# "Lossless", tested as: the accuracy lost against full data is under half a point.
LOSSLESS_MARGIN = -0.5
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "mnist1d": "MNIST-1D"}


def _accuracy(cell) -> dict:
  return {s: r["test_accuracy"] for s, r in zip(cell["seeds"], cell["runs"])}


def _regime(dataset: str, detail: str, n: int) -> str:
  subset = (f"a fixed {paper.TRAIN_SUBSET_SIZE[dataset]:,}-image subset"
            if paper.TRAIN_SUBSET_SIZE[dataset] else "all training data")
  return (f"{DATASET_NAMES[dataset]}, {subset}, small CNN, {paper.EPOCHS[dataset]} epochs; "
          f"{detail}; {n} seeds")


def collect(all_cells) -> list[claims.Claim]:
  """The claims of every dataset and budget whose cells ran (``report.cells`` layout:
  {(dataset, method, budget): {'seeds', 'runs'}})."""
  out = []
  for dataset in DATASET_NAMES:
    full, infobatch = all_cells.get((dataset, "full", 1.0)), all_cells.get(
        (dataset, "infobatch", 1.0))
    if full and infobatch:
      diff = paired.paired_difference(_accuracy(infobatch), _accuracy(full))
      saved = [r.get("infobatch_saving_percent") for r in infobatch["runs"]]
      saved = [s for s in saved if s is not None]
      saving = f", saving {sum(saved) / len(saved):.1f} % of the examples" if saved else ""
      out.append(claims.Claim(
          paper=INFOBATCH, text="InfoBatch at the full schedule is lossless: its test "
          "accuracy is within 0.5 points of full-data training (the interval lies above "
          "−0.5)", regime=_regime(dataset, "full length", diff.n if diff else 0),
          verdict=paired.claim_verdict(diff, 1, LOSSLESS_MARGIN),
          evidence=f"InfoBatch − full data, test accuracy (points): "
                   f"{paired.format_difference(diff)}{saving}",
          table=TABLE, command=COMMAND))
    for budget in paper.BUDGETS:
      rho, uniform = all_cells.get((dataset, "rho", budget)), all_cells.get(
          (dataset, "fewer_steps", budget))
      if rho and uniform:
        diff = paired.paired_difference(_accuracy(rho), _accuracy(uniform))
        out.append(claims.Claim(
            paper=RHO_LOSS, text="RHO-LOSS selection beats uniform sampling at the same "
            "number of back-propagated examples (test accuracy)",
            regime=_regime(dataset, f"{100 * budget:.0f} % of full data's back-propagations",
                           diff.n if diff else 0),
            verdict=paired.claim_verdict(diff, 1),
            evidence="RHO-LOSS − full data with fewer steps, test accuracy (points): "
                     f"{paired.format_difference(diff)}",
            table=TABLE, command=COMMAND))
  return out
