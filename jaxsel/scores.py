"""Stateless per-example scores computed from logits (and labels).

A score maps ``logits: [B, K]`` (and, for the label-aware ones, ``labels: [B]``) to ``[B]``.
``entropy`` is written for one example and ``jax.vmap``-ed over the batch; the margins and
EL2N are batched expressions. Whether a large value means "train on it" depends on the
method: the calibrated-prioritization paper prefers high entropy, coverage-centric coresets
call low-margin and high-EL2N examples hard.

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


def _true_and_best_other(values: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(values[i, y_i], max over k ≠ y_i of values[i, k]): [B, K], [B] -> [B], [B]."""
  true = jnp.take_along_axis(values, labels[:, None], axis=-1)[:, 0]
  others = jnp.where(jax.nn.one_hot(labels, values.shape[-1], dtype=bool), -jnp.inf, values)
  return true, jnp.max(others, axis=-1)


def probability_margin(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """p_y − max_{k≠y} p_k per example: [B, K], [B] -> [B] in [−1, 1].

  Summed over training, this is the coverage-centric coreset reference's "accumulated
  margin" (ALGORITHMS.md C.3); negative while the example is misclassified.
  """
  return jnp.subtract(*_true_and_best_other(jax.nn.softmax(logits), labels))


def logit_margin(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """z_y − max_{k≠y} z_k per example: [B, K], [B] -> [B].

  Averaged over training, this is the area under the margin (AUM) of Pleiss et al., 2020,
  "Identifying Mislabeled Data using the Area Under the Margin Ranking".
  """
  return jnp.subtract(*_true_and_best_other(logits, labels))


def el2n(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """‖softmax(z) − e_y‖₂ per example: [B, K], [B] -> [B] in [0, √2].

  The error L2-norm of Paul et al., 2021, "Deep Learning on a Data Diet".
  """
  one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
  return jnp.sqrt(jnp.sum(jnp.square(jax.nn.softmax(logits) - one_hot), axis=-1))


SCORES: dict[str, ScoreFn] = {
    "entropy": entropy,
}


def get_score(name: str) -> ScoreFn:
  """Looks up a per-example score ([B, K] -> [B]) by name."""
  if name not in SCORES:
    raise ValueError(f"unknown score.name {name!r}; valid: {', '.join(sorted(SCORES))}")
  return SCORES[name]
