"""Train-step compile time, speed, memory and data-parallel scaling on whatever accelerator
this host has (GPU, TPU, or CPU devices).

    python -m benchmarks.accelerator
    python -m benchmarks.accelerator --models resnet18,resnet50 --devices 1,8 --dtypes bfloat16
    JAX_NUM_CPU_DEVICES=4 python -m benchmarks.accelerator --quick

For each model x global batch size x compute dtype x device count, on synthetic data of the
model's input shape, it times jaxsel's own train chunk (``steps.jit_train_chunk`` of
``steps.make_train_step``: ``--steps`` steps in one ``lax.scan``, batches gathered on the
device, ids padded and sharded over a one-axis ``data`` mesh by ``jaxsel.distributed``), as
``jaxsel.train`` runs it:

- compile s: ``compile_ahead`` of the chunk (trace, lower, compile), waited for;
- step: the median of ``--chunks`` timed chunks, each synced with ``block_until_ready``,
  over the steps per chunk, after one warm-up chunk; examples/s = batch / step;
- peak MB: ``peak_bytes_in_use`` of ``device.memory_stats()``, the largest over the devices
  used (GPU and TPU; "n/a" where the backend has no such counter, as on CPU); XLA temp MB:
  the compiled program's temporaries per device (``memory_analysis``), on every backend;
- scaling efficiency: throughput(D) / (D x throughput(1)) for the same model, batch, dtype.

The batch is the *global* batch (``config.train.batch_size``), so D devices get batch / D rows
each: strong scaling, what a run of the same config on more devices does. Synthetic data is
``--examples`` rows held on every device, so peak memory leaves out most of a real dataset.

Each configuration runs in a fresh child process (``--in_process`` runs them all here):
``peak_bytes_in_use`` cannot be reset, so in one process it would be the peak of every
configuration so far; a configuration that runs out of memory costs only its own row; and
on TPU only one process may hold the chips, so this process never starts a backend.
"""

import argparse
import csv
import io
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

import jax
import numpy as np

from configs import default
from jaxsel import compilation, distributed, files, losses, models, optim, state, steps

# Without --in_process this process imports JAX but never starts a backend: the children
# do (see the module docstring).
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MARKER = "ACCELERATOR_RESULT "  # the child's one line of results on stdout
# Environment variables that change which devices JAX sees, or how: part of the exact
# command (the children inherit them).
_DEVICE_ENV = ("JAX_PLATFORMS", "CUDA_VISIBLE_DEVICES", "TPU_VISIBLE_CHIPS", "XLA_FLAGS",
               "XLA_PYTHON_CLIENT_MEM_FRACTION", "JAX_NUM_CPU_DEVICES")

# The models of configs/papers/*.py: input shape of their dataset, the options they set.
MODELS = {
    "cnn1d": ((40,), {"conv_impl": "auto", "channels": 25, "use_batchnorm": False}),
    "mnist_cnn": ((28, 28, 1), {"dropout_rate": 0.0}),
    "resnet18": ((32, 32, 3), {"conv_impl": "auto"}),
    "resnet34": ((32, 32, 3), {"conv_impl": "auto"}),
    "resnet50": ((32, 32, 3), {"conv_impl": "auto"}),
}
NUM_CLASSES = 10
# For a GPU or TPU host: 120 steps per configuration, seconds even for a ResNet, so the
# grid's time is mostly each child's start-up and compiles.
DEFAULTS = {"models": ",".join(MODELS), "steps": "20", "chunks": "5"}
# A 2-core CPU: the small models only, a handful of steps.
QUICK = {"models": "cnn1d,mnist_cnn", "steps": "4", "chunks": "2"}

# (header, row key, format); a value of None prints as "n/a".
COLUMNS = (("model", "model", "{}"), ("batch", "batch_size", "{}"), ("dtype", "dtype", "{}"),
           ("devices", "devices", "{}"), ("chunks x steps", "timed", "{}"),
           ("compile s", "compile_s", "{:.1f}"),
           ("step ms", "step_ms", "{:,.1f}"), ("examples/s", "examples_per_s", "{:,.0f}"),
           ("peak MB", "peak_mb", "{:,.0f}"), ("XLA temp MB", "xla_temp_mb", "{:,.1f}"),
           ("scaling eff.", "scaling_efficiency", "{:.2f}"))
