"""1-d CNN family for MNIST-1D.

The default is the CNN of the MNIST-1D paper (Greydanus, 2020):
conv1d 1->25 k5 s2 p1, 25->25 k3 s2 p1, 25->25 k3 s2 p1, each + ReLU, then
flatten (25 channels x 5 positions = 125) and a linear layer to the classes.
A length-40 input shrinks 40 -> 19 -> 10 -> 5.

Wider or deeper variants come from the fields, e.g. ``channels=64`` or
``channels=(32, 64, 64, 64), kernel_sizes=(5, 3, 3, 3), strides=(2, 2, 2, 1)``.
Note the flattened features are position-major ([B, L, C] -> [B, L*C]) while
torch flattens channel-major; this only matters when porting torch weights.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxsel.models import layers


def num_conv_layers(channels: int | Sequence[int], kernel_sizes: int | Sequence[int]) -> int:
  """The depth: one conv layer per entry of ``channels``, or of ``kernel_sizes`` when
  ``channels`` is one width for all layers (one layer if both are single integers)."""
  if not isinstance(channels, int):
    return len(channels)
  return 1 if isinstance(kernel_sizes, int) else len(kernel_sizes)


def _per_layer(value: int | Sequence[int], num_layers: int,
               name: str) -> tuple[int, ...]:
  """Broadcasts an int to every layer, or checks a sequence has one per layer."""
  if isinstance(value, int):
    return (value,) * num_layers
  value = tuple(value)
  if len(value) != num_layers:
    raise ValueError(f"{name} has {len(value)} entries but the CNN has "
                     f"{num_layers} conv layers")
  return value


class CNN1D(nn.Module):
  """Conv1d (+ optional BN) + ReLU stack, flatten, Dense head.

  Attributes:
    num_classes: number of logits.
    channels: output channels per conv layer, or one width for all layers
      (then the depth is len(kernel_sizes)).
    kernel_sizes: kernel size per layer (or one for all).
    strides: stride per layer (or one for all).
    padding: zero padding on both sides of each conv (torch's ``padding=p``),
      or 'SAME' / 'VALID'.
    use_batchnorm: conv (no bias, as BN cancels it) -> BN -> ReLU if True.
    conv_impl: 'auto' | 'im2col' | 'xla', see layers.resolve_conv_impl.
    dtype: compute precision, 'float32' or 'bfloat16' (params and logits stay float32;
      see the models package docstring).
  """
  num_classes: int
  channels: int | Sequence[int] = (25, 25, 25)
  kernel_sizes: int | Sequence[int] = (5, 3, 3)
  strides: int | Sequence[int] = (2, 2, 2)
  padding: int | str = 1
  use_batchnorm: bool = False
  conv_impl: str = "auto"
  dtype: str = "float32"

  def _layer_specs(self):
    depth = num_conv_layers(self.channels, self.kernel_sizes)
    return zip(_per_layer(self.channels, depth, "channels"),
               _per_layer(self.kernel_sizes, depth, "kernel_sizes"),
               _per_layer(self.strides, depth, "strides"))

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None,
               return_features: bool = False):
    """x: [B, L] (or [B, L, C]) -> logits [B, num_classes] (and features [B, D]).

    ``mask`` [B] keeps padding rows out of BatchNorm statistics.
    """
    dtype = layers.resolve_dtype(self.dtype)
    x = x.astype(dtype)
    if x.ndim == 2:
      x = x[..., None]  # a single input channel
    impl = layers.resolve_conv_impl(self.conv_impl)
    for features, kernel, stride in self._layer_specs():
      x = layers.Conv(features, (kernel,), stride, self.padding,
                      use_bias=not self.use_batchnorm, impl=impl, dtype=dtype)(x)
      if self.use_batchnorm:
        x = layers.BatchNorm(dtype=dtype)(x, use_running_average=not train, mask=mask)
      x = nn.relu(x)
    features = x.reshape(x.shape[0], -1)
    logits = layers.Dense(self.num_classes, dtype=dtype)(features)
    return layers.model_outputs(logits, features, return_features)
