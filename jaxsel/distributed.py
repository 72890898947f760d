"""Devices, the device mesh and process roles of a run: data parallelism over one mesh axis.

A run uses ``config.num_devices`` devices (0: every device JAX sees, i.e. all local devices,
or on a multi-host run every device of every process). On more than one device the run
has a mesh with one axis, ``data``:

- each global batch of example ids (a chunk ``[S, B]``) is sharded over ``data`` along
  its batch axis; a batch size that the device count does not divide is padded with
  masked rows (mask False: they train nothing, score nothing and count nowhere);
- everything else is replicated: parameters, optimizer state, BatchNorm statistics, the
  dataset arrays held on the device and every per-example ``[N]`` table (4 bytes per
  example per table). The tables are updated from the *global* batch inside the jitted
  step, so every device holds identical tables and every selector makes the identical
  choice from the run's seed, with no communication outside the steps.

XLA's partitioner (GSPMD, ``AxisType.Auto``) places the collectives: the gradient
all-reduce, BatchNorm's global-batch moments, the all-gather of a batch's ids and values
before a table is updated. ``replicated`` pins every carry of a chunk's scan to
replication, so what a chunk returns is laid out exactly as what it was given.

One device is exactly the single-device path: no mesh, nothing placed, the same programs.

Multi-host: ``initialize`` wraps ``jax.distributed.initialize``; every process runs the
same program on the same host data (each computes the same epoch plan from the seed),
feeds only its own columns of each batch (``jax.make_array_from_process_local_data``),
and only process 0 writes files (``is_writer``; ``jaxsel.files`` obeys it). Randomness
never depends on the process index.
"""

import contextlib
import dataclasses
import math
from collections.abc import Iterator

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding

from jaxsel.config_errors import UserError, one_line

