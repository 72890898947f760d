"""Train-step throughput of the models, im2col convolutions vs XLA's.

Measures a full SGD-with-momentum step (forward, backward, update, BatchNorm
statistics) on random data, compile time excluded: each configuration is
compiled ahead of time, warmed up, then timed over many steps in a few repeats,
and the median repeat is reported.

  python benchmarks/train_speed.py
  python benchmarks/train_speed.py --skip_resnet
  python benchmarks/train_speed.py --resnet_batch 64 --resnet_xla
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from jaxsel.models import CNN1D, ResNet18

# im2col should beat nn.Conv by at least this factor on the MNIST-1D CNN on CPU.
TARGET_RATIO = 3.0


def make_train_step(model, x, num_classes: int):
  """Returns (compiled step, initial state, compile seconds).

  step(state, x, y) -> (state, loss); state = (params, batch_stats, opt_state)
  is donated, as in a real training loop.
  """
  variables = model.init(jax.random.key(0), x, train=False)
  params = variables['params']
  tx = optax.sgd(0.01, momentum=0.9)
  state = (params, variables.get('batch_stats', {}), tx.init(params))

  def step(state, x, y):
    params, batch_stats, opt_state = state

    def loss_fn(params):
      logits, updates = model.apply(
          {'params': params, 'batch_stats': batch_stats}, x, train=True,
          mutable=['batch_stats'])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, updates.get('batch_stats', {})

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

  y = jax.random.randint(jax.random.key(1), (x.shape[0],), 0, num_classes)
  start = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=0).lower(state, x, y).compile()
  return compiled, state, time.perf_counter() - start


def seconds_per_step(step, state, x, num_classes: int, steps: int,
                     repeats: int, warmup: int) -> float:
  """Median over `repeats` of the mean wall time of `steps` consecutive steps."""
  y = jax.random.randint(jax.random.key(1), (x.shape[0],), 0, num_classes)
  for _ in range(warmup):
    state, loss = step(state, x, y)
  loss.block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      state, loss = step(state, x, y)
    loss.block_until_ready()
    times.append((time.perf_counter() - start) / steps)
  return statistics.median(times)


def bench(model, input_shape, batch: int, num_classes: int, steps: int,
          repeats: int, warmup: int) -> tuple[float, float]:
  """(seconds per train step, compile seconds) for `model` at `batch`."""
  x = jax.random.normal(jax.random.key(2), (batch, *input_shape))
  step, state, compile_s = make_train_step(model, x, num_classes)
  return seconds_per_step(step, state, x, num_classes, steps, repeats,
                          warmup), compile_s


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--cnn_batches', default='32,128',
                      help='comma-separated batch sizes for the MNIST-1D CNN')
  parser.add_argument('--cnn_steps', type=int, default=300)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--resnet_batch', type=int, default=128)
  parser.add_argument('--resnet_steps', type=int, default=3)
  parser.add_argument('--skip_resnet', action='store_true')
  parser.add_argument('--resnet_xla', action='store_true',
                      help='also time ResNet-18 with nn.Conv (slow on CPU)')
  args = parser.parse_args()

  print(f'jax {jax.__version__}, backend {jax.default_backend()}, '
        f'{jax.device_count()} device(s), {jax.devices()[0].device_kind}')
  print('\nMNIST-1D CNN (paper default, 5,210 params), train step, input [B, 40]')
  print(f'{"batch":>6} {"impl":>7} {"ms/step":>9} {"examples/s":>12}')
  ratios = {}
  for batch in [int(b) for b in args.cnn_batches.split(',')]:
    per_impl = {}
    for impl in ('im2col', 'xla'):
      seconds, _ = bench(CNN1D(10, conv_impl=impl), (40,), batch, 10,
                         args.cnn_steps, args.repeats, warmup=20)
      per_impl[impl] = seconds
      print(f'{batch:>6} {impl:>7} {seconds * 1e3:>9.3f} {batch / seconds:>12,.0f}')
    ratios[batch] = per_impl['xla'] / per_impl['im2col']
  for batch, ratio in ratios.items():
    verdict = 'met' if ratio >= TARGET_RATIO else 'NOT met'
    print(f'batch {batch}: im2col/xla throughput ratio {ratio:.2f}x '
          f'(target >= {TARGET_RATIO:.0f}x: {verdict})')

  if args.skip_resnet:
    return
  batch = args.resnet_batch
  print(f'\nCIFAR ResNet-18 (11,173,962 params), train step, input [{batch}, 32, 32, 3]')
  print(f'{"impl":>7} {"compile s":>10} {"s/step":>8} {"examples/s":>11}')
  impls = ('im2col', 'xla') if args.resnet_xla else ('im2col',)
  for impl in impls:
    seconds, compile_s = bench(ResNet18(num_classes=10, conv_impl=impl),
                               (32, 32, 3), batch, 10, args.resnet_steps,
                               repeats=1, warmup=1)
    print(f'{impl:>7} {compile_s:>10.1f} {seconds:>8.2f} {batch / seconds:>11.1f}')


if __name__ == '__main__':
  jnp.zeros(())  # initialise the backend before the first timed region
  main()
