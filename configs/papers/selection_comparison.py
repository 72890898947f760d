"""Every method family of jaxsel on the same data and budget, with its cost accounted for.

    python -m jaxsel.main --config=configs/papers/selection_comparison.py:fashion_mnist,p,0.3 \\
        --workdir=DIR --config.seed=0

ARG = "DATASET,METHOD,BUDGET". One training recipe for every method, the budgeted
importance sampling paper file's offline one (``configs/papers/budgeted_importance_sampling.py``:
SGD lr 0.05, momentum 0.9, weight decay 1e-4, batch 128, the learning rate decayed linearly
per step to 1e-6 at the run's last step, pad-4 crop + flip on images), with every example of
an epoch trained (``drop_remainder=False``, so the full-data run back-propagates exactly
E · N), validation every epoch (the time-to-target needs it), no figures and a checkpoint
only at the end (``checkpoint.every_seconds`` = 600).

- DATASET, **shortened for a grid of about an hour on a 2-core CPU**: ``fashion_mnist``
  (``fashion_mnist_local``, a fixed random 12,000 of its 54,000 training images,
  ``dataset.train_subset_size``, the same for every seed; 6,000 validation / 10,000 test;
  the example-forgetting MNIST CNN; 10 epochs) and ``mnist1d`` (``mnist1d/large``, all
  45,000 / 5,000 / 10,000 signals, the MNIST-1D CNN, 30 epochs, the budgeted grid's size:
  an epoch of its 45,000 signals costs about a sixth of one of 12,000 Fashion-MNIST images
  here). Sizes: ``TRAIN_SUBSET_SIZE``, ``EPOCHS``. One full-data run took 32 s
  (Fashion-MNIST) and 13 s (MNIST-1D) on the 2-core CPU, the dataset already loaded.
- METHOD, each set so that ``examples_backpropagated`` lands at about BUDGET · E · N:
  ``full`` (BUDGET 1): all data, E epochs, the reference;
  ``fewer_steps``: all data, stopped after round(b · E · ⌈N / B⌉) steps, the schedule
  compressed to them;
  ``random``: one random subset of ⌊b · N⌋ for all E epochs (``coreset``, rule ``random``);
  ``entropy``: ``prioritization``, the max-entropy subset each epoch after 1 full-data
  warm-up epoch, k = (b · E − 1) / (E − 1) of N so that the total lands at b;
  ``entropy_calibrated``: the same with the calibrated-prioritization paper's focal loss,
  γ = 3 (its CIFAR-10 Table 1 cell at 30 % and 20 %; used at 50 % too, which it lacks);
  ``ccs``: a CCS coreset of ⌊b · N⌋ on the accumulated margin (β of the coverage paper
  file for the pruning rate: 0.1 at 70 %, 0 at 50 %) for all E epochs, from the
  ``scores`` run of the same seed (``--config.method.scores_path``);
  ``forgetting``: all data without the N − ⌊b · N⌋ least-forgotten examples, E epochs
  (``config.removal`` with ``--config.removal.ordering_path`` = the forgetting ordering of
  the seed's ``scores`` run, ``python -m jaxsel.orderings``);
  ``unif`` / ``p`` / ``c``: unif-SGD, p-SGD, c-SGD (``budgeted``), ⌊b · N⌋ per epoch;
  ``sb``: selective backprop; its first epoch back-propagates everything (the family's
  ``priming_epochs`` = 1), so β = 1/q − 1 with the later epochs' fraction
  q = (b · E − 1) / (E − 1) (the paper's β = 1/b − 1 would land at 37 % for b = 0.3 and
  E = 10);
  ``infobatch``: InfoBatch, prune ratio 0.5, the last 12.5 % of epochs on everything; with
  BUDGET 1 E epochs (the paper's "lossless" setting); with b < 1 the grid sets
  ``train.num_epochs`` from the measured saving (``experiments/selection_comparison.py``);
  ``rho``: RHO-LOSS, n_b = ⌊128 · b⌋ of each big batch of n_B = 128 back-propagated
  (batch size kept, not the paper's n_B / n_b ratio of 10), with
  ``--config.method.irreducible_loss_path`` = the seed's ``irreducible`` run.
- Scoring runs (BUDGET 1): ``scores`` (``training_dynamics``: all data, E epochs, the score
  file CCS and the forgetting ordering read) and ``irreducible`` (``irreducible_loss``: the
  irreducible-loss model, trained on the validation ids for E epochs and validated on the
  training ids, which it never trains on).

Results: ``experiments/results/selection_comparison.md`` (``python -m
experiments.selection_comparison``).
"""

