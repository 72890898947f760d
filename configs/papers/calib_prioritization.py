"""Calibrated sample prioritization (Tata et al., "Can Calibration Improve Sample
Prioritization?", NeurIPS 2022 HITY workshop), with the paper's settings.

    python -m jaxsel.main --config=configs/papers/calib_prioritization.py:ARG --workdir=DIR

ARG = "DATASET[,CALIBRATION[,PERCENT[,VARIANT]]]":

- DATASET: ``cifar10`` | ``cifar100`` (the paper: ResNet-34, batch 32, SGD momentum 0.9,
  weight decay 5e-4, cosine annealing per epoch, lr 0.01 / 0.1, 200 epochs of which the
  first 10 on all data, 90/10 train/validation split, 15 ECE bins, crop + flip) or
  ``mnist1d`` (the same protocol on ``mnist1d/large``, 45,000 / 5,000 / 10,000 examples,
  with the MNIST-1D paper's CNN at batch 32 and lr 0.05, which runs on a CPU; 100 epochs
  of which the first 5 on all data, half the paper's schedule), or ``mnist1d_small`` (the
  default MNIST-1D, 3,600 / 400 / 1,000 examples, with the paper's 200 epochs, 10 of them
  on all data, and lr 0.01: there plain cross-entropy ends over-confident, test ECE about
  4.5 % of which 3.7 points over-confidence, the regime where calibration can help; its
  ε / α / γ are tuned by validation ECE, ``experiments/calib_prioritization_tuned.py``),
  ``fashion_mnist_small`` (the same idea on Fashion-MNIST: a fixed 12,000 of its training
  images, 6,000 validation, 10,000 test, the MNIST CNN at batch 128 and lr 0.05, 30 epochs
  of which 2 on all data; cross-entropy ends with test ECE 6.2 %, 5.5 points of it
  over-confidence; the target model is a 2-d CNN with BatchNorm),
  or ``imagenet2012`` (not in
  the paper: its CIFAR-100 settings, lr 0.1 and CIFAR-100's calibration hyper-parameters,
  on ImageNet-1k streamed, with ResNet-34 given the ImageNet stem, batch 256 and 90 epochs
  of which the first 5 on all data, Inception-style host crops at 224 px; see
  ``configs/papers/imagenet.py``).
- CALIBRATION: ``none`` | ``label_smoothing`` | ``mixup`` | ``focal``, each with the
  hyper-parameter the paper used in that cell (``CELL_HPARAMS``; MNIST-1D uses CIFAR-10's).
- PERCENT: ``100`` | ``30`` | ``20`` | ``10``: examples per epoch after warm-up, chosen by
  max entropy (``top_k``). 100 trains on everything.
- VARIANT: ``target`` (Table 2: rank by the calibrated target model's entropies, with the
  Table 2 hyper-parameters; ``--config.method.target.path`` must name the target's score
  file, or the run is refused), ``random`` (a fresh random subset each epoch: the
  baseline), or ``target_model`` alone, e.g. ``cifar10,target_model``: the target model
  itself (ResNet-50 + mixup α = 0.3 on CIFAR-10, 0.25 on CIFAR-100; a wider CNN + mixup
  α = 0.3 on MNIST-1D) trained on all data, writing its entropies to ``DIR/scores.npz``.

Calibration maps onto the generic training options: label smoothing and focal loss are
``config.loss``, mixup is ``config.mixing``. Normalisation follows this paper's reference:
CIFAR-10 mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010); CIFAR-100 uses its
own statistics (the reference reused CIFAR-10's, ALGORITHMS.md A.11.8). Crops pad black
pixels, as the reference pads before normalising.

Paper numbers (test accuracy / ECE, %, last epoch), Table 1, CIFAR-10, cross-entropy:
100 %: 94.10 / 4.10; 10 %: 93.23 / 5.20; mixup 10 %: 93.17 / 1.78. All cells are in
``experiments/results/calib_prioritization_mnist1d.md`` beside the MNIST-1D reproduction
(``python -m experiments.calib_prioritization``).
"""

import ml_collections

from configs import default
from configs.papers import imagenet

DATASETS = ("cifar10", "cifar100", "mnist1d", "mnist1d_small", "fashion_mnist_small",
            "imagenet2012")
MNIST1D = ("mnist1d", "mnist1d_small")
CALIBRATIONS = ("none", "label_smoothing", "mixup", "focal")
PERCENTS = (100, 30, 20, 10)
VARIANTS = ("", "target", "random")

