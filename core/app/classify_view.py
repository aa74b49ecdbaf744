"""What the Classify page shows: predictions of a drawing, an image or a zip, saliency overlays."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.common.errors import UserError
from core.data.loaders import folders, image_files
from core.evaluation import novelty
from core.training.classifier import (
    classify_images,
    prepare_images,
    saliency,
)


def zip_image_entries(data: bytes, limit: int = 500) -> list[tuple[str, bytes]]:
    """Image files (png/jpg/jpeg/bmp/gif/webp) inside an uploaded zip, in name order.

    Raises:
        UserError: not a zip, or no images in it.
    """

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise UserError("the upload is not a zip file") from err
    entries = []
    with archive:
        for parts, info in sorted(folders.safe_members(archive, "the upload"), key=lambda item: item[1].filename):
            if "__MACOSX" in parts or parts[-1].startswith("."):
                continue
            if Path(parts[-1]).suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"):
                continue
            if len(entries) >= limit:
                break
            entries.append((info.filename, folders.read_member(archive, info, "the upload").getvalue()))
    if not entries:
        raise UserError("no .png/.jpg images found in the zip")
    return entries


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode image bytes (png/jpg/...) to a uint8 (H, W, C) array with C in {1, 3}.

    Raises:
        UserError: not an image Pillow can read, or too many pixels.
    """

    # The same decoder as datasets and the CLI: pixel-count limit before decoding, alpha
    # composited on white, 16-bit scaled, so the page and `classify` see the same pixels.
    return image_files.decode_image(io.BytesIO(data), name)[0]


def canvas_to_image(rgba: np.ndarray) -> np.ndarray | None:
    """A drawing (RGBA canvas: light strokes on a black or transparent background) as a grayscale
    uint8 (H, W, 1) image, white on black like digit datasets. None for an empty canvas."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[-1] != 4:
        return None
    brightness = rgba[..., :3].max(axis=-1).astype(np.float32) * (rgba[..., 3].astype(np.float32) / 255.0)
    if brightness.max() <= 0.0:
        return None
    return np.clip(np.rint(brightness), 0, 255).astype(np.uint8)[..., None]


def classify(model, image: np.ndarray, class_names: Sequence[str], top_k: int, check=None) -> dict[str, Any]:
    """Classify one uint8 image of any size/channels with a classifier model.

    Args:
        check: the checkpoint's ``core.evaluation.novelty.Novelty``, to say whether the image is unlike the
            training images; None: no such check.

    Returns:
        ``{"prepared": uint8 (H, W, C) as the model sees it, "top": [...], "notes": [...]}``, and
        with ``check`` the fields of ``core.evaluation.novelty.assess`` (``unusual``, ``ood_score``, ...).
    """

    input_shape = tuple(model.input_shape[1:])
    prepared, notes = prepare_images(np.asarray(image)[None], input_shape)
    result = classify_images(model, prepared, list(class_names), top_k=min(top_k, len(class_names)))[0]
    seen = np.clip(np.rint(np.asarray(prepared[0], dtype=np.float32)), 0, 255).astype(np.uint8)
    found = {"prepared": seen, "top": result["top"], "notes": list(notes)}
    if check is not None:

        found.update(novelty.assess(model, check, [image], prepared)[0])
    return found


def classify_zip(model, data: bytes, class_names: Sequence[str], top_k: int = 3) -> list[dict[str, Any]]:
    """Classify every image in an uploaded zip: one row per file (unreadable files get a note)."""
    rows = []
    for name, raw in zip_image_entries(data):
        try:
            result = classify(model, decode_image(raw, name), class_names, top_k)
        except UserError as err:
            rows.append({"file": name, "class": None, "probability": None, "top": "", "note": str(err)})
            continue
        best = result["top"][0]
        rows.append(
            {
                "file": name,
                "class": best["class_name"],
                "probability": round(float(best["probability"]), 4),
                "top": ", ".join(f"{c['class_name']} {c['probability']:.0%}" for c in result["top"]),
                "note": "; ".join(result["notes"]),
            }
        )
    return rows


def rows_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """Table rows as CSV bytes (columns of the first row)."""

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue().encode()


def saliency_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend a saliency map (H, W), any range, over a uint8 image as a red heat overlay (RGB uint8)."""
    image = np.asarray(image)
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim == 3:
        heat = np.abs(heat).max(axis=-1)
    heat = heat - heat.min()
    heat = heat / heat.max() if heat.max() > 0 else heat
    color = np.stack([np.full_like(heat, 255.0), 80.0 * (1 - heat), np.zeros_like(heat)], axis=-1)
    weight = (alpha * heat)[..., None]
    return np.clip(rgb * (1 - weight) + color * weight, 0, 255).astype(np.uint8)


def saliency_map(model, prepared: np.ndarray, class_index: int, method: str) -> np.ndarray:
    """``core.training.classifier.saliency`` for one prepared image."""

    return np.asarray(saliency(model, prepared, class_index, method))


def heat_image(heat: np.ndarray) -> np.ndarray:
    """A saliency map (H, W) in any range as an RGB uint8 image (black -> red -> yellow -> white)."""
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim == 3:
        heat = np.abs(heat).max(axis=-1)
    heat = heat - heat.min()
    heat = heat / heat.max() if heat.max() > 0 else heat
    rgb = np.stack(
        [np.clip(3 * heat, 0, 1), np.clip(3 * heat - 1, 0, 1), np.clip(3 * heat - 2, 0, 1)], axis=-1
    )
    return np.rint(rgb * 255).astype(np.uint8)
