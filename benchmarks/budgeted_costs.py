"""What budgeted training's selective backprop and augmentations cost, on Fashion-MNIST or
MNIST-1D, with the settings of ``configs/papers/budgeted_importance_sampling.py``:

    python -m benchmarks.budgeted_costs                     # fashion_mnist_local, mnist_cnn
    python -m benchmarks.budgeted_costs --dataset=mnist1d   # mnist1d/large, the 1-D CNN
    python -m benchmarks.budgeted_costs --quick             # tiny: for the tests

prints, as ratios measured in this one run:

1. the training seconds of an epoch (``metrics.jsonl``: ``train_seconds`` plus the epoch's
   scoring and selection seconds; compilation excluded) of budgeted unif-SGD at budget b and
   of selective backprop with β = 1/b − 1, each as a fraction of a full-data SGD epoch.
   Medians over epochs 2.. of short runs (epoch 1 compiles, and is selective backprop's
   priming epoch, which back-propagates everything). The three runs are interleaved in
   rounds, and each run's epoch is compared with the full-data epoch of its own round (the
   median over rounds is printed, and every round's ratio): a change in the machine's load
   between rounds then moves a ratio less than it moves the seconds. Beside selective
   backprop's ratio: its measured backward fraction f (``num_backpropagated`` / examples
   forwarded) and the ratio its pass counts predict. Selective backprop forwards every
   example once in eval mode to score it and trains (forward + backward) on the kept ones,
   so with s the cost of an eval-mode forward pass as a fraction of a train step's, its
   epoch should cost s + f of a full-data epoch. s is measured here (a scoring pass
   against a training epoch over the same examples, alternated), and also taken as 1/3 (a
   backward pass costs two forwards), the usual rule of thumb. Both ignore what selective
   backprop does besides (percentiles against its loss history, its queue of kept
   examples, the conditional optimizer step) and augmentation;
2. the cost of one batch of each augmentation and mixing, each jitted alone and built by
   the library's factories (``augment.get_augmentation`` / ``augment.get_mixing``), against
   one plain jitted train step of the model (no augmentation), on a real normalised batch of
   128: crop + flip, cutout, mixup, RICAP and RandAugment on images; mixup and RICAP on
   MNIST-1D's signals (the image augmentations do not apply). Medians of interleaved
   calls after a warm-up. Each row includes what any single jitted call costs (printed as
   a no-op's row); inside training, a transform runs within the jitted step and does not
   pay it.

Nothing is asserted: the numbers are for ``benchmarks/README.md``.
"""

import argparse
import contextlib
import dataclasses
import importlib
import io
import os
import shutil
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs.papers import budgeted_importance_sampling as paper
from jaxsel import augment, files, losses, models, optim, steps, train
from jaxsel.data import iterators
from jaxsel.state import create_train_state

# The three runs of part 1: name -> (METHOD of the paper config, label). Budget from --budget.
RUNS = {"full": ("sgd", "full-data SGD"), "unif": ("unif", "budgeted unif-SGD"),
        "sb": ("sb", "selective backprop")}
BATCH = paper.BATCH_SIZE
NO_OP = "jitted no-op (x + 1): one call's overhead"
QUICK = dict(epochs=2, rounds=1, repeats=5, share_examples=1024, max_train_examples=2048)


def _config(args, method: str, budget: float):
  """The paper config of one run, made short and quiet: no figures, no progress bar, no
  checkpoint before the last epoch and validation only after it (neither is timed, but
  both would make the benchmark longer)."""
  budget = 1.0 if method == "sgd" else budget  # plain SGD on all data, not budgeted SGD
  config = paper.get_config(f"{args.dataset},{method},standard,{budget}")
  with config.unlocked():
    config.train.num_epochs = args.epochs
    config.progress_bar = "off"
    config.figures = False
    config.eval.every_epochs = 0
    config.checkpoint.update(every_epochs=0, every_steps=0, every_seconds=1e9)
    config.dataset.name = args.tfds_name or config.dataset.name
    config.dataset.data_dir = args.data_dir or config.dataset.data_dir
  return config


def _shrink(dataset, max_train: int):
  """The dataset with at most ``max_train`` training (and 1,000 validation) ids, for
  ``--quick``; per-example costs do not depend on the number of examples."""
  if not max_train or len(dataset.train_ids) <= max_train:
    return dataset
  return dataclasses.replace(dataset, train_ids=dataset.train_ids[:max_train],
                             validation_ids=dataset.validation_ids[:1000])


def _epoch_records(workdir: str) -> list[dict]:
  """The run's epochs after the first (which compiles, and primes selective backprop)."""
  return [r for r in files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
          if r["epoch"] >= 1]


