"""What the Runs page shows: the runs table, progress, curves, classifier results, GAN references."""

from __future__ import annotations

import io
import math
import re
import statistics
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.app.datasets_view import dataset_label
from core.common.errors import RunNotFound, UserError
from core.runs.training import epoch_target
from core.store import checkpoints
from core.store.compare import wall_seconds
from core.store.store import ACTIVE_STATUSES, RunStore
from core.training.classifier import (
    predict_proba,
)

_SAMPLE_FILE = re.compile(r"epoch_(\d+)\.png$")

_KEY_METRICS = ("test_accuracy", "test_loss", "fid_cls", "kid_cls", "precision", "recall", "label_accuracy")


def duration_seconds(run: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds a run has trained (so far, for an active run)."""
    started = run.get("started_ts")
    if started is None:
        return None
    end = run.get("finished_ts") or (now or time.time())
    return max(0.0, end - started)


def format_seconds(seconds: float | None) -> str:
    """``42 s``, ``3 min 5 s``, ``1 h 02 min``; ``-`` for None."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def run_rows(
    runs: Iterable[dict[str, Any]], now: float | None = None, training: dict[str, float | None] | None = None
) -> list[dict[str, Any]]:
    """One flat row per run for a table: status, model, dataset, tags, key metrics, the classifier
    run that scored a GAN (``scored by``), durations, device, GPU ids, img/s.

    Durations: ``duration_s`` from start to end (as before), ``training_s`` the time spent in
    epochs (``training``, from ``core.store.compare.training_seconds``; None when not given) and
    ``wall_s`` from creation to end (``core.store.compare.wall_seconds``).
    """

    training = training or {}
    rows = []
    for run in runs:
        metrics = run.get("metrics") or {}
        progress = run.get("progress") or {}
        epochs = epoch_target(run.get("config") or {})  # the launch target, or the last resume's
        row = {
            "run": run["run_id"],
            "status": run["status"],
            "family": run["family"],
            "model": run["model"],
            "dataset": dataset_label(run["dataset"]),
            "epochs": f"{progress.get('epoch', 0)}/{epochs}" if epochs else "",
            "tags": list(run.get("tags") or []),
        }
        for key in _KEY_METRICS:
            value = metrics.get(key)
            row[key] = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
        row["scored by"] = metrics.get("reference_run") if isinstance(metrics.get("reference_run"), str) else None
        speed = metrics.get("images_per_second") or progress.get("images_per_second")
        row["img/s"] = float(speed) if isinstance(speed, (int, float)) else None
        seconds = duration_seconds(run, now)
        row["duration_s"] = round(seconds, 1) if seconds is not None else None
        trained, wall = training.get(run["run_id"]), wall_seconds(run, now)
        row["training_s"] = round(trained, 1) if trained is not None else None
        row["wall_s"] = round(wall, 1) if wall is not None else None
        row["device"] = run.get("device") or ""
        row["gpus"] = ",".join(run.get("gpus") or [])
        row["created"] = run.get("created") or ""
        rows.append(row)
    return rows


def active_runs(store: RunStore) -> list[dict[str, Any]]:
    """Queued and running runs, oldest first (the order the queue serves them)."""
    return sorted(store.list_runs(status=ACTIVE_STATUSES), key=lambda run: run["created_ts"])


def estimate(
    store: RunStore, model: str, dataset: str, epochs: int, train_images: int
) -> dict[str, Any] | None:
    """Training time of a planned run from the measured throughput of past runs.

    Uses ``progress.images_per_second`` (or final ``images_per_second``) and
    ``compile_seconds`` of earlier runs of the same model on the same dataset.

    Returns:
        ``{"seconds", "images_per_second", "runs"}`` or None when no past run measured it.
    """
    speeds, compiles = [], []
    for run in store.list_runs(dataset=dataset):
        if run["model"] != model:
            continue
        progress, metrics = run.get("progress") or {}, run.get("metrics") or {}
        speed = metrics.get("images_per_second") or progress.get("images_per_second")
        if isinstance(speed, (int, float)) and speed > 0:
            speeds.append(float(speed))
            compile_s = metrics.get("compile_seconds") or progress.get("compile_seconds")
            if isinstance(compile_s, (int, float)):
                compiles.append(float(compile_s))
    if not speeds:
        return None
    speed = statistics.median(speeds)
    overhead = statistics.median(compiles) if compiles else 0.0
    return {
        "seconds": epochs * train_images / speed + overhead,
        "images_per_second": speed,
        "runs": len(speeds),
    }


