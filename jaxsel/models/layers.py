"""Building blocks shared by the models: PyTorch-initialised layers and a fast conv.

Initialisation follows PyTorch's defaults, because the reference implementations
of the methods we reproduce are PyTorch and their results depend on it:

* conv / linear weights: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) -- torch's
  ``kaiming_uniform_(a=sqrt(5))`` -- which is ``variance_scaling(1/3, 'fan_in',
  'uniform')`` (variance 1/(3 fan_in) gives the uniform limit 1/sqrt(fan_in));
* conv / linear biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the fan-in of the
  weight. Flax bias initialisers never see the fan-in, so ``Conv`` and ``Dense``
  here compute it and build the initialiser themselves;
* BatchNorm: scale 1, bias 0, epsilon 1e-5, momentum 0.9 (torch's 0.1 is the weight
  of the *new* statistic, flax's momentum is the weight of the *old* one); the
  running variance tracks the unbiased batch variance, as torch's does.

``Conv`` computes a convolution as an explicit im2col (shifted strided slices
concatenated on the channel axis, then one matmul) while keeping ``nn.Conv``'s
parameter layout, so either path can run the same parameters. On XLA:CPU a
train step is faster this way (measured with jax 0.10: MNIST-1D CNN 1.3-1.8x,
CIFAR ResNet-18 ~1.3x), mostly because XLA:CPU's kernel-gradient convolution
is slow while im2col's is one matmul. The price is memory: the patches
(prod(kernel_size) times the input) are kept for the backward pass, e.g. ~2.7 GB
of temporaries for a ResNet-18 step at batch 128 against ~0.9 GB with XLA's.

``Conv``, ``Dense`` and ``BatchNorm`` take a compute ``dtype`` (``DTYPES``, a model's
``dtype`` option): the parameters are float32 whatever it is and are cast to it for the
matmul / convolution, while ``BatchNorm`` keeps its statistics in float32.
"""

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
from flax.linen import normalization as flax_normalization
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array
Initializer = Callable[..., Array]
PaddingLike = str | int | Sequence[int | tuple[int, int]]

torch_kernel_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")

CONV_IMPLS = ("auto", "im2col", "xla")
# XLA:CPU's matmul is 1.5-3x faster when both the contraction and the output
# width are multiples of 8 (25 channels x 3 taps = 75 is not), so im2col pads
# them with zeros, which changes no result.
_ALIGN = 8

# A model's ``dtype`` option: the precision its matmuls, convolutions and activations run
# in. Parameters, BatchNorm statistics and the logits are float32 with either.
DTYPES = ("float32", "bfloat16")


def torch_bias_init(fan_in: int) -> Initializer:
  """Returns an initialiser drawing U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch."""
  bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0

  def init(key: Array, shape: Sequence[int], dtype: Any = jnp.float32) -> Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def resolve_conv_impl(impl: str) -> str:
  """Maps 'auto' to the faster convolution for the current default backend.

  On CPU the im2col matmul beats XLA's convolution for our models (see the
  module docstring); on GPU/TPU XLA's convolution (cuDNN on GPU) is the right
  choice.
  """
  if impl not in CONV_IMPLS:
    raise ValueError(f"unknown conv impl {impl!r}; valid: {', '.join(CONV_IMPLS)}")
  if impl == "auto":
    return "im2col" if jax.default_backend() == "cpu" else "xla"
  return impl


def resolve_dtype(name: str) -> jnp.dtype:
  """The compute dtype a model's ``dtype`` option names (one of ``DTYPES``)."""
  if name not in DTYPES:
    raise ValueError(f"unknown compute dtype {name!r}; valid: {', '.join(DTYPES)}")
  return jnp.dtype(name)


def model_outputs(logits: Array, features: Array, return_features: bool):
  """A model's return value, ``logits`` or ``(logits, features)``, as float32 whatever
  the compute dtype, so that losses, metrics and per-example scores are float32."""
  logits = logits.astype(jnp.float32)
  return (logits, features.astype(jnp.float32)) if return_features else logits


