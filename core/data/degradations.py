"""Degradations, classical baselines and quality metrics of the restoration family.

Every function works on uint8 image batches ``(N, H, W, C)`` as ``core.data.datasets`` loads them,
so training pairs are made on the fly from any dataset. Randomness comes from
``numpy.random.default_rng([seed, ...])``: the same seed (and image index) gives the same
degradation.

- super-resolution: the area (box) average of ``scale x scale`` blocks; baseline bicubic.
- inpaint: a boolean hole mask (True = missing), ``center`` (a centred square of half the
  side), ``boxes`` (1-3 rectangles) or ``strokes`` (thick random polylines); hole pixels are
  zeroed; baseline the harmonic fill (Laplace equation inside the hole, known pixels as the
  boundary).
- denoise: additive Gaussian noise of ``sigma`` times the pixel range, clipped; baseline the
  better of Gaussian and median filtering (chosen on training images).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import scipy.ndimage
import scipy.sparse
import scipy.sparse.linalg
from PIL import Image
from skimage.metrics import structural_similarity

from core.common.config import MASKS, SCALES
from core.common.errors import ConfigError, UserError

MIN_LOW_RES = 4  # pixels: a super-resolution input smaller than this has nothing left to restore
PSNR_CAP_DB = 100.0  # a perfect image counts as 100 dB, so a mean over images stays finite
# Candidate filters of the denoising baseline: Gaussian sigmas (pixels) and median window sizes.
GAUSSIAN_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0)
MEDIAN_SIZES = (3, 5)


# ---- degradations ------------------------------------------------------------------------------


def check_scale(image_shape: Sequence[int], scale: int) -> None:
    """Raise ConfigError when images of ``image_shape`` cannot be downsampled ``scale`` times."""
    height, width = int(image_shape[0]), int(image_shape[1])
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(map(str, SCALES))}, got {scale}")
    if height % scale or width % scale:
        raise ConfigError(f"x{scale} super-resolution needs image sides divisible by {scale}, got {height}x{width}")
    if min(height, width) // scale < MIN_LOW_RES:
        raise ConfigError(
            f"x{scale} super-resolution of {height}x{width} images leaves {height // scale}x{width // scale} "
            f"inputs (under {MIN_LOW_RES}x{MIN_LOW_RES}): use scale 2 or larger images"
        )


def downsample(images: np.ndarray, scale: int) -> np.ndarray:
    """Area (box) average of ``scale x scale`` blocks, rounded to uint8.

    Args:
        images: uint8 ``(N, H, W, C)`` with H and W divisible by ``scale``.
        scale: the downsampling factor.

    Returns:
        uint8 ``(N, H // scale, W // scale, C)``.
    """
    images = np.asarray(images)
    count, height, width, channels = images.shape
    blocks = images.reshape(count, height // scale, scale, width // scale, scale, channels)
    return np.rint(blocks.mean(axis=(2, 4), dtype=np.float64)).astype(np.uint8)


def make_masks(kind: str, count: int, height: int, width: int, *, seed: int = 0,
               first_index: int = 0) -> np.ndarray:
    """Hole masks (True = missing) for ``count`` images.

    Mask ``i`` depends only on ``(kind, seed, first_index + i)``, so a batch gets the same
    masks whichever other images it holds.

    Args:
        kind: ``center``, ``boxes`` or ``strokes``.
        count: masks to make.
        height: image height.
        width: image width.
        seed: seed of the random masks.
        first_index: index of the first image (its own random stream).

    Returns:
        bool ``(count, height, width)``; every mask has a hole and known pixels.
    """
    if kind not in MASKS:
        raise ConfigError(f"unknown mask {kind!r}: choose one of {', '.join(MASKS)}")
    masks = np.zeros((count, height, width), dtype=bool)
    if kind == "center":
        masks[:] = center_mask(height, width)
        return masks
    for offset in range(count):
        rng = np.random.default_rng([seed, first_index + offset, MASKS.index(kind)])
        masks[offset] = _random_boxes(rng, height, width) if kind == "boxes" else _random_strokes(rng, height, width)
    return masks


def center_mask(height: int, width: int) -> np.ndarray:
    """A centred rectangle of half the height and width (14x14 in a 28x28 image)."""
    mask = np.zeros((height, width), dtype=bool)
    hole_h, hole_w = max(1, height // 2), max(1, width // 2)
    top, left = (height - hole_h) // 2, (width - hole_w) // 2
    mask[top : top + hole_h, left : left + hole_w] = True
    return mask


def _random_boxes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(rng.integers(1, 4)):
        box_h = rng.integers(max(1, height // 6), max(2, height // 3) + 1)
        box_w = rng.integers(max(1, width // 6), max(2, width // 3) + 1)
        top, left = rng.integers(0, height - box_h + 1), rng.integers(0, width - box_w + 1)
        mask[top : top + box_h, left : left + box_w] = True
    return mask


def _random_strokes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    pixels = np.stack(np.mgrid[0:height, 0:width], axis=-1).astype(np.float64)  # (H, W, 2)
    radius = max(0.75, min(height, width) / 16)  # brush radius in pixels
    for _ in range(rng.integers(1, 4)):
        points = rng.uniform([0, 0], [height - 1, width - 1], size=(rng.integers(2, 5), 2))
        for start, stop in zip(points[:-1], points[1:], strict=True):
            # Distance of every pixel to the segment: project onto it, clamp to its ends.
            direction = stop - start
            t = np.clip(((pixels - start) @ direction) / max(float(direction @ direction), 1e-12), 0.0, 1.0)
            nearest = start + t[..., None] * direction
            mask |= np.sum((pixels - nearest) ** 2, axis=-1) <= radius**2
    if mask.all():  # never the whole image: the fill needs known pixels
        mask[0, 0] = False
    return mask


def add_noise(images: np.ndarray, sigma: float, *, seed: int = 0, first_index: int = 0) -> np.ndarray:
    """Additive Gaussian noise of ``sigma`` times the pixel range (0.3: 76.5 grey levels), clipped.

    Image ``i``'s noise depends only on ``(seed, first_index + i)``.

    Returns:
        uint8 images of the input's shape.
    """
    images = np.asarray(images)
    noisy = np.empty(images.shape, dtype=np.uint8)
    for offset in range(len(images)):
        rng = np.random.default_rng([seed, first_index + offset, len(MASKS)])
        noise = rng.standard_normal(images.shape[1:], dtype=np.float32) * (sigma * 255.0)
        noisy[offset] = np.clip(np.rint(images[offset] + noise), 0, 255)
    return noisy


@dataclasses.dataclass(frozen=True)
class Degradation:
    """What a restoration task does to clean images.

    Attributes:
        task: one of ``TASKS``.
        scale: super-resolution factor.
        mask: inpaint mask kind.
        noise: denoise sigma as a fraction of the pixel range.
    """

    task: str
    scale: int = 2
    mask: str = "center"
    noise: float = 0.3

    def input_shape(self, image_shape: Sequence[int]) -> tuple[int, int, int]:
        """Shape of one model input for clean images of ``image_shape`` (inpaint adds the mask channel)."""
        height, width, channels = (int(size) for size in image_shape)
        if self.task == "super-resolution":
            return height // self.scale, width // self.scale, channels
        if self.task == "inpaint":
            return height, width, channels + 1
        return height, width, channels

    def apply(self, images: np.ndarray, *, seed: int = 0, first_index: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """Degrade clean uint8 images.

        Returns:
            ``(degraded, masks)``: uint8 degraded images (holes zeroed for inpaint) and the
            bool ``(N, H, W)`` hole masks (None except for inpaint).
        """
        images = np.asarray(images)
        if self.task == "super-resolution":
            return downsample(images, self.scale), None
        if self.task == "denoise":
            return add_noise(images, self.noise, seed=seed, first_index=first_index), None
        masks = make_masks(self.mask, len(images), images.shape[1], images.shape[2], seed=seed,
                           first_index=first_index)
        return np.where(masks[..., None], 0, images).astype(np.uint8), masks


def model_inputs(degraded: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    """The model's input: degraded pixels (0..255) and, for inpaint, a last channel of 1 = hole."""
    degraded = np.asarray(degraded, dtype=np.float32)
    if masks is None:
        return degraded
    return np.concatenate([degraded, np.asarray(masks, dtype=np.float32)[..., None]], axis=-1)


# ---- classical baselines -----------------------------------------------------------------------


def bicubic_upsample(images: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upsampling by ``scale`` (Pillow's, a = -0.5), uint8 in and out."""

    images = np.asarray(images)
    count, height, width, channels = images.shape
    out = np.empty((count, height * scale, width * scale, channels), dtype=np.uint8)
    for index in range(count):
        for channel in range(channels):
            picture = Image.fromarray(images[index, :, :, channel])
            out[index, :, :, channel] = np.asarray(
                picture.resize((width * scale, height * scale), Image.Resampling.BICUBIC)
            )
    return out


def harmonic_fill(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Fill each hole with the harmonic function whose boundary values are the known pixels.

    Solves the discrete Laplace equation (4-neighbour, no flow across the image border) for
    the hole pixels, one sparse factorisation per distinct mask, all channels at once.

    Args:
        images: uint8 ``(N, H, W, C)``; hole pixels are ignored.
        masks: bool ``(N, H, W)``, True = hole; each mask must leave some pixels known.

    Returns:
        uint8 images with the holes filled.

    Raises:
        UserError: a mask with no known pixels.
    """
    images = np.asarray(images)
    masks = np.asarray(masks, dtype=bool)
    out = images.copy()
    groups: dict[bytes, list[int]] = {}
    for index, mask in enumerate(masks):
        if mask.any():
            groups.setdefault(np.packbits(mask).tobytes(), []).append(index)
    for indices in groups.values():
        mask = masks[indices[0]]
        if mask.all():
            raise UserError("the mask covers the whole image: some pixels must be known to fill the hole")
        system, boundary = _laplace_system(mask)
        known = images[indices].astype(np.float64)  # (k, H, W, C)
        known[:, mask] = 0.0
        # Right-hand side: sum of known neighbours of each hole pixel, per image and channel.
        rhs = boundary @ known.reshape(len(indices), -1, known.shape[-1]).transpose(1, 0, 2).reshape(mask.size, -1)
        solution = scipy.sparse.linalg.splu(system.tocsc()).solve(rhs)  # (holes, k * C)
        filled = solution.reshape(-1, len(indices), known.shape[-1]).transpose(1, 0, 2)
        block = out[indices]
        block[:, mask] = np.clip(np.rint(filled), 0, 255).astype(np.uint8)
        out[indices] = block
    return out


def _laplace_system(mask: np.ndarray):
    """``(A, B)``: ``A u = B f`` gives the hole values ``u`` from the flattened known image ``f``."""
    height, width = mask.shape
    holes = np.flatnonzero(mask.ravel())
    position = np.full(mask.size, -1)
    position[holes] = np.arange(len(holes))
    rows_a, cols_a, vals_a, rows_b, cols_b = [], [], [], [], []
    degree = np.zeros(len(holes))
    hole_y, hole_x = np.divmod(holes, width)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        y, x = hole_y + dy, hole_x + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        degree += inside
        neighbour = y[inside] * width + x[inside]
        source = np.arange(len(holes))[inside]
        is_hole = position[neighbour] >= 0
        rows_a.append(source[is_hole])
        cols_a.append(position[neighbour[is_hole]])
        vals_a.append(-np.ones(int(is_hole.sum())))
        rows_b.append(source[~is_hole])
        cols_b.append(neighbour[~is_hole])
    rows_a.append(np.arange(len(holes)))
    cols_a.append(np.arange(len(holes)))
    vals_a.append(degree)
    system = scipy.sparse.coo_matrix(
        (np.concatenate(vals_a), (np.concatenate(rows_a), np.concatenate(cols_a))), shape=(len(holes),) * 2
    )
    rows_b, cols_b = np.concatenate(rows_b), np.concatenate(cols_b)
    boundary = scipy.sparse.csr_matrix((np.ones(len(rows_b)), (rows_b, cols_b)), shape=(len(holes), mask.size))
    return system, boundary


def gaussian_denoise(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``sigma`` pixels over height and width, uint8 in and out."""
    blurred = scipy.ndimage.gaussian_filter(np.asarray(images, dtype=np.float32), sigma, axes=(1, 2))
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def median_denoise(images: np.ndarray, size: int) -> np.ndarray:
    """Median filter over ``size x size`` windows of each channel, uint8 in and out."""
    return scipy.ndimage.median_filter(np.asarray(images), size=(1, size, size, 1))


def denoise_methods() -> dict[str, object]:
    """The candidate denoising filters by name (``gaussian:1.0``, ``median:3``, ...)."""
    methods = {f"gaussian:{sigma:g}": (gaussian_denoise, sigma) for sigma in GAUSSIAN_SIGMAS}
    methods.update({f"median:{size}": (median_denoise, size) for size in MEDIAN_SIZES})
    return methods


def apply_denoise_method(images: np.ndarray, method: str) -> np.ndarray:
    """Apply a filter named by :func:`denoise_methods`."""
    function, parameter = denoise_methods()[method]
    return function(images, parameter)


def best_denoise_method(clean: np.ndarray, noisy: np.ndarray) -> str:
    """The Gaussian or median filter of :func:`denoise_methods` with the best mean PSNR on these images."""
    scores = {name: psnr(clean, apply_denoise_method(noisy, name)) for name in denoise_methods()}
    return max(scores, key=scores.get)


def baseline(degradation: Degradation, degraded: np.ndarray, masks: np.ndarray | None, *,
             denoise_method: str | None = None) -> np.ndarray:
    """The classical restoration of ``degraded``: bicubic, harmonic fill or the chosen filter."""
    if degradation.task == "super-resolution":
        return bicubic_upsample(degraded, degradation.scale)
    if degradation.task == "inpaint":
        return harmonic_fill(degraded, masks)
    if denoise_method is None:
        raise ValueError("denoise needs the filter chosen by best_denoise_method")
    return apply_denoise_method(degraded, denoise_method)


# ---- metrics -----------------------------------------------------------------------------------


def psnr_per_image(clean: np.ndarray, restored: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
    """PSNR in dB of each image (data range 255), over the pixels where ``masks`` is True if given.

    Args:
        clean: ``(N, H, W, C)`` reference images, 0..255.
        restored: the same shape.
        masks: optional bool ``(N, H, W)``: only these pixels count.

    Returns:
        float64 ``(N,)``; a perfect image scores ``PSNR_CAP_DB``. With masks, images without
        a masked pixel are left out.
    """
    clean = np.asarray(clean, dtype=np.float64)
    restored = np.asarray(restored, dtype=np.float64)
    if clean.shape != restored.shape:
        raise ValueError(f"images of shapes {clean.shape} and {restored.shape} cannot be compared")
    squared = (clean - restored) ** 2
    if masks is None:
        mse = squared.reshape(len(clean), -1).mean(axis=1)
    else:
        weights = np.broadcast_to(np.asarray(masks, dtype=bool)[..., None], squared.shape)
        counts = weights.reshape(len(clean), -1).sum(axis=1)
        keep = counts > 0
        mse = (squared * weights).reshape(len(clean), -1).sum(axis=1)[keep] / counts[keep]
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(255.0**2 / mse)
    return np.minimum(values, PSNR_CAP_DB)


def psnr(clean: np.ndarray, restored: np.ndarray) -> float:
    """Mean over images of the per-image PSNR (dB, data range 255)."""
    return float(np.mean(psnr_per_image(clean, restored)))


def hole_psnr(clean: np.ndarray, restored: np.ndarray, masks: np.ndarray) -> float:
    """Mean over images of the PSNR of the hole pixels only (dB, data range 255)."""
    return float(np.mean(psnr_per_image(clean, restored, masks)))


def ssim(clean: np.ndarray, restored: np.ndarray) -> float:
    """Mean over images of scikit-image's SSIM with its defaults (7x7 uniform window), data range 255."""

    clean, restored = np.asarray(clean), np.asarray(restored)
    if clean.shape != restored.shape:
        raise ValueError(f"images of shapes {clean.shape} and {restored.shape} cannot be compared")
    values = [
        structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=255, channel_axis=-1)
        for a, b in zip(clean, restored, strict=True)
    ]
    return float(np.mean(values))


def quality(clean: np.ndarray, restored: np.ndarray, masks: np.ndarray | None = None,
            prefix: str = "") -> dict[str, float]:
    """``psnr``, ``ssim`` and, with masks, ``hole_psnr`` of restored images, names prefixed."""
    scores = {f"{prefix}psnr": psnr(clean, restored), f"{prefix}ssim": ssim(clean, restored)}
    if masks is not None:
        scores[f"{prefix}hole_psnr"] = hole_psnr(clean, restored, masks)
    return scores
