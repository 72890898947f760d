"""What a run prints: one line saying what it will do, a line per evaluated epoch, and at
the end the files it wrote. Pure formatting; ``train`` decides when to print."""

import os

import jax
import numpy as np

from jaxsel import distributed


def parameter_count(params) -> int:
  return int(sum(np.prod(np.shape(leaf)) for leaf in jax.tree.leaves(params)))


def start_line(config, dataset, plan, *, num_params: int, workdir: str,
               resumed_after: int | None, epochs_shrink: bool = False) -> str:
  """``full_data on mnist1d (3600 train / 400 val / 1000 test), cnn1d (12,346 params),
  200 epochs x 57 steps, 1 cpu device, workdir runs/a: new run``; ``..., 1000 test,
  streamed)`` on the streaming path; ``x at most 57 steps`` where the method's epochs may
  shrink (``Method.epoch_size_varies``)."""
  steps = sorted(set(plan.epoch_steps))
  per_epoch = ("at most " if epochs_shrink else "") + (
      f"{steps[0]} steps" if len(steps) == 1 else f"{steps[0]}-{steps[-1]} steps")
  where = ("new run" if resumed_after is None
           else f"resuming after epoch {resumed_after + 1}")
  streamed = ", streamed" if dataset.streamed else ""
  return (f"{config.method.name} on {config.dataset.name} ({len(dataset.train_ids)} train / "
          f"{len(dataset.validation_ids)} val / {len(dataset.test)} test{streamed}), "
          f"{config.model.name} ({num_params:,} params), {plan.num_epochs} epochs x "
          f"{per_epoch} ({'at most ' if epochs_shrink else ''}{plan.total_steps:,} steps), "
          f"{distributed.describe(distributed.current())}, workdir {workdir}: {where}")


def epoch_line(record: dict, num_epochs: int) -> str:
  parts = [f"epoch {record['epoch'] + 1:>3}/{num_epochs}",
           f"lr {record['lr']:.4g}",
           f"train_loss {record['train_loss']:.4f}",
           f"train_acc {record['train_accuracy']:5.2f}%"]
  if "val_accuracy" in record:
    parts += [f"val_acc {record['val_accuracy']:5.2f}%", f"val_ece {record['val_ece']:5.2f}%"]
  if record["selection_epoch"]:
    overlap = record["overlap_with_previous"]
    parts.append(f"selected {record['num_selected']}"
                 + ("" if overlap is None else f" (overlap {overlap:.0f}%)"))
  parts.append(f"{record['seconds']:.2f}s")
  return "  ".join(parts)


def files_line(workdir: str) -> str:
  """``wrote runs/a: config.json, curves.png, ... (and checkpoints/)``: every entry of the
  workdir but the lock and checkpoint directories, sorted."""
  names = sorted(name for name in os.listdir(workdir)
                 if not name.startswith(".") and not name.startswith("checkpoints"))
  return f"wrote {workdir}: {', '.join(names)} (and checkpoints/)"