def _explicit_pads(padding: PaddingLike, in_spatial: Sequence[int],
                   kernel_size: Sequence[int],
                   strides: Sequence[int]) -> list[tuple[int, int]]:
  """(low, high) padding per spatial dim, with the same meaning as in nn.Conv/lax.

  'SAME' puts the smaller half of an odd total padding before the data
  (low = total // 2), exactly as ``lax.padtype_to_pads``, which we call.
  """
  rank = len(kernel_size)
  if isinstance(padding, str):
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(f"im2col conv supports 'SAME', 'VALID' or explicit pads, "
                       f"got {padding!r}")
    return list(lax.padtype_to_pads(in_spatial, kernel_size, strides,
                                    padding.upper()))
  if isinstance(padding, int):
    return [(padding, padding)] * rank
  pads = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
  if len(pads) != rank or any(len(p) != 2 for p in pads):
    raise ValueError(f"invalid padding {padding!r} for a {rank}-d convolution")
  return pads


def im2col_conv(x: Array, kernel: Array, strides: Sequence[int],
                pads: Sequence[tuple[int, int]]) -> Array:
  """Convolution (cross-correlation, like lax) as slices + one matmul.

  Args:
    x: [B, *spatial, Cin] input.
    kernel: [*kernel_size, Cin, Cout], nn.Conv's layout.
    strides: one stride per spatial dim.
    pads: (low, high) padding per spatial dim (negative values crop, as in lax).

  Returns:
    [B, *out_spatial, Cout].
  """
  kernel_size = kernel.shape[:-2]
  cin, cout = kernel.shape[-2:]
  no_pad = (0, 0, 0)
  x = lax.pad(x, jnp.zeros((), x.dtype),
              [no_pad, *[(lo, hi, 0) for lo, hi in pads], no_pad])
  padded = x.shape[1:-1]
  out_spatial = [(n - k) // s + 1 for n, k, s in zip(padded, kernel_size, strides)]
  # One strided slice per kernel offset, each already of the output size. The
  # offsets run in row-major order with Cin innermost after concatenation, the
  # same order as kernel.reshape(-1, Cout) flattens (*kernel_size, Cin).
  columns = []
  for offset in itertools.product(*(range(k) for k in kernel_size)):
    start = (0, *offset, 0)
    limit = (x.shape[0],
             *[o + (n - 1) * s + 1
               for o, n, s in zip(offset, out_spatial, strides)],
             cin)
    columns.append(lax.slice(x, start, limit, (1, *strides, 1)))
  kernel = kernel.reshape(-1, cout)
  k_pad, n_pad = -kernel.shape[0] % _ALIGN, -cout % _ALIGN
  if k_pad:
    columns.append(jnp.zeros((*columns[0].shape[:-1], k_pad), x.dtype))
  kernel = jnp.pad(kernel, ((0, k_pad), (0, n_pad)))
  patches = columns[0] if len(columns) == 1 else jnp.concatenate(columns, -1)
  # A rank-2 matmul is what XLA:CPU's dot emitter handles best.
  flat = patches.reshape(-1, patches.shape[-1])
  y = jnp.dot(flat, kernel)[:, :cout]
  return y.reshape(*patches.shape[:-1], cout)


class Conv(nn.Module):
  """N-d channels-last convolution with nn.Conv's parameters and torch init.

  Params: ``kernel`` [*kernel_size, Cin, features] and ``bias`` [features],
  exactly as ``nn.Conv``, so ``impl='xla'`` (which runs ``nn.Conv`` on these very
  arrays) and ``impl='im2col'`` compute the same function of the same params.

  Attributes:
    features: number of output channels.
    kernel_size: spatial kernel shape; an int means a 1-d kernel (as nn.Conv).
    strides: int or one per spatial dim.
    padding: 'SAME', 'VALID', an int, or per-dim ints / (low, high) pairs.
    use_bias: whether to add a bias.
    kernel_init: kernel initialiser (torch default).
    bias_init: bias initialiser; None means torch's U(+-1/sqrt(fan_in)).
    impl: 'im2col', 'xla' (nn.Conv / lax), or 'auto' (see resolve_conv_impl).
    dtype: compute dtype; the input, kernel and bias are cast to it, the stored
      params stay float32.
  """
  features: int
  kernel_size: int | Sequence[int]
  strides: int | Sequence[int] = 1
  padding: PaddingLike = "SAME"
  use_bias: bool = True
  kernel_init: Initializer = torch_kernel_init
  bias_init: Initializer | None = None
  impl: str = "im2col"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """x: [B, *spatial, Cin] -> [B, *out_spatial, features] in ``dtype``."""
    x = x.astype(self.dtype)
    kernel_size = ((self.kernel_size,) if isinstance(self.kernel_size, int)
                   else tuple(self.kernel_size))
    rank = len(kernel_size)
    if x.ndim != rank + 2:
      raise ValueError(f"{rank}-d conv expects [B, *spatial, C], got {x.shape}")
    strides = ((self.strides,) * rank if isinstance(self.strides, int)
               else tuple(self.strides))
    cin = x.shape[-1]
    fan_in = int(np.prod(kernel_size)) * cin
    kernel = self.param("kernel", self.kernel_init,
                        (*kernel_size, cin, self.features), jnp.float32)
    bias = None
    if self.use_bias:
      bias_init = self.bias_init or torch_bias_init(fan_in)
      bias = self.param("bias", bias_init, (self.features,), jnp.float32)

    if resolve_conv_impl(self.impl) == "xla":
      params = {"kernel": kernel} if bias is None else {"kernel": kernel,
                                                         "bias": bias}
      conv = nn.Conv(self.features, kernel_size, strides, self.padding,
                     use_bias=self.use_bias, dtype=self.dtype, parent=None)
      return conv.apply({"params": params}, x)

    pads = _explicit_pads(self.padding, x.shape[1:-1], kernel_size, strides)
    y = im2col_conv(x, kernel.astype(x.dtype), strides, pads)
    if bias is not None:
      y = y + bias.astype(y.dtype)
    return y


class Dense(nn.Module):
  """Fully connected layer with nn.Dense's params (kernel [Din, F], bias [F]).

  Exists to give the bias torch's fan-in dependent initialisation. ``dtype`` is the
  compute dtype, as in ``Conv``.
  """
  features: int
  use_bias: bool = True
  kernel_init: Initializer = torch_kernel_init
  bias_init: Initializer | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """x: [..., Din] -> [..., features] in ``dtype``."""
    x = x.astype(self.dtype)
    fan_in = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, (fan_in, self.features),
                        jnp.float32)
    y = jnp.dot(x, kernel.astype(x.dtype))
    if self.use_bias:
      bias_init = self.bias_init or torch_bias_init(fan_in)
      bias = self.param("bias", bias_init, (self.features,), jnp.float32)
      y = y + bias.astype(y.dtype)  # a float32 bias would promote y back to float32
    return y


