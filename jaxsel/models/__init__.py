"""Model zoo. Every model is a linen Module called as

  model.apply(variables, x, train=..., mask=None, return_features=False)

returning float32 logits [B, num_classes], or (logits, features [B, D]) with the
pre-logit activations when ``return_features``. ``mask`` [B] marks real rows
of a padded batch so BatchNorm statistics ignore the padding.

On several devices (``jaxsel.distributed``) a batch is sharded over them, and BatchNorm's
statistics are still those of the whole global batch (its real rows): the mean and
variance are reductions over the batch axis, which XLA completes across devices. There is
no per-device ("ghost") BatchNorm, so a run's numbers do not depend on the device count.

Models (``MODELS``): ``mlp``; ``cnn1d`` (the MNIST-1D CNN); ``cnn2d`` (a small
image CNN); ``mnist_cnn`` (the example-forgetting MNIST CNN, 28x28 inputs, optional
dropout and log-probability outputs); ``resnet18`` / ``resnet34`` / ``resnet50``
(CIFAR-style ResNets; ``stem='imagenet'`` for the ImageNet stem).

Precision: every model has a ``dtype`` option (``config.model.kwargs.dtype``), 'float32'
(the default) or 'bfloat16'. With 'bfloat16' the inputs are cast to bfloat16 on entry and
the matmuls, convolutions and activations run in bfloat16, while the parameters (hence
their gradients and the optimizer state) stay float32 and are cast per use; BatchNorm
computes its batch statistics, normalises and keeps its running averages in float32,
casting only its output; and the logits (and features) are cast back to float32, so losses,
metrics and per-example scores are float32. With 'float32' every one of these casts is a
no-op: the programs are exactly those of a float32-only model.
"""

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import flax.linen as nn

from jaxsel.config_errors import UserError, did_you_mean, is_int, is_real, require, suggestion
from jaxsel.models import cnn1d, mnist_cnn
from jaxsel.models.cnn1d import CNN1D
from jaxsel.models.cnn2d import CNN2D
from jaxsel.models.layers import (CONV_IMPLS, DTYPES, Conv, Dense, BatchNorm,
                                  resolve_conv_impl, resolve_dtype)
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
_FIELD = "model.kwargs"


def _options(constructor) -> list[str]:
  """Keyword options a constructor accepts (module fields minus linen's own)."""
  fixed = set()
  if isinstance(constructor, functools.partial):
    fixed = set(constructor.keywords)
    constructor = constructor.func
  return sorted(f.name for f in dataclasses.fields(constructor)
                if f.init and f.name not in fixed | {"parent", "name"})


def options(name: str) -> list[str]:
  """The options (``config.model.kwargs``) model ``name`` takes, sorted; ``num_classes``
  is not one: it comes from the dataset."""
  return [o for o in _options(MODELS[name]) if o != "num_classes"]


# --- what each option accepts ---------------------------------------------------------
# A check is (predicate, what it allows); every option of every model has one (a test
# holds the tables to the models' fields), so a bad value fails when the run is
# configured instead of as a shape error (or a ZeroDivisionError) inside initialisation.


def _is_sizes(value) -> bool:
  return isinstance(value, (tuple, list)) and all(is_int(v) and v > 0 for v in value)


def _is_sizes_or_one(value) -> bool:
  return (is_int(value) and value > 0) or (_is_sizes(value) and len(value) > 0)


def _is_padding(value) -> bool:
  # What both convolutions accept: im2col takes only these two names.
  return (is_int(value) and value >= 0) or value in ("SAME", "VALID")


_POSITIVE = (lambda v: is_int(v) and v > 0, "a positive integer")
_SIZES_OR_ONE = (_is_sizes_or_one, "a positive integer or a non-empty list of positive "
                                   "integers (one per layer)")
_SIZES = (_is_sizes, "a list of positive integers (one per layer; [] for none)")
_BOOL = (lambda v: isinstance(v, bool), "True or False")
_CONV_IMPL = (lambda v: isinstance(v, str) and v in CONV_IMPLS,
              f"one of {', '.join(CONV_IMPLS)}")
_DTYPE = (lambda v: isinstance(v, str) and v in DTYPES, f"one of {', '.join(DTYPES)}")
_RESNET = {"num_filters": _POSITIVE, "conv_impl": _CONV_IMPL, "dtype": _DTYPE,
           "stem": (lambda v: v in ("cifar", "imagenet"), "'cifar' or 'imagenet'")}
OPTION_CHECKS = {
    "mlp": {"hidden_sizes": _SIZES, "dtype": _DTYPE},
    "cnn1d": {"channels": _SIZES_OR_ONE, "kernel_sizes": _SIZES_OR_ONE,
              "strides": _SIZES_OR_ONE,
              "padding": (_is_padding, "an integer >= 0 (pixels on each side), 'SAME' or "
                                       "'VALID'"),
              "use_batchnorm": _BOOL, "conv_impl": _CONV_IMPL, "dtype": _DTYPE},
    "cnn2d": {"channels": _SIZES,
              "hidden_size": (lambda v: is_int(v) and v >= 0,
                              "an integer >= 0 (0: no hidden layer)"),
              "use_batchnorm": _BOOL, "conv_impl": _CONV_IMPL, "dtype": _DTYPE},
    # Flax's dropout divides by 1 - rate: a rate of 1 would make every kept value infinite.
    "mnist_cnn": {"dropout_rate": (lambda v: is_real(v) and 0 <= v < 1, "in [0, 1)"),
                  "log_softmax_outputs": _BOOL, "conv_impl": _CONV_IMPL, "dtype": _DTYPE},
    "resnet18": _RESNET, "resnet34": _RESNET, "resnet50": _RESNET,
}