# Per-cell calibration hyper-parameters of the paper: {table: {dataset: {method:
# {percent: value}}}}, value = ε (label smoothing), α (mixup) or γ (focal).
CELL_HPARAMS = {
    1: {
        "cifar10": {"label_smoothing": {100: 0.03, 30: 0.05, 20: 0.05, 10: 0.03},
                    "mixup": {100: 0.1, 30: 0.3, 20: 0.2, 10: 0.15},
                    "focal": {100: 1.0, 30: 3.0, 20: 3.0, 10: 3.0}},
        "cifar100": {"label_smoothing": {100: 0.03, 30: 0.03, 20: 0.03, 10: 0.09},
                     "mixup": {100: 0.15, 30: 0.15, 20: 0.15, 10: 0.35},
                     "focal": {100: 1.0, 30: 3.0, 20: 3.0, 10: 5.0}},
    },
    2: {
        "cifar10": {"label_smoothing": {100: 0.03, 30: 0.05, 20: 0.05, 10: 0.03},
                    "mixup": {100: 0.1, 30: 0.3, 20: 0.15, 10: 0.15},
                    "focal": {100: 1.0, 30: 2.0, 20: 2.0, 10: 1.0}},
        "cifar100": {"label_smoothing": {100: 0.03, 30: 0.03, 20: 0.03, 10: 0.09},
                     "mixup": {100: 0.15, 30: 0.2, 20: 0.15, 10: 0.15},
                     "focal": {100: 1.0, 30: 2.0, 20: 3.0, 10: 2.0}},
    },
}
TARGET_MIXUP_ALPHA = {"cifar10": 0.3, "cifar100": 0.25, "mnist1d": 0.3, "mnist1d_small": 0.3,
                      "fashion_mnist_small": 0.3,
                      "imagenet2012": 0.25}
# Whose calibration cells a dataset outside the paper uses.
CELLS_OF = {"mnist1d": "cifar10", "mnist1d_small": "cifar10", "fashion_mnist_small": "cifar10",
            "imagenet2012": "cifar100"}
# The small grids the validation-tuned experiments choose ε / α / γ from (around the
# paper's CIFAR values), and the target model's mixup α.
# The first grids' smallest values won 13 of 22 choices on MNIST-1D, so each grid reaches
# one step further down (towards plain cross-entropy, which every method becomes at 0).
TUNING_VALUES = {"label_smoothing": (0.003, 0.01, 0.03, 0.05, 0.1),
                 "mixup": (0.02, 0.05, 0.1, 0.2, 0.4), "focal": (0.25, 0.5, 1.0, 2.0, 3.0)}
TARGET_ALPHAS = (0.01, 0.02, 0.05, 0.1, 0.2)
# Fashion-MNIST's runs take ~10 times as long: three values each, the lower part of the
# range (at this scale strong calibration over-corrects: focal γ = 3 left MNIST-1D models
# under-confident with ECE 7-15 %).
FASHION_TUNING_VALUES = {"label_smoothing": (0.01, 0.03, 0.1), "mixup": (0.05, 0.1, 0.2),
                         "focal": (0.5, 1.0, 2.0)}
FASHION_TARGET_ALPHAS = (0.02, 0.05, 0.1)
# The config field of each calibration's hyper-parameter: (section, field).
HPARAM_FIELD = {"label_smoothing": ("loss", "label_smoothing"), "mixup": ("mixing", "alpha"),
                "focal": ("loss", "focal_gamma")}
# The reference's CIFAR-10 constants (datasets.py of the reference code, ALGORITHMS.md 0.4).
CIFAR10_REFERENCE_NORMALIZATION = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def set_calibration(config: ml_collections.ConfigDict, calibration: str,
                    value: float | None = None) -> None:
  """Sets the loss and mixing of a calibration method (``CALIBRATIONS``) on ``config``."""
  config.loss.name = {"label_smoothing": "label_smoothing", "focal": "focal"}.get(
      calibration, "cross_entropy")
  config.mixing.name = "mixup" if calibration == "mixup" else "none"
  if value is not None:
    section, field = HPARAM_FIELD[calibration]
    config[section][field] = value


def calibration_hparam(config: ml_collections.ConfigDict, calibration: str) -> float:
  section, field = HPARAM_FIELD[calibration]
  return config[section][field]


