"""Per-example (unreduced) training losses.

Every loss maps ``logits: [B, K]`` and integer ``labels: [B]`` to ``[B]``; callers apply
masks and weights and reduce. Hyper-parameters are keyword-only.
"""

from collections.abc import Callable

import jax
import optax

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """−log softmax(logits)[label] per example: [B, K], [B] -> [B]."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


LOSSES: dict[str, Callable[..., LossFn]] = {
    "cross_entropy": lambda: cross_entropy,
}


def get_loss(name: str, **kwargs) -> LossFn:
  """Looks up a per-example loss by name; kwargs are its hyper-parameters."""
  if name not in LOSSES:
    raise ValueError(f"unknown loss.name {name!r}; valid: {', '.join(sorted(LOSSES))}")
  return LOSSES[name](**kwargs)