CSV_FIELDS = ("backend", "device_kind", "model", "batch_size", "dtype", "devices",
              "rows_per_device", "steps_per_chunk", "timed_chunks", "compile_s", "step_s",
              "examples_per_s", "peak_bytes", "xla_temp_bytes", "scaling_efficiency",
              "recompiles", "error")


# --- one configuration (in the child process) -----------------------------------------

def _train_chunk_and_state(spec: dict):
  """The library's train chunk and a train state for ``spec``, built as ``jaxsel.train``
  builds them (default config: SGD with momentum, cross-entropy)."""
  config = default.get_config()
  input_shape, kwargs = MODELS[spec["model"]]
  kwargs = dict(kwargs)
  if spec["dtype"] != "float32":  # float32 is every model's default: pass nothing
    kwargs["dtype"] = spec["dtype"]
  model = models.get_model(spec["model"], num_classes=NUM_CLASSES, **kwargs)
  step_fn = steps.make_train_step(
      loss_fn=losses.from_config(config.loss),
      # Every chunk runs in epoch 0; only the schedule's first value is used.
      learning_rate_fn=optim.make_schedule(
          config, epoch_steps=[spec["steps"]] * config.train.num_epochs),
      schedule_unit="epoch")
  train_state = state.create_train_state(model=model, tx=optim.make_optimizer(config),
                                         seed=0, input_shape=input_shape, trackers={},
                                         method_state={})
  return steps.jit_train_chunk(step_fn), train_state, input_shape


def _synthetic(spec: dict, input_shape, placement):
  """Device data, and host id chunks [S, B] (the warm-up one first): random rows each."""
  rng = np.random.default_rng(0)
  host = {"inputs": rng.normal(size=(spec["examples"], *input_shape)).astype(np.float32),
          "labels": rng.integers(0, NUM_CLASSES, spec["examples"]).astype(np.int32)}
  # As evaluation.device_data: on every device (placement), committed to it (device_put).
  data = jax.device_put(placement.replicate(host))
  shape = (1 + spec["chunks"], spec["steps"], spec["batch_size"])
  ids = rng.integers(0, spec["examples"], shape).astype(np.int32)
  return data, ids, np.ones(shape, bool)


def _peak_bytes(placement) -> int | None:
  devices = [jax.devices()[0]] if placement.mesh is None else list(placement.mesh.devices.flat)
  peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in devices]
  return None if None in peaks else max(peaks)


def _placed(placement, tree):
  """``tree`` as device arrays laid out as the steps return them (replicated).

  Every input of the chunk is placed, so the program ``compile_ahead`` compiles is the one
  every call runs: a Python int (the state's step) or a host array (the sums, the epoch)
  reaches jit with another weak type or sharding than a device array does, and a call with
  it compiles another program, which the timed chunks would then include.
  """
  return jax.device_put(placement.replicate(tree))


def measure(spec: dict) -> dict:
  """Compiles and times one configuration in this process; returns its row."""
  compilation.CompileClock.start()
  placement = distributed.placement_for(spec["devices"])
  with distributed.using(placement):
    train_chunk, train_state, input_shape = _train_chunk_and_state(spec)
    train_state = _placed(placement, train_state)
    data, ids, mask = _synthetic(spec, input_shape, placement)
    sums, epoch = _placed(placement, (steps.empty_train_sums(), np.int32(0)))
    start = time.perf_counter()
    compiled = train_chunk.compile_ahead(train_state, sums, data, ids[0], mask[0],
                                         epoch).result()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    compilations = compilation.CompileClock.compilations()
    seconds = []
    for chunk in range(len(ids)):  # chunk 0 warms up
      start = time.perf_counter()
      train_state, sums = train_chunk(train_state, sums, data, ids[chunk], mask[chunk], epoch)
      jax.block_until_ready((train_state, sums))
      seconds.append(time.perf_counter() - start)
    step_s = statistics.median(seconds[1:]) / spec["steps"]
    return dict(
        spec, step_s=step_s, compile_s=compile_s,
        examples_per_s=spec["batch_size"] / step_s, peak_bytes=_peak_bytes(placement),
        xla_temp_bytes=None if memory is None else int(memory.temp_size_in_bytes),
        rows_per_device=distributed.padded_batch_size(spec["batch_size"],
                                                      spec["devices"]) // spec["devices"],
        # XLA compilations after compile_ahead: 0 unless a call missed its program (then
        # the step times would include compiling).
        recompiles=compilation.CompileClock.compilations() - compilations)


