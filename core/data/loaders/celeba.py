"""CelebA: a folder of aligned face photos (``img_align_celeba``), center-cropped to a square and
resized, unlabeled. There is no automatic download: the dataset's licence asks each user to
agree to it, so the user points ``CONVGAN_CELEBA_DIR`` at their copy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.common.errors import DatasetError, DatasetUnavailable
from core.data.loaders import image_files
from core.data.loaders.common import Location, RawData, cached_arrays, env_dir

ENV_VAR = "CONVGAN_CELEBA_DIR"
DEFAULT_IMAGE_SIZE = 64  # the size DCGAN-style models are usually trained at
_ALIGNED_FOLDER = "img_align_celeba"  # the folder name inside the official zip


def locate() -> Location | None:
    """Find the photo folder cheaply: ``CONVGAN_CELEBA_DIR`` or its ``img_align_celeba/``.

    The fingerprint is the folder's mtime and file count, not each file's: listing 200,000 files
    is fast, stat-ing each of them is not, and adding or removing photos changes the mtime.

    Raises:
        DatasetError: the environment variable names a folder without images.
    """
    configured = env_dir(ENV_VAR)
    if configured is None:
        return None
    for folder in (configured, configured / _ALIGNED_FOLDER):
        names = _image_names(folder)
        if names:
            return Location(folder, (str(folder.resolve()), folder.stat().st_mtime_ns, len(names)))
    raise DatasetError(
        f"{ENV_VAR} is '{configured}' but that folder has no .jpg/.png images: point it at the "
        f"unzipped {_ALIGNED_FOLDER}/ folder"
    )


def _image_names(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as scan:
            return sorted(
                entry.name
                for entry in scan
                if entry.name.lower().endswith(image_files.IMAGE_EXTENSIONS)
                and not entry.name.startswith(".")
            )
    except OSError:  # missing or not a folder: not CelebA
        return []


def load(location: Location | None, image_size: int | None, how_to_get: str) -> RawData:
    """Decode every photo, center-crop it to a square and resize it to ``image_size`` (64 default).

    Decoding 200,000 JPEGs takes minutes, so the result is also kept as an uncompressed copy in
    the cache folder, keyed by the folder's fingerprint and the size.

    Raises:
        DatasetUnavailable: ``CONVGAN_CELEBA_DIR`` is not set.
        DatasetError: an unreadable image.
    """
    if location is None:
        raise DatasetUnavailable(f"celeba is not on this machine: {how_to_get}")
    size = image_size or DEFAULT_IMAGE_SIZE
    names = _image_names(location.path)

    def decode_all() -> dict[str, np.ndarray]:
        decoded = image_files.map_images(
            lambda name: image_files.decode_image(
                location.path / name, name, (size, size), center_crop=True, force_rgb=True
            )[0],
            names,
        )
        return {"x": np.stack(decoded)}

    images = cached_arrays(f"celeba-{size}", (*location.fingerprint, size), ("x",), decode_all)["x"]
    notes = [f"center-cropped {len(images)} photos to squares and resized them to {size}x{size}"]
    return RawData(images, None, images[:0], None, (), f"{location.path} (image folder)", notes)
