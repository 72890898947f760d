"""Stateless per-example priority scores computed from logits.

A score maps ``logits: [B, K]`` to ``[B]``; a larger score means a higher priority for
selection. Each score is written for one example and ``jax.vmap``-ed over the batch.

Calibrated sample prioritization (Tata et al., 2022, "Can Calibration Improve Sample
Prioritization?") ranks examples by the predictive entropy of a (calibrated) model.
"""

from collections.abc import Callable
import functools
import math

import jax
import jax.numpy as jnp

ScoreFn = Callable[[jax.Array], jax.Array]


def example_entropy(logits: jax.Array, *, normalize: bool = True,
                    eps: float = 1e-6) -> jax.Array:
  """Predictive entropy of one example: logits [K] -> [].

    H̃(p) = −Σ_k p_k · log(p_k + ε) / log K,        p = softmax(logits),

  in nats divided by log K (so ≈ 1 for the uniform distribution) if ``normalize``, else in
  nats. The ε = 1e-6 inside the log follows the reference implementation; it keeps the log
  finite for p_k = 0 but also makes a saturated prediction (p = e_y) score
  −log(1 + ε) / log K ≈ −ε / log K, a tiny negative value, rather than 0.
  """
  num_classes = logits.shape[-1]
  if normalize and num_classes < 2:
    raise ValueError(f"normalised entropy needs at least 2 classes, got K = {num_classes}")
  probs = jax.nn.softmax(logits)
  value = -jnp.sum(probs * jnp.log(probs + eps))
  if normalize:
    value = value / math.log(num_classes)
  return value


def entropy(logits: jax.Array, *, normalize: bool = True, eps: float = 1e-6) -> jax.Array:
  """Normalised predictive entropy per example: [B, K] -> [B]; see ``example_entropy``.

  Larger = more uncertain = higher priority.
  """
  return jax.vmap(functools.partial(example_entropy, normalize=normalize, eps=eps))(logits)


SCORES: dict[str, ScoreFn] = {
    "entropy": entropy,
}


def get_score(name: str) -> ScoreFn:
  """Looks up a per-example score ([B, K] -> [B]) by name."""
  if name not in SCORES:
    raise ValueError(f"unknown score.name {name!r}; valid: {', '.join(sorted(SCORES))}")
  return SCORES[name]
