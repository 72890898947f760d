"""Target-model artifacts: a calibrated model's entropies, for others to select with.

A run with ``target.save_artifact=True`` (typically a larger network trained on all the
data with mixup) writes ``WORKDIR/target.npz`` holding, for every training example:

- ``trajectory`` [N_train, E]: the example's training-pass entropy after each epoch (the
  score table the run itself would have selected with), and
- ``final_entropy`` [N_train]: the final model's eval-mode entropy (no augmentation),

plus the example ids, the dataset fingerprint, and where the run's checkpoints are. A later
run with ``target.path`` ranks its training examples by these instead of by its own
entropies (``target.mode``: ``trajectory`` uses column ``min(epoch, E - 1)``, ``fixed``
the final entropies), after checking that the artifact was made on the same data and split.
"""

import dataclasses
import os

import numpy as np

from jaxsel import files

FILENAME = "target.npz"


@dataclasses.dataclass(frozen=True)
class TargetArtifact:
  example_ids: np.ndarray  # int32 [N_train]
  trajectory: np.ndarray  # float32 [N_train, E]
  final_entropy: np.ndarray  # float32 [N_train]
  fingerprint: str
  dataset_name: str
  checkpoint_dir: str

  def scores(self, *, mode: str, epoch: int) -> np.ndarray:
    """Entropies [N_train] to select with at ``epoch``, aligned with ``example_ids``."""
    if mode == "fixed":
      return self.final_entropy
    if mode == "trajectory":
      return self.trajectory[:, min(epoch, self.trajectory.shape[1] - 1)]
    raise ValueError(f"unknown target.mode {mode!r}; valid: fixed, trajectory")


def save(path: str, artifact: TargetArtifact) -> None:
  """Writes the artifact atomically (a temporary file renamed into place)."""
  with files.atomic_output(path) as tmp:
    np.savez(tmp, example_ids=artifact.example_ids, trajectory=artifact.trajectory,
             final_entropy=artifact.final_entropy, fingerprint=artifact.fingerprint,
             dataset_name=artifact.dataset_name, checkpoint_dir=artifact.checkpoint_dir)


def load(path: str, *, fingerprint: str, example_ids: np.ndarray) -> TargetArtifact:
  """Reads an artifact and refuses one made on other data or another split."""
  if os.path.isdir(path):
    path = os.path.join(path, FILENAME)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"target.path {path!r} does not exist; write one with a full-data run and "
        "--config.target.save_artifact=True")
  with np.load(path) as stored:
    artifact = TargetArtifact(
        example_ids=stored["example_ids"], trajectory=stored["trajectory"],
        final_entropy=stored["final_entropy"], fingerprint=str(stored["fingerprint"]),
        dataset_name=str(stored["dataset_name"]),
        checkpoint_dir=str(stored["checkpoint_dir"]))
  if artifact.fingerprint != fingerprint or not np.array_equal(artifact.example_ids,
                                                                example_ids):
    raise ValueError(
        f"target.path {path!r} was made on other data (dataset "
        f"{artifact.dataset_name!r}, fingerprint {artifact.fingerprint}) than this run's "
        f"(fingerprint {fingerprint}); its entropies do not belong to these examples. "
        "Train the target with the same dataset.name, train_fraction and split_seed.")
  return artifact
