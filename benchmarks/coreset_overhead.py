"""What coverage-centric coresets cost on MNIST-1D (``mnist1d/large``, 45,000 training
examples), with the MNIST-1D settings of ``configs/papers/coverage_centric_coreset.py``:

    python -m benchmarks.coreset_overhead

prints, as ratios measured in this one run:

1. a training epoch with the training-dynamics tracker (forgetting, margins, EL2N, loss
   history, all updated inside the train step) / the same epoch without it (target
   <= 1.05): medians over ``--epochs`` epochs of each, the first (which compiles) left out;
2. the post-training eval-mode scoring pass over every training example / one training
   epoch;
3. one-shot coreset selection of 10 % of 45,000 examples: random, monotonic,
   class-balanced monotonic and CCS (50 strata), in milliseconds (median of 20).
"""

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time

import numpy as np

from configs import default
from configs.papers import coverage_centric_coreset as paper
from jaxsel import coresets, files, train


def _config(method_arg: str, epochs: int, dataset: str | None, data_dir: str | None):
  config = paper.get_config(method_arg)
  with config.unlocked():
    config.train.num_epochs = epochs
    config.progress_bar = "off"
    config.figures = False
    config.dataset.name = dataset or config.dataset.name
    config.dataset.data_dir = data_dir or config.dataset.data_dir
  return config


def _epoch_seconds(workdir: str) -> float:
  records = files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  return statistics.median(r["train_seconds"] for r in records[1:])


def _selection_ms(fn, repeats: int = 20) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1000 * statistics.median(times)


def _line(name, value, target=""):
  print(f"  {name:<58} {value:>10}   {target}")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=8)
  parser.add_argument("--dataset", default=None)
  parser.add_argument("--data_dir", default=None)
  args = parser.parse_args(argv)
  root = tempfile.mkdtemp(prefix="coreset_overhead_")
  plain = _config("mnist1d,scores", args.epochs, args.dataset, args.data_dir)
  with plain.unlocked():
    plain.method = default.get_config("full_data").method
  dataset = train.load_data(plain)
  print(f"{plain.dataset.name}: {len(dataset.train_ids):,} training examples, batch "
        f"{plain.train.batch_size}; {args.epochs} epochs of each; runs in {root}")
  summaries = {}
  # Interleaved twice, so a drift of the machine's speed affects both alike.
  for round_ in range(2):
    for name, config in (("plain", plain), ("dynamics", _config(
        "mnist1d,scores", args.epochs, args.dataset, args.data_dir))):
      workdir = os.path.join(root, f"{name}{round_}")
      with contextlib.redirect_stdout(io.StringIO()):
        summaries[(name, round_)] = train.train_and_evaluate(config, workdir,
                                                             dataset=dataset)
      summaries[(name, round_)]["epoch_seconds"] = _epoch_seconds(workdir)
  epoch = {name: statistics.fmean(summaries[(name, r)]["epoch_seconds"] for r in (0, 1))
           for name in ("plain", "dynamics")}
  ratio = epoch["dynamics"] / epoch["plain"]
  scoring = statistics.fmean(summaries[("dynamics", r)]["final_scoring_seconds"]
                             for r in (0, 1))
  print(f"\ntraining epoch: {epoch['plain']:.3f} s plain, {epoch['dynamics']:.3f} s with "
        "the training-dynamics tracker (median epoch, compile excluded)")
  _line("epoch with training dynamics / plain epoch", f"{ratio:.3f}",
        f"target <= 1.05 {'met' if ratio <= 1.05 else 'NOT met'}")
  _line("post-training scoring pass / training epoch", f"{scoring / epoch['plain']:.3f}",
        f"({scoring:.3f} s)")

  rng = np.random.default_rng(0)
  num = 45_000
  scores = rng.normal(size=num)
  labels = rng.integers(0, 10, size=num)
  ties = rng.permutation(num)
  size = num // 10
  print(f"\ncoreset selection of {size:,} of {num:,} examples (median of 20):")
  for name, fn in (
      ("random", lambda: coresets.random_coreset(np.random.default_rng(1), num, size)),
      ("monotonic", lambda: coresets.monotonic(scores, size, descending=True,
                                               tie_break=ties)),
      ("class-balanced monotonic", lambda: coresets.class_balanced_monotonic(
          scores, labels, size, descending=True, tie_break=ties)),
      ("CCS, β = 0.3, 50 strata", lambda: coresets.ccs(
          scores, scores, size, beta=0.3, num_strata=50, rng=np.random.default_rng(1),
          tie_break=ties))):
    _line(name, f"{_selection_ms(fn):.2f} ms")
  print("\ntest accuracy after the short runs (the tracker changes no number): "
        + ", ".join(f"{name} {summaries[(name, 0)]['test_accuracy']:.2f}"
                    for name in ("plain", "dynamics")))


if __name__ == "__main__":
  main()