import math

import ml_collections

from configs.papers import budgeted_importance_sampling as budgeted
from configs.papers import calib_prioritization as calib
from configs.papers import coverage_centric_coreset as coverage
from jaxsel import importance, methods

DATASETS = ("fashion_mnist", "mnist1d")
METHODS = ("full", "fewer_steps", "random", "entropy", "entropy_calibrated", "ccs",
           "forgetting", "unif", "p", "c", "sb", "infobatch", "rho")
SCORING = ("scores", "irreducible")
# Methods that only make sense with BUDGET 1.
FULL_ONLY = ("full", "scores", "irreducible")
# The BUDGET-1 runs the grid makes first (the budgets need their results).
FIRST_RUNS = ("full", "scores", "irreducible", "infobatch")
BUDGETS = (0.3, 0.5)
# Shortened for the 2-core grid (see the module docstring). 0: every training id.
TRAIN_SUBSET_SIZE = {"fashion_mnist": 12_000, "mnist1d": 0}
EPOCHS = {"fashion_mnist": 10, "mnist1d": 30}
# N of each dataset here, needed before the data is loaded (the grid checks it on load).
NUM_TRAIN = {"fashion_mnist": 12_000, "mnist1d": 45_000}
BATCH_SIZE = 128
WARMUP_EPOCHS = 1  # prioritization's full-data epochs before the first selection
CALIBRATION = "focal"
CALIBRATION_VALUE = calib.CELL_HPARAMS[1]["cifar10"]["focal"][30]  # γ = 3
INFOBATCH_PRUNE_RATIO, INFOBATCH_ANNEAL_FRACTION = 0.5, 0.125  # the paper's defaults
# Which scoring runs a method needs first (the same seed's); their wall time is its cost.
SCORING_RUNS = {"ccs": ("scores",), "forgetting": ("scores",), "rho": ("irreducible",)}
FAMILIES = {"full": "full_data", "fewer_steps": "full_data", "random": "coreset",
            "entropy": "prioritization", "entropy_calibrated": "prioritization",
            "ccs": "coreset", "forgetting": "full_data", "unif": "budgeted", "p": "budgeted",
            "c": "budgeted", "sb": "selective_backprop", "infobatch": "infobatch",
            "rho": "rho_loss", "scores": "training_dynamics",
            "irreducible": "irreducible_loss"}


def fewer_steps(dataset: str, budget: float) -> int:
  """round(b · E · ⌈N / B⌉): b of the full-data run's steps."""
  return round(budget * EPOCHS[dataset] * math.ceil(NUM_TRAIN[dataset] / BATCH_SIZE))


def after_warmup_fraction(budget: float, num_epochs: int, warmup: int = WARMUP_EPOCHS) -> float:
  """q with (w + q · (E − w)) / E = b: the per-epoch fraction after w full epochs that
  makes the whole run back-propagate b of E full epochs."""
  if budget * num_epochs <= warmup:
    raise ValueError(f"budget {budget} of {num_epochs} epochs is spent by the {warmup} "
                     "warm-up epoch(s); use more epochs or a larger budget")
  return (budget * num_epochs - warmup) / (num_epochs - warmup)


