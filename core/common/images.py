"""Small image utilities shared by training callbacks, sampling, the CLI and the pages."""

from __future__ import annotations

import io
import math
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Convert generator output in [-1, 1] to uint8 pixels in [0, 255].

    Args:
        images: float array of any shape, nominally in [-1, 1].

    Returns:
        uint8 array of the same shape.
    """
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, ncols: int | None = None, padding: int = 1, pad_value: int = 0) -> np.ndarray:
    """Tile images into one picture, row by row.

    Args:
        images: uint8 array (N, H, W, C) with C in {1, 3}.
        ncols: images per row; default: the smallest square that holds N.
        padding: pixels between images.
        pad_value: value of the padding pixels.

    Returns:
        uint8 array (rows * (H + padding) + padding, ncols * (W + padding) + padding, C).

    Raises:
        ValueError: if ``images`` is not a non-empty (N, H, W, C) array.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, H, W, C) array of images, got shape {images.shape}")
    count, height, width, channels = images.shape
    ncols = ncols or math.ceil(math.sqrt(count))
    nrows = math.ceil(count / ncols)
    grid = np.full(
        (nrows * (height + padding) + padding, ncols * (width + padding) + padding, channels),
        pad_value,
        dtype=images.dtype,
    )
    for index in range(count):
        row, col = divmod(index, ncols)
        top = padding + row * (height + padding)
        left = padding + col * (width + padding)
        grid[top : top + height, left : left + width] = images[index]
    return grid


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of a (H, W, C) image so small images stay crisp on screen."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def to_pil(image: np.ndarray):
    """Return a Pillow image of a uint8 (H, W, C) or (H, W) array."""

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return Image.fromarray(image)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W, C) array as PNG bytes (deterministic: no timestamps)."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers never see half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Save a uint8 (H, W, C) array as a PNG, atomically."""
    return atomic_write_bytes(path, png_bytes(image))


def load_png(path: str | Path) -> np.ndarray:
    """Read a PNG written by :func:`save_png` back as a uint8 (H, W, C) array."""

    with Image.open(path) as image:
        array = np.asarray(image)
    return array[..., None] if array.ndim == 2 else array