def broadcast_row_mask(mask: Array, x: Array) -> Array:
  """Broadcasts a per-row mask [B] to x's shape [B, ..., C]."""
  mask = jnp.asarray(mask, bool)
  return jnp.broadcast_to(mask.reshape(-1, *(1,) * (x.ndim - 1)), x.shape)


class BatchNorm(nn.BatchNorm):
  """nn.BatchNorm with torch's defaults and running variance, and a row mask.

  ``mask`` [B] marks real rows; padding rows are still normalised (with the real
  rows' statistics) but never contribute to the batch mean/variance, so a padded
  batch gives the real rows the same outputs and the running statistics the same
  update as the unpadded batch would. A mask already shaped like ``x`` is passed
  through.

  In train mode the batch is normalised exactly as by nn.BatchNorm, with its
  mean μ and *biased* variance v = mean((x − μ)²), both over the n real values
  of each channel (real rows × spatial positions, × devices with
  ``axis_name``). The running statistics then move as

    mean ← momentum · mean + (1 − momentum) · μ
    var  ← momentum · var  + (1 − momentum) · n / (n − 1) · v

  so the running variance tracks the *unbiased* batch variance, as torch's
  does (ALGORITHMS.md 0.2). ``unbiased_running_variance=False`` drops the
  n / (n − 1), which is flax's rule. For n ≤ 1 the unbiased variance is 0/0
  (torch refuses to train on one value per channel); the running variance is
  then left as it is, since one value says nothing about the spread and
  pulling the running variance towards v = 0 would blow up eval-mode outputs.
  The running mean is still updated.

  With ``dtype`` bfloat16 (nn.BatchNorm's field: the output dtype) the batch and
  running statistics are still computed and stored in float32
  (``force_float32_reductions``), the normalisation runs in float32 and only its
  result is cast to ``dtype``.

  Attributes (beyond nn.BatchNorm's):
    unbiased_running_variance: torch's n / (n − 1) in the running variance.
  """
  momentum: float = 0.9
  epsilon: float = 1e-5
  unbiased_running_variance: bool = True

  @nn.compact
  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    """x: [B, ..., C] -> same shape; mask: [B] or like x, True = real."""
    if mask is not None and jnp.ndim(mask) == 1:
      mask = broadcast_row_mask(mask, x)
    use_running_average = nn.merge_param(
        "use_running_average", self.use_running_average, use_running_average)
    feature_axes = _normalized_axes(self.axis, x.ndim)
    reduction_axes = tuple(i for i in range(x.ndim) if i not in feature_axes)
    feature_shape = tuple(x.shape[i] for i in feature_axes)
    stats_dtype = (jnp.float32 if self.force_float32_reductions
                   else self.param_dtype)
    # The same collection, names, shapes and initial values as nn.BatchNorm.
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, feature_shape,
                            stats_dtype)
    ra_var = self.variable("batch_stats", "var", jnp.ones, feature_shape,
                           stats_dtype)

    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
      if not self.force_float32_reductions:
        mean, var = (jnp.asarray(v, self.param_dtype) for v in (mean, var))
    else:
      # Batch statistics and normalisation come from flax's own helpers, so
      # the outputs are bit-for-bit nn.BatchNorm's; only the running-variance
      # update differs.
      initializing = self.is_initializing()
      mean, var = flax_normalization._compute_stats(
          x, reduction_axes, dtype=self.dtype,
          axis_name=None if initializing else self.axis_name,
          axis_index_groups=self.axis_index_groups,
          use_fast_variance=self.use_fast_variance, mask=mask,
          force_float32_reductions=self.force_float32_reductions)
      # As in nn.BatchNorm, init must not move the statistics.
      if not initializing:
        ra_mean.value = (self.momentum * ra_mean.value
                         + (1 - self.momentum) * mean)
        count = None
        if self.unbiased_running_variance:
          count = _values_per_channel(x, mask, reduction_axes)
          if self.axis_name is not None:
            count = lax.psum(count, self.axis_name,
                             axis_index_groups=self.axis_index_groups)
        ra_var.value = running_variance_update(ra_var.value, var, count,
                                               momentum=self.momentum)

    return flax_normalization._normalize(
        self, x, mean, var, reduction_axes, feature_axes, self.dtype,
        self.param_dtype, self.epsilon, self.use_bias, self.use_scale,
        self.bias_init, self.scale_init, self.force_float32_reductions)


