"""Importance sampling for deep budgeted training (Arazo, Ortego, Albert, O'Connor, McGuinness,
"How Important is Importance Sampling for Deep Budgeted Training?", BMVC 2021), with the
paper's settings. One command per cell of the paper's tables:

    python -m jaxsel.main \\
        --config=configs/papers/budgeted_importance_sampling.py:cifar10,p,ricap,0.3 \\
        --workdir=DIR --config.seed=59719201

ARG = "DATASET,METHOD,AUGMENTATION,BUDGET":

- DATASET: ``cifar10`` / ``cifar100`` (the paper: ResNet-18, batch 128 with drop-last, SGD
  lr 0.1 momentum 0.9, weight decay 1e-4, the learning rate decayed linearly per iteration
  to 1e-6 over the budgeted run, 200 epochs, all 50,000 training images; TFDS catalog
  datasets, prepared on a machine with internet). Variants that run offline:
  ``fashion_mnist`` (``fashion_mnist_local``, 54,000 / 6,000 / 10,000 images, the
  example-forgetting MNIST CNN, 10 epochs, lr 0.05) and ``mnist1d`` (``mnist1d/large``,
  45,000 / 5,000 / 10,000 signals, the MNIST-1D CNN, 30 epochs, lr 0.05);
  ``fashion_mnist_small`` is ``fashion_mnist`` on a fixed random 12,000 of its training
  images (``dataset.train_subset_size``; validation and test unchanged), short enough per
  epoch to train for the length at which augmentation pays off. ``imagenet2012``:
  the same training settings (B.6) on ImageNet-1k, streamed, with ResNet-18 given the
  ImageNet stem and Inception-style host crops at 224 px as ``standard`` augmentation (see
  ``configs/papers/imagenet.py``); the paper reports no ImageNet run, so the length, 90
  epochs (the usual ImageNet schedule), is ours. The paper's mini-ImageNet (84×84, 100
  classes, B.6) is not in the TFDS catalog; with a TFDS copy of it,
  ``--config.dataset.name=<its name>`` on the ``cifar100`` settings (pad-4 crop at 84 px).
- METHOD (ALGORITHMS.md B.2-B.5):
  ``sgd``: standard training on all data; with BUDGET b < 1 it is the budgeted SGD
  baseline, stopped after the b-budget's number of steps (E · ⌊⌊b · N⌋ / B⌋, ≈ b · E
  epochs) with the learning-rate decay compressed to them;
  ``random`` / ``coreset``: one subset of ⌊b · N⌋ examples fixed for all epochs (the
  paper's Figure-1 "Random" and "Core-set"; ``coreset`` needs
  ``--config.method.scores_path`` from ``training_dynamics`` runs and picks by
  ``method.rule`` / ``method.key``, CCS on the accumulated margin by default, since the
  paper does not say which core-set it used);
  ``unif`` / ``p`` / ``c``: unif-SGD, p-SGD, c-SGD, a new subset of ⌊b · N⌋ every epoch;
  ``sb``: selective backprop, with β = 1/b − 1 so that the expected back-propagated
  fraction is b (the paper's default β = 3 is b = 0.25); it still forwards every example;
  ``scores``: full-data training that writes the training-dynamics score file a
  ``coreset`` run reads (BUDGET 1).
- AUGMENTATION (B.7): ``standard`` (pad-4 crop + flip on images; nothing on 1-d signals),
  ``mixup`` (α = 0.3), ``ricap`` (α = 0.3, after the standard one) or ``randaugment``
  (N = 2, M = 4 on the uint8 image, then the standard one; images only).
- BUDGET: b in (0, 1].

The reference's seed pool is ``SEED_POOL``; its default run is ``SEED_POOL[1]``. The p-SGD
ablations of the paper's Figure 1 are ``--config.method.smoothing=False`` (no ε),
``--config.method.difficulty=last`` (no average), and a step schedule
(``--config.schedule.name=multistep``). The reference's RICAP score attribution:
``--config.method.reference_ricap_scores=True``. Results on the offline datasets:
``experiments/results/budgeted_importance_sampling.md`` (``python -m
experiments.budgeted_importance_sampling``).
"""

import math

import ml_collections

from configs import default
from configs.papers import imagenet
from jaxsel import importance

DATASETS = ("cifar10", "cifar100", "fashion_mnist", "fashion_mnist_small", "mnist1d",
            "imagenet2012")
METHODS = ("sgd", "random", "coreset", "unif", "p", "c", "sb", "scores")
AUGMENTATIONS = ("standard", "mixup", "ricap", "randaugment")
SEED_POOL = (66446573, 59719201, 37273794, 40015061, 72942995, 10000149, 93149410, 10809540,
             62353799, 84783536, 51422067)
EPOCHS = {"cifar10": 200, "cifar100": 200, "fashion_mnist": 10, "fashion_mnist_small": 30,
          "mnist1d": 30, "imagenet2012": 90}
# fashion_mnist_small: a fixed random 12,000 of Fashion-MNIST's training images, where runs
# are short enough to train long (``experiments/budgeted_length.py`` finds the length at
# which augmentation pays off; pass it with ``--config.train.num_epochs``).
SMALL_TRAIN_SIZE = 12_000
# Training examples N of each dataset's split here (the budgeted SGD baseline's step count
# needs it before the data is loaded; a test checks it against the loaded offline data).
NUM_TRAIN = {"cifar10": 50_000, "cifar100": 50_000, "fashion_mnist": 54_000,
             "fashion_mnist_small": SMALL_TRAIN_SIZE, "mnist1d": 45_000,
             "imagenet2012": imagenet.NUM_TRAIN}