def describe() -> dict:
  return {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
          "local_devices": jax.local_device_count(), "jax": jax.__version__}


# --- running configurations: each in a child process, or all in this one --------------

# Prints describe() without importing jaxsel: a second's start-up instead of three.
_DESCRIBE = ("import json, jax; d = jax.devices()[0]; print(" + repr(_MARKER) + " + "
             "json.dumps({'backend': jax.default_backend(), 'device_kind': d.device_kind, "
             "'local_devices': jax.local_device_count(), 'jax': jax.__version__}))")


class ChildFailed(RuntimeError):
  pass


def _child_result(command: list[str]) -> dict:
  proc = subprocess.run([sys.executable, *command], cwd=_REPO, capture_output=True,
                        text=True, check=False)
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith(_MARKER):
      return json.loads(line[len(_MARKER):])
  # An out-of-memory error or a crash: the last line that says something.
  lines = [l.strip() for l in (proc.stderr + proc.stdout).splitlines() if l.strip()]
  raise ChildFailed(f"exit status {proc.returncode}: "
                    f"{lines[-1][:300] if lines else 'no output'}")


class Isolated:
  """Each configuration in a fresh ``python -m benchmarks.accelerator --_spec`` process."""

  def describe(self) -> dict:
    return _child_result(["-c", _DESCRIBE])

  def measure(self, spec: dict) -> dict:
    return _child_result(["-m", "benchmarks.accelerator", "--_spec", json.dumps(spec)])


class InProcess:
  """Every configuration in this process (quicker; peak memory is the process's so far)."""

  def describe(self) -> dict:
    return describe()

  def measure(self, spec: dict) -> dict:
    return measure(spec)


# --- the grid --------------------------------------------------------------------------

def _ints(text: str, what: str) -> list[int]:
  values = [v.strip() for v in text.split(",") if v.strip()]
  if not values or not all(v.isdigit() and int(v) > 0 for v in values):
    raise SystemExit(f"--{what}: comma-separated positive integers, not {text!r}")
  return [int(v) for v in values]


def per_model(text: str, what: str, model_names, *, single: bool) -> dict[str, list[int]]:
  """A flag's values for each model: ``8,resnet18=1`` gives resnet18 [1], the others [8].

  Plain entries apply to every model without an entry of its own; ``model=N`` entries
  accumulate (``128,256,resnet18=128``: resnet18 at 128 only, the others at both), so a
  grid can give a slow model less without a second command. ``single``: one value each.
  """
  plain, own = [], {}
  for part in [p.strip() for p in text.split(",") if p.strip()]:
    name, _, value = part.rpartition("=")
    if name and name not in MODELS:
      raise SystemExit(f"--{what}: unknown model {name!r}; models: {', '.join(MODELS)}")
    (own.setdefault(name, []) if name else plain).extend(_ints(value, what))
  values = {m: own.get(m, plain) for m in model_names}
  wrong = [m for m, v in values.items() if not v or (single and len(v) > 1)]
  if wrong:
    raise SystemExit(f"--{what} {text!r}: {'one value' if single else 'values'} needed "
                     f"for {', '.join(wrong)}")
  return values


def default_device_counts(available: int) -> list[int]:
  """1, 2, 4, ... up to ``available``, and ``available`` itself."""
  counts = [2**k for k in range(available.bit_length()) if 2**k <= available]
  return counts + ([available] if counts[-1] != available else [])


