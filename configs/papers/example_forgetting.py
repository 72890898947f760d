"""Example forgetting (Toneva, Sordoni, Combes, Trischler, Bengio, Gordon, "An Empirical
Study of Example Forgetting during Deep Neural Network Learning", ICLR 2019) and the Max
Loss Increase / Gradient Loss orderings, with the paper's settings.

    # 1. ordering runs, one per seed: full data, every presentation's statistics -> DIR_s
    python -m jaxsel.main --config=configs/papers/example_forgetting.py:cifar10,order \\
        --workdir=DIR_0 --config.seed=0
    # 2. one ascending ordering from the seeds' score files
    python -m jaxsel.orderings --scores=DIR_0,DIR_1,DIR_2 --key=forgetting --out=F.npz
    # 3. train with r examples removed: a window from rank k of the ordering, or at random
    python -m jaxsel.main --config=configs/papers/example_forgetting.py:cifar10,train \\
        --workdir=DIR --config.removal.ordering_path=F.npz --config.removal.remove_n=5000 \\
        --config.removal.keep_lowest_n=0   # -1: remove 5000 at random instead

ARG = "DATASET,STAGE":

- DATASET: ``cifar10`` (the paper: ResNet-18, batch 128, 200 epochs, SGD lr 0.1 momentum
  0.9 Nesterov, weight decay 5e-4, learning rate ×0.2 at epochs 60, 120 and 160, zero-pad-4
  crop + flip; the removal runs add cutout with a 16-pixel hole; all 50,000 training
  images), ``mnist`` (the paper's MNIST CNN, batch 64, 200 epochs, SGD lr 0.01 momentum 0.5,
  no weight decay, no schedule, no augmentation, no dropout; all 60,000 images): both TFDS
  catalog datasets, prepared on a machine with internet. Variants that run offline:
  ``mnist1d`` (``mnist1d/large``, 45,000 / 5,000 / 10,000 examples, the MNIST-1D CNN, the
  CIFAR recipe scaled to 40 epochs: batch 128, lr 0.05 (0.1 made this BatchNorm-free CNN
  diverge in some runs), milestones 12 / 24 / 32, no augmentation) and ``fashion_mnist``
  (``fashion_mnist_local``, 54,000 / 6,000 / 10,000 images, the MNIST settings for 20
  epochs).
- STAGE: ``order`` (full-data training that records every presentation and writes the
  run's ``scores.npz``: forgetting counts with never-learned examples counted as T,
  first-learned epochs, max (relative) loss increases, loss slopes, and per-example
  gradient norms after a tenth of the epochs) or ``train`` (full data, to be combined with
  ``--config.removal.*`` and ``--config.noise.*``).

Label noise (Figure 3): ``--config.noise.label_percent=20`` on either stage. The reference's
one-epoch-late learning-rate decay: ``--config.schedule.late_multistep_decay=True``.

Paper figures and their MNIST-1D reproduction: ``experiments/results/forgetting_mli_mnist1d.md``
(``python -m experiments.forgetting_mli``).
"""

import ml_collections

from configs import default

DATASETS = ("cifar10", "mnist", "mnist1d", "fashion_mnist")
STAGES = ("order", "train")
EPOCHS = {"cifar10": 200, "mnist": 200, "mnist1d": 40, "fashion_mnist": 20}


def _cifar10(config: ml_collections.ConfigDict, stage: str) -> None:
  config.dataset.update(name="cifar10", train_fraction=1.0)
  config.model.name = "resnet18"
  config.model.kwargs = ml_collections.ConfigDict(dict(conv_impl="auto", dtype="float32"))
  config.train.batch_size = 128
  config.optimizer.update(name="sgd", learning_rate=0.1, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
  config.schedule.update(name="multistep", unit="epoch", milestone_epochs=(60, 120, 160),
                         decay_factor=0.2)
  # Zero padding of the uint8 image, i.e. black, before normalisation.
  config.augmentation.update(name="crop_flip", crop_padding=4, pad_mode="black", flip=True)
  if stage == "train":
    config.augmentation.cutout_size = 16  # ordering runs have no cutout (D.7)


def _mnist_like(config: ml_collections.ConfigDict, name: str, train_fraction: float) -> None:
  config.dataset.update(name=name, train_fraction=train_fraction)
  config.model.name = "mnist_cnn"
  config.model.kwargs = ml_collections.ConfigDict(dict(dropout_rate=0.0, dtype="float32"))
  config.train.batch_size = 64
  config.optimizer.update(name="sgd", learning_rate=0.01, momentum=0.5, nesterov=False,
                          weight_decay=0.0)
  config.schedule.update(name="constant", unit="epoch")


def _mnist1d(config: ml_collections.ConfigDict) -> None:
  config.dataset.name = "mnist1d/large"
  config.train.batch_size = 128
  config.train.eval_batch_size = 1000
  config.optimizer.update(name="sgd", learning_rate=0.05, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
  config.schedule.update(name="multistep", unit="epoch", milestone_epochs=(12, 24, 32),
                         decay_factor=0.2)


def _parse(arg: str | None) -> tuple[str, str]:
  parts = (arg or "mnist1d,order").split(",")
  if len(parts) != 2:
    raise ValueError(f"config argument {arg!r} must be DATASET,STAGE")
  dataset, stage = parts
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r} in config argument {arg!r}; valid: "
                     f"{', '.join(DATASETS)}")
  if stage not in STAGES:
    raise ValueError(f"unknown stage {stage!r} in config argument {arg!r}; valid: "
                     f"{', '.join(STAGES)}")
  return dataset, stage


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  dataset, stage = _parse(arg)
  config = default.get_config("training_dynamics" if stage == "order" else "full_data")
  with config.unlocked():
    if dataset == "cifar10":
      _cifar10(config, stage)
    elif dataset == "mnist":
      _mnist_like(config, "mnist", train_fraction=1.0)
    elif dataset == "fashion_mnist":
      _mnist_like(config, "fashion_mnist_local", train_fraction=0.9)
    else:
      _mnist1d(config)
    config.train.num_epochs = EPOCHS[dataset]
    config.train.drop_remainder = False  # the reference keeps the last partial batch
    if stage == "order":
      config.method.update(
          never_learned_value="presentations",  # Toneva et al.: never learned counts as T
          grad_norm_epoch=max(1, EPOCHS[dataset] // 10))  # GraNd-style, early in training
  return config
