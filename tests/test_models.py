"""Tests for jaxsel.models: shapes, parameter counts, im2col == nn.Conv, BN mask."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import models
from jaxsel.models import layers
from jaxsel.models.resnet_cifar import BasicBlock, Bottleneck


def _num_params(variables) -> int:
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


def _abstract_init(model, shape, **kwargs):
  """Variables' shapes without compiling or running anything."""
  return jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros(shape), **kwargs))


# Tests fill variables and inputs from numpy: every jax.random call with a new
# shape is a separate (slow) compilation, which would dominate the run time.
_RNG = np.random.default_rng(0)


def _normal(*shape):
  return jnp.asarray(_RNG.standard_normal(shape), jnp.float32)


def _random_variables(model, shape, **kwargs):
  """Variables of the right structure with random params and positive stats."""
  def fill(path, leaf):
    stats = "batch_stats" in jax.tree_util.keystr(path)
    low, high = (0.5, 1.5) if stats else (-0.5, 0.5)
    return jnp.asarray(_RNG.uniform(low, high, leaf.shape), jnp.float32)
  return jax.tree_util.tree_map_with_path(
      fill, _abstract_init(model, shape, **kwargs))


# --- registry -----------------------------------------------------------------


def test_unknown_model_lists_valid_names():
  with pytest.raises(ValueError) as err:
    models.get_model("foo", num_classes=10)
  assert str(err.value) == ("unknown model 'foo'; valid: cnn1d, cnn2d, mlp, "
                            "resnet18, resnet34, resnet50")


def test_unknown_option_is_rejected():
  with pytest.raises(ValueError, match="no option.*width.*valid: channels"):
    models.get_model("cnn1d", num_classes=10, width=64)


def test_conv_impl_auto_is_im2col_on_cpu():
  expected = "im2col" if jax.default_backend() == "cpu" else "xla"
  assert layers.resolve_conv_impl("auto") == expected
  with pytest.raises(ValueError, match="unknown conv impl"):
    layers.resolve_conv_impl("fft")


# --- shapes and parameter counts -------------------------------------------


@pytest.mark.parametrize("name, shape, kwargs", [
    ("mlp", (3, 40), {}),
    ("mlp", (3, 8, 8, 3), {"hidden_sizes": (16,)}),
    ("cnn1d", (3, 40), {}),
    ("cnn1d", (3, 40), {"channels": 8, "kernel_sizes": (5, 3, 3, 3),
                        "strides": (2, 2, 1, 1), "use_batchnorm": True}),
    ("cnn2d", (3, 28, 28, 1), {"channels": (4, 8), "hidden_size": 16}),
    ("cnn2d", (3, 32, 32, 3), {"channels": (4,), "use_batchnorm": True}),
])
def test_small_model_output_shapes(name, shape, kwargs):
  model = models.get_model(name, num_classes=7, **kwargs)
  variables = _random_variables(model, shape, train=False)

  @jax.jit
  def run(variables, x):
    logits = model.apply(variables, x, train=False)
    (_, features), _ = model.apply(variables, x, train=True,
                                   return_features=True,
                                   mutable=["batch_stats"])
    return logits, features

  logits, features = run(variables, _normal(*shape))
  assert logits.shape == (3, 7) and logits.dtype == jnp.float32
  assert np.isfinite(logits).all()
  assert features.ndim == 2 and features.shape[0] == 3
  # The head is the last Dense: its input width is the feature width.
  last = sorted(k for k in variables["params"] if k.startswith("Dense"))[-1]
  assert variables["params"][last]["kernel"].shape == (features.shape[1], 7)


@pytest.mark.parametrize("name, feature_dim", [
    ("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_resnet_output_shapes(name, feature_dim):
  # Shapes only: compiling a ResNet would take far longer than this file may.
  model = models.get_model(name, num_classes=10)
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  variables = _abstract_init(model, x.shape, train=False)
  logits, features = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=False, return_features=True),
      variables, x)
  assert logits.shape == (2, 10) and logits.dtype == jnp.float32
  assert features.shape == (2, feature_dim)


@pytest.mark.parametrize("name, expected", [
    # The standard PyTorch CIFAR ResNets (3x3 stem, no max-pool), 10 classes.
    ("resnet18", 11_173_962),
    ("resnet34", 21_282_122),
    ("resnet50", 23_520_842),
])
def test_resnet_param_counts(name, expected):
  variables = _abstract_init(models.get_model(name, num_classes=10),
                             (1, 32, 32, 3), train=False)
  assert _num_params(variables) == expected


def test_mnist1d_cnn_param_count():
  # conv 1->25 k5:    1*5*25 + 25 =   150   (length 40 -> 19)
  # conv 25->25 k3:  25*3*25 + 25 = 1,900   (19 -> 10)
  # conv 25->25 k3:  25*3*25 + 25 = 1,900   (10 -> 5)
  # linear 25*5=125 -> 10: 1,250 + 10 = 1,260
  # total 150 + 1,900 + 1,900 + 1,260 = 5,210
  variables = _abstract_init(models.get_model("cnn1d", num_classes=10),
                             (1, 40), train=False)
  assert _num_params(variables) == 5_210


# --- initialisation ---------------------------------------------------------


def test_torch_default_init_bounds():
  # A single jitted init of a Dense and a Conv side by side.
  class Pair(nn.Module):

    @nn.compact
    def __call__(self, x, image):
      return layers.Dense(400)(x), layers.Conv(8, (3, 3))(image)

  params = jax.jit(Pair().init)(jax.random.key(0), jnp.zeros((1, 50)),
                                jnp.zeros((1, 5, 5, 4)))["params"]
  dense, conv = params["Dense_0"], params["Conv_0"]
  bound = 1 / np.sqrt(50)
  for value in (dense["kernel"], dense["bias"]):
    assert np.abs(value).max() <= bound
    assert np.abs(value).max() > 0.9 * bound  # uniform over the whole range
  bound = 1 / np.sqrt(3 * 3 * 4)
  for value in (conv["kernel"], conv["bias"]):
    assert np.abs(value).max() <= bound
  bn = layers.BatchNorm()
  assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)