AXIS = "data"


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where a run's arrays live: ``mesh`` None is the single-device path."""

  mesh: jax.sharding.Mesh | None = None

  @property
  def num_devices(self) -> int:
    return 1 if self.mesh is None else self.mesh.size

  @property
  def num_processes(self) -> int:
    return 1 if self.mesh is None else len({d.process_index for d in self.mesh.devices.flat})

  def replicated_sharding(self) -> NamedSharding:
    return NamedSharding(self.mesh, jax.P())

  def batch_sharding(self) -> NamedSharding:
    """A chunk of ids ``[S, B]``: the batch axis split over ``data``."""
    return NamedSharding(self.mesh, jax.P(None, AXIS))

  def replicate(self, tree):
    """``tree`` on every device of the mesh (unchanged on the single-device path).

    On a multi-host run leaves go through the host (a leaf on one local device cannot be
    put on the other processes' devices; every process holds the same values), as Python
    scalars where they were weakly typed, so that they stay so.
    """
    if self.mesh is None:
      return tree
    sharding = self.replicated_sharding()
    if self.num_processes == 1:
      return jax.device_put(tree, sharding)
    return jax.tree.map(lambda leaf: jax.device_put(_host_value(leaf), sharding), tree)

  def placed(self, tree):
    """``tree`` with its host leaves (numpy, Python scalars) replicated on the mesh and its
    device arrays (and shape structs) as they are; unchanged on the single-device path. What a jitted call on
    the mesh takes, so that its first call runs the program compiled ahead for it."""
    if self.mesh is None:
      return tree
    sharding = self.replicated_sharding()
    return jax.tree.map(lambda leaf: leaf if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct))
                        else jax.device_put(leaf, sharding), tree)

  def put(self, tree):
    """Host arrays on the device(s): the default device, or every device of the mesh."""
    return jax.device_put(tree) if self.mesh is None else self.replicate(tree)

  def batch(self, example_ids: np.ndarray, mask: np.ndarray):
    """A chunk of ids and its mask, ``[S, B]`` host arrays, as the steps take them:
    unchanged on the single-device path; else padded to a multiple of the device count
    with masked rows and sharded over ``data``, each process feeding its own columns."""
    if self.mesh is None:
      return example_ids, mask
    example_ids, mask = self.padded(example_ids, mask)
    columns = self.local_columns(example_ids.shape)
    return (self.batch_rows(example_ids[:, columns], example_ids.shape),
            self.batch_rows(mask[:, columns], mask.shape))

  def padded_width(self, batch_size: int) -> int:
    """The batch width a chunk of ``batch_size`` columns is laid out with."""
    return batch_size if self.mesh is None else padded_batch_size(batch_size, self.num_devices)

  def padded(self, example_ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Host ids and mask ``[S, B]`` padded with masked columns to ``padded_width(B)``."""
    width = self.padded_width(example_ids.shape[-1])
    if width == example_ids.shape[-1]:
      return example_ids, mask
    pad = [(0, 0)] * (example_ids.ndim - 1) + [(0, width - example_ids.shape[-1])]
    return np.pad(example_ids, pad), np.pad(mask, pad)  # mask False: padding

  def local_columns(self, shape: tuple[int, ...]) -> slice:
    """The batch columns (axis 1) of a padded chunk of ``shape`` this process feeds."""
    if self.num_processes == 1:
      return slice(None)
    return _local_columns(self.batch_sharding(), tuple(shape[:2]))

  def batch_rows_sharding(self) -> NamedSharding | None:
    """How an array ``[S, B, ...]`` aligned with a chunk of ids is laid out (None: the
    single-device path's default device)."""
    return None if self.mesh is None else self.batch_sharding()

  def batch_rows(self, local: np.ndarray, global_shape: tuple[int, ...]) -> jax.Array:
    """An array ``[S, B, ...]`` aligned with a padded chunk of ids of ``global_shape``
    ``[S, B]``, from this process's columns ``local`` (all of them on one process), on the
    devices: sharded along axis 1 like the ids."""
    if self.mesh is None:
      return jax.device_put(local)
    sharding = self.batch_sharding()
    if self.num_processes == 1:
      return jax.device_put(local, sharding)
    return jax.make_array_from_process_local_data(
        sharding, local, (*global_shape[:2], *local.shape[2:]))

  def abstract(self, leaf) -> jax.ShapeDtypeStruct:
    """The shape, dtype and placement a jitted function will see ``leaf`` with."""
    if isinstance(leaf, jax.ShapeDtypeStruct):
      if self.mesh is None or leaf.sharding is not None:
        return leaf
      return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, weak_type=leaf.weak_type,
                                  sharding=self.replicated_sharding())
    if isinstance(leaf, jax.Array):
      # Single device: arrays jit placed on the default device are uncommitted, and the
      # real call lowers them without a sharding; stating one would compile another program.
      sharding = None if self.mesh is None else leaf.sharding
      return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, weak_type=leaf.weak_type,
                                  sharding=sharding)
    leaf = np.asarray(leaf)
    return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=None if self.mesh is None
                                else self.replicated_sharding())

  @property
  def is_writer(self) -> bool:
    return jax.process_index() == 0 if self.num_processes > 1 else True


def _host_value(leaf):
  if isinstance(leaf, (bool, int, float)):
    return leaf
  value = np.asarray(leaf)
  return value.item() if getattr(leaf, "weak_type", False) and value.ndim == 0 else value


def padded_batch_size(batch_size: int, num_devices: int) -> int:
  """The smallest multiple of ``num_devices`` that holds ``batch_size`` rows."""
  return math.ceil(batch_size / num_devices) * num_devices


def _local_columns(sharding: NamedSharding, shape: tuple[int, ...]) -> slice:
  """The contiguous range of batch columns this process's devices hold."""
  spans = sorted({(index[-1].start or 0, index[-1].stop or shape[-1])
                  for index in sharding.addressable_devices_indices_map(shape).values()})
  start, stop = spans[0][0], spans[-1][1]
  if sum(b - a for a, b in spans) != stop - start:
    raise RuntimeError(f"this process's devices hold batch columns {spans}: not one range")
  return slice(start, stop)


_SINGLE = Placement()
_current = _SINGLE


def current() -> Placement:
  """The placement of the run in progress (the single-device path outside a run)."""
  return _current


