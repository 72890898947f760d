"""How long must Fashion-MNIST train before augmentation pays off at the full budget?

    python -m experiments.budgeted_length               # resumable; stops at the first length
    python -m experiments.budgeted_length --report_only

Budgeted training's augmentation claims (Arazo et al., BMVC 2021) need a length at which
RICAP or RandAugment beats standard training on all data; a short run only pays their
regularisation without the gain. For each length of ``LENGTHS`` in turn this runs standard
training, RICAP and RandAugment at the 100 % budget (``configs/papers/
budgeted_importance_sampling.py:fashion_mnist_small,sgd,AUGMENTATION,1``: the MNIST CNN on
a fixed 12,000 of the training images, crop + flip in every run, the learning rate decayed
linearly per step to the run's end) on ``SEEDS``, and stops at the first length where RICAP
− standard or RandAugment − standard has a paired 95 % interval above 0 (Student t over the
seeds). That length is the one the augmentation grid runs at; if none up to 100 epochs
qualifies, the results file says so. Writes
``experiments/results/budgeted_length_fashion_mnist.{md,csv}``. The runs live where the
augmentation grid keeps the same runs, which it then reuses:

    python -m experiments.budgeted_importance_sampling --datasets=fashion_mnist_small \
        --cells=augmentation --epochs=fashion_mnist_small=E --num_seeds=5 \
        --output=experiments/results/budgeted_importance_sampling_fashion_mnist_small
"""

import time

from absl import app, flags, logging

from configs.papers import budgeted_importance_sampling as paper
from experiments import budgeted_importance_sampling as budgeted
from experiments import grid, paired
from jaxsel import files, train

DATASET = "fashion_mnist_small"
CONFIG_FILE = "configs/papers/budgeted_importance_sampling.py"
LENGTHS = (15, 30, 60, 100)
AUGMENTED = ("ricap", "randaugment")
SEEDS = paper.SEED_POOL[:3]
NAMES = {"standard": "standard", "ricap": "RICAP", "randaugment": "RandAugment"}


def define_flags() -> None:
  """The command line's flags; defined only when the search runs, so that importing this
  module (in tests) adds no global flags that could clash with other modules'."""
  # The augmentation grid's own directory: its 100 % runs at the chosen length are these.
  flags.DEFINE_string("workdir", "runs/budgeted_importance_sampling",
                      "Parent directory of the runs (the budgeted grid's).")
  flags.DEFINE_string("output", "experiments/results/budgeted_length_fashion_mnist",
                      "Path prefix of the .md / .csv files.")
  flags.DEFINE_bool("report_only", False,
                    "Write the results files from finished runs; run nothing.")


def arg(augmentation: str) -> str:
  return f"{DATASET},sgd,{augmentation},1"


def run_dir(root: str, epochs: int, augmentation: str, seed: int) -> str:
  """Where the budgeted grid (``--epochs=fashion_mnist_small=E``) keeps the same run, so
  that the augmentation grid at the chosen length reuses these."""
  return grid.run_dir(budgeted.plan(DATASET, root, epochs=epochs).root, arg(augmentation),
                      seed)


def gains(accuracy: dict) -> dict:
  """{augmentation: PairedDifference of its test accuracy − standard's} at one length;
  ``accuracy`` is {augmentation: {seed: test accuracy}}."""
  return {a: paired.paired_difference(accuracy[a], accuracy["standard"])
          for a in AUGMENTED if a in accuracy and "standard" in accuracy}


def pays_off(length_gains: dict) -> bool:
  """Some augmentation's interval lies above 0."""
  return any(paired.claim_verdict(d, 1) == paired.HOLDS for d in length_gains.values())


def search(run, lengths=LENGTHS, seeds=SEEDS) -> tuple[dict, int | None]:
  """Runs length after length through ``run(epochs, augmentation, seed) -> summary | None``
  until augmentation pays off; returns ({epochs: {augmentation: {seed: accuracy}}}, the
  first length that pays off or None)."""
  found = {}
  for epochs in lengths:
    accuracy = {}
    for augmentation in ("standard", *AUGMENTED):
      summaries = {s: run(epochs, augmentation, s) for s in seeds}
      values = {s: x["test_accuracy"] for s, x in summaries.items() if x is not None}
      if values:
        accuracy[augmentation] = values
    if not accuracy:
      break  # --report_only: nothing ran at this length, so none at longer ones either
    found[epochs] = accuracy
    if pays_off(gains(accuracy)):
      return found, epochs
  return found, None


