"""Command line: ``python -m jaxsel.main --config=configs/default.py --workdir=DIR``.

Any config field can be overridden with ``--config.field=value`` (the config is locked, so a
misspelt field is an error rather than a silently ignored setting). Re-running the same
command on an interrupted ``DIR`` resumes it.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from jaxsel import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file (get_config(arg) -> ConfigDict).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for metrics, checkpoints, figures.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Orbax and TFDS log every file operation at INFO; keep the run's own lines readable.
  logging.set_verbosity(logging.WARNING)
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