def sample_epochs(run_dir: Path) -> dict[int, Path]:
    """A GAN run's per-epoch sample grids: ``{epoch: samples/epoch_NNN.png}``, oldest first."""
    folder = Path(run_dir) / "samples"
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = _SAMPLE_FILE.fullmatch(path.name)
            if match:
                found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def checkpoint_epochs(store: RunStore, run_id: str) -> list[int]:
    """Epochs after which a run saved a checkpoint, oldest first."""
    return list(checkpoints.list_checkpoints(store.run_dir(run_id)))


def runs_with_checkpoints(store: RunStore, family: str) -> list[dict[str, Any]]:
    """Runs of ``family`` that have at least one usable checkpoint, newest first."""
    found = []
    for run in store.list_runs(family=family):
        try:
            checkpoints.checkpoint_path(store, run["run_id"])
        except UserError:
            continue
        found.append(run)
    return found


def metric_names(table: dict[str, list[Any]]) -> list[str]:
    """The metric columns of a metric table (everything except step and epoch)."""
    return [name for name in table if name not in ("step", "epoch")]


def loss_and_accuracy(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split metric names into losses and the rest (accuracies, GAN scores)."""
    losses = [name for name in names if "loss" in name]
    others = [
        name for name in names if "loss" not in name and name not in ("epoch_seconds", "images_per_second")
    ]
    return losses, others


def metrics_csv(store: RunStore, run_id: str) -> bytes:
    """All metric rows of a run as CSV (scope, step, epoch, name, value, time)."""
    buffer = io.StringIO()
    buffer.write("scope,step,epoch,name,value,time\n")
    for row in store.metrics(run_id):
        value = "" if row["value"] is None else repr(row["value"])
        epoch = "" if row["epoch"] is None else row["epoch"]
        buffer.write(f"{row['scope']},{row['step']},{epoch},{row['name']},{value},{row['time']:.3f}\n")
    return buffer.getvalue().encode()


def log_tail(text: str, lines: int = 30) -> str:
    """The last ``lines`` lines of a log (progress-bar carriage returns collapsed)."""
    cleaned = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(cleaned[-lines:])


def confusion_cells(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Off-diagonal cells of a confusion matrix with errors, most errors first.

    Returns:
        ``[{"true": i, "predicted": j, "count": n, "label": "3 -> 8 (5 images)"}, ...]``.
    """
    values = np.asarray(matrix)
    cells = []
    for true_index in range(values.shape[0]):
        for predicted in range(values.shape[1]):
            count = int(values[true_index, predicted])
            if true_index != predicted and count > 0:
                cells.append(
                    {
                        "true": true_index,
                        "predicted": predicted,
                        "count": count,
                        "label": f"true {class_names[true_index]} -> predicted {class_names[predicted]} ({count})",
                    }
                )
    cells.sort(key=lambda cell: (-cell["count"], cell["true"], cell["predicted"]))
    return cells


def cell_key(true_index: int, predicted: int) -> str:
    """A confusion cell as it appears in URLs: ``3-8``."""
    return f"{true_index}-{predicted}"


def per_class_accuracy(matrix: Sequence[Sequence[int]]) -> list[float]:
    """Accuracy of each true class from a confusion matrix (0 for a class without test images)."""
    values = np.asarray(matrix, dtype=np.float64)
    totals = values.sum(axis=1)
    return [float(values[i, i] / totals[i]) if totals[i] else 0.0 for i in range(len(values))]


def misclassified(labels: np.ndarray, predictions: np.ndarray, true_index: int, predicted: int) -> np.ndarray:
    """Indices of test images of class ``true_index`` that the model called ``predicted``."""
    return np.flatnonzero((np.asarray(labels) == true_index) & (np.asarray(predictions) == predicted))


STATUS_COLORS = {
    "queued": "gray",
    "running": "blue",
    "completed": "green",
    "stopped": "orange",
    "failed": "red",
    "interrupted": "orange",
    "cancelled": "gray",
}


def progress_line(run: dict[str, Any], queue_position: int | None = None) -> tuple[float, str]:
    """A run's progress as ``(fraction 0..1, one line of text with epoch, speed and ETA)``."""
    progress = run.get("progress") or {}
    status = run["status"]
    epochs = progress.get("epochs") or (run.get("config") or {}).get("epochs") or 0
    fraction = float(progress.get("fraction") or 0.0)
    if status == "queued":
        where = f" (position {queue_position} in the queue)" if queue_position else ""
        return 0.0, f"queued{where}"
    if status == "completed":
        fraction = 1.0
    parts = [f"{status}: epoch {progress.get('epoch', 0)}/{epochs}"]
    if progress.get("total_steps"):
        parts.append(f"step {progress.get('step', 0)}/{progress['total_steps']}")
    speed = progress.get("images_per_second")
    if speed:
        parts.append(f"{speed:,.0f} img/s")
    if status == "running":
        if progress.get("phase") == "compiling" or not progress:
            parts.append("compiling (XLA)")
        elif progress.get("eta_seconds") is not None:
            parts.append(f"ETA {format_seconds(progress['eta_seconds'])}")
    else:
        parts.append(f"took {format_seconds(duration_seconds(run))}")
    return min(max(fraction, 0.0), 1.0), " · ".join(parts)


def latest_sample(run_dir: Path) -> tuple[int, Path] | None:
    """The newest per-epoch sample grid of a GAN run: ``(epoch, path)``, or None."""
    found = sample_epochs(run_dir)
    if not found:
        return None
    epoch = max(found)
    return epoch, found[epoch]


# The tabs of the Runs page's run detail (``?tab=``).
RUN_TABS = ("Curves", "Results", "Config")

SORT_KEYS = ("created", "test_accuracy", "fid_cls", "training_s", "wall_s", "duration_s", "img/s", "status", "model")


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool = True) -> list[dict[str, Any]]:
    """Sort table rows by a column; rows without a value go last either way."""
    present = [row for row in rows if row.get(key) not in (None, "")]
    missing = [row for row in rows if row.get(key) in (None, "")]
    return sorted(present, key=lambda row: row[key], reverse=descending) + missing


