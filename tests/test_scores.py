"""Tests for jaxsel.scores: the reference's ε-entropy by hand, vmapping, registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import scores

LOG3 = 1.0986123
# Four examples, K = 3, ε = 1e-6; H̃ = −Σ_k p_k log(p_k + ε) / log 3.
#   uniform logits:         p = (1/3, 1/3, 1/3)
#                           −log(1/3 + 1e-6) / log 3 = 1.0986093 / 1.0986123 = 0.9999973
#   saturated (100, 0, 0):  p = (1, 0, 0) in float32
#                           −log(1 + 1e-6) / log 3: exactly −9.1024e-7; float32 rounds
#                           1 + 1e-6 to 1 + 8 · 2^-23 = 1.00000095, giving −8.6807e-7
#   p = (0.5, 0.5, 0):      −(2 · 0.5 · log(0.5 + 1e-6) + 0 · log(1e-6)) / log 3
#                           = 0.6931452 / 1.0986123 = 0.6309279
#   p = (0.7, 0.2, 0.1):    −(0.7 log 0.700001 + 0.2 log 0.200001 + 0.1 log 0.100001) / log 3
#                           = (0.2496715 + 0.3218866 + 0.2302575) / 1.0986123
#                           = 0.8018156 / 1.0986123 = 0.7298440
LOGITS = jnp.asarray([
    [0.0, 0.0, 0.0],
    [100.0, 0.0, 0.0],
    [np.log(0.5), np.log(0.5), -np.inf],
    [np.log(0.7), np.log(0.2), np.log(0.1)],
], jnp.float32)
UNIFORM, SATURATED_FLOAT32, HALF_HALF, FIXTURE = 0.9999973, -8.6807e-7, 0.6309279, 0.7298440

entropy = jax.jit(scores.entropy, static_argnames=("normalize", "eps"))


def test_hand_computed():
  values = np.asarray(entropy(LOGITS))
  assert values.shape == (4,)
  np.testing.assert_allclose(values[[0, 2, 3]], [UNIFORM, HALF_HALF, FIXTURE], rtol=0,
                             atol=3e-7)
  # Uniform is 1 − 2.7e-6, measurably below 1 because of ε.
  assert values[0] < 1 - 1e-6


def test_saturated_prediction_is_tiny_and_negative():
  value = float(entropy(LOGITS)[1])
  assert -1e-6 < value < 0
  np.testing.assert_allclose(value, SATURATED_FLOAT32, rtol=1e-3)


def test_unnormalised_and_without_eps():
  # In nats: (0.5, 0.5, 0) gives −log(0.5 + 1e-6) = 0.6931452. Without ε the uniform
  # prediction gives exactly log 3 = 1.0986123 nats.
  nats = entropy(LOGITS, normalize=False)
  np.testing.assert_allclose(nats[2], 0.6931452, rtol=1e-6)
  np.testing.assert_allclose(nats[0], 1.0986093, rtol=1e-6)
  exact = entropy(LOGITS[:1], normalize=False, eps=0.0)
  np.testing.assert_allclose(exact, [LOG3], rtol=1e-6)


def _random_logits():
  return jnp.asarray(3.0 * np.random.default_rng(0).standard_normal((8, 5)), jnp.float32)


def test_vmap_equals_loop_over_examples():
  logits = _random_logits()
  one = jax.jit(scores.example_entropy)
  looped = [float(one(row)) for row in logits]
  np.testing.assert_allclose(entropy(logits), looped, rtol=1e-6)
  assert np.all(np.asarray(looped) > 0) and np.all(np.asarray(looped) < 1)


def test_invariant_to_shifting_logits():
  logits = _random_logits()
  shifts = jnp.asarray(np.linspace(-20.0, 20.0, 8), jnp.float32)[:, None]
  np.testing.assert_allclose(entropy(logits + shifts), entropy(logits), atol=2e-6)


def test_single_class_cannot_be_normalised():
  with pytest.raises(ValueError, match="at least 2 classes"):
    scores.entropy(jnp.zeros((2, 1)))


def test_registry():
  assert scores.SCORES["entropy"] is scores.entropy
  assert scores.get_score("entropy") is scores.entropy
  with pytest.raises(ValueError) as info:
    scores.get_score("no_such_score")
  assert str(info.value).startswith("unknown score.name 'no_such_score'; valid: ")
  assert "entropy" in str(info.value).split("valid: ")[1].split(", ")


# K = 3 rows with hand-computed softmax: logits log(p) give p exactly (up to float32).
MARGIN_LOGITS = jnp.log(jnp.asarray([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.25, 0.25, 0.5]],
                                    jnp.float32))
MARGIN_LABELS = jnp.asarray([0, 0, 2], jnp.int32)


def test_probability_margin_by_hand():
  # 0.7 − 0.2; 0.2 − 0.5 (misclassified: negative); 0.5 − 0.25.
  np.testing.assert_allclose(scores.probability_margin(MARGIN_LOGITS, MARGIN_LABELS),
                             [0.5, -0.3, 0.25], atol=1e-6)


def test_logit_margin_by_hand():
  # log 0.7 − log 0.2 = 1.2527630; log 0.2 − log 0.5 = −0.9162907; log 0.5 − log 0.25 = log 2.
  np.testing.assert_allclose(scores.logit_margin(MARGIN_LOGITS, MARGIN_LABELS),
                             [1.2527630, -0.9162907, 0.6931472], rtol=1e-6)
  # Ties among the other classes and a label at the last position are handled.
  np.testing.assert_allclose(scores.logit_margin(jnp.asarray([[1.0, 1.0, 3.0]]),
                                                 jnp.asarray([2])), [2.0])


def test_el2n_by_hand():
  # sqrt(0.3² + 0.2² + 0.1²) = 0.3741657; sqrt(0.8² + 0.5² + 0.3²) = 0.9899495;
  # sqrt(0.25² + 0.25² + 0.5²) = 0.6123724.
  np.testing.assert_allclose(scores.el2n(MARGIN_LOGITS, MARGIN_LABELS),
                             [0.3741657, 0.9899495, 0.6123724], rtol=1e-5)
