"""What a model family's trainer receives for one run: where to write, how to resume, and the
callbacks that carry the run's side effects."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import keras

from core.common.config import Config
from core.store.store import RunStore
from core.training.callbacks import Checkpointer, StopOnRequest, StoreLogger, WaitForEachStep


@dataclasses.dataclass
class RunContext:
    """One run being trained.

    Attributes:
        store: the run store.
        run_id: the run.
        config: its training config.
        initial_epoch: epochs already completed (non-zero when resuming).
        resume_checkpoint: ``.keras`` file to restore (model, optimizer and RNG state) or None.
        stop_event: set when a stop was requested; training ends after the current step.
        extra_callbacks: front-end callbacks (e.g. the CLI's progress bar), added last.
    """

    store: RunStore
    run_id: str
    config: Config
    initial_epoch: int = 0
    resume_checkpoint: Path | None = None
    stop_event: threading.Event = dataclasses.field(default_factory=threading.Event)
    extra_callbacks: tuple[keras.callbacks.Callback, ...] = ()

    def __post_init__(self):
        self.logger: StoreLogger | None = None
        self.stopper: StopOnRequest | None = None
        self.checkpointer: Checkpointer | None = None
        # What a stop request kept this run from computing after training (e.g. GAN scores).
        self.skipped: list[str] = []

    @property
    def run_dir(self) -> Path:
        return self.store.run_dir(self.run_id)

    def callbacks(self, steps_per_epoch: int, batch_size: int | None = None) -> list[keras.callbacks.Callback]:
        """The callbacks every family adds to ``fit``: one step at a time, stop requests, store
        metrics, checkpoints.

        Args:
            steps_per_epoch: optimizer steps per epoch.
            batch_size: images per step (default: the config's), for throughput.
        """
        self.stopper = StopOnRequest(self.stop_event)

        def is_partial(epoch: int) -> bool:
            return self.stopper.stopped_at_epoch == epoch

        self.logger = StoreLogger(
            self.store, self.run_id, steps_per_epoch=steps_per_epoch,
            batch_size=batch_size or self.config.batch_size, epochs=self.config.epochs,
            initial_epoch=self.initial_epoch, log_every_steps=self.config.log_every_steps,
            is_partial=is_partial,
        )
        self.checkpointer = Checkpointer(
            self.run_dir, steps_per_epoch=steps_per_epoch,
            should_save=lambda: self.logger.failure is None, is_partial=is_partial,
        )
        return [WaitForEachStep(), self.stopper, self.logger, self.checkpointer, *self.extra_callbacks]

    @property
    def stopping(self) -> bool:
        """A stop was requested (training may have ended before it came)."""
        return self.stop_event.is_set()

    def set_phase(self, phase: str) -> None:
        """Show ``phase`` (e.g. ``scoring``) in the run's progress record."""
        progress = self.store.get_run(self.run_id)["progress"] or {}
        self.store.update_run(self.run_id, progress={**progress, "phase": phase})

    @property
    def failure(self) -> str | None:
        return self.logger.failure if self.logger else None

    @property
    def stopped(self) -> bool:
        return bool(self.stopper and self.stopper.stopped_at_epoch is not None)

    def summary(self) -> dict[str, Any]:
        """Throughput and compile time measured by the logger, for the run's final metrics."""
        if self.logger is None:
            return {}
        return {
            "images_per_second": self.logger.images_per_second,
            "compile_seconds": self.logger.first_step_seconds,
        }
