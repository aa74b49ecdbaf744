"""Restoring image files with a stored run (``python -m core restore RUN INPUT``).

A restoration run applies its task: super-resolution returns ``scale`` times the input's size
and denoising the input's size, both tiling inputs other than the training size (half-overlapping
tiles, blended); inpainting needs a mask of the input's size (white = hole, or
``center``). A dcgan or wgan-gp run inpaints by latent search (``core.evaluation.gan_prior``). Every check
runs before anything is written; the output PNG is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.common import images
from core.common.config import config_from_dict
from core.common.errors import ModelFileError, UserError
from core.data import degradations
from core.data.datasets import read_image
from core.evaluation import gan_prior, sampling
from core.store import checkpoints
from core.store.store import RunStore
from core.training.restoration import restore_batch

MAX_INPUT_PIXELS = 1024 * 1024  # an input over this many pixels is refused


def restore_file(store: RunStore, run_id: str, input_path: str | Path, out: str | Path, *,
                 mask: str | None = None, epoch: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Restore the image file ``input_path`` with run ``run_id`` and write ``out`` (PNG).

    Args:
        store: the run store.
        run_id: a restoration run, or a dcgan/wgan-gp run for GAN-prior inpainting.
        input_path: the image to restore.
        out: the PNG to write.
        mask: inpaint: a mask image of the input's size (white = hole) or ``center``.
        epoch: checkpoint after this many epochs (default: the latest).
        seed: seed of the GAN-prior latent search.

    Returns:
        ``run_id``, ``task``, ``method`` (``model`` or ``gan-prior``), ``out``, ``input_size`` and
        ``output_size`` (width, height), ``tiles``, and for inpaint ``hole_pixels``.

    Raises:
        UserError: a classifier run, a missing/wrong-sized/empty mask, an image over
            ``MAX_INPUT_PIXELS`` or not of the model's size where that is needed.
    """

    run = store.get_run(run_id)
    family = run["family"]
    if family == "classifier":
        raise ModelFileError(f"run {run_id} is a {run['model']} classifier: restore needs a restoration run "
                             "(espcn, unet, pix2pix) or a dcgan/wgan-gp GAN for inpainting")
    if family == "gan" and run["model"] == "cgan":
        raise ModelFileError(f"run {run_id} is a cgan: GAN-prior inpainting needs a dcgan or wgan-gp run")
    image = read_image(input_path)
    height, width = image.shape[:2]
    if height * width > MAX_INPUT_PIXELS:
        raise UserError(f"{Path(input_path).name} is {width}x{height} pixels, over the limit of "
                        f"{MAX_INPUT_PIXELS:,}: crop or shrink it first")
    result: dict[str, Any] = {"run_id": run_id, "input_size": [width, height]}
    if family == "gan":
        model = sampling.load_gan(checkpoints.checkpoint_path(store, run_id, epoch))
        image = to_channels(image, model.image_shape[-1])
        holes = read_mask(mask, height, width)
        _check_size(image, model.image_shape, "this GAN")
        restored, info = gan_prior.latent_inpaint(model, image, holes, seed=seed)
        result.update(task="inpaint", method="gan-prior", tiles=1, hole_pixels=int(holes.sum()), **info)
    else:
        config = config_from_dict(run["config"])
        model = checkpoints.load_run_model(store, run_id, epoch)
        model = getattr(model, "generator", model)  # pix2pix restores with its generator
        input_shape = tuple(int(size) for size in model.input_shape[1:])
        channels = int(model.output_shape[-1])
        image = to_channels(image, channels)
        if config.task == "inpaint":
            holes = read_mask(mask, height, width)
            _check_size(image, (*input_shape[:2], channels), "this inpaint model")
            inputs = degradations.model_inputs(np.where(holes[..., None], 0, image)[None], holes[None])
            restored = restore_batch(model, inputs)[0]
            result.update(tiles=1, hole_pixels=int(holes.sum()))
        else:
            if mask is not None:
                raise UserError(f"run {run_id} does {config.task}: a mask is for inpainting")
            factor = config.scale if config.task == "super-resolution" else 1
            restored, tiles = restore_tiled(lambda batch: restore_batch(model, batch), image, input_shape[:2], factor)
            result["tiles"] = tiles
        result.update(task=config.task, method="model")
    written = images.save_png(restored, out)
    result.update(out=str(written), output_size=[int(restored.shape[1]), int(restored.shape[0])])
    return result


