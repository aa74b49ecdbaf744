"""The dashboard's restoration views, testable without Streamlit: the Train form's restoration
fields, the Restore page's degrade -> baseline -> model pipeline, masks from a canvas or an
upload, the before/after wipe and zoom, and the Runs page's PSNR/SSIM curves and time-lapse."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np

from core.app.classify_view import canvas_to_image
from core.app.share import Param
from core.common.config import MASKS, SCALES, TASKS, Config
from core.common.errors import ModelFileError, UserError
from core.data import degradations
from core.evaluation import gan_prior
from core.runs import restore
from core.training.restoration import restore_batch

# ---- Train form ------------------------------------------------------------------------------

# The option each task uses (the others keep their defaults and stay off the form and the link).
TASK_OPTIONS = {"super-resolution": "scale", "inpaint": "mask", "denoise": "noise"}
# Labels and help of the restoration fields (units as in core/config.py).
FIELD_HELP: dict[str, tuple[str, str]] = {
    "width": ("Width", "channels of the first level; U-Net levels double it"),
    "train_images": ("Training pairs per epoch", "0 = the whole train split"),
    "l1_weight": ("L1 weight", "weight of the L1 loss against the adversarial loss (pix2pix)"),
    "sample_grid_size": ("Before/after images", "test images in the grid saved every epoch"),
    "noise": ("Noise sigma", "Gaussian sigma as a fraction of the pixel range"),
}


# The restoration task in links (``task`` picks the family on the Train page).
TASK_PARAM = Param("restore_task", str, "super-resolution", choices=TASKS)


def task_params(task: str) -> list[Param]:
    """The link parameter of the one option ``task`` uses (none for an unknown task)."""
    params = []
    option = TASK_OPTIONS.get(task)
    if option == "scale":
        params.append(Param("scale", int, 2, choices=SCALES))
    elif option == "mask":
        params.append(Param("mask", str, "center", choices=MASKS))
    elif option == "noise":
        params.append(Param("noise", float, 0.3, minimum=0.0, maximum=0.99))
    return params


def form_fields(config: Config) -> list[str]:
    """The numeric fields the Train form shows for a restoration model."""
    extra = ["l1_weight"] if config.model == "pix2pix" else []
    return ["epochs", "batch_size", "learning_rate", "seed", "width", "train_images", *extra, "image_size"]


def form_params(config: Config, *, mixed_precision: bool = False) -> list[Param]:
    """The Train form's restoration fields as link parameters (0 means "all"/"native")."""
    params = []
    for field in form_fields(config):
        default = getattr(config, field) or 0 if field in ("train_images", "image_size") else getattr(config, field)
        kind = int if isinstance(default, int) else float
        params.append(Param(field, kind, kind(default)))
    if mixed_precision:
        params.append(Param("mixed_precision", bool, False))
    return params


def config_values(values: dict[str, Any]) -> dict[str, Any]:
    """Form values as ``config_for`` overrides: 0 pairs or pixels mean the default (None)."""
    values = dict(values)
    for name in ("train_images", "image_size"):
        if name in values:
            values[name] = int(values[name]) or None
    return values


# ---- Restore page ----------------------------------------------------------------------------

PANELS = ("degraded", "baseline", "model", "original")
MASK_SOURCES = {"center": "Centre", "boxes": "Boxes", "strokes": "Strokes", "draw": "Draw", "upload": "Upload"}


def method_of(run: dict[str, Any]) -> str:
    """How a run restores: ``model`` (a restoration run) or ``gan-prior`` (a dcgan/wgan-gp).

    Raises:
        ModelFileError: a classifier or a conditional GAN.
    """
    if run["family"] == "restoration":
        return "model"
    if run["family"] == "gan" and run["model"] != "cgan":
        return "gan-prior"
    what = "a cgan" if run["family"] == "gan" else f"a {run['model']} classifier"
    raise ModelFileError(f"run {run['run_id']} is {what}: pick a restoration run (espcn, unet, pix2pix), "
                         "or a dcgan/wgan-gp run for GAN-prior inpainting")


