"""View models for the dashboard pages: what a page shows, computed without Streamlit.

Pages stay thin by calling these helpers; notebooks can call them too. Every write the
dashboard can make (launch, stop, cancel, resume, delete, upload) goes through a function
here that first calls :func:`require_writable`, so demo mode (``CONVGAN_DEMO=1``) refuses it
in one place whatever a widget or a URL asks for.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import statistics
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.app.share import Param
from core.common import images
from core.common.config import Config, config_for
from core.common.errors import DatasetError, RunNotFound, UserError
from core.data.datasets import load_dataset
from core.data.loaders import folders, image_files
from core.evaluation import novelty
from core.evaluation.sampling import save_gif
from core.runs import jobs
from core.runs.training import epoch_target
from core.store import checkpoints
from core.store.compare import wall_seconds
from core.store.store import ACTIVE_STATUSES, NOTE_MAX_LENGTH, InvalidAnnotation, RunStore
from core.training.classifier import (
    classify_images,
    predict_proba,
    prepare_images,
    recommended_settings,
    saliency,
)

# Sampling from a public demo is capped at this many images per request.
DEMO_MAX_SAMPLES = 64
MAX_SAMPLES = 256
# Starter models for the first run on the embedded digits: ~15 s (convnet) and ~35 s per GAN on 2 CPU
# cores; fewer GAN epochs give blobs (dcgan fid_cls ~139 at 8 epochs vs ~20 at 20-30).
STARTER_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("convnet", {"dataset": "digits", "epochs": 10}),
    ("dcgan", {"dataset": "digits", "epochs": 20}),
    ("cgan", {"dataset": "digits", "epochs": 20}),
)
UPLOAD_SUFFIXES = (".zip", ".npz")
# Uploaded datasets are kept under <CONVGAN_HOME>/uploads/<name>.zip|.npz.
UPLOADS_DIR = "uploads"
_SAMPLE_FILE = re.compile(r"epoch_(\d+)\.png$")


class ReadOnlyError(UserError):
    """A write was asked for in demo mode."""


def demo_mode() -> bool:
    """Whether the dashboard is a read-only public demo (``CONVGAN_DEMO=1``)."""
    return _truthy("CONVGAN_DEMO")


# A public demo takes single images up to this size on Classify (and no zips).
DEMO_MAX_UPLOAD_MB = 2
# Operator setting: let a demo's visitors download checkpoints (off unless set to 1/true/yes/on).
DEMO_DOWNLOADS_ENV = "CONVGAN_DEMO_DOWNLOADS"
# What a read-only demo allows and what it turns off: every demo notice is built from these.
DEMO_ALLOWED = {
    "browse": "browsing runs and datasets",
    "sample": f"sampling (at most {DEMO_MAX_SAMPLES} images)",
    "classify": f"classifying one image at a time (up to {DEMO_MAX_UPLOAD_MB} MB)",
}
DEMO_OFF = {
    "train": "training",
    "runs": "run controls (stop, resume, delete)",
    "upload": "uploading datasets or zips",
    "download": "checkpoint downloads",
}


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def checkpoint_downloads_allowed() -> bool:
    """Whether pages offer checkpoint files for download: always outside demo mode, and in demo
    mode only when the operator sets ``CONVGAN_DEMO_DOWNLOADS=1``."""
    return not demo_mode() or _truthy(DEMO_DOWNLOADS_ENV)


def _listing(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def demo_notice(feature: str | None = None) -> str:
    """What the read-only demo allows and turns off, in the same words on every page.

    Args:
        feature: a key of ``DEMO_ALLOWED`` or ``DEMO_OFF`` for the line about that feature
            alone (where a page leaves it out or limits it); None for the whole notice (the
            banner).

    Returns:
        One sentence.

    Raises:
        KeyError: an unknown feature.
    """
    off = {key: text for key, text in DEMO_OFF.items() if key != "download" or not checkpoint_downloads_allowed()}
    if feature is None:
        return f"Read-only demo: {_listing(list(DEMO_ALLOWED.values()))} work; {_listing(list(off.values()))} are turned off."
    if feature in DEMO_ALLOWED:
        return f"Read-only demo: {DEMO_ALLOWED[feature]}."
    return f"Turned off in this read-only demo: {DEMO_OFF[feature]}."


def max_samples() -> int:
    """Most images one sampling request may generate (lower in demo mode)."""
    return DEMO_MAX_SAMPLES if demo_mode() else MAX_SAMPLES


def require_writable(action: str) -> None:
    """Refuse ``action`` in demo mode. Every dashboard write calls this first.

    Raises:
        ReadOnlyError: demo mode is on.
    """
    if demo_mode():
        raise ReadOnlyError(f"this is a read-only demo: {action} is turned off")


# ---- writes (each guarded) ---------------------------------------------------------------------


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


def save_upload(store: RunStore, filename: str, data: bytes, name: str | None = None) -> str:
    """Validate an uploaded dataset (zip of class folders, or npz) and keep it in the store.

    Args:
        store: the run store; the file goes to ``<home>/uploads/<name><suffix>``.
        filename: the uploaded file's name (its suffix picks the format).
        data: the file's bytes.
        name: the dataset's name (default: the file's stem), letters, digits, ``-`` and ``_``.

    Returns:
        The dataset spec to train on: ``zip:PATH`` or ``npz:PATH``.

    Raises:
        UserError: wrong suffix, bad name, or a file ``core.data.datasets`` cannot use (nothing is kept then).
    """
    require_writable("uploading datasets")

    suffix = Path(filename).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise DatasetError(f"{filename}: upload a .zip (one folder per class) or an .npz (arrays x, y)")
    stem = (name or Path(filename).stem).strip()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40]
    if not slug:
        raise DatasetError(f"{stem!r} is not a usable dataset name: use letters, digits, - and _")
    if not data:
        raise DatasetError(f"{filename} is empty")
    folder = store.home / UPLOADS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug}{suffix}"
    tmp = folder / f".{slug}.{os.getpid()}.uploading{suffix}"
    tmp.write_bytes(data)
    try:
        load_dataset(f"{suffix[1:]}:{tmp}")  # raises DatasetError with a one-line reason
    except UserError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as err:  # noqa: BLE001 - an unreadable upload is the upload's fault
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"{filename} cannot be read as a dataset: {type(err).__name__}: {err}") from err
    os.replace(tmp, path)
    return f"{suffix[1:]}:{path}"


# ---- datasets ----------------------------------------------------------------------------------


def uploaded_datasets(store: RunStore) -> list[str]:
    """Specs of the datasets uploaded through the dashboard, newest first."""
    folder = store.home / UPLOADS_DIR
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix in UPLOAD_SUFFIXES and not p.name.startswith(".")]
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [f"{p.suffix[1:]}:{p}" for p in files]


def dataset_label(spec: str) -> str:
    """A short name for a dataset spec (``zip:/x/uploads/pets.zip`` -> ``pets (zip upload)``)."""
    kind, _, rest = spec.partition(":")
    if rest and kind in ("zip", "npz", "folder"):
        return f"{Path(rest).stem or rest} ({kind})"
    return spec


def shuffled_indices(labels: np.ndarray | None, count: int, class_index: int | None, seed: int) -> np.ndarray:
    """Indices of the images to browse: those of one class (or all), in a seeded random order.

    Seed 0 keeps the dataset order, so the first page is stable.
    """
    indices = np.arange(count)
    if class_index is not None and labels is not None:
        indices = indices[np.asarray(labels) == class_index]
    if seed:
        indices = np.random.default_rng(seed).permutation(indices)
    return indices


def page_count(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def grid_image(batch: np.ndarray, *, ncols: int | None = None, min_side: int = 256) -> np.ndarray:
    """Tile uint8 images into one picture, upscaled (nearest) so tiny images stay visible."""
    grid = images.make_grid(np.asarray(batch), ncols=ncols, padding=1, pad_value=255)
    factor = max(1, min(8, min_side // max(1, min(grid.shape[:2]))))
    return images.upscale(grid, factor)


def enlarge(image: np.ndarray, min_side: int = 160) -> np.ndarray:
    """Nearest-neighbour upscale of one (H, W, C) image to at least ``min_side`` pixels."""
    factor = max(1, min_side // max(1, min(image.shape[:2])))
    return images.upscale(np.asarray(image), factor)


def bounded(image: np.ndarray, max_side: int = 360) -> tuple[np.ndarray, int]:
    """A picture to show at most ``max_side`` pixels on its longer side, not the column's width.

    Returns:
        The image upscaled by a whole factor (nearest neighbour, so pixels stay sharp) while it
        fits ``max_side``, and the width in pixels to show it at.
    """
    height, width = image.shape[:2]
    factor = max(1, max_side // max(1, height, width))
    shown = width * factor
    if max(height, width) * factor > max_side:  # larger than the bound already: shrink when shown
        shown = max(1, width * max_side // max(height, width))
    return images.upscale(np.asarray(image), factor), shown


# ---- runs ---------------------------------------------------------------------------------------

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
    run that scored a GAN (``scored by``), durations, device, img/s.

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


# ---- classifier results ----------------------------------------------------------------------------


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


def zip_image_entries(data: bytes, limit: int = 500) -> list[tuple[str, bytes]]:
    """Image files (png/jpg/jpeg/bmp/gif/webp) inside an uploaded zip, in name order.

    Raises:
        UserError: not a zip, or no images in it.
    """

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise UserError("the upload is not a zip file") from err
    entries = []
    with archive:
        for parts, info in sorted(folders.safe_members(archive, "the upload"), key=lambda item: item[1].filename):
            if "__MACOSX" in parts or parts[-1].startswith("."):
                continue
            if Path(parts[-1]).suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"):
                continue
            if len(entries) >= limit:
                break
            entries.append((info.filename, folders.read_member(archive, info, "the upload").getvalue()))
    if not entries:
        raise UserError("no .png/.jpg images found in the zip")
    return entries


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode image bytes (png/jpg/...) to a uint8 (H, W, C) array with C in {1, 3}.

    Raises:
        UserError: not an image Pillow can read, or too many pixels.
    """

    # The same decoder as datasets and the CLI: pixel-count limit before decoding, alpha
    # composited on white, 16-bit scaled, so the page and `classify` see the same pixels.
    return image_files.decode_image(io.BytesIO(data), name)[0]


