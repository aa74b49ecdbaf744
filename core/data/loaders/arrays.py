"""NumPy arrays as images and labels: the ``npz:PATH`` loader and the checks it shares with the
built-in loaders (Keras downloads, ``mnist.npz``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from core.common.errors import DatasetError
from core.data.loaders.common import RawData

# Total uncompressed size of an .npz's arrays (the same limit as a zip of images): checked from
# the archive's directory before anything is read, so a compressed bomb is refused cheaply.
MAX_NPZ_BYTES = 8 * 1024**3


def images_to_uint8(x: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """Return images as uint8 ``(N, H, W, C)`` with C = 1 or 3, and notes on any conversion.

    Accepts ``(N, H, W)`` or ``(N, H, W, C)``; uint8, integers in 0..255, booleans, or floats in
    [0, 1] (scaled by 255) or [0, 255] (rounded).

    Args:
        x: the images.
        where: what they are, for messages, e.g. ``"x in 'faces.npz'"``.

    Returns:
        ``(images, notes)``.

    Raises:
        DatasetError: wrong rank or channel count, empty, NaN/infinite, out-of-range values or a
            non-numeric dtype.
    """
    if x.ndim == 3:
        x = x[..., np.newaxis]  # grayscale (N, H, W) -> (N, H, W, 1)
    elif x.ndim == 4:
        if x.shape[-1] not in (1, 3):
            hint = ""
            if x.shape[1] in (1, 3):
                hint = " (it looks channels-first: save x.transpose(0, 2, 3, 1))"
            raise DatasetError(
                f"{where} has shape {x.shape}: expected (N, H, W) or (N, H, W, C) with C = 1 or 3{hint}"
            )
    else:
        raise DatasetError(f"{where} has shape {x.shape}: expected (N, H, W) or (N, H, W, C) with C = 1 or 3")
    if x.shape[0] == 0:
        raise DatasetError(f"{where} is empty (0 images)")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise DatasetError(
            f"{where} has images of {x.shape[2]}x{x.shape[1]} pixels: expected non-empty images"
        )
    if x.dtype == np.uint8:
        return x, []
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * np.uint8(255), [f"converted boolean {where} to 0/255"]
    if np.issubdtype(x.dtype, np.integer):
        low, high = int(x.min()), int(x.max())
        if low < 0 or high > 255:
            raise DatasetError(f"{where} has integer values from {low} to {high}: expected 0..255")
        return x.astype(np.uint8), [f"converted {x.dtype} {where} to uint8"]
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DatasetError(f"{where} contains NaN or infinite values")
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 255:
            hint = ": to use images in [-1, 1], save (x + 1) / 2" if low >= -1 and high <= 1 else ""
            raise DatasetError(
                f"{where} has values from {low:g} to {high:g}: expected floats in [0, 1] or [0, 255], "
                f"or uint8{hint}"
            )
        if high <= 1.0:
            return np.rint(x * 255.0).astype(np.uint8), [f"scaled float {where} from [0, 1] to 0..255"]
        return np.rint(x).astype(np.uint8), [f"rounded float {where} in [0, 255] to uint8"]
    raise DatasetError(f"{where} has dtype {x.dtype}: expected uint8, integers 0..255 or floats")


def labels_to_int64(y: np.ndarray, num_images: int, where: str, num_classes: int | None = None) -> np.ndarray:
    """Return class ids as int64 ``(N,)``.

    Args:
        y: labels, ``(N,)`` or ``(N, 1)`` (Keras' CIFAR shape); integers or whole-number floats.
        num_images: how many images they label.
        where: what they are, for messages.
        num_classes: when known, labels must be below it.

    Returns:
        The labels as int64.

    Raises:
        DatasetError: wrong shape (one-hot included), count mismatch, NaN, non-integer, negative
            or out-of-range labels.
    """
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2:
        raise DatasetError(
            f"{where} has shape {y.shape}: expected class ids of shape (N,); for one-hot labels "
            "save y.argmax(axis=1)"
        )
    elif y.ndim != 1:
        raise DatasetError(f"{where} has shape {y.shape}: expected class ids of shape (N,)")
    if len(y) != num_images:
        raise DatasetError(f"{where} has {len(y)} labels but there are {num_images} images")
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise DatasetError(f"{where} contains NaN or infinite values")
        fractional = y[y != np.rint(y)]
        if len(fractional):
            raise DatasetError(
                f"{where} has non-integer labels such as {fractional[0]:g}: expected class ids 0..K-1"
            )
    elif not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{where} has dtype {y.dtype}: expected integer class ids 0..K-1")
    if len(y) == 0:
        return y.astype(np.int64)
    low, high = y.min(), y.max()
    if low < 0:
        raise DatasetError(f"{where} has negative labels such as {low:g}: expected class ids 0..K-1")
    if num_classes is not None and high >= num_classes:
        raise DatasetError(
            f"{where} has label {high:g} but there are only {num_classes} classes: "
            f"expected class ids 0..{num_classes - 1}"
        )
    if high > np.iinfo(np.int64).max // 2:  # a uint64 this large would wrap when cast
        raise DatasetError(f"{where} has label {high}: expected class ids 0..K-1")
    return y.astype(np.int64)


def load_npz(path: Path, display: str) -> RawData:
    """Read ``x`` (and optional ``y``, ``class_names``) or ``x_train``/``y_train``/``x_test``/``y_test``.

    Args:
        path: the ``.npz`` file.
        display: the path as the user wrote it, for messages.

    Returns:
        The raw arrays; ``x_test`` is empty unless the file has a test split.

    Raises:
        DatasetError: unreadable file, object arrays, missing or invalid arrays.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetError(f"'{display}' is not a readable .npz file ({error})") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(
            f"'{display}' is a .npy file, not .npz: save with np.savez(path, x=images, y=labels)"
        )
    with archive:
        declared = sum(info.file_size for info in archive.zip.infolist())
        if declared > MAX_NPZ_BYTES:
            raise DatasetError(
                f"'{display}' would expand to {declared / 1024**3:.1f} GB of arrays, over the "
                f"{MAX_NPZ_BYTES // 1024**3} GB limit (possible zip bomb): save a smaller dataset"
            )
        names = set(archive.files)
        if "x" in names:
            splits = {"train": ("x", "y")}
        elif "x_train" in names:
            splits = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
        else:
            found = ", ".join(sorted(names)) or "nothing"
            raise DatasetError(
                f"'{display}' has no array named 'x' (found: {found}): save images as x and labels as y "
                "with np.savez"
            )
        class_names = None
        if "class_names" in names:
            class_names = _class_names(_read(archive, "class_names", display), display)
        notes: list[str] = []
        arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for split, (x_name, y_name) in splits.items():
            if x_name not in names:
                raise DatasetError(f"'{display}' has {splits['train'][0]} but no {x_name}")
            x, x_notes = images_to_uint8(_read(archive, x_name, display), f"{x_name} in '{display}'")
            notes += x_notes
            y = None
            if y_name in names:
                y = labels_to_int64(
                    _read(archive, y_name, display),
                    len(x),
                    f"{y_name} in '{display}'",
                    len(class_names) if class_names else None,
                )
            arrays[split] = (x, y)
    x_train, y_train = arrays["train"]
    x_test, y_test = arrays.get("test", (x_train[:0], None if y_train is None else y_train[:0]))
    if x_test.shape[1:] != x_train.shape[1:]:
        raise DatasetError(
            f"'{display}' has training images of shape {x_train.shape[1:]} but test images of "
            f"shape {x_test.shape[1:]}: both splits need the same (H, W, C)"
        )
    if (y_train is None) != (y_test is None):
        raise DatasetError(
            f"'{display}' has labels for only one split: save both y_train and y_test, or neither"
        )
    if y_train is None:
        class_names = ()
    elif class_names is None:
        highest = int(max(y_train.max(), y_test.max() if len(y_test) else 0))
        total = len(y_train) + len(y_test)
        if highest >= total:  # some class ids would have no image; and no billion class names
            raise DatasetError(
                f"'{display}' has label {highest} but only {total} images: labels must be class ids "
                "0..K-1 with images in every class"
            )
        class_names = tuple(str(label) for label in range(highest + 1))
    return RawData(x_train, y_train, x_test, y_test, class_names, f"{path} (npz)", notes)


def _read(archive: np.lib.npyio.NpzFile, name: str, display: str) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as error:
        if "pickle" in str(error):
            raise DatasetError(
                f"'{display}' contains object arrays; save plain numeric arrays (allow_pickle=False)"
            ) from error
        raise DatasetError(f"cannot read array {name!r} from '{display}' ({error})") from error
    except MemoryError as error:  # a header claiming a shape far larger than the file
        raise DatasetError(f"array {name!r} in '{display}' is too large to load into memory") from error
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetError(f"cannot read array {name!r} from '{display}' ({error})") from error


def _class_names(names: np.ndarray, display: str) -> tuple[str, ...]:
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DatasetError(
            f"class_names in '{display}' must be a 1-D array of strings, e.g. np.array(['cat', 'dog'])"
        )
    return tuple(name.decode() if isinstance(name, bytes) else str(name) for name in names.tolist())
