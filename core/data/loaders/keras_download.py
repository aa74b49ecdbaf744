"""Keras' own dataset downloads, bounded in time and turned into one clear error."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import numpy as np

from core.common.errors import DatasetUnavailable

# Seconds any single connect or read may block. A stalled network then fails instead of
# hanging the dashboard; a slow but moving download still finishes.
DOWNLOAD_SOCKET_TIMEOUT_S = 10.0
# socket.setdefaulttimeout is process-wide: one download at a time, so two dashboard sessions
# cannot restore each other's value halfway through.
_download_lock = threading.Lock()

Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def download(name: str, how_to_get: str) -> Splits:
    """Run ``keras.datasets.<name>.load_data()`` with a socket timeout.

    Args:
        name: ``mnist``, ``fashion_mnist`` or ``cifar10``.
        how_to_get: the instructions to show when the download fails.

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` as Keras returns them.

    Raises:
        DatasetUnavailable: the download failed for any reason (no network, timeout, bad file).
    """

    def load() -> Splits:
        import keras  # only here: importing Keras costs seconds, and `import core` chose JAX

        return getattr(keras.datasets, name).load_data()

    return call_with_timeout(load, name, how_to_get)


def call_with_timeout(load: Callable[[], Splits], name: str, how_to_get: str) -> Splits:
    """Call ``load`` with ``DOWNLOAD_SOCKET_TIMEOUT_S`` as the default socket timeout.

    Raises:
        DatasetUnavailable: ``load`` raised anything; the message says how to get the data.
    """
    with _download_lock:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT_S)
        try:
            return load()
        except Exception as error:  # any failure of a download means the same thing to a user
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            raise DatasetUnavailable(
                f"{name} is not on this machine: {how_to_get} (download failed: {reason})"
            ) from error
        finally:
            socket.setdefaulttimeout(previous)
