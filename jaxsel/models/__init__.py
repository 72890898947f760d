"""Model zoo. Every model is a linen Module called as

  model.apply(variables, x, train=..., mask=None, return_features=False)

returning float32 logits [B, num_classes], or (logits, features [B, D]) with the
pre-logit activations when ``return_features``. ``mask`` [B] marks real rows
of a padded batch so BatchNorm statistics ignore the padding.

Models (``MODELS``): ``mlp``; ``cnn1d`` (the MNIST-1D CNN); ``cnn2d`` (a small
image CNN); ``mnist_cnn`` (the example-forgetting MNIST CNN, 28x28 inputs, optional
dropout and log-probability outputs); ``resnet18`` / ``resnet34`` / ``resnet50``
(CIFAR-style ResNets).
"""

import dataclasses
import functools

import flax.linen as nn

from jaxsel.models.cnn1d import CNN1D
from jaxsel.models.cnn2d import CNN2D
from jaxsel.models.layers import Conv, Dense, BatchNorm, resolve_conv_impl
from jaxsel.models.mlp import MLP
from jaxsel.models.mnist_cnn import MnistCNN
from jaxsel.models.resnet_cifar import (BasicBlock, Bottleneck, ResNet,
                                        ResNet18, ResNet34, ResNet50)

MODELS = {
    "mlp": MLP,
    "cnn1d": CNN1D,
    "cnn2d": CNN2D,
    "mnist_cnn": MnistCNN,
    "resnet18": ResNet18,
    "resnet34": ResNet34,
    "resnet50": ResNet50,
}


def _options(constructor) -> list[str]:
  """Keyword options a constructor accepts (module fields minus linen's own)."""
  fixed = set()
  if isinstance(constructor, functools.partial):
    fixed = set(constructor.keywords)
    constructor = constructor.func
  return sorted(f.name for f in dataclasses.fields(constructor)
                if f.init and f.name not in fixed | {"parent", "name"})


def get_model(name: str, *, num_classes: int, **kwargs) -> nn.Module:
  """Builds model ``name`` with ``num_classes`` logits and extra field values.

  Raises:
    ValueError: for an unknown name or an option the model does not have.
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; valid: {', '.join(sorted(MODELS))}")
  options = _options(MODELS[name])
  unknown = sorted(set(kwargs) - set(options))
  if unknown:
    raise ValueError(f"model {name!r} has no option(s) {', '.join(unknown)}; "
                     f"valid: {', '.join(o for o in options if o != 'num_classes')}")
  return MODELS[name](num_classes=num_classes, **kwargs)


__all__ = ["MODELS", "get_model", "MLP", "CNN1D", "CNN2D", "MnistCNN", "ResNet", "ResNet18",
           "ResNet34", "ResNet50", "BasicBlock", "Bottleneck", "Conv", "Dense",
           "BatchNorm", "resolve_conv_impl"]
