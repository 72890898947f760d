"""Tests for jaxsel.models: shapes, parameter counts, im2col == nn.Conv, BN mask."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import models
from jaxsel.config_errors import UserError
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
  assert str(err.value).startswith("unknown model 'foo'; valid: ")
  assert {"cnn1d", "cnn2d", "mlp", "mnist_cnn", "resnet18", "resnet34", "resnet50"} <= set(
      str(err.value).split("valid: ")[1].split(", "))


def test_unknown_option_is_rejected():
  with pytest.raises(ValueError, match="no option.*width.*valid: channels"):
    models.get_model("cnn1d", num_classes=10, width=64)


def test_every_option_of_every_model_has_a_check():
  for name, constructor in models.MODELS.items():
    assert sorted(models.OPTION_CHECKS[name]) == models.options(name), name
  assert models.options("cnn1d") == ["channels", "conv_impl", "dtype", "kernel_sizes",
                                     "padding", "strides", "use_batchnorm"]
  assert models.options("resnet18") == ["conv_impl", "dtype", "num_filters", "stem"]


@pytest.mark.parametrize("name,kwargs", [
    ("cnn1d", {"channels": 8, "kernel_sizes": (5, 3, 3, 3), "strides": (2, 2, 1, 1)}),
    ("cnn1d", {"channels": [16, 16], "kernel_sizes": 3, "strides": 1, "padding": "SAME"}),
    ("cnn1d", {"channels": 8, "kernel_sizes": 5, "strides": 2}),  # one layer
    ("mlp", {"hidden_sizes": ()}),  # logistic regression
    ("cnn2d", {"channels": (4,), "hidden_size": 0}),
    ("mnist_cnn", {"dropout_rate": 0.5, "log_softmax_outputs": True}),
])
def test_valid_options_pass(name, kwargs):
  models.check_options(name, kwargs)


def test_bad_option_values_are_refused_before_building():
  # channels=0 used to fail inside initialisation with a ZeroDivisionError naming nothing.
  with pytest.raises(UserError, match=r"^config.model.kwargs.channels must be a positive "
                                      r"integer or a non-empty list .* got 0$"):
    models.get_model("cnn1d", num_classes=10, channels=0)
  with pytest.raises(UserError, match=r"config.model.kwargs.strides must be one integer for "
                                      r"all layers or a list of 2 .* got \(2, 2, 2\)$"):
    # Two layers from channels; the default strides are for three.
    models.check_options("cnn1d", {"channels": (8, 8), "kernel_sizes": 3})
  with pytest.raises(UserError, match="did you mean 'hidden_sizes'"):
    models.check_options("mlp", {"hidden_size": 4})


@pytest.mark.parametrize("name,kwargs,shape,message", [
    ("mnist_cnn", {}, (40,), r"model 'mnist_cnn' needs 28x28 inputs .* shape \(40,\); "
                             "choose another config.model.name"),
    ("cnn1d", {}, (28, 28, 1), r"config.model.name must be a model for these inputs: cnn1d "
                               r"takes signals \[L\] or \[L, C\]"),
    ("cnn2d", {}, (40,), "config.model.name must be a model for these inputs: cnn2d takes "
                         "images"),
    ("resnet18", {}, (28, 28), "resnet18 takes images"),
    # 40 -> 19 -> 10 -> 5 positions: a fourth conv layer with kernel 9 has too few.
    ("cnn1d", {"channels": 8, "kernel_sizes": (5, 3, 3, 9), "strides": (2, 2, 2, 1)}, (40,),
     r"config.model.kwargs.kernel_sizes .* layer 4 gets 5 positions .* kernel 9"),
    ("cnn1d", {"kernel_sizes": 50}, (40,), "layer 1 gets 40 positions"),
])
def test_models_refuse_inputs_they_cannot_take(name, kwargs, shape, message):
  with pytest.raises(UserError, match=message):
    models.check_input_shape(name, kwargs, shape)


def test_models_take_their_usual_inputs():
  models.check_input_shape("cnn1d", {}, (40,))
  # 5 + 2 - 7 + 1 = 1 position is just enough.
  models.check_input_shape("cnn1d", {"channels": 8, "kernel_sizes": (5, 3, 3, 7),
                                     "strides": (2, 2, 2, 1)}, (40,))
  models.check_input_shape("mnist_cnn", {}, (28, 28, 1))
  models.check_input_shape("cnn2d", {}, (28, 28))
  models.check_input_shape("resnet18", {}, (32, 32, 3))
  models.check_input_shape("mlp", {}, (3, 5, 7, 2))


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
  # Float32 noise only: a batch of another size is tiled differently by XLA's convolutions
  # and reductions, and through a bottleneck's three BatchNorms that reached 1.2e-5 on an
  # output of 0.32 on a loaded CI machine (rel 4e-5); the garbage rows, if they leaked in,
  # would move outputs by far more (the unmasked statistics below move by > 1e-2).
  np.testing.assert_allclose(y_pad[:len(x)], y, rtol=1e-4, atol=1e-5)
  _assert_trees_close(stats_pad, stats)
  # Without the mask the garbage rows do move the statistics.
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), stats_unmasked, stats)
  assert max(jax.tree.leaves(moved)) > 1e-2


# --- BatchNorm running variance (torch: unbiased) -----------------------------

# x [B = 3, L = 2, C = 2]; row 2 is padding with garbage values.
#   channel 0, real values 1, 3, 5, 7:  μ = 4, Σ(x − μ)² = 9 + 1 + 1 + 9 = 20
#   channel 1, real values 2, 2, 4, 8:  μ = 4, Σ(x − μ)² = 4 + 4 + 0 + 16 = 24
# n = 2 rows × 2 positions = 4, so v = (20/4, 24/4) = (5, 6) (biased) and
# n/(n − 1) · v = (20/3, 8) (unbiased).
BN_X = jnp.asarray([[[1.0, 2.0], [3.0, 2.0]],
                    [[5.0, 4.0], [7.0, 8.0]],
                    [[100.0, -100.0], [50.0, 1e3]]])
BN_MASK = jnp.asarray([True, True, False])
# Running stats before the step: mean (1, −1), var (2, 0.5); momentum 0.9.
#   mean ← 0.9 · (1, −1) + 0.1 · (4, 4)       = (1.3, −0.5)
#   var, unbiased ← 0.9 · (2, 0.5) + 0.1 · (20/3, 8)
#                 = (1.8 + 0.6666667, 0.45 + 0.8) = (2.4666667, 1.25)
#   var, biased   ← 0.9 · (2, 0.5) + 0.1 · (5, 6) = (2.3, 1.05)
BN_STATS = {"mean": jnp.asarray([1.0, -1.0]), "var": jnp.asarray([2.0, 0.5])}
# Train-mode output of the real rows, (x − μ) / sqrt(v + 1e-5), scale 1, bias 0:
#   channel 0: (−3, −1, 1, 3) / sqrt(5.00001)
#            = (−1.3416394, −0.4472131, 0.4472131, 1.3416394)
#   channel 1: (−2, −2, 0, 4) / sqrt(6.00001)
#            = (−0.8164959, −0.8164959, 0, 1.6329918)
BN_Y = [[[-1.3416394, -0.8164959], [-0.4472131, -0.8164959]],
        [[0.4472131, 0.0], [1.3416394, 1.6329918]]]


@jax.jit(static_argnums=0)
def _bn_train_step(module, x, mask, stats):
  variables = {"params": {"scale": jnp.ones(2), "bias": jnp.zeros(2)},
               "batch_stats": stats}
  y, updated = module.apply(variables, x, use_running_average=False, mask=mask,
                            mutable=["batch_stats"])
  return y, updated["batch_stats"]


@pytest.mark.parametrize("unbiased, expected_var", [
    (True, [2.4666667, 1.25]),
    (False, [2.3, 1.05]),
])
def test_batchnorm_running_variance_hand_computed(unbiased, expected_var):
  module = layers.BatchNorm(unbiased_running_variance=unbiased)
  y, stats = _bn_train_step(module, BN_X, BN_MASK, BN_STATS)
  np.testing.assert_allclose(stats["mean"], [1.3, -0.5], rtol=1e-6)
  np.testing.assert_allclose(stats["var"], expected_var, rtol=1e-6)
  # The batch itself is normalised with the biased variance either way.
  np.testing.assert_allclose(y[:2], BN_Y, atol=1e-6)


def test_batchnorm_unbiased_is_default():
  assert layers.BatchNorm().unbiased_running_variance is True
  _, default = _bn_train_step(layers.BatchNorm(), BN_X, BN_MASK, BN_STATS)
  np.testing.assert_allclose(default["var"], [2.4666667, 1.25], rtol=1e-6)


@pytest.mark.parametrize("mask", [BN_MASK, None], ids=["masked", "unmasked"])
def test_batchnorm_train_outputs_equal_flax(mask):
  # Both settings normalise exactly as nn.BatchNorm (bit-for-bit: the same
  # helpers) and move the running mean identically; the biased setting's
  # running variance is flax's to the bit too.
  flax_bn = nn.BatchNorm(momentum=0.9, epsilon=1e-5)
  flax_mask = None if mask is None else layers.broadcast_row_mask(mask, BN_X)
  y_flax, stats_flax = _bn_train_step(flax_bn, BN_X, flax_mask, BN_STATS)
  for unbiased in (True, False):
    module = layers.BatchNorm(unbiased_running_variance=unbiased)
    y, stats = _bn_train_step(module, BN_X, mask, BN_STATS)
    np.testing.assert_array_equal(y, y_flax)
    np.testing.assert_array_equal(stats["mean"], stats_flax["mean"])
    if not unbiased:
      np.testing.assert_array_equal(stats["var"], stats_flax["var"])
  if mask is None:
    # Unmasked, n = 3 rows × 2 positions = 6: the unbiased step adds
    # 0.1 · v · (6/5 − 1) = 0.02 · v to flax's (biased) result.
    _, stats = _bn_train_step(layers.BatchNorm(), BN_X, None, BN_STATS)
    v = np.var(np.asarray(BN_X, np.float64), axis=(0, 1))
    np.testing.assert_allclose(stats["var"], stats_flax["var"] + 0.02 * v,
                               rtol=1e-6)


def test_batchnorm_single_value_per_channel_keeps_running_variance():
  # One real row, no spatial axis: n = 1 and n/(n − 1) is undefined. The
  # unbiased setting leaves the running variance at (2, 0.5); the biased one
  # pulls it towards v = 0: 0.9 · (2, 0.5) = (1.8, 0.45). Either way
  # mean ← 0.9 · (1, −1) + 0.1 · (3, −2) = (1.2, −1.1).
  x = jnp.asarray([[3.0, -2.0], [40.0, 50.0]])
  mask = jnp.asarray([True, False])
  for unbiased, expected_var in ((True, [2.0, 0.5]), (False, [1.8, 0.45])):
    module = layers.BatchNorm(unbiased_running_variance=unbiased)
    y, stats = _bn_train_step(module, x, mask, BN_STATS)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(stats["mean"], [1.2, -1.1], rtol=1e-6)
    np.testing.assert_allclose(stats["var"], expected_var, rtol=1e-6)