# --- im2col convolution == nn.Conv -------------------------------------------

_CONV_CASES = [
    (rank, kernel, stride, padding)
    for rank in (1, 2)
    for kernel in (1, 3, 5)
    for stride in (1, 2)
    for padding in ("SAME", "VALID", 1)
]


def _outputs_and_grads(modules, variables, x):
  """Each module's output and gradient (params, input) of a fixed projection."""

  @jax.jit  # one compilation instead of one per op keeps the test fast
  def run(variables, x):
    results = []
    for module in modules:
      y = module.apply(variables, x)
      cotangent = jnp.cos(jnp.arange(y.size).reshape(y.shape))
      loss = lambda v, x, m=module: jnp.vdot(m.apply(v, x), cotangent)
      results.append((y, jax.grad(loss, argnums=(0, 1))(variables, x)))
    return results

  return run(variables, x)


def _assert_trees_close(a, b, atol=1e-5):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(u, v, atol=atol)


@pytest.mark.parametrize("rank, kernel, stride, padding", _CONV_CASES)
def test_im2col_conv_matches_nn_conv(rank, kernel, stride, padding):
  # Odd and even sizes: 'SAME' with stride 2 pads asymmetrically on one of them.
  spatial = (11,) if rank == 1 else (9, 8)
  shape = (2, *spatial, 3)
  kernel_size = (kernel,) * rank
  im2col = layers.Conv(5, kernel_size, stride, padding, impl="im2col")
  xla = layers.Conv(5, kernel_size, stride, padding, impl="xla")
  reference = nn.Conv(5, kernel_size, stride, padding)
  variables = _random_variables(im2col, shape)
  ours, via_xla, flax = _outputs_and_grads((im2col, xla, reference), variables,
                                           _normal(*shape))
  _assert_trees_close(ours, flax)
  _assert_trees_close(ours, via_xla)


def test_im2col_conv_explicit_pairs_and_no_bias():
  shape = (2, 7, 6, 2)
  kwargs = dict(features=4, kernel_size=(3, 2), strides=(2, 1),
                padding=((2, 0), (1, 1)), use_bias=False)
  variables = _random_variables(layers.Conv(**kwargs), shape)
  assert set(variables["params"]) == {"kernel"}
  ours, flax = _outputs_and_grads(
      (layers.Conv(**kwargs), nn.Conv(**kwargs)), variables, _normal(*shape))
  _assert_trees_close(ours, flax)


def test_cnn1d_im2col_equals_xla():
  im2col = models.CNN1D(10, conv_impl="im2col")
  xla = models.CNN1D(10, conv_impl="xla")
  variables = _random_variables(im2col, (4, 40), train=False)
  run = jax.jit(lambda m, v, x: m.apply(v, x, train=False), static_argnums=0)
  x = _normal(4, 40)
  np.testing.assert_allclose(run(im2col, variables, x),
                             run(xla, variables, x), atol=1e-5)


def test_max_pool_matches_flax():
  x = _normal(2, 7, 6, 3)
  np.testing.assert_array_equal(layers.max_pool_2x2(x),
                                nn.max_pool(x, (2, 2), (2, 2)))


# --- BatchNorm ignores padding rows -------------------------------------------


@pytest.mark.parametrize("module, shape", [
    (models.CNN2D(5, channels=(4,), hidden_size=8, use_batchnorm=True),
     (3, 6, 6, 2)),
    (BasicBlock(6, strides=2), (3, 6, 6, 2)),  # projection shortcut has BN too
    (Bottleneck(2, strides=1), (3, 4, 4, 3)),
])
def test_batchnorm_mask_equals_unpadded_batch(module, shape):
  variables = _random_variables(module, shape, train=False)
  x = _normal(*shape)
  # Two garbage rows far from the data, marked as padding.
  x_pad = jnp.concatenate([x, 100.0 + _normal(2, *shape[1:])])
  mask = jnp.arange(len(x_pad)) < len(x)

  @jax.jit
  def run(variables, x, x_pad, mask):
    train = lambda x, mask: module.apply(variables, x, train=True, mask=mask,
                                         mutable=["batch_stats"])
    return train(x, None), train(x_pad, mask), train(x_pad, None)

  (y, stats), (y_pad, stats_pad), (_, stats_unmasked) = run(
      variables, x, x_pad, mask)
  np.testing.assert_allclose(y_pad[:len(x)], y, atol=1e-5)
  _assert_trees_close(stats_pad, stats)
  # Without the mask the garbage rows do move the statistics.
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), stats_unmasked, stats)
  assert max(jax.tree.leaves(moved)) > 1e-2