def read_mask(mask: str | None, height: int, width: int) -> np.ndarray:
    """A hole mask (True = hole) of ``height x width`` from ``center`` or a mask image (white = hole).

    Raises:
        UserError: no mask, a mask of another size, with no hole, or all hole.
    """

    if mask is None:
        raise UserError("inpainting needs a mask: --mask MASK.png (white = hole, the input's size) or --mask center")
    if mask == "center":
        holes = degradations.center_mask(height, width)
    else:
        pixels = read_image(mask)
        if pixels.shape[:2] != (height, width):
            raise UserError(f"the mask is {pixels.shape[1]}x{pixels.shape[0]} but the image is {width}x{height}: "
                            "draw the mask at the image's size")
        holes = pixels.mean(axis=-1) > 127.5
    if not holes.any():
        raise UserError("the mask has no hole: paint the pixels to fill white")
    if holes.all():
        raise UserError("the mask covers the whole image: leave some pixels known")
    return holes


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``(H, W, C)`` converted to ``channels`` (grayscale by luma, or gray repeated to RGB)."""
    if image.shape[-1] == channels:
        return image
    if channels == 1:
        luma = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    return np.repeat(image[..., :1], channels, axis=-1)


def _check_size(image: np.ndarray, shape, what: str) -> None:
    if tuple(image.shape[:2]) != tuple(shape[:2]):
        raise UserError(f"{what} takes {shape[1]}x{shape[0]} images, got {image.shape[1]}x{image.shape[0]}: "
                        "resize or crop the image first")


def restore_tiled(restore, image: np.ndarray, tile_shape, factor: int) -> tuple[np.ndarray, int]:
    """Run ``restore`` over overlapping tiles of ``image`` and blend them.

    Tiles of the model's input size start at the image's corner and every half tile (the last
    one flush with the far edge); each output pixel is the mean of the tiles covering it,
    weighted by a tent that is highest at a tile's centre, so no tile edge shows as a seam.
    An image smaller than a tile is padded (edge pixels repeated) and the result cropped.

    Args:
        restore: float model inputs ``(n, th, tw, C)`` -> uint8 ``(n, th * factor, tw * factor, C)``.
        image: uint8 ``(H, W, C)``.
        tile_shape: ``(th, tw)``, the model's input size.
        factor: output pixels per input pixel.

    Returns:
        ``(restored uint8 (H * factor, W * factor, C), number of tiles)``.
    """
    height, width = image.shape[:2]
    tile_h, tile_w = (int(size) for size in tile_shape)
    padded = np.pad(image, ((0, max(0, tile_h - height)), (0, max(0, tile_w - width)), (0, 0)), mode="edge")
    rows = _tile_starts(padded.shape[0], tile_h)
    cols = _tile_starts(padded.shape[1], tile_w)
    tiles = np.stack([padded[r : r + tile_h, c : c + tile_w] for r in rows for c in cols])
    outputs = restore(tiles.astype(np.float32)).astype(np.float64)  # (n, th * f, tw * f, C)
    f = factor
    weight = np.outer(_tent(tile_h * f), _tent(tile_w * f))[..., None]  # (th * f, tw * f, 1)
    total = np.zeros((padded.shape[0] * f, padded.shape[1] * f, outputs.shape[-1]))
    weights = np.zeros((padded.shape[0] * f, padded.shape[1] * f, 1))
    for output, (r, c) in zip(outputs, [(r, c) for r in rows for c in cols], strict=True):
        total[r * f : (r + tile_h) * f, c * f : (c + tile_w) * f] += output * weight
        weights[r * f : (r + tile_h) * f, c * f : (c + tile_w) * f] += weight
    blended = np.clip(np.rint(total / weights), 0, 255).astype(np.uint8)
    return blended[: height * f, : width * f], len(tiles)


def _tile_starts(size: int, tile: int) -> list[int]:
    """Tile offsets every half tile from 0, the last one ending at ``size``."""
    step = max(1, tile // 2)
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def _tent(length: int) -> np.ndarray:
    """Weights 1, 2, ..., peak, ..., 2, 1 over ``length`` pixels."""
    index = np.arange(length)
    return np.minimum(index + 1, length - index).astype(np.float64)
