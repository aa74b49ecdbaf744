"""Image files through Pillow: safe decoding, mode conversion and resizing to one shape."""

from __future__ import annotations

import collections
import io
import os
from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from core.common.errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# Refuse decompression bombs from the header, before decoding: 40 Mpx is larger than any photo a
# phone takes and far below Pillow's own 179 Mpx error.
MAX_IMAGE_PIXELS = 40_000_000
_PARALLEL_MIN_IMAGES = 64  # below this a thread pool costs more than it saves

# Something Pillow can open: a file path, or a zip member's bytes wrapped in BytesIO.
ImageSource = str | Path | io.BytesIO


def decode_image(
    source: ImageSource,
    name: str,
    size: tuple[int, int] | None = None,
    center_crop: bool = False,
    force_rgb: bool = False,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one image to uint8 ``(H, W, 1)`` (grayscale) or ``(H, W, 3)`` (colour).

    Modes are converted so that pixels mean the same thing everywhere: transparency is composited
    on white, palettes are expanded, 16-bit images are scaled to 8 bits, and a colour image whose
    three channels are equal is returned as grayscale. GIFs give their first frame; EXIF rotation
    is applied.

    Args:
        source: a path or an in-memory file.
        name: the file's name as the user knows it, for messages.
        size: ``(width, height)`` to resize to, or None to keep the native size.
        center_crop: crop the central square before resizing (aligned faces).
        force_rgb: always return 3 channels.

    Returns:
        ``(pixels, (native_width, native_height))``.

    Raises:
        DatasetError: not an image, corrupt or truncated, or more than ``MAX_IMAGE_PIXELS``.
    """
    if _is_empty(source):
        raise DatasetError(f"'{name}' is empty (0 bytes): remove it or replace it with the image")
    try:
        with Image.open(source) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DatasetError(
                    f"'{name}' is {width}x{height} pixels, over the {MAX_IMAGE_PIXELS // 1_000_000} Mpx "
                    "limit: refusing to decode it (possible decompression bomb); shrink it first"
                )
            if size is not None and image.format == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the target is that much smaller.
                side = min(width, height) if center_crop else None
                wanted = size if side is None else (size[0] * width // side, size[1] * height // side)
                image.draft(image.mode, wanted)
            ImageOps.exif_transpose(image, in_place=True)
            pixels = _to_array(image)
    except DatasetError:
        raise
    except Image.UnidentifiedImageError as error:
        raise DatasetError(
            f"'{name}' is not an image Pillow can read: remove it or convert it to PNG"
        ) from error
    except Image.DecompressionBombError as error:
        raise DatasetError(f"'{name}' is too large to decode safely ({error})") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise DatasetError(f"'{name}' cannot be decoded, it may be truncated or corrupt ({error})") from error
    if force_rgb and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    if center_crop:
        side = min(pixels.shape[0], pixels.shape[1])
        top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
        pixels = pixels[top : top + side, left : left + side]
    if size is not None and (pixels.shape[1], pixels.shape[0]) != size:
        pixels = resize_image(pixels, size)
    return pixels, (width, height)


def _is_empty(source: ImageSource) -> bool:
    if isinstance(source, io.BytesIO):
        with source.getbuffer() as view:  # no copy of the bytes
            return view.nbytes == 0
    try:
        return os.path.getsize(source) == 0
    except OSError:  # missing or unreadable: Image.open reports it
        return False


def _to_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        # 16-bit grayscale (PNG, TIFF): keep the top 8 bits' worth of contrast.
        pixels = np.rint(np.asarray(image).astype(np.float32) / 257.0).astype(np.uint8)
    elif mode == "I":
        values = np.asarray(image)
        # 32-bit integer mode holds 16-bit data from some decoders and 8-bit data from others.
        scale = 257.0 if values.max(initial=0) > 255 else 1.0
        pixels = np.rint(np.clip(values, 0, 65535) / scale).astype(np.uint8)
    elif mode == "F":
        values = np.nan_to_num(np.asarray(image), nan=0.0)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        pixels = np.rint(np.clip(values * scale, 0, 255)).astype(np.uint8)
    elif mode in ("1", "L"):
        pixels = np.asarray(image.convert("L"))
    else:
        has_alpha = "A" in mode or "a" in mode or (mode == "P" and "transparency" in image.info)
        if has_alpha:
            # Transparent pixels become white, as a viewer shows them on a white page.
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image.convert("RGBA"))
        pixels = np.asarray(image.convert("RGB"))
        if (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all():
            pixels = pixels[..., :1]  # grey stored as RGB: one channel is the truth
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    return np.ascontiguousarray(pixels)


def resize_image(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 ``(H, W, C)`` pixels to ``size = (width, height)`` with bicubic filtering.

    Pillow's bicubic filter widens its support when shrinking, so downscaling is antialiased.
    """
    channels = pixels.shape[2]
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    resized = np.asarray(image.resize(size, Image.Resampling.BICUBIC))
    return resized.reshape(size[1], size[0], channels)


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 batch ``(N, H, W, C)`` to ``size = (width, height)``."""
    result = np.empty((len(images), size[1], size[0], images.shape[3]), np.uint8)
    for index, pixels in enumerate(images):
        result[index] = resize_image(pixels, size)
    return result


def map_images(function: Callable, items: Sequence) -> list:
    """``[function(item) for item in items]``, on a thread pool for large folders.

    Pillow releases the GIL while it decodes, so threads give a real speed-up on big folders
    (CelebA). The first failure, in item order, is raised.
    """
    if len(items) < _PARALLEL_MIN_IMAGES:
        return [function(item) for item in items]
    workers = min(8, os.cpu_count() or 1)
    with futures.ThreadPoolExecutor(max_workers=workers) as executor:
        return list(executor.map(function, items))


def stack_images(images: list[np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Stack images of possibly different sizes and channel counts into one uint8 batch.

    If any image is in colour, grayscale ones are converted to RGB. Images whose size differs
    from the most common one are resized to it. Sizes in notes are width x height.

    Returns:
        ``(batch (N, H, W, C), notes)``.
    """
    notes = []
    grayscale = [index for index, pixels in enumerate(images) if pixels.shape[2] == 1]
    if grayscale and len(grayscale) < len(images):
        for index in grayscale:
            images[index] = np.repeat(images[index], 3, axis=2)
        notes.append(f"converted {len(grayscale)} grayscale images to RGB because the others are in colour")
    sizes = collections.Counter((pixels.shape[1], pixels.shape[0]) for pixels in images)
    if len(sizes) > 1:
        target = sizes.most_common(1)[0][0]
        others = [size for size in sizes if size != target]
        resized = 0
        for index, pixels in enumerate(images):
            if (pixels.shape[1], pixels.shape[0]) != target:
                images[index] = resize_image(pixels, target)
                resized += 1
        shown = ", ".join(f"{width}x{height}" for width, height in others[:3])
        if len(others) > 3:
            shown += f" and {len(others) - 3} more sizes"
        notes.append(
            f"resized {resized} images from {shown} to {target[0]}x{target[1]}, the most common size"
        )
    return np.stack(images), notes
