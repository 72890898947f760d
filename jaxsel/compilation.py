"""Compilation machinery: compile ahead on a background thread, a compile clock, and
JAX's persistent compilation cache.

Three costs dominate short runs on a CPU host, and this module is how the loop hides or
measures them:

- ``compile_ahead`` compiles a jitted function for given shapes on one background thread
  (XLA compiles outside the GIL), so the main thread can meanwhile compile model init or
  train; the program lands in the function's own cache.
- ``CompileClock`` counts seconds spent tracing, lowering and compiling per thread, and
  XLA compilations in any thread, so timings can exclude compilation without a warm-up run
  and tests can assert that a new subset size compiled nothing.
- ``enable_persistent_cache`` turns on JAX's on-disk cache of compiled programs, so a
  second process running the same programs loads them instead of compiling them.

Counting traces of one function is ``chex.assert_max_traces``'s job (see the tests).
"""

import collections
import concurrent.futures
import os
import threading

import jax

from jaxsel import distributed

# One background thread: compiling is single-threaded in XLA and runs outside the GIL, so
# one extra compile at a time is what a 2-core host can overlap with the main thread's.
_COMPILER = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                  thread_name_prefix="jaxsel-compile")


def compile_ahead(jitted, args: tuple = (), kwargs: dict | None = None, *,
                  static: dict | None = None) -> concurrent.futures.Future:
  """Traces, lowers and compiles ``jitted`` for the shapes of ``args`` and ``kwargs``
  (arrays) with the static arguments ``static``, on a background thread; the future's
  result is the compiled program.

  The program lands in ``jitted``'s own cache, so a later call with arguments of these
  shapes runs it without compiling again. Arguments may be ``jax.ShapeDtypeStruct``s.
  Only shapes are read, here on the calling thread, so ``args`` may be donated or deleted
  right after. Call ``result()`` before the first real call, or both threads may compile
  the same program.
  """
  placement = distributed.current()
  abstract_args, abstract_kwargs = jax.tree.map(placement.abstract, (args, kwargs or {}))

  def compile_():
    # JAX's mesh context is per thread: trace under the caller's, or the program would
    # not be the one the caller's call looks up.
    with distributed.mesh_context(placement):
      return jitted.lower(*abstract_args, **abstract_kwargs, **(static or {})).compile()

  return _COMPILER.submit(compile_)


class CompileClock:
  """Seconds the calling thread has spent tracing, lowering and compiling, and XLA
  compilations in any thread, since the clock was first read.

  Read it before and after a region and subtract, so timings can exclude compilation
  without a separate warm-up run. Seconds are per thread so that a program compiled in the
  background (``compile_ahead``) is not subtracted from the main thread's wall clock.
  Programs loaded from the persistent cache count as compilations too (JAX reports their
  load under the same event), which is what "nothing was compiled again" should mean.
  """

  _EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
             "/jax/core/compile/jaxpr_to_mlir_module_duration",
             "/jax/core/compile/backend_compile_duration")
  _BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
  _seconds: collections.Counter = collections.Counter()  # thread id -> seconds
  _compilations = 0
  _registered = False
  _lock = threading.Lock()

  @classmethod
  def _listen(cls, event, duration, **kwargs):
    del kwargs
    with cls._lock:
      if event in cls._EVENTS:
        cls._seconds[threading.get_ident()] += duration
      if event == cls._BACKEND_COMPILE:
        cls._compilations += 1

  @classmethod
  def start(cls) -> None:
    """Registers the listener (idempotent); events before the first call are not seen."""
    with cls._lock:
      if cls._registered:
        return
      cls._registered = True
    jax.monitoring.register_event_duration_secs_listener(cls._listen)

  @classmethod
  def compilations(cls) -> int:
    """XLA compilations since the clock was started (any function, eager ops too)."""
    cls.start()
    return cls._compilations

  @classmethod
  def seconds(cls, *, all_threads: bool = False) -> float:
    cls.start()
    with cls._lock:
      if all_threads:
        return sum(cls._seconds.values())
      return cls._seconds[threading.get_ident()]


CACHE_ENV_VAR = "JAXSEL_COMPILATION_CACHE"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "jaxsel", "xla")


def cache_dir(setting: str | None = None) -> str | None:
  """The persistent cache directory for ``setting`` (a directory, or ``off``), else
  ``$JAXSEL_COMPILATION_CACHE``, else ``~/.cache/jaxsel/xla``; None when it is off."""
  if setting is None:
    setting = os.environ.get(CACHE_ENV_VAR, DEFAULT_CACHE_DIR)
  if setting.strip().lower() in ("", "off", "0", "none"):
    return None
  return os.path.expanduser(setting)


def enable_persistent_cache(directory: str | None) -> str | None:
  """Caches every compiled program in ``directory`` (None: leave the cache off).

  JAX by default keeps only programs that took a second or more to compile; on a CPU host
  the programs of a run compile in 0.1-1 s each and together cost 2-3 s per process, so
  every program is kept. Entries are keyed by the program, the JAX version and the
  backend, so a stale entry is never used. Returns the directory in use.
  """
  if directory is None:
    return None
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory
