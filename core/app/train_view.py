"""What the Train page shows: the form's fields and parameters, the devices."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from core.app.share import Param
from core.common.config import Config


def form_fields(config: Config) -> list[str]:
    """The config fields the Train form shows for a model (the rest keep their defaults)."""
    common = ["epochs", "batch_size", "learning_rate", "seed"]
    if config.family == "classifier":
        return [*common, "weight_decay", "label_smoothing", "augment", "image_size"]
    extra = ["latent_dim", "beta_1", "ema_decay"]
    if config.model == "wgan-gp":
        extra += ["n_critic", "gp_weight"]
    return [*common, *extra, "metric_samples", "image_size"]


def form_params(config: Config, *, mixed_precision: bool = False) -> list[Param]:
    """The Train form's fields as link parameters, defaulting to ``config``'s values (an image
    size of 0 means native); ``mixed_precision`` adds that switch (offered on accelerators)."""
    params = []
    for field in form_fields(config):
        default = getattr(config, field)
        if field == "image_size":
            default = default or 0
        kind = bool if isinstance(default, bool) else int if isinstance(default, int) else float
        params.append(Param(field, kind, kind(default)))
    if mixed_precision:
        params.append(Param("mixed_precision", bool, False))
    return params


def gpu_params(config: Config, gpus: Sequence[str]) -> list[Param]:
    """The form's GPU count as a link parameter, offered only when ConvGAN may use GPUs (``gpus``):
    1 to all of them, or 0 for all."""
    if not gpus:
        return []
    return [Param("devices", int, min(config.devices, len(gpus)), minimum=0, maximum=len(gpus))]


def capacity_line(gpus: Sequence[str], max_jobs: int) -> str:
    """How many runs train at once, for the devices line: each run's GPUs on a GPU host, else a
    count of runs."""
    if gpus:
        return (f"GPUs {', '.join(gpus)} for jobs: each run trains on the GPUs it asks for, "
                "a run waits in the queue until that many are free")
    return f"up to {max_jobs} run(s) train at once; more wait in the queue"


# Labels and help of the Train form's fields (units as in core/common/config.py).
FIELD_HELP: dict[str, tuple[str, str]] = {
    "epochs": ("Epochs", "passes over the training images"),
    "batch_size": ("Batch size", "images per optimizer step"),
    "learning_rate": ("Learning rate", "peak Adam learning rate"),
    "seed": ("Seed", "the same seed gives the same run on the same machine"),
    "weight_decay": ("Weight decay", "AdamW decoupled weight decay"),
    "label_smoothing": ("Label smoothing", "0 = none"),
    "augment": ("Augment", "shifts/zooms suited to the data (digits are never flipped)"),
    "image_size": ("Image size", "resize images to this square size in pixels; 0 = native size"),
    "latent_dim": ("Latent size", "size of the Gaussian latent vector z"),
    "beta_1": ("Adam beta1", "0.5 as in the DCGAN paper"),
    "ema_decay": ("EMA decay", "moving average of the generator's weights; 0 = off"),
    "n_critic": ("Critic steps", "critic steps per generator step (wgan-gp)"),
    "gp_weight": ("Gradient-penalty weight", "lambda of the gradient penalty (wgan-gp)"),
    "metric_samples": ("Metric samples", "generated images for fid_cls/kid_cls/precision/recall"),
    "devices": ("GPUs", "GPUs this run trains on, data-parallel; 0 = all of them"),
}


def device_lines(devices: Sequence[dict[str, Any]]) -> list[str]:
    """The devices JAX trains on, one line each: ``GPU 0: NVIDIA H100 (80 GiB)`` or ``CPU (2 cores)``."""
    lines = []
    for device in devices:
        if device["platform"] == "cpu":
            lines.append(f"CPU ({os.cpu_count()} cores)")
            continue
        memory = device.get("memory_bytes")
        size = f" ({memory / 2**30:.0f} GiB)" if memory else ""
        lines.append(f"{device['platform'].upper()} {device['id']}: {device['kind']}{size}")
    return list(dict.fromkeys(lines))