def rows(found) -> list[dict]:
  out = []
  for epochs, accuracy in found.items():
    length_gains = gains(accuracy)
    for augmentation, values in accuracy.items():
      diff = length_gains.get(augmentation)
      out.append({"epochs": epochs, "augmentation": augmentation,
                  "seeds": " ".join(map(str, values)),
                  "test_accuracy_mean": round(sum(values.values()) / len(values), 4),
                  "gain_vs_standard": "" if diff is None else round(diff.mean, 4),
                  "gain_low": "" if diff is None else round(diff.low, 4),
                  "gain_high": "" if diff is None else round(diff.high, 4)})
  return out


def markdown(found, chosen, minutes: float) -> str:
  lines = [
      "# Fashion-MNIST: the training length at which augmentation pays off", "",
      "    python -m experiments.budgeted_length   # resumable; stops at the first length",
      "",
      f"Standard training (crop + flip), RICAP and RandAugment on all data (100 % budget): "
      f"`{CONFIG_FILE}:{DATASET},sgd,AUGMENTATION,1` with `--config.train.num_epochs=E`, "
      f"the MNIST CNN on a fixed random {paper.SMALL_TRAIN_SIZE:,} of the training images "
      "(shortened so that long runs fit on 2 CPU cores), batch 128, SGD lr 0.05 decayed "
      f"linearly per step. Seeds {', '.join(map(str, SEEDS))}; last-epoch test accuracy. "
      f"Lengths tried in order, {', '.join(map(str, LENGTHS))} epochs, stopping at the first "
      "where an augmentation beats standard training: its paired difference (seed by seed) "
      "has a 95 % Student-t interval above 0.", "",
      f"{sum(len(v) for a in found.values() for v in a.values())} runs, {minutes:.0f} min of "
      "run wall time.", "",
      "| epochs | standard (%) | RICAP − standard [95 % CI] | RandAugment − standard "
      "[95 % CI] |", "|---|---|---|---|"]
  for epochs, accuracy in found.items():
    standard = accuracy.get("standard", {})
    mean = f"{sum(standard.values()) / len(standard):.2f}" if standard else "—"
    length_gains = gains(accuracy)
    lines.append(f"| {epochs} | {mean} | " + " | ".join(
        paired.format_difference(length_gains.get(a)) for a in AUGMENTED) + " |")
  lines.append("")
  if chosen is not None:
    winners = [NAMES[a] for a, d in gains(found[chosen]).items()
               if paired.claim_verdict(d, 1) == paired.HOLDS]
    lines.append(f"**Chosen length: {chosen} epochs**, the first at which "
                 f"{' and '.join(winners)} beat standard training at the full budget.")
  elif found and max(found) == LENGTHS[-1]:
    lines.append(f"**No length up to {LENGTHS[-1]} epochs** makes RICAP or RandAugment beat "
                 "standard training at the full budget here.")
  else:
    lines.append("The search has not finished (a longer length is still to run).")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  args = flags.FLAGS
  dataset = None if args.report_only else train.load_data(paper.get_config(arg("standard")))
  progress = grid.Progress(len(LENGTHS) * 3 * len(SEEDS))
  seconds = []

  def run(epochs, augmentation, seed):
    workdir = run_dir(args.workdir, epochs, augmentation, seed)
    if args.report_only and not grid.is_done(workdir):
      return None
    start = time.perf_counter()
    summary, earlier = grid.read_or_run(paper.get_config, arg(augmentation), seed,
                                        {"train.num_epochs": epochs}, workdir, dataset)
    progress.done(f"{epochs} epochs, {augmentation}, seed {seed}", summary,
                  time.perf_counter() - start, earlier=earlier)
    seconds.append(grid.wall_seconds(workdir))
    return summary

  found, chosen = search(run)
  if not found:
    raise app.UsageError("--report_only: no finished run to report")
  grid.write_csv(args.output + ".csv", rows(found))
  files.write_text(args.output + ".md", markdown(found, chosen, sum(seconds) / 60))
  print(f"wrote {args.output}.md and .csv; chosen length: {chosen}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
