"""Every method family, tiny, on 1 device and on all of this process's devices, in memory
and streaming.

    JAX_NUM_CPU_DEVICES=4 python -m tests.device_runs OUT DATA_DIR [FAMILY ...]

Runs each family's config three times in this one process: with ``num_devices=1`` (the
single-device path) and ``num_devices=0`` (every device), into ``OUT/<family>/1`` and
``OUT/<family>/all``, which ``tests/test_distributed.py`` compares; and on every device with
``dataset.storage='stream'`` into ``OUT/<family>/stream``, which ``tests/test_streaming.py``
compares with ``all``. A family that reads another run's scores (a target model, training
dynamics) reads the 1-device run's in memory and the streaming run's when streaming (a
streamed dataset has a fingerprint of its own), so that only the device count or the
storage differs between the runs compared. JAX must see its devices before it starts,
hence a process of its own.
"""

import os
import sys

from jaxsel import compilation, data, files, train
from tests.conftest import override, tiny_run_config, with_method

EPOCHS = 3
# Prioritization: one warm-up epoch, then two selected ones, with mixup as the paper; its
# scores are the target of prioritization_target.
PRIORITIZATION = {"method.subset_fraction": 0.25, "method.warmup_epochs": 1,
                  "mixing.name": "mixup"}
# family -> (method, overrides, (prerequisite family, the field its workdir goes into))
FAMILIES = {
    # 62 rows on 4 devices: padded to 64 with two masked rows per batch; BatchNorm's
    # statistics must be those of the 62 real rows of the global batch.
    "full_data": ("full_data", {"train.batch_size": 62,
                                "model.kwargs.use_batchnorm": True}, None),
    # A checkpoint every epoch: the multi-host tests kill and resume a run of this config.
    "prioritization": ("prioritization", {**PRIORITIZATION, "method.save_scores": True,
                                          "checkpoint.every_epochs": 1}, None),
    "prioritization_target": ("prioritization", PRIORITIZATION,
                              ("prioritization", "method.target.path")),
    "training_dynamics": ("training_dynamics", {}, None),
    "coreset": ("coreset", {"method.pruning_rate": 0.5},
                ("training_dynamics", "method.scores_path")),
    "budgeted": ("budgeted", {"method.sampler": "p", "method.budget": 0.5,
                              "mixing.name": "ricap", "mixing.alpha": 0.3}, None),
    "selective_backprop": ("selective_backprop", {"mixing.name": "mixup",
                                                  "method.history_size": 256}, None),
    # Four epochs: epoch 0 sees everything, 1 and 2 prune (and re-weight), 3 anneals.
    "infobatch": ("infobatch", {"train.num_epochs": 4, "method.anneal_fraction": 0.25,
                                "schedule.unit": "step"}, None),
    "irreducible_loss": ("irreducible_loss", {}, None),
    "rho_loss": ("rho_loss", {"method.selected_fraction": 0.25},
                 ("irreducible_loss", "method.irreducible_loss_path")),
}
# name -> (config.num_devices, config.dataset.storage)
SETTINGS = {"1": (1, "device"), "all": (0, "device"), "stream": (0, "stream")}
# XLA compilations so far at the end of each epoch (any thread): "<workdir>.compilations.json"
# beside each run's workdir.
COMPILATIONS_SUFFIX = ".compilations.json"


def config_for(family: str, data_dir: str, out: str, setting: str):
  method, fields, needs = FAMILIES[family]
  # A checkpoint after the last epoch only (unless a family asks for more): what is compared
  # is the same either way, and the suite's time is short. Validation every epoch, so its
  # program (compiled ahead, in the background) is ready by the end of epoch 0 and the
  # count of compilations after that is the count of recompilations.
  config = with_method(tiny_run_config(data_dir), method, **{
      "train.num_epochs": EPOCHS, "figures": False,
      "checkpoint.every_epochs": 0, "checkpoint.every_seconds": 0.0, **fields})
  num_devices, storage = SETTINGS[setting]
  extra = {"num_devices": num_devices, "dataset.storage": storage}
  if needs is not None:
    extra[needs[1]] = os.path.join(out, needs[0], "stream" if storage == "stream" else "1")
  return override(config, **extra)


def run(out: str, data_dir: str, families) -> None:
  compilation.CompileClock.start()
  datasets = {}  # by storage
  for family in families:
    needs = FAMILIES[family][2]
    if needs is not None and needs[0] not in families:
      raise SystemExit(f"{family} needs {needs[0]}: list it first")
    for name in SETTINGS:
      config = config_for(family, data_dir, out, name)
      storage = config.dataset.storage
      if storage not in datasets:
        datasets[storage] = train.load_data(config)
      dataset = datasets[storage]
      workdir = os.path.join(out, family, name)
      compilations = []
      train.train_and_evaluate(
          config, workdir, dataset=dataset,
          on_epoch_end=lambda *_: compilations.append(
              compilation.CompileClock.compilations()))
      files.write_json(workdir + COMPILATIONS_SUFFIX, compilations)


def main(argv: list[str]) -> None:
  out, data_dir, *families = argv[1:]
  data.load_dataset("mnist1d", data_dir=data_dir)
  run(out, data_dir, families or list(FAMILIES))


if __name__ == "__main__":
  main(sys.argv)
