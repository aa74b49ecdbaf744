"""ConvGAN Studio core: datasets, models, training, run store, jobs and metrics.

Importing ``core`` selects Keras' JAX backend, so do it before ``import keras``.
"""

import sys as _sys

from core.common import backend as _backend

try:
    _backend.configure()
except _backend.BackendError as _err:
    # `python -m core ...` and `convgan ...` import this package before the CLI can catch anything:
    # a bad environment is still one line and exit status 2 there, as every other usage error.
    if _sys.orig_argv[1:3] == ["-m", "core"] or _sys.argv[0].rsplit("/", 1)[-1] == "convgan":
        print(f"error: {_err}", file=_sys.stderr)
        raise SystemExit(2) from None
    raise

__version__ = "0.1.0"
