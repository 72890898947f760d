"""jaxsel: data selection during neural-network training, in JAX/Flax."""

import setuptools

INSTALL_REQUIRES = [
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "chex>=0.1.92",
    "numpy>=2.0",
    "tensorflow-datasets>=4.9.10",
    # tfds' file look-ups need etils' epath, which needs importlib_resources.
    "etils[epath]>=1.15.0",
    "importlib_resources>=6.0",
    "array_record>=0.8.6",
    # The streaming input path: parallel host reads (grain), ImageNet-style crops (Pillow).
    "grain>=0.2.18",
    "pillow>=10.0",
    "ml_collections>=1.1.0",
    "orbax-checkpoint>=0.12.8",
    "mnist1d>=0.0.2",
    "matplotlib>=3.9",
    "tqdm>=4.66",
    "absl-py>=2.1",
]

EXTRAS_REQUIRE = {
    # pytest-xdist: the suite runs on two workers (README's test command).
    "test": ["pytest>=8.0", "pytest-xdist>=3.5", "scikit-learn>=1.5", "hypothesis>=6.100"],
    # Only needed to *prepare* TFDS catalog image datasets (cifar10, svhn, ...).
    "tf": ["tensorflow-cpu>=2.18"],
}

setuptools.setup(
    name="jaxsel",
    version="0.1.0",
    description="Data selection during neural-network training in JAX/Flax.",
    packages=setuptools.find_packages(include=["jaxsel", "jaxsel.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
