"""The dashboard's writes to runs (launch, starters, stop, cancel, resume, annotate, delete), each
guarded by :func:`core.app.demo_limits.require_writable`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.app.demo_limits import require_writable
from core.common.config import Config, config_for
from core.runs import jobs
from core.store.store import NOTE_MAX_LENGTH, InvalidAnnotation, RunStore
from core.training.classifier import (
    recommended_settings,
)

# Starter models for the first run on the embedded digits: ~15 s (convnet) and ~35 s per GAN on 2 CPU
# cores; fewer GAN epochs give blobs (dcgan fid_cls ~139 at 8 epochs vs ~20 at 20-30).
STARTER_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("convnet", {"dataset": "digits", "epochs": 10}),
    ("dcgan", {"dataset": "digits", "epochs": 20}),
    ("cgan", {"dataset": "digits", "epochs": 20}),
)


def launch(store: RunStore, config: Config) -> str:
    """Queue ``config`` as a background job (see ``core.runs.jobs.launch``); returns the run id."""
    require_writable("launching training")
    return jobs.launch(config, store)


def starter_configs() -> list[Config]:
    """The first-run starter models: a ConvNet, a DCGAN and a cGAN on the embedded digits
    (classifiers start from the settings measured for the data, as the Train page does)."""

    configs = []
    for model, overrides in STARTER_MODELS:
        recipe = recommended_settings(overrides["dataset"], model) if model in ("convnet", "resnet") else {}
        configs.append(config_for(model, **{**recipe, **overrides}))
    return configs


def launch_starters(store: RunStore) -> list[str]:
    """Queue the starter models (they train one after another on CPU); returns their run ids."""
    require_writable("launching training")
    return [launch(store, config) for config in starter_configs()]


def stop(store: RunStore, run_id: str) -> dict[str, Any]:
    """Ask a running run to stop after its current step (does not wait)."""
    require_writable("stopping runs")
    return jobs.stop(store, run_id, wait=False)


def cancel(store: RunStore, run_id: str) -> dict[str, Any]:
    """Take a queued run off the queue."""
    require_writable("cancelling runs")
    return jobs.cancel(store, run_id)


def resume(store: RunStore, run_id: str, epochs: int | None = None) -> dict[str, Any]:
    """Continue a run in the background from its last checkpoint (see ``core.runs.jobs.resume``)."""
    require_writable("resuming runs")
    return jobs.resume(store, run_id, epochs=epochs, background=True)


def save_annotations(store: RunStore, run_id: str, tags: Sequence[str], note: str) -> list[str]:
    """Set a run's tags and note together (both checked before either is written).

    Returns:
        The run's tags as stored (normalised: lower-case, sorted).

    Raises:
        ReadOnlyError: demo mode.
        InvalidAnnotation: a tag or the note is not accepted; the run is unchanged.
    """
    require_writable("editing tags and notes")
    if len(note.strip()) > NOTE_MAX_LENGTH:
        raise InvalidAnnotation(f"the note has {len(note.strip()):,} characters; a note holds at most {NOTE_MAX_LENGTH:,}")
    saved = store.set_tags(run_id, tags)
    store.set_note(run_id, note)
    return saved


def delete(store: RunStore, run_id: str) -> None:
    """Delete a finished run and its files."""
    require_writable("deleting runs")
    store.delete_run(run_id)
