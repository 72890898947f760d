"""Evaluation passes of a run: validation and test metrics, and the best-validation model.

Validation and test rows live in one device array (``device_data``), so both passes share
one compiled program; every pass is padded to whole chunks of one shape, so a pass over any
number of examples compiles nothing new.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxsel import distributed, metrics, steps
from jaxsel.data import Dataset, iterators, streaming
from jaxsel.state import Predictor, TrainState, predictor


def run_data(dataset: Dataset, config: ml_collections.ConfigDict):
  """What a run's jitted passes read examples from: ``device_data``, or on the streaming
  path (``dataset.streamed``) a ``streaming.StreamedData`` that reads each chunk's rows."""
  if not dataset.streamed:
    return device_data(dataset)
  return streaming.StreamedData(dataset, seed=config.seed,
                                read_threads=config.dataset.read_threads)


def device_data(dataset: Dataset) -> dict[str, jax.Array]:
  """The pool rows (indexed by example id) followed by the test rows, on the device.

  One array for both, so validation and test passes share one compiled function; test
  example ``i`` is row ``len(pool) + i`` (see ``test_rows``). Training ids are pool ids,
  so training never sees a test row. On several devices every device holds all of it.
  """
  host = {"inputs": np.concatenate([dataset.pool.inputs, dataset.test.inputs]),
          "labels": np.concatenate([dataset.pool.labels, dataset.test.labels])}
  return distributed.current().put(host)


def test_rows(dataset: Dataset) -> np.ndarray:
  return np.arange(len(dataset.pool), len(dataset.pool) + len(dataset.test), dtype=np.int32)


def percent_summary(sums: metrics.CalibrationSums, prefix: str) -> dict[str, float]:
  """Accuracy and calibration errors in percent (as the papers report), NLL/Brier raw."""
  summary = metrics.summarize(sums)
  out = {}
  for key in ("accuracy", "ece", "mce", "oe"):
    out[f"{prefix}_{key}"] = 100.0 * float(summary[key])
  for key in ("nll", "brier"):
    out[f"{prefix}_{key}"] = float(summary[key])
  return out


class Evaluator:
  """Full passes (padded, masked) that reduce to calibration sums on the device."""

  def __init__(self, config: ml_collections.ConfigDict):
    self._config = config
    self._eval_chunk = steps.jit_eval_chunk(
        num_bins=config.metrics.num_bins,
        reference_binning=config.metrics.reference_binning)
    self._ahead = None

  def _plan(self, ids: np.ndarray) -> iterators.BatchPlan:
    # Every plan has chunks of one shape, whatever len(ids): one compiled program.
    return iterators.full_pass_plan(ids, batch_size=self._config.train.eval_batch_size,
                                    steps_per_chunk=self._config.train.steps_per_chunk)

  def compile_ahead(self, state: TrainState, data, ids: np.ndarray) -> None:
    """Starts compiling the pass in the background; the first ``sums`` waits for it."""
    chunk_ids, chunk_mask = next(iter(self._plan(ids).chunks()))
    self._ahead = self._eval_chunk.compile_ahead(
        state, metrics.empty_sums(self._config.metrics.num_bins), data, chunk_ids,
        chunk_mask)

  def sums(self, model: TrainState | Predictor, data,
           ids: np.ndarray) -> metrics.CalibrationSums:
    if self._ahead is not None:
      self._ahead.result()
      self._ahead = None
    total = metrics.empty_sums(self._config.metrics.num_bins)
    for chunk_ids, chunk_mask in self._plan(ids).chunks():
      total = self._eval_chunk(model, total, data, chunk_ids, chunk_mask)
    return jax.device_get(total)


# One compiled copy per architecture: the train state is donated to the next train chunk,
# so the best model must own its buffers.
_copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))


def snapshot(state: TrainState) -> Predictor:
  """A copy of the state's model that later training does not touch."""
  return _copy(predictor(state))