def running_variance_update(running: Array, batch_var: Array,
                            count: Array | None, *,
                            momentum: float) -> Array:
  """One EMA step of a running variance: [C], [C], [C] or None -> [C].

  With m = ``momentum`` (weight of the old value; torch's momentum is 1 − m),
  v = ``batch_var`` (biased) and n = ``count`` (real values per channel):

    count is None:  m · running + (1 − m) · v                  (flax)
    otherwise:      m · running + (1 − m) · n / (n − 1) · v    (torch)
                    for channels with n > 1, and ``running`` unchanged for
                    channels with n ≤ 1, where n / (n − 1) is undefined.
  """
  if count is None:
    return momentum * running + (1 - momentum) * batch_var
  # maximum(·, 1) keeps the discarded n ≤ 1 branch finite (no inf · 0 = NaN).
  unbiased = batch_var * (count / jnp.maximum(count - 1, 1))
  updated = momentum * running + (1 - momentum) * unbiased
  return jnp.where(count > 1, updated, running)


def _normalized_axes(axis: int | Sequence[int], ndim: int) -> tuple[int, ...]:
  """Non-negative, sorted, de-duplicated axes (an int means one axis)."""
  axes = (axis,) if isinstance(axis, int) else axis
  return tuple(sorted({a % ndim for a in axes}))


def _values_per_channel(x: Array, mask: Array | None,
                        reduction_axes: tuple[int, ...]) -> Array:
  """n: float32 [C] real (unmasked) values per channel on this device."""
  if mask is None:
    mask = jnp.ones((), bool)
  mask = jnp.broadcast_to(jnp.asarray(mask, bool), x.shape)
  return jnp.sum(mask, axis=reduction_axes, dtype=jnp.float32)


def max_pool_2x2(x: Array) -> Array:
  """2x2 max pooling with stride 2 on NHWC; odd trailing rows/cols are dropped.

  Written as reshape + max, which on CPU is cheaper than reduce_window and has a
  simple gradient; the result equals ``nn.max_pool(x, (2, 2), (2, 2))``.
  """
  b, h, w, c = x.shape
  x = x[:, :h - h % 2, :w - w % 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def global_avg_pool(x: Array) -> Array:
  """[B, *spatial, C] -> [B, C]."""
  return x.mean(axis=tuple(range(1, x.ndim - 1)))

