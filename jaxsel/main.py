"""Command line: ``python -m jaxsel.main --config=configs/default.py --workdir=DIR``.

Any config field can be overridden with ``--config.field=value`` (the config is locked, so a
misspelt field is an error rather than a silently ignored setting). Re-running the same
command on an interrupted ``DIR`` resumes it.

A mistake a user can fix (a bad value, an unknown field, a bad file, a workdir held by
another process or holding another run) is one line on stderr and exit status 2; Ctrl-C is
one line and 130 (``jaxsel.cli``). ``--traceback`` shows the traceback.

A run is data-parallel over every device JAX sees (``config.num_devices`` pins the
number). A multi-host run starts one such command per host, either with
``--coordinator_address=HOST:PORT --num_processes=N --process_id=I`` or with
``--distributed=auto`` where JAX can read them from the cluster (TPU pods, SLURM, Open
MPI); see README, "Scaling out".

Compiled programs are kept in JAX's persistent compilation cache, so a second run of the
same programs loads them instead of compiling them (about 2 s per run on a 2-core CPU):
``--compilation_cache=DIR`` chooses the directory (default ``$JAXSEL_COMPILATION_CACHE``,
else ``~/.cache/jaxsel/xla``), ``--compilation_cache=off`` turns it off.
"""

import sys

from absl import flags, logging
from ml_collections import config_flags

from jaxsel import cli, compilation

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file (get_config(arg) -> ConfigDict).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for metrics, checkpoints, figures.")
_CACHE = flags.DEFINE_string(
    "compilation_cache", None,
    "Directory of JAX's persistent compilation cache, or 'off' (default: "
    f"${compilation.CACHE_ENV_VAR}, else {compilation.DEFAULT_CACHE_DIR}).")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "off", ["off", "auto"],
    "'auto': join a multi-host run, reading the coordinator, process count and id from "
    "the cluster's environment as jax.distributed.initialize() does.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", "", "HOST:PORT of process 0 of a multi-host run.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Processes of a multi-host run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's id, 0..num_processes-1.")
_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout", 300, "Seconds to wait for every process of a multi-host run to "
    "join.")
flags.DEFINE_bool("traceback", False, "Show the traceback of every error (for bug reports).")


def main(argv: list[str]) -> None:
  cli.parse_flags(argv, config_flag="config", required=("config", "workdir"))
  config = cli.loaded_config(_CONFIG, argv)
  workdir = cli.workdir_path(_WORKDIR.value)
  # Orbax and TFDS log every file operation at INFO; keep the run's own lines readable.
  logging.set_verbosity(logging.WARNING)
  compilation.enable_persistent_cache(compilation.cache_dir(_CACHE.value))
  from jaxsel import distributed, train  # after the flags: a bad command line fails fast
  joined = distributed.initialize(
      coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
      process_id=_PROCESS_ID.value, auto=_DISTRIBUTED.value == "auto",
      timeout_seconds=_TIMEOUT.value)
  train.train_and_evaluate(config, workdir)
  if joined:
    # A barrier: process 0 hosts the coordination service, so it must not exit while
    # the others still finish.
    import jax  # pylint: disable=g-import-not-at-top
    jax.distributed.shutdown()


if __name__ == "__main__":
  cli.run(main, sys.argv)
