"""Seeded sampling from trained GANs: image batches, interpolations, latent walks and GIFs.

Used by the CLI (``python -m core sample``), the dashboard's Sample page and notebooks. Every
function is deterministic: the same model, arguments and seed give the same pixels. Latents
come from ``numpy.random.default_rng(seed)`` (never global state), and images from the model's
EMA generator through one compiled function in fixed-size batches, so a latent gives the same
image whatever else is in the batch: ``sample(model, n=1, seed=s)[0]`` equals
``sample(model, n=64, seed=s)[0]`` and the first frame of ``interpolate(model, s, t)``.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from core.common import images
from core.common.errors import ConfigError, ModelFileError
from core.models import gans  # noqa: F401 - registers the GAN classes for deserialisation
from core.models.gan_base import GAN
from core.store import checkpoints

MAX_SAMPLES = 1024  # images per request
MAX_FRAMES = 256  # frames per interpolation or walk
_TRUNCATION_ROUNDS = 10_000  # resampling rounds before the few remaining values are clipped


def load_gan(path: str | Path, epoch: int | None = None):
    """Load a GAN checkpoint for sampling.

    Args:
        path: a ``.keras`` checkpoint, or a run folder (``<run>/checkpoints/epoch_NNN.keras``).
        epoch: with a run folder, the checkpoint after this many epochs (default: the latest).

    Returns:
        The GAN model (a ``core.models.gan_base.GAN``), its optimizers' state included.

    Raises:
        ModelFileError: no such file or folder, no checkpoint, unreadable file, or not a GAN.
        ConfigError: a bad ``epoch``, or ``epoch`` given with a checkpoint file.
    """
    path = Path(path)
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1):
        raise ConfigError(f"epoch must be a whole number of at least 1, got {epoch!r}")
    if path.is_dir():
        found = checkpoints.list_checkpoints(path)
        if epoch is not None:
            if epoch not in found:
                have = ", ".join(map(str, found)) or "none"
                raise ModelFileError(f"{path} has no checkpoint for epoch {epoch} (epochs with checkpoints: {have})")
            path = found[epoch]
        elif found:
            path = found[max(found)]
        elif (path / "checkpoints" / "stopped.keras").is_file():
            path = path / "checkpoints" / "stopped.keras"
        else:
            raise ModelFileError(f"no GAN checkpoint in {path}: expected checkpoints/epoch_NNN.keras")
    elif epoch is not None:
        raise ConfigError(f"epoch applies to a run folder, not to the checkpoint file {path.name}")
    elif not path.exists():
        raise ModelFileError(f"no GAN checkpoint or run folder at {path}")
    model = checkpoints.load_model(path)
    if not isinstance(model, GAN):
        raise ModelFileError(f"{path.name} holds a {type(model).__name__}, not a GAN: pick a dcgan, cgan or wgan-gp run")
    return model


def latents(latent_dim: int, n: int, seed: int, truncation: float | None = None) -> np.ndarray:
    """Gaussian latents ``(n, latent_dim)`` float32 for ``seed``.

    Truncation (the truncation trick, Brock et al. 2019): every value with ``|z| > truncation``
    is redrawn until it falls inside, so the values are standard normal truncated to
    ``[-truncation, truncation]``; values already inside keep their place, so a truncated
    sample still resembles the untruncated one for the same seed. Smaller thresholds give
    more typical, less varied images.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent_dim), dtype=np.float32)
    if truncation is not None:
        for _ in range(_TRUNCATION_ROUNDS):
            outside = np.abs(z) > truncation
            count = int(outside.sum())
            if not count:
                break
            z[outside] = rng.standard_normal(count, dtype=np.float32)
        z = np.clip(z, -truncation, truncation)  # only matters for absurdly small thresholds
    return z


def sample(model, n: int = 64, seed: int = 0, label: int | None = None,
           truncation: float | None = None) -> np.ndarray:
    """Generate ``n`` images with the model's EMA generator.

    Args:
        model: a GAN (see :func:`load_gan`).
        n: number of images, 1..``MAX_SAMPLES``.
        seed: seed of the latents (a whole number >= 0).
        label: class of every image (conditional models); None cycles through the classes
            (image ``i`` gets class ``i % num_classes``).
        truncation: resample latent values beyond this many standard deviations (> 0);
            None for no truncation.

    Returns:
        uint8 array (n, height, width, channels).

    Raises:
        ConfigError: n, seed, label or truncation out of range, or a label for an
            unconditional model.
    """
    n = _check_count(n, "n", 1, MAX_SAMPLES)
    seed = _check_seed(seed)
    truncation = _check_truncation(truncation)
    labels = _labels(model, n, label)
    z = latents(model.latent_dim, n, seed, truncation)
    return images.to_uint8(model.generate(z, labels))


def interpolate(model, seed_a: int, seed_b: int, steps: int = 8, label: int | None = None) -> np.ndarray:
    """Frames along the great circle (slerp) from the latent of ``seed_a`` to that of ``seed_b``.

    The first and last frames are ``sample(model, n=1, seed=seed_a, label=label)`` and the same
    for ``seed_b``. Conditional models without a label use class 0 (as ``sample(n=1)`` does).

    Args:
        model: a GAN.
        seed_a: seed of the first frame's latent.
        seed_b: seed of the last frame's latent.
        steps: number of frames, 2..``MAX_FRAMES``.
        label: class of every frame (conditional models).

    Returns:
        uint8 array (steps, height, width, channels).

    Raises:
        ConfigError: bad seeds, steps or label.
    """
    steps = _check_count(steps, "steps", 2, MAX_FRAMES)
    z_a = latents(model.latent_dim, 1, _check_seed(seed_a))[0]
    z_b = latents(model.latent_dim, 1, _check_seed(seed_b))[0]
    z = np.stack([_slerp(z_a, z_b, t) for t in np.linspace(0.0, 1.0, steps)]).astype(np.float32)
    z[0], z[-1] = z_a, z_b  # exact endpoints, whatever the rounding of slerp
    return images.to_uint8(model.generate(z, _labels(model, steps, label, cycle=False)))


