"""How work is spread over JAX's local devices: data-parallel training, single-device prediction.

The CPU counts as several devices when the user splits it (``core.common.backend.cpu_device_count``).
"""

from __future__ import annotations

import contextlib

import jax
import keras

EVAL_BATCH_SIZE = 500  # images per inference call; divides 10,000 so test sets compile once


def device_count() -> int:
    """JAX's local devices (the CPU split into several counts as several)."""
    return len(jax.local_devices())


def cpu_only() -> bool:
    """True when JAX trains on the CPU (no GPU or TPU)."""
    return jax.local_devices()[0].platform == "cpu"


@contextlib.contextmanager
def data_parallel(batch_size: int):
    """Train data-parallel over all local devices when there are several and the batch splits evenly.

    A batch that does not split over the devices trains on one. The previous distribution is
    restored afterwards, so a notebook or test process is left as it was.

    Args:
        batch_size: images per training step.
    """
    count = device_count()
    if count < 2 or batch_size % count:
        yield
        return
    with keras.distribution.DataParallel().scope():
        yield


@contextlib.contextmanager
def single_device():
    """Run without any data-parallel split in force (for prediction, whose last batch may be odd)."""
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)