def degradation_of(run: dict[str, Any], noise: float | None = None) -> degradations.Degradation:
    """The degradation a run restores (a GAN inpaints); ``noise`` overrides a denoiser's sigma."""
    if method_of(run) == "gan-prior":
        return degradations.Degradation("inpaint")
    config = run["config"]
    task = config.get("task", "super-resolution")
    return degradations.Degradation(task, scale=int(config.get("scale", 2)), mask=config.get("mask", "center"),
                                    noise=float(config.get("noise", 0.3) if noise is None else noise))


def mask_from_drawing(rgba: np.ndarray, height: int, width: int) -> np.ndarray:
    """Holes (True) from a canvas drawing, shrunk to ``height x width``.

    The canvas holds the strokes alone (RGBA): light strokes paint holes, black strokes (the
    eraser) paint over them. A pixel is a hole when at least a quarter of the canvas pixels
    over it are painted light (a brush stroke straddles pixel rows).

    Raises:
        UserError: the canvas is not a whole multiple of the image's size, or nothing is painted.
    """
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[0] % height or rgba.shape[1] % width:
        raise UserError(f"the drawing is {rgba.shape[1]}x{rgba.shape[0]}: it must be a multiple of {width}x{height}")
    painted = rgba[..., :3].max(axis=-1) * (rgba[..., 3] / 255.0) > 127.5  # (CH, CW)
    blocks = painted.reshape(height, rgba.shape[0] // height, width, rgba.shape[1] // width)
    return check_mask(blocks.mean(axis=(1, 3)) >= 0.25)


def image_from_drawing(rgba: np.ndarray, height: int, width: int, channels: int) -> np.ndarray | None:
    """A drawing (light strokes on black) as a uint8 ``(height, width, channels)`` image, each
    pixel the mean of the canvas pixels over it; None for an empty canvas.

    Raises:
        UserError: the canvas is not a whole multiple of the image's size.
    """
    gray = canvas_to_image(rgba)  # (CH, CW, 1) or None
    if gray is None:
        return None
    if gray.shape[0] % height or gray.shape[1] % width:
        raise UserError(f"the drawing is {gray.shape[1]}x{gray.shape[0]}: it must be a multiple of {width}x{height}")
    blocks = gray.reshape(height, gray.shape[0] // height, width, gray.shape[1] // width).astype(np.float64)
    image = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)[..., None]
    return np.repeat(image, channels, axis=-1)


def mask_from_upload(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Holes (True) from an uploaded mask image (white = hole) of the image's size.

    Raises:
        UserError: another size, no hole, or all hole.
    """
    pixels = np.asarray(pixels)
    if pixels.shape[:2] != (height, width):
        raise UserError(f"the mask is {pixels.shape[1]}x{pixels.shape[0]} but the image is {width}x{height}: "
                        "draw the mask at the image's size")
    return check_mask(pixels.reshape(height, width, -1).mean(axis=-1) > 127.5)


def check_mask(holes: np.ndarray) -> np.ndarray:
    """``holes`` when it has a hole and some known pixels, else UserError."""
    if not holes.any():
        raise UserError("the mask has no hole: paint the pixels to fill")
    if holes.all():
        raise UserError("the mask covers the whole image: leave some pixels known")
    return holes


def preset_mask(kind: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A hole mask of a training kind (``center``, ``boxes``, ``strokes``) for one image."""
    return degradations.make_masks(kind, 1, height, width, seed=seed)[0]


@dataclasses.dataclass(frozen=True)
class Restoration:
    """What the Restore page shows: the panels (uint8 ``(H, W, C)``, ``original`` None for an
    upload to restore as it is) and their PSNR against the original."""

    task: str
    method: str
    panels: dict[str, np.ndarray | None]
    psnr: dict[str, float]
    hole_psnr: dict[str, float]


def restore_image(run: dict[str, Any], model, image: np.ndarray, *, degraded_input: bool = False,
                  holes: np.ndarray | None = None, noise: float | None = None, seed: int = 0,
                  steps: int | None = None) -> Restoration:
    """Degrade ``image`` as the run's task does, then restore it by the baseline and by the run.

    Args:
        run: the run (``store.get_run``).
        model: its loaded model (a restoration model, or a ``GAN`` for GAN-prior inpainting).
        image: uint8 ``(H, W, C)``: the original, or with ``degraded_input`` the input to restore.
        degraded_input: ``image`` is already degraded (an upload): no original to compare with.
        holes: inpaint: bool ``(H, W)``, True = hole.
        noise: denoise: sigma (fraction of the pixel range) used to degrade the original.
        seed: noise and latent-search seed.
        steps: GAN-prior Adam steps (default ``core.gan_prior.STEPS``).

    Raises:
        UserError: a mask missing or of another size, an image over the pixel limit, x4 of an
            image too small for it, or an image of another size than an inpainting model's.
    """
    method = method_of(run)
    degradation = degradation_of(run, noise)
    height, width = image.shape[:2]
    if height * width > restore.MAX_INPUT_PIXELS:
        raise UserError(f"the image is {width}x{height} pixels, over the limit of {restore.MAX_INPUT_PIXELS:,}: "
                        "crop or shrink it first")
    if method == "gan-prior":
        image = restore.to_channels(image, model.image_shape[-1])
    else:
        model = getattr(model, "generator", model)  # pix2pix restores with its generator
        image = restore.to_channels(image, int(model.output_shape[-1]))
    if degradation.task == "inpaint":
        if holes is None:
            raise UserError("inpainting needs a mask: pick centre, boxes or strokes, draw one or upload one")
        if holes.shape != (height, width):
            raise UserError(f"the mask is {holes.shape[1]}x{holes.shape[0]} but the image is {width}x{height}")
        check_mask(holes)
    original = None if degraded_input else image
    if degraded_input:
        degraded = np.where(holes[..., None], 0, image).astype(np.uint8) if holes is not None else image
    elif degradation.task == "super-resolution":
        degradations.check_scale(image.shape, degradation.scale)
        degraded = degradations.downsample(image[None], degradation.scale)[0]
    elif degradation.task == "denoise":
        degraded = degradations.add_noise(image[None], degradation.noise, seed=seed)[0]
    else:
        degraded = np.where(holes[..., None], 0, image).astype(np.uint8)
    masks = holes[None] if degradation.task == "inpaint" else None
    if degradation.task == "denoise":
        # The filter best on this image; for an upload, the one the run chose on training images.
        if original is not None:
            method_name = degradations.best_denoise_method(image[None], degraded[None])
        else:
            method_name = str((run.get("metrics") or {}).get("baseline_method", "gaussian:1"))
            method_name = method_name if method_name in degradations.denoise_methods() else "gaussian:1"
        baseline = degradations.apply_denoise_method(degraded[None], method_name)[0]
    else:
        baseline = degradations.baseline(degradation, degraded[None], masks)[0]
    restored = _run_model(method, model, degradation, degraded, holes, seed, steps)
    panels = {"degraded": degraded, "baseline": baseline, "model": restored, "original": original}
    psnr, hole_psnr = {}, {}
    if original is not None:
        for name in ("baseline", "model"):
            psnr[name] = float(degradations.psnr_per_image(original[None], panels[name][None])[0])
            if masks is not None:
                hole_psnr[name] = float(degradations.psnr_per_image(original[None], panels[name][None], masks)[0])
    return Restoration(degradation.task, method, panels, psnr, hole_psnr)


def _run_model(method, model, degradation, degraded, holes, seed, steps) -> np.ndarray:
    if method == "gan-prior":
        options = {"seed": seed} if steps is None else {"seed": seed, "steps": steps}
        return gan_prior.latent_inpaint(model, degraded, holes, **options)[0]
    input_shape = tuple(int(size) for size in model.input_shape[1:3])
    if degradation.task == "inpaint":
        if tuple(degraded.shape[:2]) != input_shape:
            raise UserError(f"this inpaint model takes {input_shape[1]}x{input_shape[0]} images, "
                            f"got {degraded.shape[1]}x{degraded.shape[0]}")
        return restore_batch(model, degradations.model_inputs(degraded[None], holes[None]))[0]
    factor = degradation.scale if degradation.task == "super-resolution" else 1
    return restore.restore_tiled(lambda batch: restore_batch(model, batch), degraded, input_shape, factor)[0]


def to_display(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled by whole pixels (nearest) to ``height x width`` (a low-res input beside the rest)."""
    image = np.asarray(image)
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows][:, cols]


def wipe(before: np.ndarray, after: np.ndarray, fraction: float) -> np.ndarray:
    """A before/after wipe: ``after`` left of ``fraction`` of the width, ``before`` right of it,
    with a one-pixel white divider (images of the same size)."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"wipe needs images of one size, got {before.shape} and {after.shape}")
    column = int(round(fraction * before.shape[1]))
    frame = np.concatenate([after[:, :column], before[:, column:]], axis=1).copy()
    if 0 < column < frame.shape[1]:
        frame[:, column] = 255
    return frame


def zoom(image: np.ndarray, center_row: float, center_col: float, size: int) -> np.ndarray:
    """A ``size x size`` crop around a point given as fractions of the height and width (kept inside)."""
    image = np.asarray(image)
    size = max(1, min(size, *image.shape[:2]))
    top = int(np.clip(round(center_row * image.shape[0] - size / 2), 0, image.shape[0] - size))
    left = int(np.clip(round(center_col * image.shape[1] - size / 2), 0, image.shape[1] - size))
    return image[top : top + size, left : left + size]


def view_params(run: dict[str, Any], test_images: int) -> list[Param]:
    """The Restore view's link parameters beyond the run: image index and the task's options."""
    params = [Param("image", int, 0, minimum=0, maximum=max(0, test_images - 1)),
              Param("seed", int, 0, minimum=0, maximum=2**31 - 1)]
    task = degradation_of(run).task
    if task == "inpaint":
        params.append(Param("mask", str, "center", choices=tuple(MASK_SOURCES)))
    elif task == "denoise":
        params.append(Param("noise", float, float(run["config"].get("noise", 0.3)), minimum=0.01, maximum=0.99))
    return params


def restorable_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs the Restore page offers: restoration runs, then dcgan/wgan-gp (classifiers and cgans
    are kept so a link to one gets its one-line reason instead of a silent fallback)."""
    def rank(run):
        if run["family"] == "restoration":
            return 0
        return 1 if run["family"] == "gan" and run["model"] != "cgan" else 2

    return sorted(runs, key=rank)  # stable: newest first within each rank


# ---- Runs page -------------------------------------------------------------------------------

# A restoration run's final scores on the Runs page, beside their baselines.
SCORES = ("psnr", "baseline_psnr", "ssim", "baseline_ssim", "hole_psnr", "baseline_hole_psnr")
QUALITY_PAIRS = (("psnr", "baseline_psnr"), ("ssim", "baseline_ssim"), ("hole_psnr", "baseline_hole_psnr"))


def quality_curves(table: dict[str, list[Any]]) -> list[list[str]]:
    """The metric pairs (model, baseline) an epoch table holds, one chart each."""
    return [[name, base] for name, base in QUALITY_PAIRS if name in table and base in table]


def time_lapse(run_dir: str | Path) -> list[tuple[int, Path]]:
    """The before/after grids of a restoration run, ``(epochs done, path)`` in epoch order."""
    found = []
    for path in sorted((Path(run_dir) / "samples").glob("epoch_*.png")):
        match = re.fullmatch(r"epoch_(\d+)\.png", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return found
