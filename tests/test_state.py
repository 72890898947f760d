"""create_train_state: its faster-compiled init gives exactly XLA's default-compiled params."""

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsel import models
from jaxsel.state import (DEVICE_STREAMS, abstract_train_state, create_train_state,
                          stream_key)


def _default_compiled_init(model, seed, input_shape):
  """The reference: jit with XLA's default options, keyed as create_train_state is."""
  dummy = jnp.zeros((2, *input_shape), jnp.float32)
  return jax.jit(functools.partial(model.init, train=False))(stream_key(seed, "params"),
                                                             dummy)


@pytest.mark.parametrize("name, kwargs, input_shape", [
    ("mlp", {}, (40,)),
    ("cnn1d", {"conv_impl": "im2col"}, (40,)),
    ("cnn1d", {"conv_impl": "xla", "use_batchnorm": True}, (40,)),
    ("cnn2d", {}, (28, 28, 1)),
])
def test_init_params_bit_identical_to_default_compile(name, kwargs, input_shape):
  model = models.get_model(name, num_classes=10, **kwargs)
  state = create_train_state(model, optax.sgd(0.1), seed=11, input_shape=input_shape)
  expected = _default_compiled_init(model, 11, input_shape)
  got = {"params": state.params, **({"batch_stats": state.batch_stats}
                                    if state.batch_stats else {})}
  assert jax.tree.structure(got) == jax.tree.structure(expected)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Not a vacuous comparison: the initialisers drew non-zero weights.
  assert any(np.abs(np.asarray(leaf)).max() > 0 for leaf in jax.tree.leaves(state.params))


def test_abstract_train_state_matches_the_real_one():
  model = models.get_model("cnn1d", num_classes=10, channels=8, use_batchnorm=True)
  kwargs = dict(seed=0, input_shape=(40,), trackers={"table": jnp.zeros((17,), jnp.float32)},
                method_state={"history": jnp.zeros((4, 17), jnp.float32)})
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


def test_random_streams_are_distinct_and_derived_from_the_seed_by_name():
  model = models.get_model("mlp", num_classes=10)
  state = create_train_state(model, optax.sgd(0.1), seed=3, input_shape=(40,))
  assert set(state.rngs) == set(DEVICE_STREAMS)
  keys = {name: np.asarray(key) for name, key in state.rngs.items()}
  keys["params"] = np.asarray(stream_key(3, "params"))
  assert len({k.tobytes() for k in keys.values()}) == len(keys)  # no two streams share a key
  for name in DEVICE_STREAMS:
    np.testing.assert_array_equal(keys[name], stream_key(3, name))
    # fold_in(PRNGKey(seed), crc32(name) mod 2**31): the documented derivation.
    np.testing.assert_array_equal(
        keys[name], jax.random.fold_in(jax.random.PRNGKey(3),
                                       zlib.crc32(name.encode()) % 2**31))
  assert not np.array_equal(stream_key(4, "dropout"), keys["dropout"])
  with pytest.raises(ValueError, match="unknown random stream 'noise'"):
    stream_key(3, "noise")