def filter_runs(
    runs: Iterable[dict[str, Any]],
    *,
    statuses: Sequence[str] = (),
    family: str = "all",
    dataset: str = "all",
    text: str = "",
    tags: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Runs matching the Runs page filters (empty filters match everything; a run matches
    ``tags`` when it has every one of them)."""
    text = text.strip().lower()
    return [
        run
        for run in runs
        if (not statuses or run["status"] in statuses)
        and (family == "all" or run["family"] == family)
        and (dataset == "all" or run["dataset"] == dataset)
        and (not text or text in run["run_id"].lower() or text in run["model"].lower())
        and set(tags) <= set(run.get("tags") or [])
    ]


def predict_labels(model, images_uint8: np.ndarray) -> np.ndarray:
    """A classifier's predicted class for each image (the models rescale raw pixels themselves)."""

    return np.asarray(predict_proba(model, images_uint8)).argmax(axis=-1).astype(np.int64)


GAN_SCORES = ("fid_cls", "kid_cls", "precision", "recall", "label_accuracy")


def reference_note(store: RunStore, run: dict[str, Any]) -> str | None:
    """Which classifier run scored a GAN run (its features define fid_cls and the rest), or None.

    Older runs, unscored runs and classifiers have no reference and get None.
    """
    reference = (run.get("metrics") or {}).get("reference_run")
    if not isinstance(reference, str):
        return None
    try:
        accuracy = (store.get_run(reference).get("metrics") or {}).get("test_accuracy")
    except RunNotFound:
        return f"Scored in the feature space of classifier run {reference} (since deleted)."
    detail = f" (test accuracy {accuracy:.1%})" if isinstance(accuracy, (int, float)) else ""
    return f"Scored in the feature space of classifier run {reference}{detail}."


def mixed_references(runs: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """GAN runs grouped by the classifier run that scored them, when there is more than one.

    Scores from different reference classifiers are not comparable, so a page comparing
    these runs says so. Returns ``{}`` when the runs share one reference (or have none).
    """
    groups: dict[str, list[str]] = {}
    for run in runs:
        reference = (run.get("metrics") or {}).get("reference_run")
        if run.get("family") == "gan" and isinstance(reference, str):
            groups.setdefault(reference, []).append(run["run_id"])
    return groups if len(groups) > 1 else {}


def latest_gan_samples(store: RunStore, runs: Iterable[dict[str, Any]]) -> tuple[str, int, Path] | None:
    """The newest sample grid among ``runs`` (newest first): ``(run_id, epoch, path)`` or None."""
    for run in runs:
        if run["family"] == "gan":
            latest = latest_sample(store.run_dir(run["run_id"]))
            if latest:
                return run["run_id"], latest[0], latest[1]
    return None