def canvas_to_image(rgba: np.ndarray) -> np.ndarray | None:
    """A drawing (RGBA canvas: light strokes on a black or transparent background) as a grayscale
    uint8 (H, W, 1) image, white on black like digit datasets. None for an empty canvas."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[-1] != 4:
        return None
    brightness = rgba[..., :3].max(axis=-1).astype(np.float32) * (rgba[..., 3].astype(np.float32) / 255.0)
    if brightness.max() <= 0.0:
        return None
    return np.clip(np.rint(brightness), 0, 255).astype(np.uint8)[..., None]


def spec_version(spec: str) -> float:
    """Modification time of a custom dataset's file (0 for built-ins), to key caches of derived arrays."""
    kind, _, rest = spec.partition(":")
    if rest and kind in ("zip", "npz", "folder"):
        path = Path(rest).expanduser()
        return path.stat().st_mtime if path.exists() else 0.0
    return 0.0


def mean_images(class_means: np.ndarray) -> np.ndarray:
    """Per-class mean images (float 0..255) as uint8 for display."""
    return np.clip(np.rint(np.asarray(class_means)), 0, 255).astype(np.uint8)


def histogram_fractions(histogram: np.ndarray) -> dict[str, list[float]]:
    """A ``(C, 256)`` pixel histogram as fractions per channel, named gray or red/green/blue."""
    histogram = np.asarray(histogram, dtype=np.float64)
    names = ["gray"] if histogram.shape[0] == 1 else ["red", "green", "blue", "alpha"][: histogram.shape[0]]
    totals = np.maximum(histogram.sum(axis=1, keepdims=True), 1.0)
    return {name: (histogram[i] / totals[i]).tolist() for i, name in enumerate(names)}


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
}


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