def latent_walk(model, seed: int, steps: int = 16, step_size: float = 0.3,
                label: int | None = None) -> np.ndarray:
    """Frames of a random walk in latent space starting at the latent of ``seed``.

    Each step adds ``step_size`` times a standard normal vector and rescales to the starting
    latent's length, so the walk stays where the generator was trained (the Gaussian shell).
    The first frame is ``sample(model, n=1, seed=seed, label=label)``.

    Args:
        model: a GAN.
        seed: seed of the start and of the steps.
        steps: number of frames, 1..``MAX_FRAMES``.
        step_size: size of a step relative to a latent's per-value scale (> 0).
        label: class of every frame (conditional models; default class 0).

    Returns:
        uint8 array (steps, height, width, channels).

    Raises:
        ConfigError: bad seed, steps, step_size or label.
    """
    steps = _check_count(steps, "steps", 1, MAX_FRAMES)
    seed = _check_seed(seed)
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not (
        math.isfinite(step_size) and step_size > 0
    ):
        raise ConfigError(f"step_size must be a positive number, got {step_size!r}")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(model.latent_dim, dtype=np.float32)  # == latents(latent_dim, 1, seed)[0]
    radius = np.linalg.norm(z)
    frames = [z]
    for _ in range(steps - 1):
        z = z + step_size * rng.standard_normal(model.latent_dim, dtype=np.float32)
        z = z * (radius / max(float(np.linalg.norm(z)), 1e-12))
        frames.append(z.astype(np.float32))
    return images.to_uint8(model.generate(np.stack(frames), _labels(model, steps, label, cycle=False)))


def save_gif(frames: np.ndarray, path: str | Path, fps: float = 8.0, scale: int = 1) -> Path:
    """Write frames as a looping animated GIF, atomically.

    Args:
        frames: uint8 array (N, H, W, C) with C in {1, 3}.
        path: the .gif file to write.
        fps: frames per second (> 0).
        scale: whole-number nearest-neighbour upscaling (small images stay crisp).

    Returns:
        The path written.

    Raises:
        ConfigError: empty or malformed frames, bad fps or scale.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) == 0 or frames.shape[-1] not in (1, 3) or frames.dtype != np.uint8:
        raise ConfigError(f"expected uint8 frames (N, H, W, 1 or 3), got {frames.dtype} {frames.shape}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    scale = _check_count(scale, "scale", 1, 64)
    pictures = [images.to_pil(images.upscale(frame, scale)) for frame in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:],
                     duration=max(int(round(1000 / fps)), 20), loop=0)
    return images.atomic_write_bytes(path, buffer.getvalue())


def sample_run(store, run_id: str, *, n: int = 64, seed: int = 0, label: int | None = None,
               truncation: float | None = None, epoch: int | None = None,
               out: str | Path = "samples.png") -> dict[str, Any]:
    """Sample a stored run's checkpoint and write a PNG grid (``python -m core sample``).

    Images are upscaled by a whole factor so each is at least 64 pixels on a side.

    Returns:
        ``run_id``, ``out`` (path written), ``n``, ``seed``, ``label``, ``truncation``,
        ``epoch`` (of the checkpoint; None for a stopped run's partial epoch), ``checkpoint``
        and ``scale``.

    Raises:
        ModelFileError, ConfigError: as :func:`load_gan` and :func:`sample`.
    """
    path = checkpoints.checkpoint_path(store, run_id, epoch)
    model = load_gan(path)
    batch = sample(model, n=n, seed=seed, label=label, truncation=truncation)
    scale = max(1, math.ceil(64 / batch.shape[1]))
    written = images.save_png(images.upscale(images.make_grid(batch), scale), out)
    match = re.fullmatch(r"epoch_(\d+)\.keras", path.name)
    return {
        "run_id": run_id, "out": str(written), "n": int(n), "seed": int(seed), "label": label,
        "truncation": truncation, "epoch": int(match.group(1)) if match else None,
        "checkpoint": str(path), "scale": scale,
    }


# ---- validation ---------------------------------------------------------------------------------


def _check_count(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return int(value)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
    return int(seed)


def _check_truncation(truncation) -> float | None:
    if truncation is None:
        return None
    if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not (
        math.isfinite(truncation) and truncation > 0
    ):
        raise ConfigError(f"truncation must be a positive number of standard deviations (e.g. 1.0), got {truncation!r}")
    return float(truncation)


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents), linear when a || b."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cosine = np.dot(a64, b64) / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-12)
    omega = np.arccos(np.clip(cosine, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return (1.0 - t) * a64 + t * b64
    return (np.sin((1.0 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)


def _labels(model, n: int, label: int | None, cycle: bool = True) -> np.ndarray | None:
    """Labels for ``n`` images: ``label`` for all, or cycling through the classes (or class 0)."""
    if not model.conditional:
        if label is not None:
            raise ConfigError(f"this {model.name} model is unconditional: leave out the label (cgan takes one)")
        return None
    if label is None:
        return (np.arange(n) % model.num_classes if cycle else np.zeros(n)).astype(np.int64)
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < model.num_classes:
        raise ConfigError(f"label must be a class index from 0 to {model.num_classes - 1}, got {label!r}")
    return np.full(n, int(label), dtype=np.int64)
