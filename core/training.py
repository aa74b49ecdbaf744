"""Runs one training job: the same code path for the CLI, background workers, the dashboard
(through background workers) and notebooks.

``train(config)`` validates everything that can be checked up front (config, dataset,
compatibility) before a run is created, so bad input leaves the store untouched. ``execute``
trains a run that already exists in the store; background workers call it with the run id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core import backend
from core.callbacks import read_train_state
from core.config import Config, config_from_dict, config_to_dict
from core.errors import ConfigError, TrainingFailed, UserError
from core.runctx import RunContext
from core.store import RunStore, this_host

# A trainer writes its heartbeat this often; readers call a run interrupted when the
# heartbeat is older than HEARTBEAT_TIMEOUT_S (compilation never blocks the heartbeat thread).
HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_TIMEOUT_S = 30.0


def check_compatible(config: Config, data) -> None:
    """Raise ConfigError when ``config`` cannot train on ``data`` (checked before a run exists)."""
    if config.family == "classifier" and not data.labeled:
        raise ConfigError(f"{config.dataset} has no labels: a classifier needs one sub-folder per class")
    if config.model == "cgan" and not data.labeled:
        raise ConfigError(f"{config.dataset} has no labels: cgan needs one sub-folder per class (use dcgan)")
    train_count = len(data.x_train)
    if config.batch_size > train_count:
        raise ConfigError(
            f"batch size {config.batch_size} is larger than the {train_count} training images of {config.dataset}"
        )
    if config.family == "restoration":
        from core.restoration import check_restoration

        check_restoration(config, data.image_shape)
    if config.mixed_precision:
        if config.family != "classifier":
            raise ConfigError(f"mixed precision is available for classifiers only; train {config.model} in float32")
        if _cpu_only():
            raise ConfigError("mixed precision (bfloat16) needs a GPU; JAX sees only the CPU here")
    device_count = _device_count()
    if device_count > 1 and config.batch_size % device_count and not _cpu_only():
        raise ConfigError(f"batch size {config.batch_size} must be a multiple of the {device_count} devices")


def prepare(config: Config, store: RunStore | None = None, *, status: str = "queued") -> tuple[RunStore, str, Any]:
    """Validate ``config`` and its dataset, then create the run. Nothing is written on bad input.

    Returns:
        (store, run_id, dataset)

    Raises:
        UserError: bad config, unknown or unusable dataset.
    """
    from core.datasets import load_dataset

    config = config.validate()
    store = store or RunStore()
    data = load_dataset(config.dataset, image_size=config.image_size)
    check_compatible(config, data)
    # What the data looked like travels with the run, for classify/sample without reloading it.
    data_summary = {
        "class_names": list(data.class_names or []), "image_shape": list(data.image_shape),
        "train_images": len(data.x_train), "test_images": len(data.x_test) if data.x_test is not None else 0,
    }
    run_id = store.create_run(
        family=config.family, model=config.model, dataset=config.dataset,
        config={**config_to_dict(config), "data": data_summary}, seed=config.seed, status=status,
    )
    for note in getattr(data, "notes", []):
        print(f"note: {note}", file=sys.stderr)
    return store, run_id, data


def train(config: Config, *, store: RunStore | None = None,
          extra_callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train ``config`` in this process and return the finished run's record.

    Args:
        config: a ``ClassifierConfig`` or ``GANConfig``.
        store: the run store (default: ``$CONVGAN_HOME``).
        extra_callbacks: Keras callbacks to add (e.g. a progress bar).

    Returns:
        The run record (``run_id``, ``status``, ``metrics``, ...), as ``RunStore.get_run``.

    Raises:
        UserError: bad config or dataset; no run is created then.
    """
    store, run_id, data = prepare(config, store, status="running")
    return execute(store, run_id, data=data, extra_callbacks=extra_callbacks)


