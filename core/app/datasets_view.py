"""What the Datasets page shows, and uploads: labels, grids, shuffled pages, statistics' images."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from core.app.demo_limits import require_writable
from core.common import images
from core.common.errors import DatasetError, UserError
from core.data.datasets import load_dataset
from core.store.store import RunStore

UPLOAD_SUFFIXES = (".zip", ".npz")

# Uploaded datasets are kept under <CONVGAN_HOME>/uploads/<name>.zip|.npz.
UPLOADS_DIR = "uploads"


def save_upload(store: RunStore, filename: str, data: bytes, name: str | None = None) -> str:
    """Validate an uploaded dataset (zip of class folders, or npz) and keep it in the store.

    Args:
        store: the run store; the file goes to ``<home>/uploads/<name><suffix>``.
        filename: the uploaded file's name (its suffix picks the format).
        data: the file's bytes.
        name: the dataset's name (default: the file's stem), letters, digits, ``-`` and ``_``.

    Returns:
        The dataset spec to train on: ``zip:PATH`` or ``npz:PATH``.

    Raises:
        UserError: wrong suffix, bad name, or a file ``core.data.datasets`` cannot use (nothing is kept then).
    """
    require_writable("uploading datasets")
    suffix = Path(filename).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise DatasetError(f"{filename}: upload a .zip (one folder per class) or an .npz (arrays x, y)")
    stem = (name or Path(filename).stem).strip()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40]
    if not slug:
        raise DatasetError(f"{stem!r} is not a usable dataset name: use letters, digits, - and _")
    if not data:
        raise DatasetError(f"{filename} is empty")
    folder = store.home / UPLOADS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug}{suffix}"
    tmp = folder / f".{slug}.{os.getpid()}.uploading{suffix}"
    tmp.write_bytes(data)
    try:
        load_dataset(f"{suffix[1:]}:{tmp}")  # raises DatasetError with a one-line reason
    except UserError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as err:  # noqa: BLE001 - an unreadable upload is the upload's fault
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"{filename} cannot be read as a dataset: {type(err).__name__}: {err}") from err
    os.replace(tmp, path)
    return f"{suffix[1:]}:{path}"


def uploaded_datasets(store: RunStore) -> list[str]:
    """Specs of the datasets uploaded through the dashboard, newest first."""
    folder = store.home / UPLOADS_DIR
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix in UPLOAD_SUFFIXES and not p.name.startswith(".")]
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [f"{p.suffix[1:]}:{p}" for p in files]


def dataset_label(spec: str) -> str:
    """A short name for a dataset spec (``zip:/x/uploads/pets.zip`` -> ``pets (zip upload)``)."""
    kind, _, rest = spec.partition(":")
    if rest and kind in ("zip", "npz", "folder"):
        return f"{Path(rest).stem or rest} ({kind})"
    return spec


def shuffled_indices(labels: np.ndarray | None, count: int, class_index: int | None, seed: int) -> np.ndarray:
    """Indices of the images to browse: those of one class (or all), in a seeded random order.

    Seed 0 keeps the dataset order, so the first page is stable.
    """
    indices = np.arange(count)
    if class_index is not None and labels is not None:
        indices = indices[np.asarray(labels) == class_index]
    if seed:
        indices = np.random.default_rng(seed).permutation(indices)
    return indices


def page_count(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def grid_image(batch: np.ndarray, *, ncols: int | None = None, min_side: int = 256) -> np.ndarray:
    """Tile uint8 images into one picture, upscaled (nearest) so tiny images stay visible."""
    grid = images.make_grid(np.asarray(batch), ncols=ncols, padding=1, pad_value=255)
    factor = max(1, min(8, min_side // max(1, min(grid.shape[:2]))))
    return images.upscale(grid, factor)


def enlarge(image: np.ndarray, min_side: int = 160) -> np.ndarray:
    """Nearest-neighbour upscale of one (H, W, C) image to at least ``min_side`` pixels."""
    factor = max(1, min_side // max(1, min(image.shape[:2])))
    return images.upscale(np.asarray(image), factor)


def bounded(image: np.ndarray, max_side: int = 360) -> tuple[np.ndarray, int]:
    """A picture to show at most ``max_side`` pixels on its longer side, not the column's width.

    Returns:
        The image upscaled by a whole factor (nearest neighbour, so pixels stay sharp) while it
        fits ``max_side``, and the width in pixels to show it at.
    """
    height, width = image.shape[:2]
    factor = max(1, max_side // max(1, height, width))
    shown = width * factor
    if max(height, width) * factor > max_side:  # larger than the bound already: shrink when shown
        shown = max(1, width * max_side // max(height, width))
    return images.upscale(np.asarray(image), factor), shown


def spec_version(spec: str) -> float:
    """Modification time of a custom dataset's file (0 for built-ins), to key caches of derived arrays."""
    kind, _, rest = spec.partition(":")
    if rest and kind in ("zip", "npz", "folder"):
        path = Path(rest).expanduser()
        return path.stat().st_mtime if path.exists() else 0.0
    return 0.0


def mean_images(class_means: np.ndarray) -> np.ndarray:
    """Per-class mean images (float 0..255) as uint8 for display."""
    return np.clip(np.rint(np.asarray(class_means)), 0, 255).astype(np.uint8)


def histogram_fractions(histogram: np.ndarray) -> dict[str, list[float]]:
    """A ``(C, 256)`` pixel histogram as fractions per channel, named gray or red/green/blue."""
    histogram = np.asarray(histogram, dtype=np.float64)
    names = ["gray"] if histogram.shape[0] == 1 else ["red", "green", "blue", "alpha"][: histogram.shape[0]]
    totals = np.maximum(histogram.sum(axis=1, keepdims=True), 1.0)
    return {name: (histogram[i] / totals[i]).tolist() for i, name in enumerate(names)}
