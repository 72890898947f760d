"""Multi-layer perceptron: flatten, then Dense + ReLU layers, then a Dense head."""

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxsel.models import layers


class MLP(nn.Module):
  """ReLU MLP on flattened inputs (any [B, ...] shape).

  Attributes:
    num_classes: number of logits.
    hidden_sizes: width of each hidden layer, input side first.
    dtype: compute precision, 'float32' or 'bfloat16' (params and logits stay float32;
      see the models package docstring).
  """
  num_classes: int
  hidden_sizes: Sequence[int] = (100, 100)
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None,
               return_features: bool = False):
    """x: [B, ...] -> logits [B, num_classes] (and features [B, D]).

    ``train`` and ``mask`` are accepted for the common model interface; an MLP
    has no batch statistics, so neither changes anything.
    """
    del train, mask
    dtype = layers.resolve_dtype(self.dtype)
    x = x.reshape(x.shape[0], -1).astype(dtype)
    for width in self.hidden_sizes:
      x = nn.relu(layers.Dense(width, dtype=dtype)(x))
    logits = layers.Dense(self.num_classes, dtype=dtype)(x)
    return layers.model_outputs(logits, x, return_features)
