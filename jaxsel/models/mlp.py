"""Multi-layer perceptron: flatten, then Dense + ReLU layers, then a Dense head."""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsel.models import layers


class MLP(nn.Module):
  """ReLU MLP on flattened inputs (any [B, ...] shape).

  Attributes:
    num_classes: number of logits.
    hidden_sizes: width of each hidden layer, input side first.
  """
  num_classes: int
  hidden_sizes: Sequence[int] = (100, 100)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None,
               return_features: bool = False):
    """x: [B, ...] -> logits [B, num_classes] (and features [B, D]).

    ``train`` and ``mask`` are accepted for the common model interface; an MLP
    has no batch statistics, so neither changes anything.
    """
    del train, mask
    x = x.reshape(x.shape[0], -1).astype(jnp.float32)
    for width in self.hidden_sizes:
      x = nn.relu(layers.Dense(width)(x))
    logits = layers.Dense(self.num_classes)(x)
    return (logits, x) if return_features else logits
