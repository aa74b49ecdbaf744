"""What JAX can train on, and which GPUs ConvGAN may hand to its jobs."""

from __future__ import annotations

import os
import re
from typing import Any

import jax

from core.common.errors import ConfigError

GPUS_ENV = "CONVGAN_GPUS"
# An id as CUDA_VISIBLE_DEVICES takes it: an ordinal (``2``) or a UUID (``GPU-8f3c...``, ``MIG-...``).
_GPU_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:/.-]*")


def list_devices() -> list[dict[str, Any]]:
    """JAX's local devices: id, platform (cpu/gpu/tpu), kind and memory in bytes when known."""

    devices = []
    for device in jax.local_devices():
        memory = None
        try:
            stats = device.memory_stats() or {}
            memory = stats.get("bytes_limit")
        except Exception:  # noqa: BLE001 - CPU devices do not report memory on every version
            memory = None
        devices.append({
            "id": device.id, "platform": device.platform, "kind": device.device_kind,
            "memory_bytes": memory, "process_index": device.process_index,
        })
    return devices


def has_gpu() -> bool:
    return any(device.platform == "gpu" for device in jax.local_devices())


def local_gpu_ids() -> list[str]:
    """The GPUs this process's JAX sees, in JAX's order, named as ``CUDA_VISIBLE_DEVICES`` names them.

    With ``CUDA_VISIBLE_DEVICES=2,3`` JAX numbers its GPUs 0 and 1; their ids here are ``2`` and
    ``3``, what a child process must be given to see the same GPU.
    """
    try:
        count = sum(device.platform == "gpu" for device in jax.local_devices())
    except RuntimeError:  # no backend could start: no GPU to hand out
        count = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(index) for index in range(count)]
    return _parse_ids(visible, "CUDA_VISIBLE_DEVICES")[:count]


def gpu_ids() -> list[str]:
    """The GPUs ConvGAN may hand to its jobs: ``$CONVGAN_GPUS`` when set, else every GPU JAX sees.

    ``CONVGAN_GPUS=0,1`` restricts ConvGAN to GPUs 0 and 1 (ids as ``CUDA_VISIBLE_DEVICES``
    takes them, passed on to each job unchanged); ``CONVGAN_GPUS=`` (empty) or ``none`` uses no
    GPU, so jobs train on the CPU. The job scheduler, the device checks of a launch and the Train
    form all ask this function, so a list given here is the whole inventory they know.

    Returns:
        The ids, in order, without repeats; empty on a CPU-only host.

    Raises:
        ConfigError: ``CONVGAN_GPUS`` is not a comma-separated list of GPU ids.
    """
    configured = os.environ.get(GPUS_ENV)
    if configured is None:
        return local_gpu_ids()
    if configured.strip().lower() in ("", "none"):
        return []
    return _parse_ids(configured, GPUS_ENV)


def _parse_ids(text: str, name: str) -> list[str]:
    ids = [part.strip() for part in text.split(",")]
    if name == "CUDA_VISIBLE_DEVICES":
        # CUDA stops at the first id it cannot use (``-1`` hides every GPU); the driver is not ours to check.
        usable = []
        for part in ids:
            if not _GPU_ID.fullmatch(part):
                break
            usable.append(part)
        return list(dict.fromkeys(usable))
    bad = [part for part in ids if not _GPU_ID.fullmatch(part)]
    if bad:
        raise ConfigError(f"{name} must list GPU ids separated by commas (e.g. 0,1), got {text!r}")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{name} names a GPU twice: {text!r}")
    return ids
