"""Compile-ahead fills the real call's cache; the compile clock is per thread; the
persistent cache option keeps every program and is switched off by 'off'."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import compilation, metrics, models, optim, steps
from jaxsel.data import iterators
from jaxsel.state import create_train_state
from configs import default


def test_compile_ahead_fills_the_cache_of_the_real_call():
  # A number of bins no other test uses: a fresh compiled pass.
  evaluate = steps.jit_eval_chunk(num_bins=7, reference_binning=False)
  model = models.get_model("cnn1d", num_classes=10, channels=8)
  state = create_train_state(model, optim.make_optimizer(default.get_config()), seed=0,
                             input_shape=(40,))
  rng = np.random.default_rng(0)
  data = {"inputs": jnp.asarray(rng.normal(size=(30, 40)), jnp.float32),
          "labels": jnp.asarray(rng.integers(0, 10, 30), jnp.int32)}
  plan = iterators.full_pass_plan(np.arange(30), batch_size=8, steps_per_chunk=2)
  ids, mask = next(iter(plan.chunks()))
  main_seconds = compilation.CompileClock.seconds()
  all_seconds = compilation.CompileClock.seconds(all_threads=True)
  compilations = compilation.CompileClock.compilations()
  evaluate.compile_ahead(state, metrics.empty_sums(7), data, ids, mask).result()
  assert compilation.CompileClock.compilations() == compilations + 1
  # The background thread's compile time is not charged to this thread's clock.
  assert compilation.CompileClock.seconds() == main_seconds
  assert compilation.CompileClock.seconds(all_threads=True) > all_seconds
  compilations = compilation.CompileClock.compilations()
  total = metrics.empty_sums(7)
  for ids, mask in plan.chunks():
    total = evaluate(state, total, data, ids, mask)
  assert float(total.count) == 30
  assert compilation.CompileClock.compilations() == compilations  # ran the compiled program


@pytest.mark.parametrize("setting,env,expected", [
    ("/tmp/a", None, "/tmp/a"),
    ("off", "/tmp/b", None),
    ("", None, None),
    (None, "/tmp/b", "/tmp/b"),
    (None, "off", None),
    (None, None, os.path.expanduser(compilation.DEFAULT_CACHE_DIR)),
])
def test_cache_dir_from_flag_environment_or_default(monkeypatch, setting, env, expected):
  if env is None:
    monkeypatch.delenv(compilation.CACHE_ENV_VAR, raising=False)
  else:
    monkeypatch.setenv(compilation.CACHE_ENV_VAR, env)
  assert compilation.cache_dir(setting) == expected


def test_persistent_cache_keeps_even_fast_compiles_and_serves_a_second_process(tmp_path):
  # In subprocesses: the cache is a process-wide JAX setting.
  script = textwrap.dedent(f"""
      import jax, jax.numpy as jnp
      from jaxsel import compilation
      compilation.enable_persistent_cache({str(tmp_path)!r})
      hits = []
      jax.monitoring.register_event_listener(
          lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
      jax.jit(lambda x: jnp.sin(x) * 2 + 1)(jnp.ones(3)).block_until_ready()
      print(len(hits))
  """)
  first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
  assert first.stdout.split()[-1] == "0"
  assert os.listdir(tmp_path)  # a program that compiled in milliseconds was kept
  second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
  assert int(second.stdout.split()[-1]) >= 1  # loaded, not compiled


def test_enable_persistent_cache_none_leaves_it_off():
  before = jax.config.jax_compilation_cache_dir
  assert compilation.enable_persistent_cache(None) is None
  assert jax.config.jax_compilation_cache_dir == before
