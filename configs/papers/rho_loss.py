"""RHO-LOSS (Mindermann et al., "Prioritized Training on Points that are Learnable, Worth
Learning, and Not Yet Learnt", ICML 2022), with the settings of its reference's CIFAR
experiments. Two runs per seed, the irreducible-loss model first:

    python -m jaxsel.main --config=configs/papers/rho_loss.py:cifar10,irreducible \\
        --workdir=runs/il --config.seed=0
    python -m jaxsel.main --config=configs/papers/rho_loss.py:cifar10,rho \\
        --workdir=runs/rho --config.seed=0 --config.method.irreducible_loss_path=runs/il

ARG = "DATASET,STAGE":

- DATASET: ``cifar10`` / ``cifar100`` (the reference's ``configs/experiment/
  cifar10_resnet18_{irred,main}.yaml``: the training set split in two halves, one the
  holdout the irreducible-loss model trains on (the reference takes the odd ids, jaxsel a
  seeded random half: ``dataset.train_fraction=0.5``), ResNet-18 for both models, AdamW
  lr 1e-3 (PyTorch's default weight decay 0.01), no schedule, big batches of n_B = 320 of
  which n_b = 32 (10 %) are trained on, 175 epochs of the target model and 100 of the
  irreducible-loss model, crops and flips on both; TFDS catalog datasets). Offline:
  ``fashion_mnist`` (``fashion_mnist_local``, the example-forgetting MNIST CNN) and
  ``mnist1d`` (``mnist1d/large``, the MNIST-1D CNN), 20 epochs each.
- STAGE: ``irreducible`` (``method.name='irreducible_loss'``: trains on the holdout ids and
  writes the irreducible losses of the training ids to ``WORKDIR/scores.npz``) or ``rho``
  (``method.name='rho_loss'``: needs ``--config.method.irreducible_loss_path``).

The rules, and where jaxsel departs from the reference (model selection of the
irreducible-loss model on the training ids instead of the test set), are in
``jaxsel/methods/rho_loss.py``.
"""

import ml_collections

from configs import default

DATASETS = ("cifar10", "cifar100", "fashion_mnist", "mnist1d")
STAGES = ("irreducible", "rho")
EPOCHS = {"cifar10": {"irreducible": 100, "rho": 175},
          "cifar100": {"irreducible": 100, "rho": 175},
          "fashion_mnist": {"irreducible": 20, "rho": 20},
          "mnist1d": {"irreducible": 20, "rho": 20}}
BIG_BATCH = 320  # n_B
SELECTED_FRACTION = 0.1  # n_b / n_B


def _dataset(config: ml_collections.ConfigDict, dataset: str) -> None:
  if dataset in ("cifar10", "cifar100"):
    config.dataset.update(name=dataset, train_fraction=0.5)
    config.model.name = "resnet18"
    config.model.kwargs = ml_collections.ConfigDict(dict(conv_impl="auto", dtype="float32"))
  elif dataset == "fashion_mnist":
    config.dataset.update(name="fashion_mnist_local", train_fraction=0.5)
    config.model.name = "mnist_cnn"
    config.model.kwargs = ml_collections.ConfigDict(dict(dropout_rate=0.0, dtype="float32"))
  else:
    config.dataset.update(name="mnist1d/large", train_fraction=0.5)
  if dataset != "mnist1d":
    config.augmentation.update(name="crop_flip", crop_padding=4, pad_mode="black",
                               flip=True)
  config.train.eval_batch_size = 1000


def _parse(arg: str | None) -> tuple[str, str]:
  parts = (arg or "fashion_mnist,rho").split(",")
  if len(parts) != 2 or parts[0] not in DATASETS or parts[1] not in STAGES:
    raise ValueError(f"config argument {arg!r} must be DATASET,STAGE with DATASET in "
                     f"{', '.join(DATASETS)} and STAGE in {', '.join(STAGES)}")
  return parts[0], parts[1]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  dataset, stage = _parse(arg)
  config = default.get_config("irreducible_loss" if stage == "irreducible" else "rho_loss")
  with config.unlocked():
    _dataset(config, dataset)
    config.optimizer.update(name="adamw", learning_rate=1e-3, weight_decay=0.01)
    config.schedule.update(name="constant")
    config.train.update(num_epochs=EPOCHS[dataset][stage], batch_size=BIG_BATCH)
    if stage == "rho":
      config.method.selected_fraction = SELECTED_FRACTION
  return config
