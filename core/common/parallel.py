"""How work is spread over JAX's local devices: data-parallel training, single-device prediction.

The CPU counts as several devices when the user splits it (``core.common.backend.cpu_device_count``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

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
def data_parallel(batch_size: int, devices: Sequence[jax.Device] | None = None):
    """Train data-parallel over ``devices`` (default: all local devices) when there are several
    and the batch splits evenly.

    A batch that does not split over the devices trains on the first. One device that is not
    JAX's default becomes the default inside the block. The previous distribution is restored
    afterwards, so a notebook or test process is left as it was.

    Args:
        batch_size: images per training step.
        devices: the local devices to train on (a foreground run's share of the GPUs).
    """
    chosen = list(devices) if devices else jax.local_devices()
    if len(chosen) >= 2 and batch_size % len(chosen) == 0:
        # All local devices: Keras' own mesh, as before; a subset: a mesh of exactly those.
        names = None if chosen == jax.local_devices() else [f"{device.platform}:{device.id}" for device in chosen]
        with keras.distribution.DataParallel(devices=names).scope():
            yield
        return
    if chosen[0] == jax.local_devices()[0]:
        yield
        return
    with jax.default_device(chosen[0]):
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
