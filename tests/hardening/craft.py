"""Hostile and unusual files, written byte by byte where Pillow would refuse to write them."""

from __future__ import annotations

import io
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bytes(pixels: np.ndarray | None = None, *, width: int | None = None, height: int | None = None,
              bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A PNG from raw samples, or (``pixels=None``) a valid header claiming ``width x height``.

    ``color_type``: 0 grayscale, 2 RGB, 6 RGBA. 16-bit samples are written big-endian, as PNG
    requires. A header-only PNG carries one tiny IDAT: enough for Pillow to open it, far too
    little to decode it, which is what a decompression bomb looks like before decoding.
    """
    if pixels is not None:
        pixels = np.asarray(pixels)
        height, width = pixels.shape[:2]
        samples = pixels.astype(">u2" if bit_depth == 16 else np.uint8).reshape(height, -1)
        raw = b"".join(b"\0" + row.tobytes() for row in samples)  # filter type 0 on every row
    else:
        raw = b"\0" * 64
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gray_png(value: int, size: int = 8) -> bytes:
    return encode(Image.new("L", (size, size), value))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def labeled_folder(root: Path, per_class: int = 3, size: int = 8) -> Path:
    """``root/a/*.png`` (dark) and ``root/b/*.png`` (light): a valid two-class dataset."""
    for index in range(per_class):
        write(root / "a" / f"a{index}.png", gray_png(10 + index, size))
        write(root / "b" / f"b{index}.png", gray_png(200 + index, size))
    return root


def zip_file(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def labeled_members(per_class: int = 3, size: int = 8) -> dict[str, bytes]:
    return {
        **{f"a/a{index}.png": gray_png(10 + index, size) for index in range(per_class)},
        **{f"b/b{index}.png": gray_png(200 + index, size) for index in range(per_class)},
    }


def add_run(store, family: str, model: str, checkpoint: Path | None = None,
            status: str = "completed") -> str:
    """A run record in ``store`` (digits, 10 classes) with ``checkpoint`` copied in as epoch 1."""
    from core.common.config import config_for, config_to_dict

    config = {**config_to_dict(config_for(model, dataset="digits", epochs=1)),
              "data": {"class_names": [str(digit) for digit in range(10)], "image_shape": [8, 8, 1]}}
    run_id = store.create_run(family=family, model=model, dataset="digits", config=config, status=status)
    if checkpoint is not None:
        folder = store.run_dir(run_id) / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoint, folder / "epoch_001.keras")
    return run_id
