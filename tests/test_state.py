"""create_train_state: its faster-compiled init gives exactly XLA's default-compiled params."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsel import models
from jaxsel.state import create_train_state


def _default_compiled_init(model, rng, input_shape):
  """The reference: jit with XLA's default options, split as create_train_state does."""
  init_rng, _ = jax.random.split(rng)
  dummy = jnp.zeros((2, *input_shape), jnp.float32)
  return jax.jit(functools.partial(model.init, train=False))(init_rng, dummy)


@pytest.mark.parametrize("name, kwargs, input_shape", [
    ("mlp", {}, (40,)),
    ("cnn1d", {"conv_impl": "im2col"}, (40,)),
    ("cnn1d", {"conv_impl": "xla", "use_batchnorm": True}, (40,)),
    ("cnn2d", {}, (28, 28, 1)),
])
def test_init_params_bit_identical_to_default_compile(name, kwargs, input_shape):
  model = models.get_model(name, num_classes=10, **kwargs)
  rng = jax.random.PRNGKey(11)
  state = create_train_state(model, optax.sgd(0.1), rng=rng, input_shape=input_shape)
  expected = _default_compiled_init(model, rng, input_shape)
  got = {"params": state.params, **({"batch_stats": state.batch_stats}
                                    if state.batch_stats else {})}
  assert jax.tree.structure(got) == jax.tree.structure(expected)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Not a vacuous comparison: the initialisers drew non-zero weights.
  assert any(np.abs(np.asarray(leaf)).max() > 0 for leaf in jax.tree.leaves(state.params))
