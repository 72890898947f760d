"""jaxsel: data selection during neural-network training, in JAX/Flax."""

__version__ = "0.1.0"