def _epoch_seconds(record: dict) -> float:
  """What the epoch's method cost, compilation excluded: training, plus unif-SGD's draw of
  the subset (``selection_seconds``) and any scoring pass; validation is not included."""
  return record["train_seconds"] + record["scoring_seconds"] + record["selection_seconds"]


def run_epochs(args, dataset, root: str) -> dict:
  """Runs the three configs ``args.rounds`` times, interleaved (in reverse order every
  other round); returns per run its median epoch seconds, its epoch / full-data epoch
  ratio in each round (medians of the round's epochs) and their median, and its examples
  back-propagated per epoch (a mean, and as a fraction of those forwarded)."""
  records = {name: [] for name in RUNS}
  for round_ in range(args.rounds):
    for name in list(RUNS)[::1 if round_ % 2 == 0 else -1]:
      workdir = os.path.join(root, f"{name}{round_}")
      with contextlib.redirect_stdout(io.StringIO()):
        train.train_and_evaluate(_config(args, RUNS[name][0], args.budget), workdir,
                                 dataset=dataset)
      records[name].append(_epoch_records(workdir))
  seconds = {name: [statistics.median(_epoch_seconds(r) for r in round_records)
                    for round_records in rounds] for name, rounds in records.items()}
  results = {}
  for name, rounds in records.items():
    flat = [r for round_records in rounds for r in round_records]
    round_ratios = [s / full for s, full in zip(seconds[name], seconds["full"])]
    results[name] = {
        "epoch_seconds": statistics.median(_epoch_seconds(r) for r in flat),
        "round_ratios": round_ratios, "ratio": statistics.median(round_ratios),
        "backward_fraction": statistics.fmean(
            r["num_backpropagated"] / r["num_train_examples"] for r in flat),
        "backpropagated": statistics.fmean(r["num_backpropagated"] for r in flat)}
  return results


def _train_state(config, dataset):
  model = models.get_model(config.model.name, num_classes=dataset.num_classes,
                           **config.model.kwargs)
  return create_train_state(model, optim.make_optimizer(config), seed=config.seed,
                            input_shape=dataset.input_shape)


def _plain_step(config):
  """The standard train step without augmentation or mixing: the model's own cost."""
  return steps.make_train_step(
      loss_fn=losses.from_config(config.loss),
      learning_rate_fn=optim.make_schedule(config, epoch_steps=[1000] * 2),
      schedule_unit=config.schedule.unit)


def _loss_score(logits, labels):
  """The per-example loss selective backprop scores with (module-level: hashable, so the
  scoring pass is jitted once)."""
  return {"loss": losses.cross_entropy(logits, labels)}


def forward_share(config, dataset, *, num_examples: int, repeats: int) -> dict:
  """s = (eval-mode forward pass over ``num_examples`` training examples, as a scoring
  pass does it) / (a training epoch over the same examples): the per-example cost of
  selective backprop's scoring forward relative to a train step. Both in batches of
  ``BATCH``, 16 to a jitted chunk as training runs them, alternated ``repeats`` times."""
  ids = dataset.train_ids[:num_examples - num_examples % BATCH]
  chunk_steps = config.train.steps_per_chunk
  data = {"inputs": jax.device_put(dataset.pool.inputs),
          "labels": jax.device_put(dataset.pool.labels)}
  holder = {"state": _train_state(config, dataset),
            "tables": {"loss": np.zeros(len(dataset.pool), np.float32)}}
  train_chunk = steps.jit_train_chunk(_plain_step(config))
  score_chunk = steps.jit_score_chunk(_loss_score)
  train_plan = iterators.train_plan(ids, batch_size=BATCH, steps_per_chunk=chunk_steps,
                                    shuffle_seed=(0, 0), drop_remainder=True)
  score_plan = iterators.full_pass_plan(ids, batch_size=BATCH, steps_per_chunk=chunk_steps)

  def train_epoch():
    sums = steps.empty_train_sums()
    for chunk_ids, mask in train_plan.chunks():
      holder["state"], sums = train_chunk(holder["state"], sums, data, chunk_ids, mask,
                                          np.int32(0))
    jax.block_until_ready(sums)

  def score_pass():
    for chunk_ids, mask in score_plan.chunks():
      holder["tables"] = score_chunk(holder["state"], holder["tables"], data, chunk_ids, mask)
    jax.block_until_ready(holder["tables"])

  times = _interleaved({"train": train_epoch, "forward": score_pass}, repeats, warmup=1)
  return {"share": times["forward"] / times["train"], "train_seconds": times["train"],
          "forward_seconds": times["forward"], "examples": len(ids)}