def _base(dataset: str) -> ml_collections.ConfigDict:
  config = default.get_config("prioritization")
  with config.unlocked():
    config.train.num_epochs = 200
    config.train.batch_size = 32
    config.optimizer.update(name="sgd", momentum=0.9, nesterov=False, weight_decay=5e-4)
    config.schedule.update(name="cosine", unit="epoch", lr_warmup_epochs=0.0)
    config.dataset.train_fraction = 0.9
    config.metrics.num_bins = 15
    config.method.warmup_epochs = 10
    config.method.subset_fraction = 1.0
    if dataset == "mnist1d":
      config.dataset.name = "mnist1d/large"
      config.optimizer.learning_rate = 0.05
      config.train.eval_batch_size = 1000
      # Half the paper's schedule, same 5 % warm-up share: the CNN converges on MNIST-1D
      # well within it, and the 94-run grid then fits in under an hour on 2 CPU cores.
      config.train.num_epochs = 100
      config.method.warmup_epochs = 5
    elif dataset == "fashion_mnist_small":
      # 30 epochs (2 on all data) of the MNIST CNN on a fixed 12,000 training images, batch
      # 128, lr 0.05: cross-entropy ends over-confident (test ECE 6.2 %, over-confidence
      # error 5.5 %, one seed), and a run takes about a minute on 2 CPU cores.
      config.dataset.update(name="fashion_mnist_local", train_subset_size=12_000)
      config.model.name = "mnist_cnn"
      config.model.kwargs = ml_collections.ConfigDict(dict(dropout_rate=0.0, dtype="float32"))
      config.optimizer.learning_rate = 0.05
      config.train.update(num_epochs=30, batch_size=128, eval_batch_size=1000)
      config.method.warmup_epochs = 2
    elif dataset == "mnist1d_small":
      # The paper's 200 epochs (10 on all data) at lr 0.01 on the default 3,600 examples:
      # the CNN fits the training set and cross-entropy ends over-confident.
      config.dataset.name = "mnist1d"
      config.optimizer.learning_rate = 0.01
      config.train.eval_batch_size = 1000
    elif dataset == "imagenet2012":
      imagenet.use_imagenet(config, model="resnet34")
      config.optimizer.learning_rate = 0.1
      # Batch 32 would make an ImageNet epoch 40,000 steps; 256 is the usual batch there.
      config.train.batch_size = 256
      config.train.num_epochs = 90
      config.method.warmup_epochs = 5
    else:
      config.dataset.name = dataset
      if dataset == "cifar10":
        mean, std = CIFAR10_REFERENCE_NORMALIZATION
        config.dataset.normalization_mean, config.dataset.normalization_std = mean, std
      config.model.name = "resnet34"
      config.model.kwargs = ml_collections.ConfigDict(dict(conv_impl="auto", dtype="float32"))
      config.optimizer.learning_rate = 0.01 if dataset == "cifar10" else 0.1
      config.augmentation.name = "crop_flip"
      config.augmentation.pad_mode = "black"
      config.train.eval_batch_size = 500
  return config


def _parse(arg: str | None) -> tuple[str, str, int, str]:
  parts = (arg or "mnist1d").split(",")
  dataset = parts[0]
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r} in config argument {arg!r}; valid: "
                     f"{', '.join(DATASETS)}")
  if parts[1:2] == ["target_model"]:
    return dataset, "mixup", 100, "target_model"
  calibration = parts[1] if len(parts) > 1 else "none"
  percent = int(parts[2]) if len(parts) > 2 else 100
  variant = parts[3] if len(parts) > 3 else ""
  for value, valid, what in ((calibration, CALIBRATIONS, "calibration"),
                             (percent, PERCENTS, "subset percent"),
                             (variant, VARIANTS, "variant")):
    if value not in valid:
      raise ValueError(f"unknown {what} {value!r} in config argument {arg!r}; valid: "
                       f"{', '.join(map(str, valid))}")
  return dataset, calibration, percent, variant


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  dataset, calibration, percent, variant = _parse(arg)
  config = _base(dataset)
  with config.unlocked():
    if variant == "target_model":
      set_calibration(config, "mixup", TARGET_MIXUP_ALPHA[dataset])
      config.method.save_scores = True
      if dataset in MNIST1D:
        config.model.kwargs = ml_collections.ConfigDict(dict(
            conv_impl="auto", channels=64, use_batchnorm=True, dtype="float32"))
        config.train.batch_size = 128
      elif dataset == "fashion_mnist_small":  # a 2-d CNN with BatchNorm, 4x the width
        config.model.name = "cnn2d"
        config.model.kwargs = ml_collections.ConfigDict(dict(
            channels=(32, 64), hidden_size=128, use_batchnorm=True, dtype="float32"))
      else:
        config.model.name = "resnet50"
      return config
    value = None
    if calibration != "none":
      table = 2 if variant == "target" else 1
      hparams = CELL_HPARAMS[table][CELLS_OF.get(dataset, dataset)]
      value = hparams[calibration][percent]
    set_calibration(config, calibration, value)
    if percent < 100:
      config.method.selector = "random" if variant == "random" else "top_k"
      config.method.subset_fraction = percent / 100
    # Table 2 ranks by the target: without one it would silently be a Table 1 run.
    config.method.target.required = variant == "target"
  return config


def sweep(dataset: str = "mnist1d", *, seeds=(0, 1, 2)) -> list[tuple[str, int]]:
  """(config argument, seed) of every run of Tables 1 and 2 for ``dataset``.

  Table 1: calibration × {100, 30, 20, 10} %; the random-subset baseline at {30, 20, 10} %;
  Table 2: calibration × {30, 20, 10} % ranked by the target model (``DATASET,target_model``
  must have run first and its score file be passed as ``method.target.path``).
  """
  runs = [f"{dataset},{c},{p}" for c in CALIBRATIONS for p in PERCENTS]
  runs += [f"{dataset},none,{p},random" for p in PERCENTS[1:]]
  runs += [f"{dataset},{c},{p},target" for c in CALIBRATIONS for p in PERCENTS[1:]]
  return [(arg, seed) for arg in runs for seed in seeds]
