"""Small 2-d CNN for 28x28 / 32x32 images.

Each stage is conv3x3 'SAME' (+ optional BN) + ReLU + 2x2 max-pool; then flatten,
a hidden Dense + ReLU, and the Dense head. The default (32, 64) channels with a
128-unit hidden layer has 421,642 params on 28x28x1 inputs and 545,098 on
32x32x3 inputs (10 classes).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxsel.models import layers


class CNN2D(nn.Module):
  """conv-pool stages, flatten, Dense(hidden) + ReLU, Dense head.

  Attributes:
    num_classes: number of logits.
    channels: output channels of each conv stage.
    hidden_size: width of the hidden Dense layer (0 for none).
    use_batchnorm: conv (no bias) -> BN -> ReLU if True.
    conv_impl: 'auto' | 'im2col' | 'xla', see layers.resolve_conv_impl.
    dtype: compute precision, 'float32' or 'bfloat16' (params and logits stay float32;
      see the models package docstring).
  """
  num_classes: int
  channels: Sequence[int] = (32, 64)
  hidden_size: int = 128
  use_batchnorm: bool = False
  conv_impl: str = "auto"
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None,
               return_features: bool = False):
    """x: [B, H, W, C] (or [B, H, W]) -> logits [B, num_classes] (+ features).

    ``mask`` [B] keeps padding rows out of BatchNorm statistics.
    """
    dtype = layers.resolve_dtype(self.dtype)
    x = x.astype(dtype)
    if x.ndim == 3:
      x = x[..., None]  # a single input channel
    impl = layers.resolve_conv_impl(self.conv_impl)
    for features in self.channels:
      x = layers.Conv(features, (3, 3), 1, "SAME",
                      use_bias=not self.use_batchnorm, impl=impl, dtype=dtype)(x)
      if self.use_batchnorm:
        x = layers.BatchNorm(dtype=dtype)(x, use_running_average=not train, mask=mask)
      x = layers.max_pool_2x2(nn.relu(x))
    x = x.reshape(x.shape[0], -1)
    if self.hidden_size:
      x = nn.relu(layers.Dense(self.hidden_size, dtype=dtype)(x))
    logits = layers.Dense(self.num_classes, dtype=dtype)(x)
    return layers.model_outputs(logits, x, return_features)
