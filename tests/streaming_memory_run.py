"""One tiny image run in a process of its own, which prints its peak resident memory: what
``tests/test_streaming_memory.py`` compares across dataset sizes and storages.

    python -m tests.streaming_memory_run DATA_DIR DATASET STORAGE BUDGET_MB WORKDIR

The run: a small CNN, batch 64, a few steps, then validation and the test split evaluated
(the last model's and the best-validation model's: two passes over every test example, on
the streaming path read from the files chunk by chunk), no figures. Prints one JSON line:

- ``peak_rss_kib``: the whole process's peak RSS (``VmHWM``, KiB; the larger of its values
  before and after the reset below). Not ``ru_maxrss``: Linux carries that over ``execve``
  from the process that forked this one (a pytest worker holding GBs), ``VmHWM`` belongs to
  this program's own memory;
- ``test_base_kib``, ``test_peak_kib``: RSS when the last epoch has ended, and the peak RSS
  from then to the end (the kernel's high-water mark, reset at that moment through
  ``/proc/self/clear_refs``): the test passes' own peak, without what set-up and
  compilation reached before;
- ``streamed`` (the path the run took, ``Dataset.streamed``), ``decoded_mb`` (float32
  train + test inputs, MiB), ``num_test`` and ``test_accuracy``.
"""

import json
import sys

# Few enough steps that training costs little; every example of validation and test is
# still read.
NUM_TRAIN_STEPS = 6


def run_config(data_dir: str, dataset: str, storage: str, budget_mb: int):
  from tests.conftest import tiny_run_config  # pylint: disable=import-outside-toplevel
  return tiny_run_config(data_dir, **{
      "dataset.name": dataset,
      "dataset.storage": storage,
      "dataset.memory_budget_mb": budget_mb,
      "dataset.read_threads": 2,
      "model.name": "cnn2d",
      "model.kwargs": {"channels": (8, 8), "hidden_size": 16, "conv_impl": "auto"},
      "train.num_epochs": 0,
      "train.num_train_steps": NUM_TRAIN_STEPS,
      # A chunk of an eval pass is steps_per_chunk x eval_batch_size rows whatever the
      # number of real ones: on the streaming path a float32 host buffer of that many rows
      # (here 100 rows, 4.9 MB at 64 px, held in a few copies while it is read; the
      # defaults 16 x 500 would make it 393 MB), small next to the budget compared with.
      "train.steps_per_chunk": 2,
      "train.eval_batch_size": 50,
      "checkpoint.every_epochs": 0,
      "figures": False,
      "progress_bar": "off",
  })


def _status_kib(field: str) -> int:
  with open("/proc/self/status") as status:
    for line in status:
      if line.startswith(field + ":"):
        return int(line.split()[1])
  raise KeyError(field)


def main(argv) -> None:
  data_dir, dataset, storage, budget_mb, workdir = argv
  from jaxsel import train  # pylint: disable=import-outside-toplevel
  from jaxsel.data import streaming  # pylint: disable=import-outside-toplevel
  config = run_config(data_dir, dataset, storage, int(budget_mb))
  data = train.load_data(config)
  test_phase = {}

  def after_last_epoch(epoch, record):
    del epoch, record  # one epoch: called once, before the test passes
    test_phase["before"] = _status_kib("VmHWM")  # the peak so far, before the reset
    with open("/proc/self/clear_refs", "w") as clear:
      clear.write("5")  # resets the high-water mark (VmHWM) to the current RSS
    test_phase["base"] = _status_kib("VmRSS")

  summary = train.train_and_evaluate(config, workdir, dataset=data,
                                     on_epoch_end=after_last_epoch)
  decoded = streaming.decoded_bytes(len(data.pool) + len(data.test), data.input_shape)
  peak = max(test_phase["before"], _status_kib("VmHWM"))
  print(json.dumps({"peak_rss_kib": peak,
                    "test_base_kib": test_phase["base"],
                    "test_peak_kib": _status_kib("VmHWM"),
                    "streamed": data.streamed, "decoded_mb": decoded / 2**20,
                    "num_test": summary["num_test"],
                    "test_accuracy": summary["test_accuracy"]}))


if __name__ == "__main__":
  main(sys.argv[1:])
