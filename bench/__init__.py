"""The side-by-side benchmark (``python -m bench``, ``convgan-bench``): our training against PyTorch's.

Outside the library: it imports ``core`` (first, so Keras gets the JAX backend), and nothing in
``core`` imports it; ``convgan bench`` runs ``python -m bench`` in a child process.
"""

import core  # noqa: F401 - selects the JAX backend before anything here imports keras
