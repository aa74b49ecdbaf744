"""ConvGAN Studio core: datasets, models, training, run store, jobs and metrics.

Importing ``core`` selects Keras' JAX backend, so do it before ``import keras``.
"""

from core import backend as _backend

_backend.configure()

__version__ = "0.1.0"
