"""Save and restore the whole run state with orbax.

A checkpoint holds the ``TrainState`` (parameters, BatchNorm statistics, optimizer state,
run key and the per-example tracker tables, which are part of the selection algorithm's
state) and a small JSON record of host-side state (the epoch it was taken after, plus
whatever the loop needs to continue identically). Orbax writes into a temporary directory
and renames it when complete, so an interrupted save never leaves a half-written
checkpoint behind.
"""

import copy
import os
from typing import Any

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
  """Checkpoints of one run directory, keyed by epoch."""

  def __init__(self, directory: str, *, max_to_keep: int = 2):
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
    )

  def latest_epoch(self) -> int | None:
    return self._manager.latest_step()

  def save(self, epoch: int, state: Any, host_state: dict) -> None:
    """Saves asynchronously; ``wait`` (or the next save) completes it.

    ``host_state`` is copied now: orbax serialises it later, on its own thread, while the
    caller goes on updating its record for the next epoch (a resumed run would otherwise
    skip epochs its restored state never trained).
    """
    self._manager.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_to_tree(state)),
        host=ocp.args.JsonSave(copy.deepcopy(host_state)),
    ))

  def restore(self, epoch: int, template: Any) -> tuple[Any, dict]:
    """Restores into the structure (and shardings) of ``template``."""
    tree = _to_tree(template)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
    restored = self._manager.restore(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        host=ocp.args.JsonRestore(),
    ))
    return _from_tree(template, restored["state"]), dict(restored["host"])

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


# Orbax drops empty containers ({} batch_stats for models without BatchNorm, {} trackers
# before a method registers any); a placeholder leaf keeps the tree shape stable.
_EMPTY = "__empty__"


def _to_tree(state: Any) -> Any:
  def fill(node):
    if isinstance(node, dict):
      if not node:
        return {_EMPTY: np.zeros((), np.int8)}
      return {k: fill(v) for k, v in node.items()}
    return node
  return fill(flax.serialization.to_state_dict(state))


def _from_tree(template: Any, tree: Any) -> Any:
  def strip(node):
    if isinstance(node, dict):
      if set(node) == {_EMPTY}:
        return {}
      return {k: strip(v) for k, v in node.items()}
    return node
  return flax.serialization.from_state_dict(template, strip(tree))
