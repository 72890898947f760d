"""Tests for jaxsel.models.mnist_cnn: the forgetting paper's MNIST CNN (ALGORITHMS.md D.7)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import models

# Variables and inputs come from numpy: a jax.random call per new shape would be a
# separate compilation.
_RNG = np.random.default_rng(1)


def _abstract_init(model, shape):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))


def _random_variables(model, shape):
  return jax.tree.map(
      lambda leaf: jnp.asarray(_RNG.uniform(-0.5, 0.5, leaf.shape), jnp.float32),
      _abstract_init(model, shape))


def _normal(*shape):
  return jnp.asarray(_RNG.standard_normal(shape), jnp.float32)


def test_registered_and_param_count():
  # conv 5x5 1->10:   25*1*10 + 10 =    260   (28 -> 24, pool -> 12)
  # conv 5x5 10->20: 25*10*20 + 20 =  5,020   (12 -> 8, pool -> 4)
  # linear 20*4*4=320 -> 50: 16,000 + 50 = 16,050
  # linear 50 -> 10: 500 + 10 = 510
  # total 260 + 5,020 + 16,050 + 510 = 21,840
  variables = _abstract_init(models.get_model("mnist_cnn", num_classes=10), (1, 28, 28, 1))
  assert sum(x.size for x in jax.tree.leaves(variables["params"])) == 21_840


@pytest.mark.parametrize("shape", [(3, 28, 28, 1), (3, 28, 28)])
def test_output_shapes(shape):
  model = models.get_model("mnist_cnn", num_classes=7)
  variables = _random_variables(model, shape)
  logits, features = jax.jit(lambda v, x: model.apply(v, x, train=False,
                                                      return_features=True))(
      variables, _normal(*shape))
  assert logits.shape == (3, 7) and logits.dtype == jnp.float32
  assert features.shape == (3, 50) and np.isfinite(logits).all()


def _constant_variables():
  """Zero biases; kernels 0.01 everywhere except the head's column k, which is 0.01 k."""
  shapes = _abstract_init(models.MnistCNN(10), (1, 28, 28, 1))
  params = jax.tree.map(lambda leaf: jnp.full(leaf.shape, 0.01), shapes["params"])
  for layer in params.values():
    layer["bias"] = jnp.zeros_like(layer["bias"])
  params["Dense_1"]["kernel"] = 0.01 * jnp.broadcast_to(jnp.arange(10.0), (50, 10))
  return {"params": params}


@pytest.mark.parametrize("conv_impl", ["im2col", "xla"])
def test_forward_by_hand(conv_impl):
  # All-ones 28x28 input: conv1 gives 25 * 0.01 = 0.25 at each of the 24x24 'VALID'
  # positions (pool, ReLU: 0.25); conv2 25 * 10 * 0.25 * 0.01 = 0.625 at 8x8; the hidden
  # units 320 * 0.625 * 0.01 = 2; logit k = 50 * 2 * 0.01 k = k. All minus-ones: conv1
  # gives -0.25, which the ReLU zeroes, so every logit is its bias, 0.
  variables = _constant_variables()
  x = jnp.stack([jnp.ones((28, 28, 1)), -jnp.ones((28, 28, 1))])
  run = jax.jit(lambda m, v, x: m.apply(v, x, train=False, return_features=True),
                static_argnums=0)
  logits, features = run(models.MnistCNN(10, conv_impl=conv_impl), variables, x)
  np.testing.assert_allclose(logits, [np.arange(10.0), np.zeros(10)], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(features, [np.full(50, 2.0), np.zeros(50)], rtol=1e-5)
  # Log-probabilities: k - log sum_j e^j = k - 9.4586297 and, for zero logits, -log 10.
  log_probs = run(models.MnistCNN(10, log_softmax_outputs=True, conv_impl=conv_impl),
                  variables, x)[0]
  np.testing.assert_allclose(log_probs, [np.arange(10.0) - 9.4586297,
                                         np.full(10, -np.log(10.0))], rtol=1e-5)


def test_log_softmax_outputs_are_log_probabilities():
  model = models.MnistCNN(10, log_softmax_outputs=True)
  variables = _random_variables(model, (4, 28, 28, 1))
  x = _normal(4, 28, 28, 1)
  run = jax.jit(lambda m, v, x: m.apply(v, x, train=False), static_argnums=0)
  log_probs = run(model, variables, x)
  np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), np.ones(4), rtol=1e-5)
  logits = run(models.MnistCNN(10), variables, x)
  assert np.abs(np.asarray(logits)).max() > 0.1  # not already normalised
  np.testing.assert_allclose(log_probs, jax.nn.log_softmax(logits), rtol=1e-5, atol=1e-6)


def test_dropout_drops_whole_channels_then_units():
  model = models.MnistCNN(10, dropout_rate=0.5)
  variables = _random_variables(model, (4, 28, 28, 1))
  x = _normal(4, 28, 28, 1)

  @jax.jit
  def run(variables, x):
    train, state = model.apply(variables, x, train=True, capture_intermediates=True,
                               rngs={"dropout": jax.random.key(1)})
    return (train, state["intermediates"]["Conv_1"]["__call__"][0],
            state["intermediates"]["Dropout_0"]["__call__"][0],
            model.apply(variables, x, train=False),
            models.MnistCNN(10).apply(variables, x, train=False))

  train, conv2, dropped, evaluated, without = run(variables, x)
  # Eval mode is the network without dropout; train mode is not.
  np.testing.assert_array_equal(evaluated, without)
  assert np.abs(np.asarray(train) - np.asarray(evaluated)).max() > 1e-3
  # Dropout2d: each (example, channel) map of conv2 is either all zero or all 2x conv2.
  conv2, dropped = np.asarray(conv2), np.asarray(dropped)
  kept = (dropped != 0).all(axis=(1, 2))
  assert ((dropped == 0).all(axis=(1, 2)) | kept).all()
  assert 0 < kept.mean() < 1  # 80 draws with p = 0.5
  kept = np.broadcast_to(kept[:, None, None], dropped.shape)
  np.testing.assert_allclose(dropped[kept], 2 * conv2[kept], rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 32, 32, 3), (2, 28, 27, 1), (2, 784)])
def test_refuses_other_input_sizes(shape):
  with pytest.raises(ValueError, match=r"model 'mnist_cnn' needs 28x28 inputs"):
    _abstract_init(models.MnistCNN(10), shape)
