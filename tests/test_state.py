"""create_train_state: its faster-compiled init gives exactly XLA's default-compiled params."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsel import models
from jaxsel.state import abstract_train_state, create_train_state


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


def test_abstract_train_state_matches_the_real_one():
  model = models.get_model("cnn1d", num_classes=10, channels=8, use_batchnorm=True)
  kwargs = dict(rng=jax.random.PRNGKey(0), input_shape=(40,),
                trackers={"table": jnp.zeros((17,), jnp.float32)})
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
  real = create_train_state(model, tx, **kwargs)
  abstract = abstract_train_state(model, tx, **kwargs)
  assert jax.tree.structure(abstract) == jax.tree.structure(real)
  for a, r in zip(jax.tree.leaves(abstract), jax.tree.leaves(real)):
    assert isinstance(a, jax.ShapeDtypeStruct)
    # Weak types too: a mismatch would make a program compiled ahead from these shapes
    # miss the cache of the real call.
    assert a == jax.ShapeDtypeStruct(np.shape(r), jnp.result_type(r),
                                     weak_type=jax.typeof(r).weak_type)
