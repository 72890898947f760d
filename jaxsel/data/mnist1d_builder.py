"""TFDS builder that generates MNIST-1D offline with the ``mnist1d`` package.

MNIST-1D is procedurally generated from ten hand-made 1-D templates, so no download is
needed: the package's ``make_dataset`` is deterministic given its arguments (it seeds
NumPy's global generator with ``seed``). Preparing this builder writes ArrayRecord files,
which ``builder.as_data_source`` reads without TensorFlow.

Row ``i`` of each split is the package's example ``i`` (shuffling is disabled), which is
what makes ``example_id == row`` stable across machines for a given ``mnist1d`` version.

The package is imported only when a config is generated (see ``generate``), not when this
module is, since importing this module is what registers the builder.
"""

import dataclasses
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

SEQUENCE_LENGTH = 40
NUM_CLASSES = 10


@dataclasses.dataclass
class Mnist1dConfig(tfds.core.BuilderConfig):
  """Generation arguments that differ from the ``mnist1d`` package defaults.

  num_samples: examples generated in total (train + test).
  train_split: fraction of them in the train split; the rest is the test split.
  """

  num_samples: int = 5000
  train_split: float = 0.8


def _generation_args(config: Mnist1dConfig) -> Any:
  """The package's default arguments with this config's sizes substituted."""
  from mnist1d.data import get_dataset_args  # imported here: see `generate`
  args = get_dataset_args()  # an attribute view over a fresh dict
  args.num_samples = config.num_samples
  args.train_split = config.train_split
  return args


def generate(config: Mnist1dConfig) -> dict[str, np.ndarray]:
  """Runs the ``mnist1d`` generator for ``config``.

  ``make_dataset`` reseeds Python's and NumPy's global generators; their states are
  restored afterwards so that preparing data does not change the randomness of the
  caller.

  Returns:
    dict with 'x' float64 [N_train, 40], 'y' int [N_train], 'x_test' float64
    [N_test, 40], 'y_test' int [N_test]; already centred and scaled to std 1 over
    the whole generated set.
  """
  # Imported here, not at module level: `mnist1d` imports scipy and matplotlib.pyplot
  # (~0.6 s of start-up), yet it is needed only when the builder is prepared, while this
  # module is imported by every `import jaxsel.data` to register the builder.
  from mnist1d.data import make_dataset
  numpy_state = np.random.get_state()
  python_state = random.getstate()
  try:
    data = make_dataset(_generation_args(config))
  finally:
    np.random.set_state(numpy_state)
    random.setstate(python_state)
  return {key: data[key] for key in ('x', 'y', 'x_test', 'y_test')}


class Mnist1d(tfds.core.GeneratorBasedBuilder):
  """MNIST-1D: 40-sample 1-D signals in 10 classes, generated locally."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Generated with the mnist1d package.'}
  BUILDER_CONFIGS = [
      Mnist1dConfig(
          name='standard',
          description='Package defaults: 5,000 samples, 4,000 train / 1,000 test.',
          num_samples=5000,
          train_split=0.8,
      ),
      Mnist1dConfig(
          name='large',
          description='60,000 samples, 50,000 train / 10,000 test.',
          num_samples=60000,
          train_split=5 / 6,
      ),
  ]
  DEFAULT_CONFIG_NAME = 'standard'

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'x': tfds.features.Tensor(shape=(SEQUENCE_LENGTH,), dtype=np.float32),
            'label': tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=('x', 'label'),
        homepage='https://github.com/greydanus/mnist1d',
        # Keeps generation order, so row i is the package's example i.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download.
    data = generate(self.builder_config)
    return {
        'train': self._generate_examples(data['x'], data['y']),
        'test': self._generate_examples(data['x_test'], data['y_test']),
    }

  def _generate_examples(
      self, xs: np.ndarray, ys: np.ndarray
  ) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, (x, y) in enumerate(zip(xs, ys)):
      yield i, {'x': x.astype(np.float32), 'label': int(y)}
