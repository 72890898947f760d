"""The ``dtype='bfloat16'`` model option: float32 params, statistics and logits, bfloat16
compute, logits close to float32's, and a tiny run that trains as well as float32's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import models, train
from jaxsel.config_errors import UserError
from tests.conftest import tiny_run_config

# Logit error: max |bf16 - f32| / max |f32 logit| over the batch. bfloat16 keeps 8
# significand bits, a relative rounding error of at most 2^-9 ~ 2e-3; each layer rounds its
# input, its weights and its output, and these errors, largely independent, add up over the
# layers like a random walk. The shallow models (3-4 layers) measure 4e-3 to 7e-3 on the
# numbers below and at most 1.3e-2 over 20 seeds: bound 3e-2. ResNet-18 has 18 layers, ~2x
# the shallow models' error by the square-root growth, and its train-mode BatchNorm
# normalises the last stage over only 2x2 positions x 7 rows, which amplifies input
# errors; it measures 2.1e-2 here and at most 4.1e-2 over 20 seeds: bound 8e-2. These bounds
# only catch gross mistakes; a layer left in float32 is caught by reading the program, and
# bfloat16 logits or statistics by their dtype.
SHALLOW_RTOL = 3e-2
RESNET_RTOL = 8e-2
# Running statistics (relative to the largest of each): float32 reductions of the bfloat16
# activations, so the same order as the logits (at most 1.5e-2 over 20 seeds).
STATS_RTOL = 5e-2


def _filled(abstract, rng):
  """Variables like ``abstract`` (shapes) as a trained model might have them: He-uniform
  kernels, so that activations keep their scale (~1) through the layers, small biases,
  and BatchNorm near the identity with running statistics that fit such activations.
  (Running means far from the activations' would make eval mode subtract nearly equal
  numbers, an ill-conditioning of the test's making that bfloat16 inputs amplify.)"""
  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if name.endswith("['kernel']"):
      low, high = np.sqrt(6 / np.prod(leaf.shape[:-1])) * np.array([-1, 1])
    elif name.endswith(("['var']", "['scale']")):
      low, high = 0.5, 1.5
    else:  # biases, running means
      low, high = -0.1, 0.1
    return jnp.asarray(rng.uniform(low, high, leaf.shape), jnp.float32)
  return jax.tree_util.tree_map_with_path(fill, abstract)


def _relative_error(approx, exact) -> float:
  approx, exact = np.asarray(approx, np.float64), np.asarray(exact, np.float64)
  return float(np.abs(approx - exact).max() / np.abs(exact).max())


_CASES = [  # name, input shape, options, bound; measured eval / train-mode logit errors
    ("mlp", (8, 40), {}, SHALLOW_RTOL),  # 6.4e-3
    ("cnn1d", (8, 40), {"conv_impl": "im2col"}, SHALLOW_RTOL),  # 6.7e-3
    ("cnn1d", (8, 40), {"conv_impl": "xla"}, SHALLOW_RTOL),  # 6.7e-3
    ("cnn1d", (8, 40), {"channels": 8, "use_batchnorm": True},
     SHALLOW_RTOL),  # 4.3e-3 / 6.0e-3
    ("cnn2d", (8, 28, 28, 1), {"channels": (4, 8), "hidden_size": 16,
                               "use_batchnorm": True}, SHALLOW_RTOL),  # 6.5e-3 / 7.2e-3
    # XLA's convolution (the GPU default) compiles these in a fraction of im2col's time
    # (XLA:CPU compiles bfloat16 programs 2-5x slower than float32 ones); the 2-d im2col
    # convolution in bfloat16 is cnn2d's.
    ("mnist_cnn", (8, 28, 28, 1), {"log_softmax_outputs": True, "conv_impl": "xla"},
     SHALLOW_RTOL),  # 5.1e-3
    ("resnet18", (8, 16, 16, 3), {"num_filters": 2, "conv_impl": "xla"},
     RESNET_RTOL),  # 6.5e-3 / 2.1e-2
]


@pytest.mark.parametrize("name, shape, kwargs, rtol", _CASES, ids=[
    "mlp", "cnn1d-im2col", "cnn1d-xla", "cnn1d-batchnorm", "cnn2d-batchnorm", "mnist_cnn-xla",
    "resnet18-xla"])
def test_bfloat16_computes_with_float32_params_stats_and_logits(name, shape, kwargs, rtol):
  exact = models.get_model(name, num_classes=10, **kwargs)
  approx = models.get_model(name, num_classes=10, dtype="bfloat16", **kwargs)
  # Its own generator, so that each case sees the same numbers run alone or not.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  abstract = jax.eval_shape(lambda: approx.init(jax.random.key(0), x, train=False))
  # The bfloat16 model's own variables are float32 and laid out as the float32 model's.
  assert {leaf.dtype for leaf in jax.tree.leaves(abstract)} == {jnp.dtype(jnp.float32)}
  assert jax.tree.structure(abstract) == jax.tree.structure(
      jax.eval_shape(lambda: exact.init(jax.random.key(0), x, train=False)))
  variables = _filled(abstract, rng)
  mask = jnp.arange(shape[0]) < shape[0] - 1  # one padding row

  has_stats = "batch_stats" in abstract

  @jax.jit  # one compilation for all the applications
  def run(variables, x, mask):
    def apply(model):
      logits, features = model.apply(variables, x, train=False, return_features=True)
      if not has_stats:  # train mode would compute the same function
        return (logits,), features, {}
      train_logits, updated = model.apply(variables, x, train=True, mask=mask,
                                          mutable=["batch_stats"])
      return (logits, train_logits), features, updated
    return apply(exact), apply(approx)

  (logits, _, stats), (logits16, features16, stats16) = run(variables, x, mask)
  for value in (*logits16, features16, *jax.tree.leaves(stats16)):
    assert value.dtype == jnp.float32
  # Eval mode, and train mode (batch statistics) where the model has BatchNorm.
  errors = [_relative_error(a, b) for a, b in zip(logits16, logits)]
  assert max(errors) < rtol, errors
  # Not equal either: the model did compute in bfloat16, every matmul and convolution.
  assert min(errors) > 0, errors
  program = jax.jit(lambda v, x: approx.apply(v, x, train=False)).lower(
      variables, x).as_text()
  products = [line for line in program.splitlines()
              if "stablehlo.dot_general" in line or "stablehlo.convolution" in line]
  assert products and all(line.endswith("bf16>") for line in products), products
  assert jax.tree.structure(stats16) == jax.tree.structure(stats)
  for new16, new in zip(jax.tree.leaves(stats16), jax.tree.leaves(stats)):
    assert _relative_error(new16, new) < STATS_RTOL


def test_a_bad_dtype_is_refused_naming_the_option():
  with pytest.raises(UserError, match=r"^config.model.kwargs.dtype must be one of "
                                       r"float32, bfloat16, got 'float16'$"):
    models.get_model("cnn2d", num_classes=10, dtype="float16")
  for name in models.MODELS:
    assert "dtype" in models.options(name)
    assert models.MODELS[name](num_classes=10).dtype == "float32"


def test_a_tiny_run_trains_in_bfloat16_as_well_as_in_float32(mnist1d_dir, tmp_path):
  # Ten epochs of the tiny CNN (training itself takes under a second; each run is mostly
  # compilation) reach ~55% test accuracy (chance: 10%). bfloat16 rounding makes the two
  # runs' trajectories differ, by 0.1-0.4 points in four measured runs (seeds 0 and 1,
  # 8 and 25 channels), against ~3.5 points between two seeds; 5 points leaves room for
  # both and still catches a run that does not learn properly in bfloat16.
  accuracy = {}
  for dtype in ("float32", "bfloat16"):
    config = tiny_run_config(mnist1d_dir, **{
        "model.kwargs": {"channels": 8, "conv_impl": "auto", "dtype": dtype},
        "train.num_epochs": 10, "checkpoint.every_epochs": 10})
    summary = train.train_and_evaluate(config, str(tmp_path / dtype))
    assert np.isfinite(summary["test_nll"])
    accuracy[dtype] = summary["test_accuracy"]
  assert accuracy["bfloat16"] > 40.0, accuracy
  assert abs(accuracy["bfloat16"] - accuracy["float32"]) < 5.0, accuracy