def _names(text: str, what: str, valid) -> list[str]:
  names = [n.strip() for n in text.split(",") if n.strip()]
  unknown = [n for n in names if n not in valid]
  if unknown or not names:
    raise SystemExit(f"--{what}: unknown {', '.join(unknown) or 'none given'}; "
                     f"valid: {', '.join(valid)}")
  return names


def configurations(args, available: int) -> list[dict]:
  """Every (model, batch, dtype, devices) the flags ask for, as child specs, in order."""
  model_names = _names(args.models, "models", MODELS)
  dtypes = _names(args.dtypes, "dtypes", ("float32", "bfloat16"))
  devices = (default_device_counts(available) if args.devices is None
             else _ints(args.devices, "devices"))
  if max(devices) > available:
    raise SystemExit(f"--devices {max(devices)}: JAX sees {available} device(s) here")
  batches = per_model(args.batch_sizes, "batch_sizes", model_names, single=False)
  steps = per_model(args.steps, "steps", model_names, single=True)
  chunks = per_model(args.chunks, "chunks", model_names, single=True)
  grid = []
  for model in model_names:
    for batch in batches[model]:
      for dtype in dtypes:
        if dtype != "float32" and "dtype" not in models.options(model):
          print(f"skipped: {model} has no dtype option, so no {dtype}")
          continue
        grid += [dict(model=model, batch_size=batch, dtype=dtype, devices=d,
                      steps=steps[model][0], chunks=chunks[model][0],
                      examples=args.examples) for d in devices]
  return grid


def add_scaling_efficiency(rows: list[dict]) -> None:
  """throughput(D) / (D x throughput(1)) per model, batch and dtype (None without D = 1)."""
  key = lambda r: (r["model"], r["batch_size"], r["dtype"])  # noqa: E731
  single = {key(r): r.get("examples_per_s") for r in rows if r["devices"] == 1}
  for row in rows:
    base, ours = single.get(key(row)), row.get("examples_per_s")
    row["scaling_efficiency"] = (ours / (row["devices"] * base)
                                 if base and ours is not None else None)


# --- output ----------------------------------------------------------------------------

_SPEC_KEYS = ("model", "batch_size", "dtype", "devices", "timed")


def _cell(row: dict, key: str, fmt: str) -> str:
  derived = {"timed": lambda r: f"{r['chunks']} x {r['steps']}",
             "step_ms": lambda r: r["step_s"] * 1e3,
             "peak_mb": lambda r: r["peak_bytes"] / 2**20,
             "xla_temp_mb": lambda r: r["xla_temp_bytes"] / 2**20}
  if row.get("error") and key not in _SPEC_KEYS:
    return "failed"
  try:
    value = derived[key](row) if key in derived else row[key]
  except (KeyError, TypeError):  # a failed configuration, or a counter the backend lacks
    value = None
  return "n/a" if value is None else fmt.format(value)


def table(rows: list[dict]) -> str:
  cells = [[h for h, _, _ in COLUMNS]]
  cells += [[_cell(r, key, fmt) for _, key, fmt in COLUMNS] for r in rows]
  widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
  # Names left-aligned, numbers right-aligned, so digits line up.
  align = lambda i, text: (text.ljust if i in (0, 2) else text.rjust)(widths[i])  # noqa: E731
  lines = ["  ".join(align(i, text) for i, text in enumerate(line)).rstrip() for line in cells]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)


