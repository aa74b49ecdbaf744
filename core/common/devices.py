"""What JAX can train on."""

from __future__ import annotations

from typing import Any

import jax


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