def _interleaved(fns: dict, repeats: int, *, warmup: int) -> dict[str, float]:
  """Median seconds of each zero-argument function, calls alternated so that a change in
  the machine's load (other processes) falls on all of them alike."""
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return {name: statistics.median(t) for name, t in times.items()}


def _randaugment_available() -> bool:
  """Whether ``jaxsel.randaugment`` exists in this checkout (it was added after the other
  augmentations); without it the benchmark prints that RandAugment is not available."""
  try:
    module = importlib.import_module("jaxsel.randaugment")
  except ImportError:
    return False
  return hasattr(module, "rand_augment")


def _augmentations(config, dataset) -> dict:
  """name -> per-example transform, built by ``augment.get_augmentation`` from the paper
  config's augmentation section with one setting changed; {} for signals."""
  if len(dataset.input_shape) != 3:
    return {}
  base = config.augmentation
  settings = {"crop_flip": dict(name="crop_flip", cutout_size=0),
              "cutout (size 8)": dict(name="none", cutout_size=8)}
  if _randaugment_available():
    settings["randaugment (N=2, M=4)"] = dict(
        name="none", cutout_size=0, randaugment_num_ops=paper.RANDAUGMENT_NUM_OPS,
        randaugment_magnitude=paper.RANDAUGMENT_MAGNITUDE)
  built = {}
  for name, fields in settings.items():
    section = base.copy_and_resolve_references()
    with section.unlocked():
      section.update(fields)
    built[name] = augment.get_augmentation(
        section, input_shape=dataset.input_shape,
        normalized_black=dataset.normalization.normalized(0.0),
        normalization=dataset.normalization, uint8_inputs=dataset.uint8_inputs)
  return built


def _mixings(config, dataset) -> dict:
  """name -> batch mixing, built by ``augment.get_mixing`` with the paper's α."""
  built = {}
  for name in ("mixup", "ricap"):
    section = config.mixing.copy_and_resolve_references()
    with section.unlocked():
      section.update(name=name, alpha=paper.MIXING_ALPHA)
    built[f"{name} (α {paper.MIXING_ALPHA})"] = augment.get_mixing(
        section, input_shape=dataset.input_shape)
  return built


def augmentation_costs(config, dataset, *, repeats: int) -> dict[str, float]:
  """Median seconds per call of the plain train step and of each transform, each jitted
  alone, on the first ``BATCH`` training examples; a new key for every call."""
  ids = dataset.train_ids[:BATCH]
  inputs = jax.device_put(dataset.pool.inputs[ids])
  example_ids = jax.device_put(ids.astype(np.int32))
  mask = jnp.ones(BATCH, bool)
  batch = {"inputs": inputs, "labels": jax.device_put(dataset.pool.labels[ids]),
           "example_ids": example_ids, "mask": mask}
  keys = iter(list(jax.random.split(jax.random.PRNGKey(0), 4 * (repeats + 3) * 8)))
  holder = {"state": _train_state(config, dataset)}
  step = jax.jit(_plain_step(config), donate_argnums=0)

  def train_step():
    holder["state"], sums = step(holder["state"], batch, np.int32(0))
    jax.block_until_ready(sums)

  def timed(fn, second):
    jitted = jax.jit(fn)
    return lambda: jax.block_until_ready(jitted(next(keys), inputs, second))

  fns = {"train step": train_step,
         # What any one jitted call costs here (dispatch, a [B, ...] output): the floor of
         # every row, which a transform run inside the train step does not pay.
         NO_OP: timed(lambda key, x, ids: x + 1, example_ids)}
  fns.update({name: timed(fn, example_ids)
              for name, fn in _augmentations(config, dataset).items()})
  fns.update({name: timed(fn, mask) for name, fn in _mixings(config, dataset).items()})
  return _interleaved(fns, repeats, warmup=3)


def _row(name: str, *values: str) -> None:
  print(f"  {name:<52}" + "".join(f"{v:>12}" for v in values))