def csv_text(rows: list[dict], about: dict) -> str:
  out = io.StringIO()
  writer = csv.DictWriter(out, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
  writer.writeheader()
  for row in rows:
    writer.writerow({**row, "backend": about["backend"], "device_kind": about["device_kind"],
                     "steps_per_chunk": row["steps"], "timed_chunks": row["chunks"]})
  return out.getvalue()


def command_line(argv: list[str]) -> str:
  env = [f"{name}={shlex.quote(os.environ[name])}" for name in _DEVICE_ENV
         if name in os.environ]
  return " ".join([*env, "python -m benchmarks.accelerator", *map(shlex.quote, argv)])


def _name(spec: dict) -> str:
  return (f"{spec['model']} batch {spec['batch_size']} {spec['dtype']} on {spec['devices']} "
          f"device{'s' * (spec['devices'] > 1)}")


def _summary(row: dict) -> str:
  if row.get("error"):
    return f"FAILED ({row['error']})"
  text = (f"compile {row['compile_s']:.1f} s, step {row['step_s'] * 1e3:,.1f} ms, "
          f"{row['examples_per_s']:,.0f} examples/s, peak {_cell(row, 'peak_mb', '{:,.0f} MB')}")
  if row["recompiles"]:
    text += f"; {row['recompiles']} compilation(s) after compile_ahead"
  return text


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default=None,
                      help=f"comma-separated, from {', '.join(MODELS)} (default: all)")
  parser.add_argument("--batch_sizes", default="128,256",
                      help="global batch sizes, and model=B for some models (only those B)")
  parser.add_argument("--devices", default=None,
                      help="device counts (default: 1, 2, 4, ... and all local devices)")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--steps", default=None,
                      help="steps per chunk: N, and model=N for some models, e.g. 8,resnet18=1 "
                      f"(default {DEFAULTS['steps']}; --quick {QUICK['steps']})")
  parser.add_argument("--chunks", default=None,
                      help="timed chunks after the warm-up one: N, and model=N "
                      f"(default {DEFAULTS['chunks']}; --quick {QUICK['chunks']})")
  parser.add_argument("--examples", type=int, default=4096,
                      help="rows of synthetic data held on every device")
  parser.add_argument("--quick", action="store_true",
                      help=f"for a CPU: models {QUICK['models']}, fewer steps")
  parser.add_argument("--in_process", action="store_true",
                      help="every configuration in this process (peak memory cumulative)")
  parser.add_argument("--csv", default=None,
                      help="default: benchmarks/results/accelerator_<backend>.csv")
  parser.add_argument("--_spec", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  for name, value in (QUICK if args.quick else DEFAULTS).items():
    if getattr(args, name) is None:
      setattr(args, name, value)
  if args.examples < 1:
    raise SystemExit(f"--examples must be positive, not {args.examples}")
  return args


def main(argv=None) -> list[dict]:
  """Runs the grid, prints the table and writes the csv; returns the rows."""
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parse_args(argv)
  spec = vars(args)["_spec"]  # a child: one configuration, one line of results
  if spec is not None:
    print(_MARKER + json.dumps(measure(json.loads(spec))), flush=True)
    return []
  runner = InProcess() if args.in_process else Isolated()
  about = runner.describe()
  print(f"backend {about['backend']}, device kind {about['device_kind']}, "
        f"{about['local_devices']} local device(s), jax {about['jax']}", flush=True)
  grid = configurations(args, about["local_devices"])
  rows = []
  for index, spec in enumerate(grid, 1):
    print(f"[{index:>{len(str(len(grid)))}}/{len(grid)}] {_name(spec)}: ", end="",
          flush=True)
    try:
      row = runner.measure(spec)
    except (ChildFailed, RuntimeError, ValueError, MemoryError) as e:  # one row lost, not all
      row = dict(spec, error=" ".join(str(e).split())[:300])
    rows.append(row)
    print(_summary(row), flush=True)
  add_scaling_efficiency(rows)
  print(f"\nglobal batch split over the devices (strong scaling); step = median timed "
        f"chunk / steps per chunk, after a warm-up chunk; {args.examples} synthetic "
        "examples on every device")
  if args.in_process:
    print("in-process: peak MB is the peak of every configuration so far in this process")
  print(table(rows))
  for row in rows:
    if row.get("error"):
      print(f"failed: {_name(row)}: {row['error']}")
  path = args.csv or os.path.join(_REPO, "benchmarks", "results",
                                  f"accelerator_{about['backend']}.csv")
  files.write_text(path, csv_text(rows, about))
  print(f"\ncsv: {path}\ncommand: {command_line(argv)}")
  return rows


if __name__ == "__main__":
  main()