def execute(store: RunStore, run_id: str, *, data=None, resume: bool = False,
            extra_callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train an existing run to its configured number of epochs, recording everything in the store.

    A failure inside training (NaN loss, a crash) marks the run ``failed`` with the reason
    rather than raising; a stop request marks it ``stopped`` after saving a checkpoint.

    Args:
        store: the run store.
        run_id: the run to train.
        data: the loaded dataset, if the caller has it.
        resume: continue from the last checkpoint instead of starting over.
        extra_callbacks: Keras callbacks to add.

    Returns:
        The run's record after training.
    """
    run = store.get_run(run_id)
    config = config_from_dict(run["config"])
    backend.enable_compilation_cache(str(store.cache_dir / "jax"))
    backend.keep_freed_memory()
    stop_event = threading.Event()
    store.update_run(
        run_id, status="running", started=run["started_ts"] or time.time(), finished=None, error=None,
        pid=os.getpid(), host=this_host(), heartbeat=time.time(), stop_requested=0,
        device=device_summary(), versions=package_versions(), code_version=code_version(),
    )
    heartbeat = _Heartbeat(store, run_id, stop_event)
    heartbeat.start()
    restore_signals = _stop_on_signals(stop_event)
    started = time.monotonic()
    final: dict[str, Any] = {}
    ctx = None
    try:
        if data is None:
            from core.datasets import load_dataset

            data = load_dataset(config.dataset, image_size=config.image_size)
        ctx = RunContext(store, run_id, config, stop_event=stop_event, extra_callbacks=tuple(extra_callbacks))
        if resume:
            _prepare_resume(store, run_id, ctx)
        fit = _family_trainer(config)
        with data_parallel(config.batch_size):
            final = fit(config, data, ctx) or {}
        if ctx.failure:
            status, error = "failed", ctx.failure
        elif ctx.stopped:
            status, error = "stopped", None
        else:
            status, error = "completed", None
    except (UserError, TrainingFailed) as err:  # expected failures: one line, no traceback
        status, error = "failed", ctx.failure if ctx and ctx.failure else str(err)
        print(f"failed: {error}", file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - any crash becomes a failed run with its reason
        status, error = "failed", f"{type(err).__name__}: {err}"
        traceback.print_exc()
    finally:
        heartbeat.stop()
        restore_signals()
    seconds = time.monotonic() - started
    summary = ctx.summary() if ctx else {}
    metrics = {**final, "seconds": seconds, **{k: v for k, v in summary.items() if v is not None},
               "peak_rss_mb": _peak_rss_mb()}
    if status != "completed":
        metrics = {**store.latest_metrics(run_id), **metrics}
    store.update_run(run_id, status=status, error=error, finished=time.time(), pid=None,
                     heartbeat=time.time(), metrics=metrics)
    return store.get_run(run_id)


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB.

    On Linux from ``VmHWM``: ``ru_maxrss`` survives ``exec``, so a trainer started by a large
    process (the benchmark, the dashboard) would report its parent's size.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**10, 1)  # kB
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _family_trainer(config: Config):
    if config.family == "classifier":
        from core.classifier import fit_classifier

        return fit_classifier
    if config.family == "restoration":
        from core.restoration import fit_restoration

        return fit_restoration
    from core.gan import fit_gan

    return fit_gan


def _prepare_resume(store: RunStore, run_id: str, ctx: RunContext) -> None:
    """Point ``ctx`` at the last checkpoint and drop metrics logged after it (no duplicates, no gap)."""
    state = read_train_state(store.run_dir(run_id))
    if state is None:
        store.truncate_metrics(run_id, after_step=0)
        return
    ctx.initial_epoch = int(state["epochs_done"])
    ctx.resume_checkpoint = store.run_dir(run_id) / "checkpoints" / state["checkpoint"]
    store.truncate_metrics(run_id, after_step=int(state["global_step"]))
    if not ctx.resume_checkpoint.exists():
        raise UserError(f"checkpoint {ctx.resume_checkpoint} is missing: the run cannot resume")


@contextlib.contextmanager
def data_parallel(batch_size: int):
    """Train data-parallel over all local devices when there are several and the batch splits evenly.

    The CPU counts as several devices when the user splits it (``backend.cpu_device_count``);
    a batch that does not split over the devices trains on one. The previous distribution is
    restored afterwards, so a notebook or test process is left as it was.
    """
    import keras

    count = _device_count()
    if count < 2 or batch_size % count:
        yield
        return
    with keras.distribution.DataParallel().scope():
        yield


@contextlib.contextmanager
def single_device():
    """Run without any data-parallel split in force (for prediction, whose last batch may be odd)."""
    import keras

    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def _device_count() -> int:
    import jax

    return len(jax.local_devices())


def _cpu_only() -> bool:
    import jax

    return jax.local_devices()[0].platform == "cpu"


class _Heartbeat(threading.Thread):
    """Writes the run's heartbeat every second and turns a stop request in the store into ``stop_event``."""

    def __init__(self, store: RunStore, run_id: str, stop_event: threading.Event):
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.store, self.run_id, self.stop_event = store, run_id, stop_event
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(HEARTBEAT_INTERVAL_S):
            try:
                self.store.update_run(self.run_id, heartbeat=time.time())
                if self.store.get_run(self.run_id)["stop_requested"]:
                    self.stop_event.set()
            except Exception as err:  # noqa: BLE001 - a missed beat must not kill training
                print(f"heartbeat: {err}", file=sys.stderr)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


def _stop_on_signals(stop_event: threading.Event):
    """SIGTERM and SIGINT ask for a graceful stop; returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum, frame):
        if stop_event.is_set():  # a second Ctrl-C: the user really wants out
            raise KeyboardInterrupt
        stop_event.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)

    def restore():
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def device_summary() -> str:
    """The devices JAX trains on, in words: ``cpu (2 cores)`` or ``gpu: NVIDIA H100 80GB HBM3``."""
    import jax

    devices = jax.local_devices()
    first = devices[0]
    if first.platform == "cpu":
        return f"cpu ({os.cpu_count()} cores)"
    count = f" x{len(devices)}" if len(devices) > 1 else ""
    return f"{first.platform}: {first.device_kind}{count}"


def package_versions() -> dict[str, str]:
    """Versions of what a result depends on, recorded with every run."""
    from importlib import metadata

    versions = {"python": sys.version.split()[0]}
    for name in ("keras", "jax", "jaxlib", "numpy", "scikit-learn", "scikit-image", "pillow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def code_version() -> str:
    """The git commit of the code (with ``-dirty`` for local changes), or a hash of ``core/``."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "core"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((root / "core").rglob("*.py")):
        digest.update(path.read_bytes())
    return "src-" + digest.hexdigest()[:12]

