"""Keras callbacks that carry a run's side effects: metrics to the store, checkpoints, stop requests.

Each callback resets itself in ``on_train_begin`` (as Keras' ``EarlyStopping`` does), so one
instance can serve several ``fit()`` calls.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
from tqdm import tqdm

from core.common import images
from core.common.images import atomic_write_bytes
from core.store.store import RunStore

log = logging.getLogger(__name__)

# The store and any progress bar see new numbers at least this often (seconds of training).
FLUSH_INTERVAL_S = 1.0


def _floats(logs: dict[str, Any] | None) -> dict[str, float]:
    out = {}
    for name, value in (logs or {}).items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class StoreLogger(keras.callbacks.Callback):
    """Writes step metrics (every ``log_every_steps`` or ~1 s) and epoch metrics to the run store.

    It also keeps the run's ``progress`` record (epoch, step, img/s, ETA) current and stops
    training on a non-finite loss, recording why in ``failure``.

    Args:
        store: the run store.
        run_id: the run being trained.
        steps_per_epoch: optimizer steps in one epoch.
        batch_size: images per step, for throughput.
        epochs: the epoch ``fit`` stops at (absolute, not counting from ``initial_epoch``).
        initial_epoch: epochs already done before this ``fit`` (resume).
        log_every_steps: step-metric interval.
    """

    def __init__(self, store: RunStore, run_id: str, *, steps_per_epoch: int, batch_size: int,
                 epochs: int, initial_epoch: int = 0, log_every_steps: int = 20,
                 is_partial=lambda epoch: False):
        super().__init__()
        self.is_partial = is_partial
        self.store = store
        self.run_id = run_id
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.epochs = epochs
        self.initial_epoch = initial_epoch
        self.log_every_steps = log_every_steps

    def on_train_begin(self, logs=None):
        self.failure: str | None = None
        self.epoch = self.initial_epoch
        self.global_step = self.initial_epoch * self.steps_per_epoch
        self.last_flush = time.monotonic()
        # Throughput counts from the end of the first step, so XLA compilation is excluded.
        self.measure_start: float | None = None
        self.measured_steps = 0
        self.train_start = time.monotonic()
        self.first_step_seconds: float | None = None
        self._write_progress(phase="compiling")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        self.global_step = self.epoch * self.steps_per_epoch + batch + 1
        if self.measure_start is None:
            self.measure_start = now
            self.first_step_seconds = now - self.train_start
        else:
            self.measured_steps += 1
        due = self.global_step % self.log_every_steps == 0 or now - self.last_flush >= FLUSH_INTERVAL_S
        if not due:
            return
        values = _floats(logs)
        bad = [name for name, value in values.items() if "loss" in name and not math.isfinite(value)]
        if bad:
            self._fail(f"{bad[0]} became {values[bad[0]]} at step {self.global_step}")
            return
        self.store.log_metrics(self.run_id, values, step=self.global_step, epoch=self.epoch + 1, scope="step")
        self.last_flush = now
        self._write_progress(phase="training")

    def on_epoch_end(self, epoch, logs=None):
        if self.is_partial(epoch):
            return  # a stop request cut this epoch short: its numbers are not an epoch's
        values = _floats(logs)
        bad = [name for name, value in values.items() if "loss" in name and not math.isfinite(value)]
        if bad:
            self._fail(f"{bad[0]} became {values[bad[0]]} in epoch {epoch + 1}")
            return
        # Weights can overflow before the loss shows it (e.g. batch-norm statistics of
        # exploding activations): such a state must not become a checkpoint either.
        broken = _non_finite_weight(self.model)
        if broken:
            self._fail(f"weight {broken} became NaN or inf in epoch {epoch + 1} (the loss would follow): "
                       "lower the learning rate")
            return
        values["epoch_seconds"] = time.monotonic() - self.epoch_start
        if self.images_per_second:
            values["images_per_second"] = self.images_per_second
        self.global_step = (epoch + 1) * self.steps_per_epoch
        self.epoch = epoch + 1
        self.store.log_metrics(self.run_id, values, step=self.global_step, epoch=epoch + 1, scope="epoch")
        self._write_progress(phase="training")

    @property
    def images_per_second(self) -> float | None:
        if self.measure_start is None or self.measured_steps == 0:
            return None
        elapsed = time.monotonic() - self.measure_start
        return self.measured_steps * self.batch_size / elapsed if elapsed > 0 else None

    def _fail(self, reason: str) -> None:
        self.failure = reason
        self.model.stop_training = True

    def _write_progress(self, phase: str) -> None:
        total = self.epochs * self.steps_per_epoch
        speed = self.images_per_second
        remaining = max(total - self.global_step, 0)
        eta = remaining * self.batch_size / speed if speed else None
        self.store.update_run(self.run_id, progress={
            "phase": phase, "epoch": self.epoch, "epochs": self.epochs, "step": self.global_step,
            "total_steps": total, "fraction": self.global_step / total if total else 0.0,
            "images_per_second": speed, "eta_seconds": eta,
            "compile_seconds": self.first_step_seconds,
        })


def _non_finite_weight(model) -> str | None:
    """The path of the first weight of ``model`` holding NaN or inf, or None."""
    for variable in model.weights:
        if not np.isfinite(np.asarray(variable.value)).all():
            return variable.path
    return None


class Checkpointer(keras.callbacks.Callback):
    """Saves ``checkpoints/epoch_NNN.keras`` after each epoch, atomically, plus ``train_state.json``.

    The ``.keras`` file holds the model and its optimizer state(s); Keras does not save layers'
    random-number state, so our augmentation, dropout and GAN layers store theirs as weights.
    ``keras.saving.load_model`` thus restores everything needed to resume. A partial epoch (after a
    stop request) is saved as ``checkpoints/stopped.keras``; resuming restarts that epoch from
    those weights.

    Args:
        run_dir: the run's folder.
        steps_per_epoch: optimizer steps in one epoch (recorded for resume).
        should_save: returns False when the current state must not be saved (e.g. NaN loss).
        is_partial: returns True for an epoch that a stop request cut short.
    """

    def __init__(self, run_dir: Path, *, steps_per_epoch: int, should_save=lambda: True,
                 is_partial=lambda epoch: False):
        super().__init__()
        self.is_partial = is_partial
        self.run_dir = Path(run_dir)
        self.steps_per_epoch = steps_per_epoch
        self.should_save = should_save

    def on_train_begin(self, logs=None):
        self.epochs_done: int | None = None
        # A trainer killed in the middle of a save leaves its temporary file behind.
        for stale in (self.run_dir / "checkpoints").glob(".tmp-*"):
            stale.unlink(missing_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        if not self.should_save():
            return
        if self.is_partial(epoch):
            self.save("stopped.keras", epochs_done=epoch, partial=True)
            return
        self.epochs_done = epoch + 1
        self.save(f"epoch_{epoch + 1:03d}.keras", epochs_done=epoch + 1, partial=False)

    def save(self, name: str, *, epochs_done: int, partial: bool) -> Path:
        directory = self.run_dir / "checkpoints"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        # Keras picks the format from the suffix, so the temporary name keeps ".keras".
        tmp = directory / f".tmp-{os.getpid()}-{name}"
        try:
            self.model.save(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        state = {
            "checkpoint": name, "epochs_done": epochs_done, "partial": partial,
            "global_step": epochs_done * self.steps_per_epoch, "steps_per_epoch": self.steps_per_epoch,
            "time": time.time(),
        }
        atomic_write_bytes(self.run_dir / "train_state.json", json.dumps(state, indent=1).encode())
        return path


class WaitForEachStep(keras.callbacks.Callback):
    """Waits for each step's results before ``fit`` (or ``evaluate``) launches the next step.

    Without a per-step callback Keras runs ahead: it launches step ``n + 1`` while step ``n``
    still runs. With the CPU split into several XLA devices (``core.runs.training.data_parallel``)
    the two launches can then start in different orders on the two devices; each device waits
    in a different step's all-reduce, and XLA aborts the process ("Termination timeout for all
    reduce"). Waiting costs no measurable throughput, and a run's store logger reads every
    step's logs anyway.
    """

    def on_train_batch_end(self, batch, logs=None):
        _floats(logs)

    def on_test_batch_end(self, batch, logs=None):
        _floats(logs)


class StopOnRequest(keras.callbacks.Callback):
    """Ends ``fit`` after the current step once ``stop_event`` is set (by the heartbeat or a signal)."""

    def __init__(self, stop_event: threading.Event):
        super().__init__()
        self.stop_event = stop_event

    def on_train_begin(self, logs=None):
        self.stopped_at_epoch: int | None = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_event.is_set():
            self.stopped_at_epoch = self.epoch
            self.model.stop_training = True


class ProgressBar(keras.callbacks.Callback):
    """A tqdm progress bar with ETA over all steps of a run, on stderr (the CLI's ``train``)."""

    def on_train_begin(self, logs=None):
        self.steps = self.params.get("steps") or 0
        self.epochs = self.params.get("epochs") or 0
        self.bar = tqdm(total=self.steps * self.epochs, unit="step", file=sys.stderr, dynamic_ncols=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.bar.n = epoch * self.steps
        self.bar.set_description(f"epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if batch % 10 == 0 and logs:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in _floats(logs).items()}, refresh=False)

    def on_train_end(self, logs=None):
        self.bar.close()


class EpochLog(keras.callbacks.Callback):
    """Logs one line per epoch (``core.training.callbacks`` logger, INFO): what a background job's ``train.log`` shows."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        shown = " ".join(f"{k}={v:.4g}" for k, v in _floats(logs).items())
        log.info("epoch %d/%s: %s (%.1f s)", epoch + 1, self.params.get("epochs"), shown, time.monotonic() - self.start)


def read_train_state(run_dir: Path) -> dict[str, Any] | None:
    """The last checkpoint's resume record, or None when no epoch finished yet."""
    path = Path(run_dir) / "train_state.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


class EpochGrids(keras.callbacks.Callback):
    """Saves ``<directory>/epoch_NNN.png`` after every whole epoch, and ``epoch_000.png`` (the
    untrained model) before training when not resuming; a subclass draws the grid (``grid``).

    Args:
        directory: where the PNGs go (the run's ``samples/``).
        initial_epoch: epochs done before this ``fit`` (no epoch-0 grid when > 0).
        is_partial: returns True for an epoch a stop request cut short (no grid then).
    """

    def __init__(self, directory, *, initial_epoch: int = 0, is_partial=lambda epoch: False):
        super().__init__()
        self.directory, self.initial_epoch, self.is_partial = Path(directory), initial_epoch, is_partial

    def grid(self) -> np.ndarray:
        """The uint8 image to save for the model as it is now."""
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        if self.initial_epoch == 0:
            self.write(0)

    def on_epoch_end(self, epoch, logs=None):
        if not self.is_partial(epoch):
            self.write(epoch + 1)

    def write(self, epochs_done: int) -> Path:
        return images.save_png(self.grid(), self.directory / f"epoch_{epochs_done:03d}.png")