def is_writer() -> bool:
  """Whether this process writes the run's files (process 0; always, on one process)."""
  return _current.is_writer


def mesh_context(placement: Placement):
  """``jax.set_mesh(placement.mesh)`` (a per-thread context), or nothing without a mesh."""
  return contextlib.nullcontext() if placement.mesh is None else jax.set_mesh(placement.mesh)


@contextlib.contextmanager
def using(placement: Placement) -> Iterator[Placement]:
  """Makes ``placement`` the current one (for every thread) and its mesh JAX's (for this
  thread), for the length of a run."""
  global _current
  previous, _current = _current, placement
  try:
    with mesh_context(placement):
      yield placement
  finally:
    _current = previous


def replicated(tree):
  """Inside jit: ``tree`` laid out on every device of the current run's mesh (no-op on the
  single-device path).

  The carry of every chunk's scan goes through it, so a state, a table or a sum leaves a
  chunk replicated, as it came in, whatever XLA's partitioner would have chosen. The mesh
  is the current placement's, read when the function is traced (on whichever thread
  compiles it); a traced program is reused only for inputs placed on that same mesh.
  """
  if _current.mesh is None:
    return tree
  return jax.lax.with_sharding_constraint(tree, _current.replicated_sharding())


def placement_for(num_devices: int) -> Placement:
  """The placement of a run on ``num_devices`` devices (0: every device JAX sees).

  One device (by choice or because there is one) is the single-device path. On a
  multi-host run the mesh spans every process's devices, so ``num_devices`` must be 0 or
  all of them.
  """
  available = jax.device_count()
  count = available if num_devices == 0 else num_devices
  if count > available:
    raise UserError(f"config.num_devices is {num_devices}, but JAX sees {available} "
                    f"device(s) ({jax.default_backend()}); allowed: 0 (all) or 1..{available}")
  if jax.process_count() > 1 and count != available:
    raise UserError(f"config.num_devices is {num_devices} on a run of "
                    f"{jax.process_count()} processes: it must be 0 or {available} "
                    "(the mesh spans every process's devices)")
  if count == 1:
    return _SINGLE
  devices = jax.devices()[:count]
  return Placement(jax.make_mesh((count,), (AXIS,), axis_types=(AxisType.Auto,),
                                 devices=devices))


def describe(placement: Placement) -> str:
  """``4 cpu devices`` / ``8 gpu devices in 2 processes`` / ``1 cpu device``."""
  backend = jax.default_backend()
  text = f"{placement.num_devices} {backend} device{'s' * (placement.num_devices > 1)}"
  if placement.num_processes > 1:
    text += f" in {placement.num_processes} processes"
  return text


def barrier(name: str) -> None:
  """Waits until every process of a multi-host run gets here (no-op on one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def all_agree(ok: bool) -> bool:
  """Whether ``ok`` holds on every process (one small all-gather on a multi-host run)."""
  if jax.process_count() == 1:
    return ok
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.all(multihost_utils.process_allgather(np.asarray(ok, np.int32))))


def initialize(*, coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1, auto: bool = False,
               timeout_seconds: int | None = None) -> bool:
  """Joins a multi-host run through ``jax.distributed.initialize``; before any JAX work.

  With ``coordinator_address`` the three values are given (flags of ``jaxsel.main``);
  with ``auto`` JAX detects them from the cluster's environment, as
  ``jax.distributed.initialize()`` does (TPU pods, SLURM, Open MPI). Returns whether it
  joined one.
  """
  kwargs = {} if timeout_seconds is None else {"initialization_timeout": timeout_seconds}
  if coordinator_address:
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise UserError(f"--num_processes={num_processes} and --process_id={process_id}: "
                      "with --coordinator_address, give num_processes >= 1 and "
                      "0 <= process_id < num_processes")
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
    return True
  if auto:
    try:
      jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as e:
      raise UserError(f"--distributed=auto found no cluster to join ({one_line(e)}); "
                      "give --coordinator_address, --num_processes and --process_id "
                      "instead") from e
    return True
  return False