def _cnn1d_values(kwargs: Mapping, names: Sequence[str]) -> dict:
  """The cnn1d options ``names`` as ``kwargs`` set them, else the model's defaults."""
  defaults = {f.name: f.default for f in dataclasses.fields(CNN1D)}
  return {name: kwargs.get(name, defaults[name]) for name in names}


def _check_cnn1d_depth(kwargs: Mapping) -> None:
  """Per-layer lists must agree on the number of conv layers."""
  values = _cnn1d_values(kwargs, ("channels", "kernel_sizes", "strides"))
  depth = cnn1d.num_conv_layers(values["channels"], values["kernel_sizes"])
  for name, value in values.items():
    require(is_int(value) or len(value) == depth, f"{_FIELD}.{name}",
            f"one integer for all layers or a list of {depth} (one per conv layer, as "
            f"channels={values['channels']!r} and kernel_sizes={values['kernel_sizes']!r} "
            "give)", value)


def check_options(name: str, kwargs: Mapping) -> None:
  """UserError naming ``config.model.kwargs.<option>`` unless ``kwargs`` are options of
  model ``name`` with values it can be built with (before any data is loaded)."""
  if name not in MODELS:
    raise UserError(f"unknown model {name!r}; valid: {', '.join(sorted(MODELS))}"
                    f"{suggestion(name, MODELS)}")
  valid = options(name)
  for option in sorted(kwargs):
    if option not in valid:
      raise UserError(f"config.{_FIELD}.{option}: model {name!r} has no option {option!r}; "
                      f"{did_you_mean(option, valid)}valid: {', '.join(valid)}")
  for option in sorted(kwargs):
    accepts, allowed = OPTION_CHECKS[name][option]
    require(accepts(kwargs[option]), f"{_FIELD}.{option}", allowed, kwargs[option])
  if name == "cnn1d":
    _check_cnn1d_depth(kwargs)


def check_input_shape(name: str, kwargs: Mapping, input_shape: Sequence[int]) -> None:
  """UserError naming ``config.model.name`` (or the option at fault) unless model
  ``name`` with options ``kwargs`` (already checked) takes inputs of ``input_shape`` (one
  example, no batch axis): known once the data is loaded, before anything is built."""
  shape = tuple(input_shape)
  if name == "mnist_cnn":
    mnist_cnn.check_input_shape(shape)
  elif name == "cnn1d":
    require(len(shape) in (1, 2), "model.name", "a model for these inputs: cnn1d takes "
            f"signals [L] or [L, C], this dataset's inputs have shape {shape}", name)
    _check_cnn1d_length(kwargs, shape[0])
  elif name == "cnn2d" or name.startswith("resnet"):
    ranks = (2, 3) if name == "cnn2d" else (3,)
    require(len(shape) in ranks, "model.name", f"a model for these inputs: {name} takes "
            f"images {'[H, W] or ' if name == 'cnn2d' else ''}[H, W, C], this dataset's "
            f"inputs have shape {shape}", name)


def _check_cnn1d_length(kwargs: Mapping, length: int) -> None:
  """Every conv layer must leave at least one position (a kernel wider than its padded
  input, or too many strided layers, would otherwise fail inside initialisation)."""
  values = _cnn1d_values(kwargs, ("channels", "kernel_sizes", "strides", "padding"))
  depth = cnn1d.num_conv_layers(values["channels"], values["kernel_sizes"])
  per_layer = lambda v: (v,) * depth if is_int(v) else tuple(v)  # noqa: E731
  padding = values["padding"]
  for layer, (kernel, stride) in enumerate(zip(per_layer(values["kernel_sizes"]),
                                               per_layer(values["strides"]))):
    if padding == "SAME":
      after = -(-length // stride)
    else:
      pad = 0 if padding == "VALID" else padding
      after = (length + 2 * pad - kernel) // stride + 1
    require(after >= 1, f"{_FIELD}.kernel_sizes",
            f"at most the padded length of the input to each conv layer: layer {layer + 1} "
            f"gets {length} positions (padding {padding!r}, strides "
            f"{values['strides']!r}), too few for kernel {kernel}", values["kernel_sizes"])
    length = after


def get_model(name: str, *, num_classes: int, **kwargs) -> nn.Module:
  """Builds model ``name`` with ``num_classes`` logits and extra field values.

  Raises:
    UserError: for an unknown name, an option the model does not have, or a value it
      cannot be built with (``check_options``).
  """
  check_options(name, kwargs)
  # Lists (a config read back from JSON, a list on the command line) as tuples: a Flax
  # module's fields must be hashable.
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
  return MODELS[name](num_classes=num_classes, **kwargs)


__all__ = ["MODELS", "get_model", "options", "check_options", "check_input_shape", "MLP",
           "CNN1D", "CNN2D", "MnistCNN", "ResNet", "ResNet18", "ResNet34", "ResNet50",
           "BasicBlock", "Bottleneck", "Conv", "Dense", "BatchNorm", "resolve_conv_impl",
           "DTYPES", "resolve_dtype"]
