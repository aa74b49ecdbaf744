"""What the Sample page makes: animated GIFs of interpolations."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from core.evaluation.sampling import save_gif


def gif_bytes(frames: np.ndarray, fps: float = 8.0) -> bytes:
    """An animated GIF (looping there and back) of uint8 frames ``(T, H, W, C)``, upscaled so the
    images are at least 128 pixels on a side (written by ``core.evaluation.sampling.save_gif``)."""

    frames = np.asarray(frames)
    there_and_back = np.concatenate([frames, frames[-2:0:-1]]) if len(frames) > 2 else frames
    scale = max(1, 128 // max(1, min(frames.shape[1:3])))
    with tempfile.TemporaryDirectory(prefix="convgan-gif-") as folder:
        return save_gif(there_and_back, Path(folder) / "interpolation.gif", fps=fps, scale=scale).read_bytes()
