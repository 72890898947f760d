"""Tests for jaxsel.losses: hand-computed fixtures, identities, gradients, registry."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsel import losses
from jaxsel.config_errors import UserError

# Two examples, K = 3, logits = log p so that softmax(logits) = p.
#   i  p_i              y  p_y
#   0  (0.7, 0.2, 0.1)  0  0.7
#   1  (0.2, 0.5, 0.3)  2  0.3
PROBS = [[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]]
LABELS = [0, 2]
LOGITS = jnp.log(jnp.asarray(PROBS, jnp.float32))

# CE = −log p_y:  −log 0.7 = 0.3566749,  −log 0.3 = 1.2039728
CE = [0.3566749, 1.2039728]
# Label smoothing ε = 0.3, K = 3: q = 0.7 · e_y + 0.1 · 1.
#   0: q = (0.8, 0.1, 0.1); −(0.8 log 0.7 + 0.1 log 0.2 + 0.1 log 0.1)
#        = 0.2853400 + 0.1609438 + 0.2302585 = 0.6765423
#   1: q = (0.1, 0.1, 0.8); −(0.1 log 0.2 + 0.1 log 0.5 + 0.8 log 0.3)
#        = 0.1609438 + 0.0693147 + 0.9631782 = 1.1934368
LS_03 = [0.6765423, 1.1934368]
# Focal γ = 2: −(1 − p_y)² log p_y
#   0: 0.3² · 0.3566749 = 0.09 · 0.3566749 = 0.0321007
#   1: 0.7² · 1.2039728 = 0.49 · 1.2039728 = 0.5899467
FOCAL_2 = [0.0321007, 0.5899467]
# Focal γ = 0.5: −(1 − p_y)^0.5 log p_y
#   0: 0.5477226 · 0.3566749 = 0.1953589
#   1: 0.8366600 · 1.2039728 = 1.0073159
FOCAL_05 = [0.1953589, 1.0073159]


def _random_logits(seed=0, scale=3.0):
  """[8, 5] float32 logits and labels; numpy draws, so that no sampler is compiled."""
  logits = scale * np.random.default_rng(seed).standard_normal((8, 5))
  return jnp.asarray(logits, jnp.float32), jnp.arange(8) % 5


# Tests call losses through jit: eager dispatch compiles every primitive separately,
# which costs more than compiling each loss once.
@functools.partial(jax.jit, static_argnums=0)
def _value(loss_fn, logits, labels):
  return loss_fn(logits, labels)


@functools.partial(jax.jit, static_argnums=0)
def _grad(loss_fn, logits, labels):
  return jax.grad(lambda z: jnp.sum(loss_fn(z, labels)))(logits)


FOCAL = functools.partial(losses.focal_loss, gamma=2.0)
FOCAL_HALF = functools.partial(losses.focal_loss, gamma=0.5)
SMOOTHED = functools.partial(losses.label_smoothing_cross_entropy, smoothing=0.3)


@pytest.mark.parametrize("loss_fn, expected", [
    (losses.cross_entropy, CE),
    (SMOOTHED, LS_03),
    (FOCAL, FOCAL_2),
    (FOCAL_HALF, FOCAL_05),
], ids=["cross_entropy", "label_smoothing_0.3", "focal_2", "focal_0.5"])
def test_hand_computed(loss_fn, expected):
  values = _value(loss_fn, LOGITS, jnp.asarray(LABELS))
  assert values.shape == (2,)
  np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)


# Large logits: row [1e4, 1e4 − 3, 1e4 − 7] (all exact in float32), one row per label.
# With L = log(1 + e^−3 + e^−7) = log(1.0506990) = 0.0494556,
#   CE = L + (0, 3, 7) = (0.0494556, 3.0494556, 7.0494556)
# and, with ε = 0.1, q = 0.9 · e_y + 1/30 (Σ q = 1, so LS = L + Σ_k q_k · (0, 3, 7)_k):
#   y = 0: L + 10/30 = 0.3827889,  y = 1: L + 91/30 = 3.0827889,  y = 2: L + 199/30 = 6.6827889.
LARGE_LOGITS = jnp.asarray([[1e4, 1e4 - 3, 1e4 - 7]] * 3, jnp.float32)
LARGE_LABELS = jnp.arange(3)
LARGE_CE = [0.0494556, 3.0494556, 7.0494556]
LARGE_LS_01 = [0.3827889, 3.0827889, 6.6827889]


def _float64_log_softmax(logits):
  z = np.asarray(logits, np.float64)
  shifted = z - z.max(axis=-1, keepdims=True)
  return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def test_large_logits_match_float64_oracle():
  log_probs = _float64_log_softmax(LARGE_LOGITS)
  rows = np.arange(3)
  ce = -log_probs[rows, LARGE_LABELS]
  q = 0.9 * np.eye(3)[LARGE_LABELS] + 0.1 / 3
  smoothed = -np.sum(q * log_probs, axis=-1)
  focal = np.square(-np.expm1(-ce)) * ce
  # The oracle itself against the hand-computed values.
  np.testing.assert_allclose(ce, LARGE_CE, atol=1e-7)
  np.testing.assert_allclose(smoothed, LARGE_LS_01, atol=1e-7)

  cases = [
      (losses.cross_entropy, ce),
      (functools.partial(losses.label_smoothing_cross_entropy, smoothing=0.1), smoothed),
      (FOCAL, focal),
  ]
  for loss_fn, expected in cases:
    np.testing.assert_allclose(_value(loss_fn, LARGE_LOGITS, LARGE_LABELS), expected,
                               rtol=0, atol=1e-6)
  # The fixture discriminates: logsumexp(z) − z_y rounds logsumexp to the float32 spacing
  # at 1e4 (2^−10) and is off by 3.5e-4 here (measured), far outside 1e-6.
  unshifted = _value(optax.softmax_cross_entropy_with_integer_labels, LARGE_LOGITS,
                     LARGE_LABELS)
  assert np.min(np.abs(np.asarray(unshifted, np.float64) - ce)) > 1e-4


def test_large_logits_gradient():
  # ∂CE/∂z = softmax(z) − e_y; the shift by max z leaves it unchanged.
  probs = np.exp(_float64_log_softmax(LARGE_LOGITS))
  expected = probs - np.eye(3)[LARGE_LABELS]
  np.testing.assert_allclose(_grad(losses.cross_entropy, LARGE_LOGITS, LARGE_LABELS),
                             expected, atol=1e-6)


def test_label_smoothing_zero_is_cross_entropy():
  logits, labels = _random_logits()
  smoothed = _value(functools.partial(losses.label_smoothing_cross_entropy, smoothing=0.0),
                    logits, labels)
  np.testing.assert_allclose(smoothed, _value(losses.cross_entropy, logits, labels),
                             rtol=1e-6, atol=1e-6)


def test_label_smoothing_one_ignores_labels():
  # ε = 1: q = 1/K everywhere, loss = −(1/K) Σ_k log p_k whatever the label.
  logits, labels = _random_logits()
  value = _value(functools.partial(losses.label_smoothing_cross_entropy, smoothing=1.0),
                 logits, labels)
  log_probs = logits - np.log(np.sum(np.exp(np.asarray(logits, np.float64)), -1,
                                     keepdims=True))
  np.testing.assert_allclose(value, -np.mean(log_probs, axis=-1), rtol=1e-5)


def test_focal_gamma_zero_is_cross_entropy_exactly():
  logits, labels = _random_logits()
  np.testing.assert_array_equal(
      _value(functools.partial(losses.focal_loss, gamma=0.0), logits, labels),
      _value(losses.cross_entropy, logits, labels))


def test_gradients_match_closed_forms():
  # With p = softmax(z), y the label, p_y its probability:
  #   CE:     ∂/∂z = p − e_y
  #   LS:     ∂/∂z = p − q
  #   focal:  ∂/∂z = [γ (1 − p_y)^(γ−1) p_y log p_y − (1 − p_y)^γ] · (e_y − p)
  # Example 0 of the fixture (p = (0.7, 0.2, 0.1), y = 0), by hand:
  #   CE:         (−0.3, 0.2, 0.1)
  #   LS ε = 0.3: (0.7 − 0.8, 0.2 − 0.1, 0.1 − 0.1) = (−0.1, 0.1, 0.0)
  #   focal γ = 2: factor 2 · 0.3 · 0.7 · log 0.7 − 0.09 = −0.1498035 − 0.09 = −0.2398035,
  #                times (0.3, −0.2, −0.1) = (−0.0719410, 0.0479607, 0.0239803)
  labels = jnp.asarray(LABELS)
  cases = [
      (losses.cross_entropy, [-0.3, 0.2, 0.1]),
      (SMOOTHED, [-0.1, 0.1, 0.0]),
      (FOCAL, [-0.0719410, 0.0479607, 0.0239803]),
  ]
  for loss_fn, expected in cases:
    np.testing.assert_allclose(_grad(loss_fn, LOGITS, labels)[0], expected, atol=1e-6)


@pytest.mark.parametrize("loss_fn", [FOCAL_HALF, FOCAL], ids=["focal_0.5", "focal_2"])
def test_focal_gradient_closed_form_on_random_logits(loss_fn):
  gamma = loss_fn.keywords["gamma"]
  logits, labels = _random_logits(1)
  probs = np.asarray(jax.nn.softmax(logits), np.float64)
  p_y = probs[np.arange(8), labels]
  factor = gamma * (1 - p_y) ** (gamma - 1) * p_y * np.log(p_y) - (1 - p_y) ** gamma
  expected = factor[:, None] * (np.eye(5)[labels] - probs)
  np.testing.assert_allclose(_grad(loss_fn, logits, labels), expected, atol=1e-5)


@functools.partial(jax.jit, static_argnums=0)
def _directional_derivatives(loss_fn, logits, labels, directions, step):
  """(autodiff, central difference) derivatives of Σ loss along each of directions."""
  total = lambda z: jnp.sum(loss_fn(z, labels))
  grad = jax.grad(total)(logits)
  autodiff = jnp.einsum("dbk,bk->d", directions, grad)
  central = jax.vmap(
      lambda v: (total(logits + step * v) - total(logits - step * v)) / (2 * step))(
          directions)
  return autodiff, central


@pytest.mark.parametrize("loss_fn", [
    losses.cross_entropy,
    SMOOTHED,
    FOCAL_HALF,
    FOCAL,
], ids=["cross_entropy", "label_smoothing", "focal_0.5", "focal_2"])
def test_gradients_match_finite_differences(loss_fn):
  # Moderate logits keep p_y away from 1, where float32 differences are too coarse; the
  # step 1e-2 balances float32 rounding (~1e-5 here) against truncation (~1e-4).
  logits, labels = _random_logits(2, scale=1.0)
  directions = np.random.default_rng(3).standard_normal((16, 8, 5)).astype(np.float32)
  autodiff, central = _directional_derivatives(loss_fn, logits, labels, directions, 1e-2)
  np.testing.assert_allclose(autodiff, central, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("loss_fn", [FOCAL_HALF, FOCAL], ids=["focal_0.5", "focal_2"])
def test_focal_gradient_finite_when_saturated(loss_fn):
  # p_y rounds to 1 in float32: (1 − p_y)^γ has an infinite derivative there for γ < 1.
  logits = jnp.asarray([[100.0, 0.0, 0.0], [30.0, 0.0, 0.0]])
  labels = jnp.asarray([0, 0])
  grads = _grad(loss_fn, logits, labels)
  assert np.all(np.isfinite(grads)), grads
  np.testing.assert_allclose(_value(loss_fn, logits, labels), 0.0, atol=1e-12)
  np.testing.assert_allclose(grads, 0.0, atol=1e-6)


def test_registry_names():
  assert sorted(losses.LOSSES) == ["cross_entropy", "focal", "label_smoothing"]


def test_get_loss_builds_each_loss():
  labels = jnp.asarray(LABELS)
  assert losses.get_loss("cross_entropy") is losses.cross_entropy
  np.testing.assert_allclose(
      _value(losses.get_loss("label_smoothing", smoothing=0.3), LOGITS, labels), LS_03,
      rtol=1e-5)
  np.testing.assert_allclose(_value(losses.get_loss("focal", gamma=2), LOGITS, labels),
                             FOCAL_2, rtol=1e-5)


def test_get_loss_unknown_name():
  with pytest.raises(ValueError) as info:
    losses.get_loss("x")
  # Names the field and lists the valid names (at least these; a family may add more).
  assert str(info.value).startswith("unknown loss.name 'x'; valid: ")
  assert {"cross_entropy", "focal", "label_smoothing"} <= set(
      str(info.value).split("valid: ")[1].split(", "))


@pytest.mark.parametrize("name, kwargs, parameter", [
    ("label_smoothing", {"smoothing": -0.1}, "smoothing"),
    ("label_smoothing", {"smoothing": 1.5}, "smoothing"),
    ("label_smoothing", {"smoothing": float("nan")}, "smoothing"),
    ("label_smoothing", {"smoothing": "0.1"}, "smoothing"),
    ("focal", {"gamma": -1.0}, "gamma"),
    ("focal", {"gamma": True}, "gamma"),
])
def test_get_loss_bad_hyper_parameters(name, kwargs, parameter):
  with pytest.raises(ValueError, match=parameter):
    losses.get_loss(name, **kwargs)


def test_get_loss_missing_or_unexpected_hyper_parameters():
  with pytest.raises(TypeError):
    losses.get_loss("focal")
  with pytest.raises(TypeError):
    losses.get_loss("cross_entropy", gamma=2.0)


def test_boundary_hyper_parameters_accepted():
  losses.get_loss("label_smoothing", smoothing=0)
  losses.get_loss("label_smoothing", smoothing=1.0)
  losses.get_loss("focal", gamma=0.0)
  losses.get_loss("focal", gamma=np.float32(0.5))


def test_infinite_gamma_is_refused():
  # (1 − p)^∞ is 0 and its gradient NaN.
  with pytest.raises(UserError, match=r"gamma must be a finite real >= 0.0, got inf"):
    losses.get_loss("focal", gamma=float("inf"))


def test_config_errors_name_the_field_even_of_an_unused_loss():
  from configs import default  # pylint: disable=import-outside-toplevel
  config = default.get_config()
  with config.unlocked():
    config.loss.focal_gamma = float("nan")
  losses.from_config(config.loss)  # cross-entropy does not read it ...
  with pytest.raises(UserError, match=r"^config.loss.focal_gamma: loss hyper-parameter gamma "
                                      r"must be a finite real >= 0.0, got nan$"):
    losses.check_config(config.loss)  # ... but a NaN there is still a mistake
  with config.unlocked():
    config.loss.name = "focal"
  with pytest.raises(UserError, match="config.loss.focal_gamma"):
    losses.from_config(config.loss)
  with config.unlocked():
    config.loss.name = "focall"
  with pytest.raises(UserError, match="unknown config.loss.name 'focall'; valid: "
                                      "cross_entropy, focal, label_smoothing; did you mean "
                                      "'focal'"):
    losses.check_config(config.loss)