def _print_epochs(epochs: dict, share: dict, budget: float) -> dict:
  """Part 1's table and selective backprop's predicted ratios; returns the ratios."""
  _row(f"run (b = {budget:g})", "epoch s", "/ full", "backprop'd", "ideal")
  for name, (_, label) in RUNS.items():
    run = epochs[name]
    fraction = run["backpropagated"] / epochs["full"]["backpropagated"]
    ideal = {"full": 1.0, "unif": fraction}.get(name, share["share"] + fraction)
    if name == "sb":
      label += f", β = 1/b − 1 = {1 / budget - 1:.3g}"
    _row(label, f"{run['epoch_seconds']:.3f}", f"{run['ratio']:.3f}", f"{fraction:.3f}",
         f"{ideal:.3f}")
    if name != "full":
      print(f"  {'':<4}/ full in each round: "
            + ", ".join(f"{r:.3f}" for r in run["round_ratios"]))
  print("  / full: median over rounds of the round's median epoch / its full-data one;\n"
        "  backprop'd: examples back-propagated per epoch / a full-data epoch's;\n"
        "  ideal: that fraction for unif-SGD, s + f for SB (below)")
  f, s, ratio = epochs["sb"]["backward_fraction"], share["share"], epochs["sb"]["ratio"]
  print(f"\nselective backprop, backward fraction f = {f:.3f}:")
  _row("measured SB epoch / full-data epoch", f"{ratio:.3f}")
  _row(f"ideal s + f, s measured = {s:.3f}", f"{s + f:.3f}")
  _row("ideal 1/3 + f (a backward pass = 2 forwards)", f"{1 / 3 + f:.3f}")
  print(f"  s = eval-mode forward pass / train epoch over {share['examples']:,} examples "
        f"({share['forward_seconds']:.3f} s / {share['train_seconds']:.3f} s, median).")
  print("  Assumed: SB = an eval-mode forward of every example + a train step (forward + "
        "backward)\n  of each kept one; its percentiles, queue and augmentation cost "
        "nothing.")
  return {"unif": epochs["unif"]["ratio"], "sb": ratio, "sb_backward_fraction": f,
          "forward_share": s, "sb_ideal": s + f, "sb_ideal_third": 1 / 3 + f}


def _print_augmentations(costs: dict, shape: tuple, images: bool, loop_step: float) -> None:
  """Part 2's table; ``loop_step``: a train step's seconds inside the jaxsel loop (the
  full-data epoch / its steps), for comparison with the single jitted call."""
  step = costs["train step"]
  print(f"\nper-batch cost on a real normalised batch {list(shape)} (each jitted alone, "
        "median):")
  _row("transform", "ms", "/ step")
  for name, seconds in costs.items():
    _row(name, f"{1000 * seconds:.3f}", f"{seconds / step:.3f}")
  if images and not any(name.startswith("randaugment") for name in costs):
    print("  randaugment: not available")
  print(f"  (one train step inside the jaxsel loop, where a jitted call scans a chunk of "
        f"steps:\n  {1000 * loop_step:.3f} ms = the full-data epoch / its steps)")


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="fashion_mnist", choices=("fashion_mnist",
                                                                     "mnist1d"),
                      help="DATASET of the paper config")
  parser.add_argument("--tfds_name", default=None,
                      help="TFDS name instead of the paper config's (e.g. mnist1d)")
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--budget", type=float, default=0.3)
  parser.add_argument("--epochs", type=int, default=4)
  parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of runs")
  parser.add_argument("--repeats", type=int, default=30, help="timed calls per transform")
  parser.add_argument("--share_examples", type=int, default=16384,
                      help="examples of the forward-share measurement")
  parser.add_argument("--max_train_examples", type=int, default=0, help="0: all")
  parser.add_argument("--quick", action="store_true",
                      help=f"tiny settings for the tests: {QUICK}")
  args = parser.parse_args(argv)
  if args.quick:
    vars(args).update(QUICK)
  root = tempfile.mkdtemp(prefix="budgeted_costs_")
  config = _config(args, "sgd", 1.0)
  dataset = _shrink(train.load_data(config), args.max_train_examples)
  num = len(dataset.train_ids)
  print(f"{config.dataset.name}: {num:,} training examples, {config.model.name}, batch "
        f"{BATCH}; {args.epochs} epochs per run, {args.rounds} round(s)")
  epochs = run_epochs(args, dataset, root)
  share = forward_share(config, dataset, num_examples=min(num, args.share_examples),
                        repeats=max(3, args.repeats // 6))
  print(f"\nper-epoch training seconds (median of epochs 2-{args.epochs} of "
        f"{args.rounds} round(s), compilation excluded):")
  results = _print_epochs(epochs, share, args.budget)
  costs = augmentation_costs(config, dataset, repeats=args.repeats)
  _print_augmentations(costs, (BATCH, *dataset.input_shape), len(dataset.input_shape) == 3,
                       epochs["full"]["epoch_seconds"] / (num // BATCH))
  results.update(epochs={k: v["epoch_seconds"] for k, v in epochs.items()},
                 augmentation_ms={k: 1000 * v for k, v in costs.items()})
  shutil.rmtree(root)
  return results


if __name__ == "__main__":
  main()