BATCH_SIZE = 128
MIXING_ALPHA = 0.3
RANDAUGMENT_NUM_OPS, RANDAUGMENT_MAGNITUDE = 2, 4


def _dataset(config: ml_collections.ConfigDict, dataset: str) -> None:
  if dataset in ("cifar10", "cifar100"):
    config.dataset.update(name=dataset, train_fraction=1.0)
    config.model.name = "resnet18"
    config.model.kwargs = ml_collections.ConfigDict(dict(conv_impl="auto", dtype="float32"))
    config.optimizer.update(learning_rate=0.1)
  elif dataset == "imagenet2012":
    imagenet.use_imagenet(config, model="resnet18")
    config.dataset.train_fraction = 1.0
    config.optimizer.update(learning_rate=0.1)
    return  # its own eval batch size
  elif dataset in ("fashion_mnist", "fashion_mnist_small"):
    config.dataset.update(name="fashion_mnist_local", train_fraction=0.9,
                          train_subset_size=SMALL_TRAIN_SIZE * (dataset != "fashion_mnist"))
    config.model.name = "mnist_cnn"
    config.model.kwargs = ml_collections.ConfigDict(dict(dropout_rate=0.0, dtype="float32"))
    config.optimizer.update(learning_rate=0.05)
  else:
    config.dataset.update(name="mnist1d/large", train_fraction=0.9)
    config.optimizer.update(learning_rate=0.05)
  config.train.eval_batch_size = 1000


def _augmentation(config: ml_collections.ConfigDict, dataset: str, augmentation: str) -> None:
  # Crops and flips need images; ImageNet's are the host's random resized crops.
  if dataset not in ("mnist1d", "imagenet2012"):
    config.augmentation.update(name="crop_flip", crop_padding=4, pad_mode="black",
                               flip=True)
  if augmentation in ("mixup", "ricap"):
    config.mixing.update(name=augmentation, alpha=MIXING_ALPHA)
  elif augmentation == "randaugment":
    # Refused for 1-d signals when the data is loaded, naming the field.
    config.augmentation.update(randaugment_num_ops=RANDAUGMENT_NUM_OPS,
                               randaugment_magnitude=RANDAUGMENT_MAGNITUDE)


def budgeted_sgd_steps(dataset: str, budget: float, *, num_epochs: int | None = None) -> int:
  """E · ⌊⌊b · N⌋ / B⌋: the steps of a budget-b run, for the budgeted SGD baseline."""
  epochs = EPOCHS[dataset] if num_epochs is None else num_epochs
  return epochs * (importance.budget_size(NUM_TRAIN[dataset], budget) // BATCH_SIZE)


def _method(config: ml_collections.ConfigDict, dataset: str, method: str,
            budget: float) -> None:
  if method == "sgd":
    if budget < 1:
      config.train.update(num_epochs=0, num_train_steps=budgeted_sgd_steps(dataset, budget))
  elif method in ("random", "coreset"):
    config.method.update(rule="random" if method == "random" else "ccs",
                         pruning_rate=1.0 - budget)
  elif method == "scores":
    if budget < 1:
      raise ValueError(f"METHOD 'scores' trains on all data: BUDGET must be 1, got {budget}")
  elif method in ("unif", "p", "c"):
    config.method.update(sampler=method, budget=budget)
  else:
    config.method.beta = 1.0 / budget - 1.0


def _parse(arg: str | None) -> tuple[str, str, str, float]:
  parts = (arg or "fashion_mnist,unif,standard,0.3").split(",")
  if len(parts) != 4:
    raise ValueError(f"config argument {arg!r} must be DATASET,METHOD,AUGMENTATION,BUDGET")
  dataset, method, augmentation, budget = parts
  for value, valid, what in ((dataset, DATASETS, "dataset"), (method, METHODS, "method"),
                             (augmentation, AUGMENTATIONS, "augmentation")):
    if value not in valid:
      raise ValueError(f"unknown {what} {value!r} in config argument {arg!r}; valid: "
                       f"{', '.join(valid)}")
  return dataset, method, augmentation, parse_budget(budget, arg)


def parse_budget(text: str, arg: str) -> float:
  """BUDGET of a config argument: a number in (0, 1] (ValueError naming ``arg`` if not)."""
  try:
    budget = float(text)
  except ValueError:
    budget = math.nan
  if not 0 < budget <= 1:
    raise ValueError(f"budget {text!r} in config argument {arg!r} must be in (0, 1]")
  return budget


def method_family(method: str) -> str:
  """The jaxsel method a METHOD of this config runs."""
  return {"sgd": "full_data", "random": "coreset", "coreset": "coreset",
          "sb": "selective_backprop", "scores": "training_dynamics"}.get(method, "budgeted")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  dataset, method, augmentation, budget = _parse(arg)
  config = default.get_config(method_family(method))
  with config.unlocked():
    config.seed = SEED_POOL[1]
    _dataset(config, dataset)
    _augmentation(config, dataset, augmentation)
    config.optimizer.update(name="sgd", momentum=0.9, nesterov=False, weight_decay=1e-4)
    # Per iteration from lr0 to 1e-6 over the budgeted run, the last step at 1e-6 (B.6).
    config.schedule.update(name="linear", unit="step", end_learning_rate=1e-6,
                           end_at_last_step=True)
    config.train.update(num_epochs=EPOCHS[dataset], batch_size=BATCH_SIZE,
                        drop_remainder=True)
    _method(config, dataset, method, budget)
  return config
