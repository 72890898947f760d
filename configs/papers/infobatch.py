"""InfoBatch (Qin et al., "InfoBatch: Lossless Training Speed-up by Unbiased Dynamic Data
Pruning", ICLR 2024), with the settings of its reference's CIFAR example. One command per run:

    python -m jaxsel.main --config=configs/papers/infobatch.py:cifar100,infobatch \\
        --workdir=DIR --config.seed=0

ARG = "DATASET,METHOD":

- DATASET: ``cifar10`` / ``cifar100`` (the reference's ``examples/cifar_example.py``
  defaults: ResNet-18, batch 128, SGD momentum 0.9, weight decay 5e-4, label smoothing
  0.1, a per-step OneCycle schedule with max lr 0.05, div factor 25, final div factor 1e4,
  30 % rising, 200 epochs, reflect-padded 4-pixel crops and flips; TFDS catalog datasets,
  prepared on a machine with internet). Offline: ``fashion_mnist`` (``fashion_mnist_local``,
  the example-forgetting MNIST CNN, 20 epochs) and ``mnist1d`` (``mnist1d/large``, the
  MNIST-1D CNN, 30 epochs), the same optimizer and schedule, no augmentation on MNIST-1D.
- METHOD: ``infobatch`` (prune ratio 0.5, δ = 0.875: the final 12.5 % of the epochs
  anneal on all data) or ``full`` (the same training on every example: the paper's
  baseline, the reference's ``--delta 0``).

The method's rules and how jaxsel follows the reference are in
``jaxsel/methods/infobatch.py``. The summary reports the paper's "total saving"
(``infobatch_saving_percent``) beside the exact ``examples_backpropagated``. The offline
comparison of every family, InfoBatch included, is ``experiments/results/
selection_comparison.md``.
"""

import ml_collections

from configs import default

DATASETS = ("cifar10", "cifar100", "fashion_mnist", "mnist1d")
METHODS = ("infobatch", "full")
EPOCHS = {"cifar10": 200, "cifar100": 200, "fashion_mnist": 20, "mnist1d": 30}


def _dataset(config: ml_collections.ConfigDict, dataset: str) -> None:
  if dataset in ("cifar10", "cifar100"):
    config.dataset.update(name=dataset, train_fraction=1.0)
    config.model.name = "resnet18"
    config.model.kwargs = ml_collections.ConfigDict(dict(conv_impl="auto", dtype="float32"))
    config.augmentation.update(name="crop_flip", crop_padding=4, pad_mode="reflect",
                               flip=True)
  elif dataset == "fashion_mnist":
    config.dataset.update(name="fashion_mnist_local", train_fraction=0.9)
    config.model.name = "mnist_cnn"
    config.model.kwargs = ml_collections.ConfigDict(dict(dropout_rate=0.0, dtype="float32"))
    config.augmentation.update(name="crop_flip", crop_padding=4, pad_mode="black",
                               flip=True)
  else:
    config.dataset.update(name="mnist1d/large", train_fraction=0.9)
  config.train.eval_batch_size = 1000


def _parse(arg: str | None) -> tuple[str, str]:
  parts = (arg or "fashion_mnist,infobatch").split(",")
  if len(parts) != 2 or parts[0] not in DATASETS or parts[1] not in METHODS:
    raise ValueError(f"config argument {arg!r} must be DATASET,METHOD with DATASET in "
                     f"{', '.join(DATASETS)} and METHOD in {', '.join(METHODS)}")
  return parts[0], parts[1]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  dataset, method = _parse(arg)
  config = default.get_config("infobatch" if method == "infobatch" else "full_data")
  with config.unlocked():
    _dataset(config, dataset)
    config.loss.update(name="label_smoothing", label_smoothing=0.1)
    config.optimizer.update(name="sgd", learning_rate=0.05, momentum=0.9, nesterov=False,
                            weight_decay=5e-4)
    config.schedule.update(name="onecycle", unit="step", onecycle_pct_start=0.3,
                           onecycle_div_factor=25.0, onecycle_final_div_factor=1e4)
    config.train.update(num_epochs=EPOCHS[dataset], batch_size=128)
    if method == "infobatch":
      config.method.update(prune_ratio=0.5, anneal_fraction=0.125)
  return config
