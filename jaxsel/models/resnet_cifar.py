"""CIFAR-style ResNets (He et al., 2016, as commonly adapted to 32x32 inputs), and the
ImageNet stem.

Stem (``stem='cifar'``, the default): conv3x3 64, stride 1, no bias -> BN -> ReLU, and no
max-pool, so a 32x32 image stays 32x32 in the first stage. ``stem='imagenet'``: the
original network's conv7x7 stride 2 -> BN -> ReLU -> 3x3 max-pool stride 2 (a 224x224 image
is 56x56 in the first stage), as torchvision's ImageNet ResNets, which the coverage-centric
coreset reference trains on ImageNet. Four stages of widths 64/128/256/512
(times the block's expansion), the first block of stages 2-4 striding by 2.
Head: global average pooling -> Dense. With 10 classes the parameter counts
(BN scale/bias included, running statistics excluded) are those of the usual
PyTorch CIFAR ResNets: ResNet-18 11,173,962; ResNet-34 21,282,122;
ResNet-50 23,520,842.
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax

from jaxsel.models import layers


def _conv_bn(x, features, kernel, strides, impl, train, mask, dtype):
  """conv (no bias, BN follows) -> BN, computed in ``dtype``. Must be called inside a
  compact method."""
  x = layers.Conv(features, (kernel, kernel), strides, kernel // 2,
                  use_bias=False, impl=impl, dtype=dtype)(x)
  return layers.BatchNorm(dtype=dtype)(x, use_running_average=not train, mask=mask)


def _shortcut(x, features, strides, impl, train, mask, dtype):
  """Identity, or a strided 1x1 conv + BN where the shape changes."""
  if strides == 1 and x.shape[-1] == features:
    return x
  return _conv_bn(x, features, 1, strides, impl, train, mask, dtype)


class BasicBlock(nn.Module):
  """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU. Output: features.

  ``dtype``: compute precision, as ResNet's.
  """
  features: int
  strides: int = 1
  conv_impl: str = "auto"
  dtype: str = "float32"
  expansion = 1

  @nn.compact
  def __call__(self, x, *, train: bool, mask=None):
    """x: [B, H, W, Cin] -> [B, H/strides, W/strides, features]."""
    dtype = layers.resolve_dtype(self.dtype)
    x = x.astype(dtype)
    y = _conv_bn(x, self.features, 3, self.strides, self.conv_impl, train, mask, dtype)
    y = _conv_bn(nn.relu(y), self.features, 3, 1, self.conv_impl, train, mask, dtype)
    shortcut = _shortcut(x, self.features, self.strides, self.conv_impl, train,
                         mask, dtype)
    return nn.relu(y + shortcut)


class Bottleneck(nn.Module):
  """conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1(4x)-BN, shortcut, ReLU.

  The stride sits on the 3x3 conv, as in torchvision ("ResNet v1.5").
  Output: 4 * features channels. ``dtype``: compute precision, as ResNet's.
  """
  features: int
  strides: int = 1
  conv_impl: str = "auto"
  dtype: str = "float32"
  expansion = 4

  @nn.compact
  def __call__(self, x, *, train: bool, mask=None):
    """x: [B, H, W, Cin] -> [B, H/strides, W/strides, 4 * features]."""
    out = self.features * self.expansion
    dtype = layers.resolve_dtype(self.dtype)
    x = x.astype(dtype)
    y = _conv_bn(x, self.features, 1, 1, self.conv_impl, train, mask, dtype)
    y = _conv_bn(nn.relu(y), self.features, 3, self.strides, self.conv_impl,
                 train, mask, dtype)
    y = _conv_bn(nn.relu(y), out, 1, 1, self.conv_impl, train, mask, dtype)
    shortcut = _shortcut(x, out, self.strides, self.conv_impl, train, mask, dtype)
    return nn.relu(y + shortcut)


class ResNet(nn.Module):
  """CIFAR ResNet.

  Attributes:
    stage_sizes: number of blocks in each of the four stages.
    block_cls: BasicBlock or Bottleneck.
    num_classes: number of logits.
    num_filters: width of the stem and first stage; stage i has
      num_filters * 2**i (times the block expansion).
    conv_impl: 'auto' | 'im2col' | 'xla', see layers.resolve_conv_impl.
    dtype: compute precision, 'float32' or 'bfloat16' (params, BatchNorm statistics
      and logits stay float32; see the models package docstring).
    stem: 'cifar' (conv3x3 stride 1) or 'imagenet' (conv7x7 stride 2, 3x3 max-pool
      stride 2).
  """
  stage_sizes: Sequence[int]
  block_cls: Any
  num_classes: int
  num_filters: int = 64
  conv_impl: str = "auto"
  dtype: str = "float32"
  stem: str = "cifar"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None,
               return_features: bool = False):
    """x: [B, H, W, C] -> logits [B, num_classes] (and features [B, D]).

    ``mask`` [B] keeps padding rows out of every BatchNorm's statistics.
    """
    impl = layers.resolve_conv_impl(self.conv_impl)
    dtype = layers.resolve_dtype(self.dtype)
    x = x.astype(dtype)
    if self.stem == "imagenet":
      x = nn.relu(_conv_bn(x, self.num_filters, 7, 2, impl, train, mask, dtype))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    else:
      x = nn.relu(_conv_bn(x, self.num_filters, 3, 1, impl, train, mask, dtype))
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = self.block_cls(self.num_filters * 2**stage, strides,
                           conv_impl=impl, dtype=self.dtype)(x, train=train, mask=mask)
    features = layers.global_avg_pool(x)
    logits = layers.Dense(self.num_classes, dtype=dtype)(features)
    return layers.model_outputs(logits, features, return_features)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2),
                             block_cls=BasicBlock)
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3),
                             block_cls=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3),
                             block_cls=Bottleneck)
