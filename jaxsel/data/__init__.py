"""Datasets as host NumPy arrays, read from TFDS without TensorFlow.

Importing this package registers the TFDS builders ``mnist1d``, ``fashion_mnist_local``
and ``synthetic_images``, so ``tfds.builder`` finds them by name. It costs the import of
``tensorflow_datasets`` (~0.25 s); the ``mnist1d`` generator (scipy, matplotlib) is
imported only when that builder is prepared.
"""

from jaxsel.data import fashion_mnist_builder
from jaxsel.data import mnist1d_builder
from jaxsel.data import synthetic_builder
from jaxsel.data.dataset import ArraySplit
from jaxsel.data.dataset import Dataset
from jaxsel.data.dataset import Normalization
from jaxsel.data.loading import DatasetNotPreparedError
from jaxsel.data.loading import NORMALIZATION
from jaxsel.data.loading import dataset_fingerprint
from jaxsel.data.loading import load_dataset
from jaxsel.data.loading import split_train_validation

__all__ = [
    'ArraySplit',
    'Dataset',
    'DatasetNotPreparedError',
    'NORMALIZATION',
    'Normalization',
    'dataset_fingerprint',
    'load_dataset',
    'split_train_validation',
]