def gif_bytes(frames: np.ndarray, fps: float = 8.0) -> bytes:
    """An animated GIF (looping there and back) of uint8 frames ``(T, H, W, C)``, upscaled so the
    images are at least 128 pixels on a side (written by ``core.evaluation.sampling.save_gif``)."""

    frames = np.asarray(frames)
    there_and_back = np.concatenate([frames, frames[-2:0:-1]]) if len(frames) > 2 else frames
    scale = max(1, 128 // max(1, min(frames.shape[1:3])))
    with tempfile.TemporaryDirectory(prefix="convgan-gif-") as folder:
        return save_gif(there_and_back, Path(folder) / "interpolation.gif", fps=fps, scale=scale).read_bytes()


def classify(model, image: np.ndarray, class_names: Sequence[str], top_k: int, check=None) -> dict[str, Any]:
    """Classify one uint8 image of any size/channels with a classifier model.

    Args:
        check: the checkpoint's ``core.evaluation.novelty.Novelty``, to say whether the image is unlike the
            training images; None: no such check.

    Returns:
        ``{"prepared": uint8 (H, W, C) as the model sees it, "top": [...], "notes": [...]}``, and
        with ``check`` the fields of ``core.evaluation.novelty.assess`` (``unusual``, ``ood_score``, ...).
    """

    input_shape = tuple(model.input_shape[1:])
    prepared, notes = prepare_images(np.asarray(image)[None], input_shape)
    result = classify_images(model, prepared, list(class_names), top_k=min(top_k, len(class_names)))[0]
    seen = np.clip(np.rint(np.asarray(prepared[0], dtype=np.float32)), 0, 255).astype(np.uint8)
    found = {"prepared": seen, "top": result["top"], "notes": list(notes)}
    if check is not None:

        found.update(novelty.assess(model, check, [image], prepared)[0])
    return found


def classify_zip(model, data: bytes, class_names: Sequence[str], top_k: int = 3) -> list[dict[str, Any]]:
    """Classify every image in an uploaded zip: one row per file (unreadable files get a note)."""
    rows = []
    for name, raw in zip_image_entries(data):
        try:
            result = classify(model, decode_image(raw, name), class_names, top_k)
        except UserError as err:
            rows.append({"file": name, "class": None, "probability": None, "top": "", "note": str(err)})
            continue
        best = result["top"][0]
        rows.append(
            {
                "file": name,
                "class": best["class_name"],
                "probability": round(float(best["probability"]), 4),
                "top": ", ".join(f"{c['class_name']} {c['probability']:.0%}" for c in result["top"]),
                "note": "; ".join(result["notes"]),
            }
        )
    return rows


def rows_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """Table rows as CSV bytes (columns of the first row)."""

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue().encode()


def saliency_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend a saliency map (H, W), any range, over a uint8 image as a red heat overlay (RGB uint8)."""
    image = np.asarray(image)
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim == 3:
        heat = np.abs(heat).max(axis=-1)
    heat = heat - heat.min()
    heat = heat / heat.max() if heat.max() > 0 else heat
    color = np.stack([np.full_like(heat, 255.0), 80.0 * (1 - heat), np.zeros_like(heat)], axis=-1)
    weight = (alpha * heat)[..., None]
    return np.clip(rgb * (1 - weight) + color * weight, 0, 255).astype(np.uint8)


def saliency_map(model, prepared: np.ndarray, class_index: int, method: str) -> np.ndarray:
    """``core.training.classifier.saliency`` for one prepared image."""

    return np.asarray(saliency(model, prepared, class_index, method))


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


def heat_image(heat: np.ndarray) -> np.ndarray:
    """A saliency map (H, W) in any range as an RGB uint8 image (black -> red -> yellow -> white)."""
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim == 3:
        heat = np.abs(heat).max(axis=-1)
    heat = heat - heat.min()
    heat = heat / heat.max() if heat.max() > 0 else heat
    rgb = np.stack(
        [np.clip(3 * heat, 0, 1), np.clip(3 * heat - 1, 0, 1), np.clip(3 * heat - 2, 0, 1)], axis=-1
    )
    return np.rint(rgb * 255).astype(np.uint8)


def latest_gan_samples(store: RunStore, runs: Iterable[dict[str, Any]]) -> tuple[str, int, Path] | None:
    """The newest sample grid among ``runs`` (newest first): ``(run_id, epoch, path)`` or None."""
    for run in runs:
        if run["family"] == "gan":
            latest = latest_sample(store.run_dir(run["run_id"]))
            if latest:
                return run["run_id"], latest[0], latest[1]
    return None
