"""Runs one training job: the same code path for the CLI, background workers, the dashboard
(through background workers) and notebooks.

``train(config)`` validates everything that can be checked up front (config, dataset,
compatibility) before a run is created, so bad input leaves the store untouched. ``execute``
trains a run that already exists in the store; background workers call it with the run id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

from core.common import backend
from core.common.config import ClassifierConfig, Config, config_from_dict, config_to_dict
from core.common.errors import TrainingFailed, UserError
from core.common.parallel import data_parallel, single_device  # noqa: F401 - re-exported for bench, novelty, tests
from core.data.datasets import dataset_info, load_dataset
from core.evaluation import gan_metrics
from core.runs import slots
from core.store.store import RunStore, this_host
from core.training import classifier, gan, restoration, validation
from core.training.callbacks import read_train_state
from core.training.runctx import RunContext

log = logging.getLogger(__name__)

# A trainer writes its heartbeat this often; readers call a run interrupted when the
# heartbeat is older than HEARTBEAT_TIMEOUT_S (compilation never blocks the heartbeat thread).
HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_TIMEOUT_S = 30.0
# Stop events of the runs training in this process, outermost first: a GAN's reference
# classifier trains inside the GAN's run, and a stop of the GAN stops it too.
_ACTIVE_STOPS: list[threading.Event] = []
# The run id and devices of each run training in this process, outermost first: a run trained
# inside another (a GAN's reference classifier) trains on the devices of the run around it.
_TRAINING_ON: list[tuple[str, Any]] = []
# Epochs of the convnet trained when a GAN is scored and its data set has no reference classifier
# run yet (digits: seconds on CPU).
REFERENCE_EPOCHS = 5


def epoch_target(config: dict[str, Any]) -> int:
    """The epoch a run trains to: its last resume target, else its config's ``epochs``.

    ``config["epochs"]`` stays the target the run was launched with; each resume that asked for
    another total appends ``{"epochs": N, "at": ISO time}`` to ``config["extensions"]``.
    """
    extensions = config.get("extensions") or []
    return int(extensions[-1]["epochs"]) if extensions else int(config.get("epochs", 0))


def prepare(config: Config, store: RunStore | None = None, *, status: str = "queued") -> tuple[RunStore, str, Any]:
    """Validate ``config`` and its dataset, then create the run. Nothing is written on bad input.

    Returns:
        (store, run_id, dataset)

    Raises:
        UserError: bad config, unknown or unusable dataset.
    """
    config = config.validate()
    store = store or RunStore()
    data = load_dataset(config.dataset, image_size=config.image_size)
    validation.check_trainable(config, data)
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
        log.warning("note: %s", note)
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
    rather than raising; a stop request marks it ``stopped`` after saving a checkpoint, or,
    when it came while a GAN was being scored, with the scores computed so far and the names
    of those it skipped. A second Ctrl-C marks it ``stopped`` and re-raises KeyboardInterrupt.

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
    config = dataclasses.replace(config, epochs=epoch_target(run["config"]) or config.epochs)
    backend.enable_compilation_cache(str(store.cache_dir / "jax"))
    backend.keep_freed_memory()
    stop_event = threading.Event()
    store.update_run(
        run_id, status="running", started=run["started_ts"] or time.time(), finished=None, error=None,
        pid=os.getpid(), host=this_host(), heartbeat=time.time(), stop_requested=0,
        versions=package_versions(), code_version=code_version(),
    )
    outer = _TRAINING_ON[-1] if _TRAINING_ON else None
    heartbeat = _Heartbeat(store, run_id, stop_event, parent=_ACTIVE_STOPS[-1] if _ACTIVE_STOPS else None)
    heartbeat.start()
    _ACTIVE_STOPS.append(stop_event)
    restore_signals = _stop_on_signals()
    started = time.monotonic()
    final: dict[str, Any] = {}
    ctx = None
    interrupted = None
    try:
        if outer is None:
            train_on = slots.training_devices(store, run_id, config.devices)
        else:  # the GPUs of the run around it, held by that run already
            train_on = outer[1]
            store.update_run(run_id, gpus=",".join(store.get_run(outer[0])["gpus"]) or None)
        store.update_run(run_id, device=device_summary(train_on))
        _TRAINING_ON.append((run_id, train_on))
        if data is None:
            data = load_dataset(config.dataset, image_size=config.image_size)
        ctx = RunContext(store, run_id, config, stop_event=stop_event, extra_callbacks=tuple(extra_callbacks))
        if resume:
            _prepare_resume(store, run_id, ctx)
        fit = _family_trainer(config, store)
        with data_parallel(config.batch_size, train_on):
            final = fit(config, data, ctx) or {}
        if ctx.failure:
            status, error = "failed", ctx.failure
        elif ctx.stopped:
            status, error = "stopped", None
        elif ctx.skipped:
            status, error = "stopped", (
                f"stopped while scoring, after all {config.epochs} epochs trained: {', '.join(ctx.skipped)} "
                "not computed (resume the run to compute them)"
            )
        else:
            status, error = "completed", None
    except KeyboardInterrupt as err:  # a second Ctrl-C: out now, but the record says what happened
        status, error = "stopped", "stopped at once by a second Ctrl-C (the last epoch's checkpoint is kept)"
        interrupted = err
    except (UserError, TrainingFailed) as err:  # expected failures: one line, no traceback
        status, error = "failed", ctx.failure if ctx and ctx.failure else str(err)
        log.error("failed: %s", error)
    except Exception as err:  # noqa: BLE001 - any crash becomes a failed run with its reason
        status, error = "failed", f"{type(err).__name__}: {err}"
        log.exception("run %s crashed", run_id)
    finally:
        heartbeat.stop()
        _ACTIVE_STOPS.remove(stop_event)
        if _TRAINING_ON and _TRAINING_ON[-1][0] == run_id:
            _TRAINING_ON.pop()
        restore_signals()
    seconds = time.monotonic() - started
    summary = ctx.summary() if ctx else {}
    metrics = {**final, "seconds": seconds, **{k: v for k, v in summary.items() if v is not None},
               "peak_rss_mb": _peak_rss_mb()}
    if status != "completed":
        metrics = {**store.latest_metrics(run_id), **metrics}
    store.update_run(run_id, status=status, error=error, finished=time.time(), pid=None,
                     heartbeat=time.time(), metrics=metrics)
    if interrupted is not None:
        raise interrupted
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _family_trainer(config: Config, store: RunStore) -> Callable[..., dict[str, Any]]:
    """``fit(config, data, ctx)`` of the config's family; a GAN's makes sure of its reference
    classifier run (training one if missing) before it is scored."""
    if config.family == "classifier":
        return classifier.fit_classifier
    if config.family == "restoration":
        return restoration.fit_restoration
    ensure_reference = functools.partial(reference_run, config.dataset, store, image_size=config.image_size)
    return functools.partial(gan.fit_gan, reference_run=ensure_reference)


def reference_run(dataset_spec: str, store: RunStore | None = None, *, image_size: int | None = None,
                  epochs: int = REFERENCE_EPOCHS) -> dict[str, Any]:
    """Make sure a data set has a reference classifier run for GAN metrics, and return its record.

    The run is the one ``core.evaluation.gan_metrics.find_reference_run`` picks (the completed classifier
    run with the best ``test_accuracy``); when there is none, a ``convnet`` run is trained now
    and stays in the store, so the next call finds it (the run is the cache). Called inside a
    GAN's run, a stop of the GAN stops this training too.

    Args:
        dataset_spec: the data set spec, as in ``GANConfig.dataset``.
        store: the run store (default: ``$CONVGAN_HOME``).
        image_size: the image size the GAN trains at (None = native).
        epochs: epochs of the convnet trained when no run exists.

    Returns:
        The classifier run's record.

    Raises:
        UserError: unknown or unlabeled data set.
        TrainingFailed: the reference classifier's run did not complete.
    """
    store = store if store is not None else RunStore()
    run = gan_metrics.find_reference_run(store, dataset_spec, image_size=image_size)
    if run is not None:
        return run
    name = dataset_info(dataset_spec).name
    run = train(ClassifierConfig(model="convnet", dataset=name, epochs=epochs, image_size=image_size), store=store)
    if run["status"] != "completed":
        raise TrainingFailed(
            f"the reference classifier run {run['run_id']} for {name} ended {run['status']}: "
            f"{run.get('error') or 'see its train.log'}"
        )
    return run


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


class _Heartbeat(threading.Thread):
    """Writes the run's heartbeat every second and turns a stop request in the store, or a stop
    of the run it trains inside (``parent``), into ``stop_event``."""

    def __init__(self, store: RunStore, run_id: str, stop_event: threading.Event,
                 parent: threading.Event | None = None):
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.store, self.run_id, self.stop_event, self.parent = store, run_id, stop_event, parent
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(HEARTBEAT_INTERVAL_S):
            try:
                self.store.update_run(self.run_id, heartbeat=time.time())
                if self.store.get_run(self.run_id)["stop_requested"] or (self.parent and self.parent.is_set()):
                    self.stop_event.set()
            except Exception as err:  # noqa: BLE001 - a missed beat must not kill training
                log.warning("heartbeat: %s", err)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


def _stop_on_signals():
    """SIGTERM and SIGINT ask every run training in this process for a graceful stop; returns a
    function restoring the old handlers.

    SIGTERM only ever asks (``jobs.stop`` may send it again while a trainer finishes its step or
    its scoring); a second SIGINT (Ctrl-C) raises KeyboardInterrupt, to get out at once.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}
    interrupts = []

    def handler(signum, frame):
        if signum == signal.SIGINT:
            interrupts.append(signum)
            if len(interrupts) > 1:  # a second Ctrl-C: the user really wants out
                raise KeyboardInterrupt
        for event in _ACTIVE_STOPS:
            event.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)

    def restore():
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def device_summary(devices: Sequence[jax.Device] | None = None) -> str:
    """The devices a run trains on, in words: ``cpu (2 cores)`` or ``gpu: NVIDIA H100 80GB HBM3 x2``,
    with the ``CUDA_VISIBLE_DEVICES`` this process was given when it was given one.

    Args:
        devices: the devices (default: all of JAX's local devices).
    """
    devices = list(devices) if devices else jax.local_devices()
    first = devices[0]
    if first.platform == "cpu":
        summary = f"cpu ({os.cpu_count()} cores)"
    else:
        count = f" x{len(devices)}" if len(devices) > 1 else ""
        summary = f"{first.platform}: {first.device_kind}{count}"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return summary if visible is None else f"{summary}, CUDA_VISIBLE_DEVICES={visible}"


def package_versions() -> dict[str, str]:
    """Versions of what a result depends on, recorded with every run."""
    versions = {"python": sys.version.split()[0]}
    for name in ("keras", "jax", "jaxlib", "numpy", "scikit-learn", "scikit-image", "pillow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def code_version() -> str:
    """The git commit of the code (with ``-dirty`` for local changes), or a hash of ``core/``."""
    root = Path(__file__).resolve().parents[2]  # the checkout: core/runs/training.py
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "core"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    digest = hashlib.sha256()
    for path in sorted((root / "core").rglob("*.py")):
        digest.update(path.read_bytes())
    return "src-" + digest.hexdigest()[:12]