def removed_examples(dataset: str, budget: float) -> int:
  """N − ⌊b · N⌋: what the forgetting run leaves out, so it trains on ⌊b · N⌋."""
  return NUM_TRAIN[dataset] - importance.budget_size(NUM_TRAIN[dataset], budget)


def ccs_beta(budget: float) -> float:
  """The coverage paper file's CIFAR-10 β for pruning rate 1 − b (0 where it has none)."""
  return coverage.BETA.get(round(100 * (1 - budget)), 0.0)


def _method(config: ml_collections.ConfigDict, dataset: str, method: str,
            budget: float) -> None:
  epochs = EPOCHS[dataset]
  if method == "fewer_steps":
    config.train.update(num_epochs=0, num_train_steps=fewer_steps(dataset, budget))
  elif method in ("random", "ccs"):
    config.method.update(rule=method, pruning_rate=1.0 - budget)
    if method == "ccs":
      config.method.update(key="accumulated_margin", beta=ccs_beta(budget))
  elif method in ("entropy", "entropy_calibrated"):
    config.method.update(selector="top_k", warmup_epochs=WARMUP_EPOCHS,
                         subset_fraction=after_warmup_fraction(budget, epochs))
    if method == "entropy_calibrated":
      calib.set_calibration(config, CALIBRATION, CALIBRATION_VALUE)
  elif method == "forgetting":
    config.removal.update(remove_n=removed_examples(dataset, budget), keep_lowest_n=0)
  elif method in ("unif", "p", "c"):
    config.method.update(sampler=method, budget=budget)
  elif method == "sb":
    fraction = after_warmup_fraction(budget, epochs, config.method.priming_epochs)
    config.method.beta = 1.0 / fraction - 1.0
  elif method == "infobatch":
    config.method.update(prune_ratio=INFOBATCH_PRUNE_RATIO,
                         anneal_fraction=INFOBATCH_ANNEAL_FRACTION)
  elif method == "rho":
    config.method.selected_fraction = budget
  elif method == "scores":
    config.method.el2n_epochs = min(10, epochs)


def _parse(arg: str | None) -> tuple[str, str, float]:
  parts = (arg or "fashion_mnist,full,1").split(",")
  if len(parts) != 3:
    raise ValueError(f"config argument {arg!r} must be DATASET,METHOD,BUDGET")
  dataset, method, budget = parts
  for value, valid, what in ((dataset, DATASETS, "dataset"),
                             (method, METHODS + SCORING, "method")):
    if value not in valid:
      raise ValueError(f"unknown {what} {value!r} in config argument {arg!r}; valid: "
                       f"{', '.join(valid)}")
  budget = budgeted.parse_budget(budget, arg)
  if method in FULL_ONLY and budget != 1:
    raise ValueError(f"METHOD {method!r} trains on all data: BUDGET must be 1, got {budget}")
  if method not in FULL_ONLY + ("infobatch",) and budget == 1:
    raise ValueError(f"METHOD {method!r} needs a budget below 1 (1 is the 'full' run)")
  return dataset, method, budget


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  dataset, method, budget = _parse(arg)
  config = budgeted.get_config(f"{dataset},sgd,standard,1")
  with config.unlocked():
    config.seed = 0
    config.method = methods.default_config(FAMILIES[method])
    config.dataset.train_subset_size = TRAIN_SUBSET_SIZE[dataset]
    config.train.update(num_epochs=EPOCHS[dataset], batch_size=BATCH_SIZE,
                        drop_remainder=False)
    config.eval.update(every_epochs=1, every_steps=0)
    config.checkpoint.update(every_epochs=0, every_steps=0, every_seconds=600.0)
    config.figures = False
    _method(config, dataset, method, budget)
  return config


def grid_args(dataset: str) -> list[str]:
  """Every config argument the comparison grid runs on ``dataset``, in its order."""
  args = [f"{dataset},{m},1" for m in FIRST_RUNS]
  return args + [f"{dataset},{m},{b:g}" for b in BUDGETS for m in METHODS if m != "full"]

