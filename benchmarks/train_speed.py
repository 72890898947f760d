"""Train-step throughput of the models, im2col convolutions vs XLA's.

The MNIST-1D CNN is timed two ways: through jaxsel's own training path (whole chunks of
steps as one ``lax.scan``; the target applies here) and as one jitted call per step.
Inside a scan, XLA:CPU's convolutions are much slower than as a single step, which is what
makes the im2col form pay in training.

Measures a full SGD-with-momentum step (forward, backward, update, BatchNorm
statistics) on random data, compile time excluded: each configuration is
compiled ahead of time, warmed up, then timed over many steps in a few repeats,
and the median repeat is reported.

  python -m benchmarks.train_speed
  python -m benchmarks.train_speed --skip_resnet
  python -m benchmarks.train_speed --resnet_batch 64 --resnet_xla
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from configs import default
from jaxsel import losses, optim, steps
from jaxsel.data import iterators
from jaxsel.models import CNN1D, ResNet18
from jaxsel.state import create_train_state

# im2col should beat nn.Conv by at least this factor on the MNIST-1D CNN on CPU.
TARGET_RATIO = 3.0
STEPS_PER_CHUNK = default.get_config().train.steps_per_chunk


def make_train_step(model, x, num_classes: int):
  """Returns (compiled step, initial state, compile seconds, temp bytes).

  step(state, x, y) -> (state, loss); state = (params, batch_stats, opt_state)
  is donated, as in a real training loop.
  """
  variables = model.init(jax.random.key(0), x, train=False)
  params = variables["params"]
  tx = optax.sgd(0.01, momentum=0.9)
  state = (params, variables.get("batch_stats", {}), tx.init(params))

  def step(state, x, y):
    params, batch_stats, opt_state = state

    def loss_fn(params):
      logits, updates = model.apply(
          {"params": params, "batch_stats": batch_stats}, x, train=True,
          mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, updates.get("batch_stats", {})

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

  y = jax.random.randint(jax.random.key(1), (x.shape[0],), 0, num_classes)
  start = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=0).lower(state, x, y).compile()
  compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()
  temp_bytes = memory.temp_size_in_bytes if memory is not None else float("nan")
  return compiled, state, compile_s, temp_bytes


class Runner:
  """A compiled train step with its (donated) state and one fixed batch."""

  def __init__(self, model, input_shape, batch: int, num_classes: int):
    self.x = jax.random.normal(jax.random.key(2), (batch, *input_shape))
    self.y = jax.random.randint(jax.random.key(1), (batch,), 0, num_classes)
    self.step, self.state, self.compile_s, self.temp_bytes = make_train_step(
        model, self.x, num_classes)

  def run(self, steps: int) -> float:
    """Mean wall seconds per step over `steps` consecutive steps."""
    start = time.perf_counter()
    for _ in range(steps):
      self.state, loss = self.step(self.state, self.x, self.y)
    loss.block_until_ready()
    return (time.perf_counter() - start) / steps


def interleaved_medians(epoch_fns, repeats: int) -> dict[str, float]:
  """Median seconds per step of each epoch function, repeats interleaved."""
  times = {name: [] for name in epoch_fns}
  for _ in range(repeats):
    for name, run_epoch in epoch_fns.items():
      start = time.perf_counter()
      num_steps = run_epoch()
      times[name].append((time.perf_counter() - start) / num_steps)
  return {name: statistics.median(t) for name, t in times.items()}


def seconds_per_step(runners: dict[str, Runner], steps: int, repeats: int,
                     warmup: int) -> dict[str, float]:
  """Median over `repeats` of each runner's mean step time.

  The runners' repeats are interleaved so that a change in machine load
  (other processes) affects all of them alike rather than one of them.
  """
  for runner in runners.values():
    runner.run(warmup)
  times = {name: [] for name in runners}
  for _ in range(repeats):
    for name, runner in runners.items():
      times[name].append(runner.run(steps))
  return {name: statistics.median(t) for name, t in times.items()}


def jaxsel_epoch_runner(model, batch: int, steps_per_chunk: int, num_examples: int):
  """A function running one epoch exactly as ``jaxsel.train`` does: chunks of
  ``steps_per_chunk`` steps as one ``lax.scan``, batches gathered on the device."""
  config = default.get_config()
  state = create_train_state(model, optim.make_optimizer(config), seed=0, input_shape=(40,))
  step_fn = steps.make_train_step(
      loss_fn=losses.cross_entropy,
      # Every step here runs in epoch 0, so only the schedule's first value is used.
      learning_rate_fn=optim.make_schedule(
          config, epoch_steps=[1] * config.train.num_epochs),
      schedule_unit="epoch")
  chunk = steps.jit_train_chunk(step_fn)
  rng = np.random.default_rng(0)
  data = {"inputs": jnp.asarray(rng.normal(size=(num_examples, 40)), jnp.float32),
          "labels": jnp.asarray(rng.integers(0, 10, num_examples), jnp.int32)}
  plan = iterators.train_plan(np.arange(num_examples), batch_size=batch,
                              steps_per_chunk=steps_per_chunk, shuffle_seed=(0, 0),
                              drop_remainder=True)
  holder = {"state": state}

  def run_epoch() -> int:
    for ids, mask in plan.chunks():
      holder["state"], sums = chunk(holder["state"], steps.empty_train_sums(), data, ids,
                                    mask, np.int32(0))
    jax.block_until_ready(sums)
    return plan.num_steps

  run_epoch()  # compile
  return run_epoch


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cnn_batches", default="32,128",
                      help="comma-separated batch sizes for the MNIST-1D CNN")
  parser.add_argument("--cnn_steps", type=int, default=300)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--resnet_batch", type=int, default=128)
  parser.add_argument("--resnet_steps", type=int, default=3)
  parser.add_argument("--skip_resnet", action="store_true")
  parser.add_argument("--resnet_xla", action="store_true",
                      help="also time ResNet-18 with nn.Conv (slow on CPU)")
  args = parser.parse_args()

  print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{jax.device_count()} device(s), {jax.devices()[0].device_kind}")
  kwargs = dict(default.get_config().model.kwargs)
  print(f"\nMNIST-1D CNN of configs/default.py ({kwargs}), train step, input [B, 40]")
  print("  'jaxsel loop': epochs of 4,000 examples run as jaxsel.train runs them "
        f"({STEPS_PER_CHUNK} steps per lax.scan call);")
  print("  'single step': one jitted call per step (dispatch included).")
  print(f"{'batch':>6} {'mode':>12} {'impl':>7} {'ms/step':>9} {'examples/s':>12}")
  ratios = {}
  for batch in [int(b) for b in args.cnn_batches.split(",")]:
    models = {impl: CNN1D(10, **dict(kwargs, conv_impl=impl)) for impl in ("im2col", "xla")}
    epochs = {impl: jaxsel_epoch_runner(m, batch, STEPS_PER_CHUNK, 4000)
              for impl, m in models.items()}
    loop = interleaved_medians(epochs, args.repeats)
    runners = {impl: Runner(m, (40,), batch, 10) for impl, m in models.items()}
    single = seconds_per_step(runners, args.cnn_steps, args.repeats, warmup=20)
    for mode, seconds in (("jaxsel loop", loop), ("single step", single)):
      for impl, sec in seconds.items():
        print(f"{batch:>6} {mode:>12} {impl:>7} {sec * 1e3:>9.3f} {batch / sec:>12,.0f}")
      ratios[(batch, mode)] = seconds["xla"] / seconds["im2col"]
  for (batch, mode), ratio in ratios.items():
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    target = f"target >= {TARGET_RATIO:.0f}x: {verdict}" if mode == "jaxsel loop" else "info"
    print(f"batch {batch:>3} {mode:>12}: im2col is {ratio:.2f}x the throughput of "
          f"nn.Conv ({target})")

  if args.skip_resnet:
    return
  batch = args.resnet_batch
  print(f"\nCIFAR ResNet-18 (11,173,962 params), train step, input [{batch}, 32, 32, 3]")
  print(f"{'impl':>7} {'compile s':>10} {'s/step':>8} {'examples/s':>11} "
        f"{'temp MB':>8}")
  impls = ("im2col", "xla") if args.resnet_xla else ("im2col",)
  for impl in impls:
    runner = Runner(ResNet18(num_classes=10, conv_impl=impl), (32, 32, 3),
                    batch, 10)
    sec = seconds_per_step({impl: runner}, args.resnet_steps, repeats=1,
                           warmup=1)[impl]
    print(f"{impl:>7} {runner.compile_s:>10.1f} {sec:>8.2f} {batch / sec:>11.1f} "
          f"{runner.temp_bytes / 2**20:>8,.0f}")
    del runner  # free its buffers before compiling the next one

if __name__ == "__main__":
  jnp.zeros(())  # initialise the backend before the first timed region
  main()
