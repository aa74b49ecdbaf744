"""CIFAR-10 in Keras' layout: a ``cifar-10-batches-py`` folder of pickled ``data_batch_1..5`` and
``test_batch``.

The batches are Python pickles, so they are only read from that layout, and through an
unpickler that can build nothing but NumPy arrays (as Keras' own loader does): a tampered file
cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from core.common.errors import DatasetError
from core.data.loaders import arrays, keras_download
from core.data.loaders.common import Location, RawData, env_dir, file_fingerprint, keras_datasets_dir

ENV_VAR = "CONVGAN_CIFAR10_DIR"
BATCH_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_BATCH = "test_batch"
_PIXELS_PER_IMAGE = 3 * 32 * 32  # one row of a batch: the red, green then blue 32x32 planes

# The only globals a CIFAR batch needs: NumPy array reconstruction, in the numpy < 2
# (numpy.core) and numpy >= 2 (numpy._core) spellings, for pickle protocols up to 5, and
# _codecs.encode, which Python 3 uses for bytes in protocol 2 (batches re-saved by Python 3).
_ALLOWED_GLOBALS = frozenset(
    {
        ("_codecs", "encode"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def locate() -> Location | None:
    """Find the batches folder without reading it: ``CONVGAN_CIFAR10_DIR``, then Keras' cache.

    Raises:
        DatasetError: the environment variable names a folder without the batches.
    """
    configured = env_dir(ENV_VAR)
    if configured is not None:
        folder = _batches_in(configured)
        if folder is None:
            raise DatasetError(
                f"{ENV_VAR} is '{configured}' but that folder has no CIFAR-10 batches: expected "
                f"{BATCH_FOLDER}/ with data_batch_1..5 and test_batch"
            )
        return _location(folder)
    keras_dir = keras_datasets_dir()
    # Keras 3 extracts into cifar-10-batches-py-target/; older versions into datasets/ itself.
    for candidate in (keras_dir / f"{BATCH_FOLDER}-target", keras_dir):
        folder = _batches_in(candidate)
        if folder is not None:
            return _location(folder)
    return None


def _batches_in(folder: Path) -> Path | None:
    for candidate in (folder, folder / BATCH_FOLDER):
        if all((candidate / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH)):
            return candidate
    return None


def _location(folder: Path) -> Location:
    return Location(folder, file_fingerprint(folder / name for name in (*TRAIN_BATCHES, TEST_BATCH)))


def load(location: Location | None, how_to_get: str, class_names: tuple[str, ...]) -> RawData:
    """Read the batches at ``location``, or download them with Keras when it is None.

    Raises:
        DatasetError: a batch is corrupt, not a CIFAR batch, or holds anything but arrays.
        DatasetUnavailable: not on this machine and the download failed.
    """
    if location is None:
        (x_train, y_train), (x_test, y_test) = keras_download.download("cifar10", how_to_get)
        source = "downloaded by Keras"
    else:
        train = [read_batch(location.path / name) for name in TRAIN_BATCHES]
        x_train = np.concatenate([images for images, _ in train])
        y_train = np.concatenate([labels for _, labels in train])
        x_test, y_test = read_batch(location.path / TEST_BATCH)
        source = f"{location.path} (CIFAR-10 batches)"
    x_train, _ = arrays.images_to_uint8(x_train, "cifar10 train images")
    x_test, _ = arrays.images_to_uint8(x_test, "cifar10 test images")
    y_train = arrays.labels_to_int64(y_train, len(x_train), "cifar10 train labels", len(class_names))
    y_test = arrays.labels_to_int64(y_test, len(x_test), "cifar10 test labels", len(class_names))
    return RawData(x_train, y_train, x_test, y_test, class_names, source)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch: ``(images (N, 32, 32, 3) uint8, labels (N,))``.

    Raises:
        DatasetError: unreadable, unsafe, or not shaped like a CIFAR-10 batch.
    """
    try:
        with open(path, "rb") as file:
            # encoding="bytes": the batches were pickled by Python 2, whose str keys become bytes.
            batch = _ArrayOnlyUnpickler(file, encoding="bytes").load()
    except pickle.UnpicklingError as error:
        raise DatasetError(
            f"'{path}' is not a safe CIFAR-10 batch ({error}): fetch the dataset again"
        ) from error
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise DatasetError(f"'{path}' is not a readable CIFAR-10 batch ({error})") from error
    if not isinstance(batch, dict):
        raise DatasetError(f"'{path}' is not a CIFAR-10 batch: expected a dict, found {type(batch).__name__}")
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if (
        not isinstance(data, np.ndarray)
        or data.ndim != 2
        or data.shape[1] != _PIXELS_PER_IMAGE
        or labels is None
    ):
        raise DatasetError(
            f"'{path}' is not a CIFAR-10 batch: expected 'data' of shape (N, 3072) and 'labels'"
        )
    # Each row holds the three 32x32 colour planes one after another: (N, C, H, W) -> (N, H, W, C).
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, np.asarray(labels)
