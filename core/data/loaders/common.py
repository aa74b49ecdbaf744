"""What every loader shares: the raw-data record, where caches live, the on-disk parsed copy and
the deterministic train/test split."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from core.common.errors import DatasetError

SPLIT_SEED = 0  # fixed, so every front end and every run sees the same train/test split


@dataclasses.dataclass
class RawData:
    """Arrays as a loader found them, before splitting, resizing and freezing."""

    x_train: np.ndarray  # (N, H, W, C) uint8
    y_train: np.ndarray | None  # (N,) int64; None when unlabeled
    x_test: np.ndarray  # (M, H, W, C) uint8; M == 0 when the source has no test split
    y_test: np.ndarray | None
    class_names: tuple[str, ...]  # () when unlabeled
    source: str  # where the arrays were read from, shown to the user
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Location:
    """Where a dataset is on this machine, found without reading it."""

    path: Path  # the file or folder the data will be read from
    fingerprint: tuple  # changes whenever the files do; keys the in-process and on-disk caches
    kind: str = ""  # the format at that place, for loaders that read several ("idx", "npz")


def env_dir(variable: str) -> Path | None:
    """The folder named by environment variable ``variable``, or None when it is unset or empty."""
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser() if value else None


def keras_datasets_dir() -> Path:
    """Where Keras keeps downloaded datasets (the same rule as ``keras.utils.get_file``)."""
    home = os.environ.get("KERAS_HOME")
    if home:
        return Path(home).expanduser() / "datasets"
    base = Path.home()
    if not os.access(base, os.W_OK):
        base = Path("/tmp")  # Keras falls back to /tmp/.keras when the home folder is read-only
    return base / ".keras" / "datasets"


def cache_dir() -> Path:
    """``$CONVGAN_HOME/cache`` when CONVGAN_HOME is set, else ``~/.cache/convgan``."""
    home = os.environ.get("CONVGAN_HOME")
    if home:
        return Path(home).expanduser() / "cache"
    xdg_cache = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg_cache) if xdg_cache else Path.home() / ".cache") / "convgan"


def file_fingerprint(paths: Iterable[Path]) -> tuple:
    """``(path, mtime_ns, size)`` of each file: changes when a file is replaced or edited."""
    result = []
    for path in paths:
        stat = path.stat()
        result.append((str(path.resolve()), stat.st_mtime_ns, stat.st_size))
    return tuple(result)


def cached_arrays(
    label: str, fingerprint: tuple, names: tuple[str, ...], build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Return ``build()``'s arrays, from an uncompressed copy in the cache folder when one matches.

    Parsing gzip or decoding JPEGs is the slow part of loading. The copy is one ``.npy`` per
    array, memory-mapped read-only: opening it takes milliseconds, and processes that load the
    same dataset (dashboard, trainers) share its pages in the OS cache. The copy is keyed by
    ``fingerprint`` (paths, mtimes, sizes, options), so edited source files are parsed again. A
    cache that cannot be read or written (read-only home, full disk) only costs speed.

    Args:
        label: names the copy, e.g. ``fashion_mnist``; older copies with the same label are removed.
        fingerprint: anything that changes when the result would.
        names: the array names ``build`` returns.
        build: computes the arrays when there is no usable copy.

    Returns:
        The arrays by name; read-only when they come from the copy.
    """
    digest = hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:20]
    folder = cache_dir() / "datasets"
    target = folder / f"{label}-{digest}"
    if target.is_dir():
        try:
            return {name: _open_npy(target / f"{name}.npy") for name in names}
        except Exception:  # any broken copy (deleted file, foreign format) is rebuilt below
            pass
    arrays = build()
    _write_cache(folder, label, target, arrays)
    return arrays


def _open_npy(path: Path) -> np.ndarray:
    try:
        # np.asarray drops the np.memmap subclass but keeps the mapping: a plain read-only array.
        return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))
    except ValueError:  # an empty array cannot be memory-mapped
        return np.load(path, allow_pickle=False)


def _write_cache(folder: Path, label: str, target: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Write into a temporary folder and rename it: readers see a complete copy or none.
        temporary = Path(tempfile.mkdtemp(dir=folder, prefix=f".{label}-", suffix=".tmp"))
        try:
            for name, array in arrays.items():
                np.save(temporary / f"{name}.npy", array, allow_pickle=False)
            os.rename(temporary, target)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)  # only left when the rename failed
        # Copies for older versions of the same files are never read again.
        for stale in folder.glob(f"{label}-*"):
            if stale != target and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
    except OSError:  # another process wrote it first, or the cache folder is not writable
        pass


def split_indices(
    labels: np.ndarray | None, count: int, test_fraction: float, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test indices, stratified by class when ``labels`` is given.

    The test split gets ``ceil(test_fraction * count)`` images (scikit-learn's rule, so the
    digits split is 1437/360), shared among classes by largest remainder, and every class keeps
    at least one training image. Both index arrays come back shuffled with ``seed``.

    Raises:
        DatasetError: fewer than 2 images.
    """
    if count < 2:
        raise DatasetError(f"need at least 2 images (one to train, one to test), got {count}")
    rng = np.random.default_rng(seed)
    num_test = min(math.ceil(test_fraction * count), count - 1)
    if labels is None:
        order = rng.permutation(count)
        return rng.permutation(order[num_test:]), rng.permutation(order[:num_test])
    classes, class_sizes = np.unique(labels, return_counts=True)
    quotas = num_test * class_sizes / count
    per_class = np.floor(quotas).astype(np.int64)
    # Largest remainder: the images left over go to the classes whose quota was rounded down most.
    leftover = num_test - int(per_class.sum())
    by_remainder = sorted(range(len(classes)), key=lambda index: (-(quotas[index] - per_class[index]), index))
    for index in by_remainder[:leftover]:
        per_class[index] += 1
    per_class = np.minimum(per_class, class_sizes - 1)
    train_parts, test_parts = [], []
    for label, size in zip(classes, per_class, strict=True):
        members = rng.permutation(np.flatnonzero(labels == label))
        test_parts.append(members[:size])
        train_parts.append(members[size:])
    train_index = rng.permutation(np.concatenate(train_parts))
    test_index = rng.permutation(np.concatenate(test_parts))
    return train_index, test_index
