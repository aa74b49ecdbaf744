"""GPU slots: which GPUs each run on this host trains on.

The inventory is ``core.common.devices.gpu_ids()``. A run asks for ``config.devices`` GPUs (0 =
all of them). The GPUs in use are those recorded on this host's ``running`` runs, so a run's
GPUs free themselves however it ends (completed, failed, stopped, or marked interrupted after a
``kill -9``); the ids stay on the run as a record of where it trained.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import jax

from core.common import devices
from core.store.store import RunStore, this_host


def wanted(config: dict[str, Any] | str, available: int) -> int:
    """The GPUs a run's stored config asks for: ``devices``, all ``available`` for 0, 1 for runs
    stored before the setting existed."""
    settings = json.loads(config) if isinstance(config, str) else config
    asked = int(settings.get("devices", 1))
    return available if asked == 0 else asked


def busy(conn: sqlite3.Connection, host: str | None = None) -> set[str]:
    """The GPU ids held by running runs on ``host`` (default: this one), inside a transaction."""
    rows = conn.execute("SELECT gpus FROM runs WHERE status = 'running' AND host = ? AND gpus IS NOT NULL",
                        (host or this_host(),)).fetchall()
    return {gpu for row in rows for gpu in row["gpus"].split(",") if gpu}


def training_devices(store: RunStore, run_id: str, asked: int) -> list[jax.Device] | None:
    """The local JAX devices a run trains on; a run that was given no GPUs takes some here.

    A background job's GPUs were given by ``jobs.dispatch`` (its process sees just those). A run
    trained in the calling process (``train`` without ``--background``, a notebook, a GAN's
    reference classifier) takes ``asked`` of the GPUs ConvGAN may use, free ones first (it never
    waits: when all are busy it shares), and records them so that no job is given them meanwhile.

    Args:
        store: the run store.
        run_id: the run, already ``running`` on this host.
        asked: ``config.devices`` (0 = every GPU).

    Returns:
        The devices, or None to train on all local devices as JAX lists them (the CPU, a TPU).
    """
    local = devices.local_gpu_ids()
    if not local:
        return None
    gpus = store.get_run(run_id)["gpus"]
    if not gpus:
        allowed = [gpu for gpu in devices.gpu_ids() if gpu in local]
        if not allowed:
            return None
        count = len(allowed) if asked == 0 else asked
        with store.transaction() as conn:
            taken = busy(conn)
            gpus = ([gpu for gpu in allowed if gpu not in taken] + [gpu for gpu in allowed if gpu in taken])[:count]
            conn.execute("UPDATE runs SET gpus = ? WHERE run_id = ?", (",".join(gpus), run_id))
    local_gpus = [device for device in jax.local_devices() if device.platform == "gpu"]
    return [local_gpus[local.index(gpu)] for gpu in gpus if gpu in local] or None
