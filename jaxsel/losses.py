"""Per-example (unreduced) training losses.

Every loss maps ``logits: [B, K]`` and integer ``labels: [B]`` to ``[B]``; callers apply
masks and weights and reduce. Hyper-parameters are keyword-only.

Calibrated sample prioritization (Tata et al., 2022, "Can Calibration Improve Sample
Prioritization?") trains the selecting model with a calibration-improving loss; besides
plain cross-entropy this module provides the two it uses, label smoothing and focal loss.
Mixup, the third, changes the inputs as well and lives in ``jaxsel.augment``.
"""

from collections.abc import Callable
import functools
import math
import numbers

import jax
import jax.numpy as jnp
import optax

from jaxsel.config_errors import UserError, suggestion

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """−log softmax(logits)[label] per example: [B, K], [B] -> [B].

    CE = −log_softmax(z)_y = −((z_y − max z) − log Σ_k exp(z_k − max z)).

  The label's entry is taken *after* the shift by max z. The shorter logsumexp(z) − z_y
  (optax's ``softmax_cross_entropy_with_integer_labels``) subtracts two numbers of the
  size of the logits, so its result carries their rounding: at logits near 1e4 (float32
  spacing 2^−10) it is off by up to ~4.9e-4, whereas the shifted terms here are small and
  the result is accurate to ~1e-7. The gradient is the same, softmax(z) − e_y.
  """
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]


def label_smoothing_cross_entropy(logits: jax.Array, labels: jax.Array, *,
                                  smoothing: float) -> jax.Array:
  """Cross-entropy against smoothed targets: [B, K], [B] -> [B].

  With ε = ``smoothing`` and K classes the target of an example with label y is

    q = (1 − ε) · e_y + ε / K · 1,        loss = −Σ_k q_k · log softmax(logits)_k.

  The uniform mass ε / K goes to all K classes, the true one included (so the true class
  gets 1 − ε + ε / K), as in PyTorch's ``CrossEntropyLoss(label_smoothing=ε)``. ε = 0 is
  plain cross-entropy. Szegedy et al., 2016, "Rethinking the Inception Architecture".
  """
  one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
  targets = optax.smooth_labels(one_hot, smoothing)
  # optax.softmax_cross_entropy is −Σ_k q_k · jax.nn.log_softmax(logits)_k (checked in
  # optax 0.2.8), i.e. the shifted, accurate form that ``cross_entropy`` uses, not
  # logsumexp(z) − Σ_k q_k z_k; so ε = 0 agrees with ``cross_entropy`` to rounding.
  return optax.softmax_cross_entropy(logits, targets)


def focal_loss(logits: jax.Array, labels: jax.Array, *, gamma: float) -> jax.Array:
  """Focal loss with a fixed focusing parameter, no class weights: [B, K], [B] -> [B].

    FL = −(1 − p_y)^γ · log p_y,        p_y = softmax(logits)_y,  γ = ``gamma`` ≥ 0.

  γ = 0 is exactly cross-entropy. Lin et al., 2017, "Focal Loss for Dense Object
  Detection"; Mukhoti et al., 2020, "Calibrating Deep Neural Networks using Focal Loss".
  """
  nll = cross_entropy(logits, labels)
  # 1 − p_y from log p_y without the cancellation of 1 − exp(log p_y).
  one_minus_p = -jnp.expm1(-nll)
  # For 0 < γ < 1 the derivative γ(1 − p)^(γ−1) is infinite at p_y = 1, which a saturated
  # float32 softmax does reach; times the zero derivative of p_y that gives NaN. Clipping
  # at the smallest normal number keeps it finite; where the clip is active −log p_y is
  # itself below that number, so the loss is unchanged for any practical purpose.
  one_minus_p = jnp.maximum(one_minus_p, jnp.finfo(one_minus_p.dtype).tiny)
  return jnp.power(one_minus_p, gamma) * nll


def _check_range(name: str, value, low: float, high: float = math.inf) -> float:
  """``float(value)`` if low ≤ value ≤ high and finite, else a UserError naming the
  parameter (an infinite γ would make (1 − p)^γ 0 and its gradient NaN)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
      low <= value <= high and math.isfinite(value)):
    allowed = f"in [{low}, {high}]" if high < math.inf else f"a finite real >= {low}"
    raise UserError(f"loss hyper-parameter {name} must be {allowed}, got {value!r}")
  return float(value)


def _label_smoothing(*, smoothing: float) -> LossFn:
  smoothing = _check_range("smoothing", smoothing, 0.0, 1.0)
  return functools.partial(label_smoothing_cross_entropy, smoothing=smoothing)


def _focal(*, gamma: float) -> LossFn:
  gamma = _check_range("gamma", gamma, 0.0)
  return functools.partial(focal_loss, gamma=gamma)


LOSSES: dict[str, Callable[..., LossFn]] = {
    "cross_entropy": lambda: cross_entropy,
    "label_smoothing": _label_smoothing,
    "focal": _focal,
}


def get_loss(name: str, **kwargs) -> LossFn:
  """Looks up a per-example loss by name; kwargs are its hyper-parameters.

  ``"cross_entropy"`` takes none, ``"label_smoothing"`` takes ``smoothing`` in [0, 1] and
  ``"focal"`` takes a finite ``gamma`` ≥ 0. Raises ``UserError`` (a ``ValueError``) for
  an unknown name or an out-of-range hyper-parameter, ``TypeError`` for a missing or
  unexpected one.
  """
  if name not in LOSSES:
    raise UserError(f"unknown loss.name {name!r}; valid: {', '.join(sorted(LOSSES))}"
                    f"{suggestion(name, LOSSES)}")
  return LOSSES[name](**kwargs)


# The config field of each loss's hyper-parameter: {loss name: {keyword: config.loss field}}.
_CONFIG_FIELDS = {"label_smoothing": {"smoothing": "label_smoothing"},
                  "focal": {"gamma": "focal_gamma"}}


def _build(config, name: str) -> LossFn:
  """Loss ``name`` with its hyper-parameters from ``config.loss``; a bad one is a UserError
  naming its config field (``config.loss.focal_gamma``, ...)."""
  fields = _CONFIG_FIELDS.get(name, {})
  try:
    return get_loss(name, **{keyword: config[field] for keyword, field in fields.items()})
  except UserError as error:
    field = next(iter(fields.values()))
    raise UserError(f"config.loss.{field}: {error}") from error


def _check_name(name) -> None:
  if not isinstance(name, str) or name not in LOSSES:
    raise UserError(f"unknown config.loss.name {name!r}; valid: "
                    f"{', '.join(sorted(LOSSES))}{suggestion(name, LOSSES)}")


def check_config(config) -> None:
  """UserError naming the ``config.loss`` field for a bad name or hyper-parameter, every
  loss's field included (a NaN left in an unused one is still a mistake)."""
  _check_name(config.name)
  for name in _CONFIG_FIELDS:
    _build(config, name)


def from_config(config) -> LossFn:
  """``config.loss`` (``name`` and the chosen loss's own field) -> a per-example loss.

  Errors name the config field: ``config.loss.name``, ``config.loss.focal_gamma``, ...
  """
  _check_name(config.name)
  return _build(config, config.name)
