"""The MNIST CNN of example forgetting (Toneva et al., 2019; ALGORITHMS.md D.7).

conv 5x5 'VALID' 1->10 -> max-pool 2 -> ReLU -> conv 5x5 'VALID' 10->20 [channel dropout]
-> max-pool 2 -> ReLU -> flatten (20 x 4 x 4 = 320) -> Dense 50 -> ReLU [dropout] ->
Dense head, the reference's ``run_mnist.py:Net`` (the classic PyTorch MNIST example). A
28x28 input shrinks 28 -> 24 -> 12 -> 8 -> 4. 21,840 params with 10 classes:
260 + 5,020 + 16,050 + 510.

As in cnn1d, the flattened features are position-major ([B, 4, 4, 20] -> [B, 320]) while
torch flattens channel-major; this only matters when porting torch weights.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsel.config_errors import UserError
from jaxsel.models import layers

# Two 'VALID' 5x5 convs and two 2x2 pools map only 28x28 to the 4x4 that the reference's
# 320-wide hidden layer is built for.
INPUT_SIDE = 28


def check_input_shape(input_shape) -> None:
  """UserError unless one example of ``input_shape`` is [28, 28] or [28, 28, C]."""
  shape = tuple(input_shape)
  if len(shape) not in (2, 3) or shape[:2] != (INPUT_SIDE, INPUT_SIDE):
    raise UserError(f"model 'mnist_cnn' needs 28x28 inputs [28, 28(, C)] (its hidden layer "
                    f"expects 20 x 4 x 4 = 320 features), got inputs of shape {shape}; "
                    "choose another config.model.name for this dataset")


class MnistCNN(nn.Module):
  """The forgetting paper's MNIST network.

  Attributes:
    num_classes: number of outputs.
    dropout_rate: p of the channel dropout after conv2 (torch's Dropout2d: whole feature
      maps) and of the dropout after the hidden layer. The reference uses 0.5 for both;
      its README runs without dropout, hence the default 0.
    log_softmax_outputs: return log-probabilities, as the reference's network does, so
      that margins are in log-probability space (ALGORITHMS.md D.10.5). Losses do not
      change: log_softmax of log-probabilities is the identity up to rounding.
    conv_impl: 'auto' | 'im2col' | 'xla', see layers.resolve_conv_impl.
    dtype: compute precision, 'float32' or 'bfloat16' (params and outputs stay float32,
      and the log-softmax runs on the float32 logits; see the models package docstring).
  """
  num_classes: int
  dropout_rate: float = 0.0
  log_softmax_outputs: bool = False
  conv_impl: str = "auto"
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None,
               return_features: bool = False):
    """x: [B, 28, 28, C] (or [B, 28, 28]) -> outputs [B, num_classes] (+ features [B, 50]).

    ``mask`` is accepted for the common model interface; without BatchNorm it changes
    nothing. Dropout (train mode, ``dropout_rate`` > 0) draws from the ``dropout`` stream.
    """
    del mask
    dtype = layers.resolve_dtype(self.dtype)
    x = x.astype(dtype)
    check_input_shape(x.shape[1:])
    if x.ndim == 3:
      x = x[..., None]  # a single input channel
    impl = layers.resolve_conv_impl(self.conv_impl)
    x = layers.Conv(10, (5, 5), 1, "VALID", impl=impl, dtype=dtype)(x)
    x = nn.relu(layers.max_pool_2x2(x))
    x = layers.Conv(20, (5, 5), 1, "VALID", impl=impl, dtype=dtype)(x)
    # One draw per (example, channel), shared by the 8x8 positions: Dropout2d.
    x = nn.Dropout(self.dropout_rate, broadcast_dims=(1, 2), deterministic=not train)(x)
    x = nn.relu(layers.max_pool_2x2(x))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(layers.Dense(50, dtype=dtype)(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    # float32 before the log-softmax, so that it does not round in bfloat16.
    outputs = layers.Dense(self.num_classes, dtype=dtype)(x).astype(jnp.float32)
    if self.log_softmax_outputs:
      outputs = jax.nn.log_softmax(outputs, axis=-1)
    return layers.model_outputs(outputs, x, return_features)
