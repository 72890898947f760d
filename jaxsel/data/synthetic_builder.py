"""TFDS builder of synthetic labelled images, generated locally: data of any size on disk.

For the streaming path's tests and benchmarks (``benchmarks/streaming.py``): a dataset
whose decoded size can be made several times a memory budget, at 32×32 or 224×224 pixels,
written as ArrayRecord like any prepared TFDS dataset and read through the same data
sources. An example of class ``k`` is class ``k``'s fixed random template (a blocky
pattern) plus per-example noise and a random brightness shift: easy to learn (a small CNN
reaches 100 % test accuracy at 32 px in 3 epochs), which is all a throughput or memory
measurement needs; it is not a benchmark of methods.

Configs are named ``<size>px_<num_train>`` (e.g. ``synthetic_images/32px_4000``); the test
split has a quarter as many examples. Example ``i`` is a pure function of (split, i), so a
dataset regenerates identically anywhere.
"""

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

NUM_CLASSES = 10
SIZES = (32, 64, 224)
NUM_TRAIN = (1000, 4000, 16000)


@dataclasses.dataclass
class SyntheticConfig(tfds.core.BuilderConfig):
  """size: image side (pixels, 3 channels); num_train: train examples (test: a quarter)."""

  size: int = 32
  num_train: int = 1000


def _templates(size: int) -> np.ndarray:
  """float32 [NUM_CLASSES, size, size, 3] smooth class patterns in [0, 255]."""
  rng = np.random.default_rng([size, 0x5E7])  # a tag for this stream
  coarse = rng.uniform(0, 255, size=(NUM_CLASSES, 4, 4, 3))
  # Nearest-neighbour upsampling of a 4×4 grid: blocky patterns, distinct per class.
  repeat = -(-size // 4)
  fine = np.repeat(np.repeat(coarse, repeat, axis=1), repeat, axis=2)[:, :size, :size]
  return fine.astype(np.float32)


def example(templates: np.ndarray, split: str, index: int) -> dict[str, Any]:
  """Example ``index`` of ``split``: {'image': uint8 [size, size, 3], 'label': int}."""
  rng = np.random.default_rng([0 if split == 'train' else 1, index])
  label = int(rng.integers(NUM_CLASSES))
  noise = rng.normal(0, 48, size=templates.shape[1:])
  image = templates[label] + noise + rng.uniform(-40, 40)
  return {'image': np.clip(image, 0, 255).astype(np.uint8), 'label': label}


class SyntheticImages(tfds.core.GeneratorBasedBuilder):
  """Class templates plus noise, at 32, 64 or 224 pixels, 1,000 to 16,000 train images."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Templates plus noise.',
                   '1.1.0': 'The same images, stored as raw bytes (faster to write and read).'}
  BUILDER_CONFIGS = [SyntheticConfig(name=f'{size}px_{num_train}', size=size,
                                     num_train=num_train)
                     for size in SIZES for num_train in NUM_TRAIN]
  DEFAULT_CONFIG_NAME = '32px_1000'

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.size
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            # Raw bytes: TFDS's default stores a uint8 tensor as an int64 list, which costs
            # ~1 ms per 64px image to serialise (Python iterates the pixels) and ~4x the
            # bytes' time to parse; the decoded arrays are the same.
            'image': tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            'label': tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,  # row i is example i
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download.
    config = self.builder_config
    return {'train': self._generate_examples('train', config.num_train),
            'test': self._generate_examples('test', config.num_train // 4)}

  def _generate_examples(self, split: str,
                         count: int) -> Iterator[tuple[int, dict[str, Any]]]:
    templates = _templates(self.builder_config.size)
    for index in range(count):
      yield index, example(templates, split, index)
