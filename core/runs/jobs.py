"""Background training jobs: launch, queue, stop, resume, cancel, and crash detection.

A job is a run in the store plus a detached OS process running ``python -m core worker RUN``
(the same ``core.runs.training.execute`` the foreground ``train`` uses). There is no scheduler
daemon: whoever changes the queue (a launch, a stop, a resume, a worker on its way out
however its run ended) calls :func:`dispatch`, which starts queued runs while slots are free,
under an ``IMMEDIATE`` transaction so two dispatchers never start the same run. A trainer
killed with ``kill -9`` says nothing; a :class:`Dispatcher` thread in the dashboard's server
notices its dead pid within seconds, and every CLI command dispatches when it starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.common import devices
from core.common.config import Config
from core.common.errors import UserError
from core.runs import slots, training
from core.store.store import RunStore, iso, this_host
from core.training.callbacks import EpochLog, read_train_state

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout: core/runs/jobs.py
# How long ``stop`` waits for a trainer to end; a trainer that keeps its heartbeat is never
# killed (it ends after its current step or scoring phase), one that lost it for
# ``training.HEARTBEAT_TIMEOUT_S`` is.
STOP_WAIT_S = 60.0
# How often a Dispatcher looks for dead trainers and free slots.
WATCH_INTERVAL_S = 2.0


def max_concurrent_jobs() -> int:
    """Runs that may train at once: ``$CONVGAN_MAX_JOBS``, else one per GPU ConvGAN may use (the
    most there can be: each takes a GPU at least, :func:`dispatch` counts GPUs), else one on a
    CPU-only host."""
    configured = os.environ.get("CONVGAN_MAX_JOBS")
    if configured:
        try:
            return max(1, int(configured))
        except ValueError as err:
            raise UserError(f"CONVGAN_MAX_JOBS must be a whole number, got {configured!r}") from err
    return max(1, len(devices.gpu_ids()))


def launch(config: Config, store: RunStore | None = None) -> str:
    """Queue a training run and start it in the background when a slot is free.

    Returns:
        The run id (status ``queued`` or ``running``).

    Raises:
        UserError: bad config or dataset; nothing is queued then.
    """
    store, run_id, _ = training.prepare(config, store, status="queued")
    dispatch(store)
    return run_id


def dispatch(store: RunStore) -> list[str]:
    """Start queued runs, oldest first, while slots are free.

    On a host with GPUs (``devices.gpu_ids()``) a run starts when as many GPUs as it asks for are
    free; they are recorded on the run, and its worker sees only them (``CUDA_VISIBLE_DEVICES``).
    The queue is first in, first out: a run waiting for GPUs holds back the runs queued after it.
    A run asking for more GPUs than the host has fails at once. On a CPU-only host, or where
    ``$CONVGAN_MAX_JOBS`` is set, at most :func:`max_concurrent_jobs` runs train at once.

    Returns:
        The ids of the runs started.
    """
    reconcile(store)
    if not store.list_runs(status="queued", limit=1):
        return []
    inventory = devices.gpu_ids()
    # On GPUs the free GPUs decide; a count of jobs limits a CPU-only host, or where CONVGAN_MAX_JOBS says.
    limit = max_concurrent_jobs() if not inventory or os.environ.get("CONVGAN_MAX_JOBS") else None
    now = time.time()
    claimed: dict[str, list[str]] = {}  # run id -> its GPUs
    with store.transaction() as conn:
        running = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
        taken = slots.busy(conn)
        free = [gpu for gpu in inventory if gpu not in taken]
        queued = conn.execute("SELECT run_id, config FROM runs WHERE status = 'queued' ORDER BY created, run_id")
        for row in queued.fetchall():
            if limit is not None and running + len(claimed) >= limit:
                break
            asked = slots.wanted(row["config"], len(inventory)) if inventory else 0
            if asked > len(inventory) and inventory:
                conn.execute(
                    "UPDATE runs SET status = 'failed', finished = ?, error = ? WHERE run_id = ?",
                    (now, f"it asks for {asked} GPUs, but ConvGAN may use {len(inventory)} here "
                          f"({', '.join(inventory)}): launch it again with fewer devices", row["run_id"]),
                )
                continue
            if asked > len(free):
                break  # first in, first out: it waits for its GPUs, and the later runs wait behind it
            claimed[row["run_id"]], free = free[:asked], free[asked:]
        for run_id, gpus in claimed.items():
            # Claimed: the fresh heartbeat covers the seconds until the worker beats itself.
            conn.execute(
                "UPDATE runs SET status = 'running', heartbeat = ?, host = ?, pid = NULL, gpus = ? WHERE run_id = ?",
                (now, this_host(), ",".join(gpus) or None, run_id),
            )
    for run_id, gpus in claimed.items():
        _spawn_worker(store, run_id, gpus, inventory)
    return list(claimed)


def _spawn_worker(store: RunStore, run_id: str, gpus: list[str], inventory: list[str]) -> None:
    log_path = store.run_dir(run_id) / "train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CONVGAN_HOME": str(store.home), "PYTHONUNBUFFERED": "1"}
    if inventory or devices.GPUS_ENV in os.environ:
        # The worker's JAX sees only its own GPUs (none: the CPU); the whole inventory goes with it,
        # for the dispatch it makes on its way out.
        env.update(CUDA_VISIBLE_DEVICES=",".join(gpus), **{devices.GPUS_ENV: ",".join(inventory) or "none"})
    try:
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "core", "worker", run_id],
                cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,  # survives the dashboard or shell that launched it
            )
    except OSError as err:
        store.update_run(run_id, status="failed", error=f"could not start the trainer: {err}", finished=time.time())
        return
    store.update_run(run_id, pid=process.pid)


def work(store: RunStore, run_id: str) -> dict[str, Any]:
    """Body of a worker process: train (resuming from a checkpoint if there is one), then
    dispatch the queue, however training ended."""
    try:
        run = store.get_run(run_id)
        log.info("worker %d on %s: %s on %s%s", os.getpid(), this_host(), run["model"], run["dataset"],
                 f", GPUs {','.join(run['gpus'])}" if run["gpus"] else "")
        run = training.execute(store, run_id, resume=True, extra_callbacks=[EpochLog()])
        log.info("%s%s", run["status"], f": {run['error']}" if run["error"] else "")
        return run
    except BaseException as err:  # execute records its own endings; this is for what escaped it
        with store.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = 'failed', pid = NULL, finished = ?, error = ?"
                " WHERE run_id = ? AND status = 'running'",
                (time.time(), f"the trainer could not run: {type(err).__name__}: {err}", run_id),
            )
        raise
    finally:
        dispatch(store)


def reconcile(store: RunStore) -> list[str]:
    """Mark running runs whose trainer is gone as ``interrupted``.

    A trainer is gone when its heartbeat is older than ``HEARTBEAT_TIMEOUT_S``, or, on this
    host, when its process no longer exists. :func:`dispatch` reconciles first, so a slot
    freed by ``kill -9`` goes to the next queued run at the next dispatch.

    Returns:
        The ids of the runs marked interrupted.
    """
    now = time.time()
    host = this_host()
    gone = []
    for run in store.list_runs(status="running"):
        stale = run["heartbeat_ts"] is None or now - run["heartbeat_ts"] > training.HEARTBEAT_TIMEOUT_S
        dead = run["host"] == host and run["pid"] is not None and not _alive(run["pid"])
        if stale or dead:
            gone.append(run["run_id"])
    for run_id in gone:
        with store.transaction() as conn:  # re-check under the lock: it may have just finished
            conn.execute(
                "UPDATE runs SET status = 'interrupted', pid = NULL, finished = ?,"
                " error = 'the trainer stopped without a word (killed, out of memory or machine restart)'"
                " WHERE run_id = ? AND status = 'running'",
                (now, run_id),
            )
    return gone


class Dispatcher:
    """A daemon thread that dispatches ``store`` (reconciling first) every ``interval`` seconds.

    Front ends that stay open (the dashboard's server) run one, so a queued run starts within
    seconds of a slot freeing, even when its trainer was killed without a word.

    Args:
        store: the run store.
        interval: seconds between looks.
    """

    def __init__(self, store: RunStore, interval: float = WATCH_INTERVAL_S):
        self.store, self.interval = store, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"dispatcher-{store.home.name}", daemon=True)

    def start(self) -> Dispatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            try:
                dispatch(self.store)
            except Exception as err:  # noqa: BLE001 - a busy or vanished store must not end the watch
                log.warning("dispatcher: %s: %s", type(err).__name__, err)
            if self._done.wait(self.interval):
                return


def watch(store: RunStore, interval: float = WATCH_INTERVAL_S) -> Dispatcher:
    """Start a :class:`Dispatcher` for ``store`` (its first look is at once) and return it."""
    return Dispatcher(store, interval).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a dead child of this process stays a zombie until reaped
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def stop(store: RunStore, run_id: str, *, wait: bool = True, wait_s: float = STOP_WAIT_S) -> dict[str, Any]:
    """Ask a running trainer to stop after its current step (or scoring phase) and save a checkpoint.

    A queued run is cancelled instead. A trainer that keeps its heartbeat is never killed: a
    stop ends ``stopped`` with what it had computed. Only a trainer whose heartbeat stopped
    for ``training.HEARTBEAT_TIMEOUT_S`` is killed, and its record says so.

    Args:
        store: the run store.
        run_id: the run.
        wait: wait until the trainer has ended (at most ``wait_s`` seconds).
        wait_s: the longest wait; the record is returned as it is then.

    Returns:
        The run record after the stop (or at once when ``wait`` is False).

    Raises:
        UserError: the run is not running or queued.
    """
    run = store.get_run(run_id)
    if run["status"] == "queued":
        return cancel(store, run_id)
    if run["status"] != "running":
        raise UserError(f"run {run_id} is {run['status']}, not running")
    store.update_run(run_id, stop_requested=1)
    if run["pid"] and run["host"] == this_host():
        _signal(run["pid"], signal.SIGTERM)
    if not wait:
        return store.get_run(run_id)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        run = store.get_run(run_id)
        if run["status"] != "running":
            return run
        local = run["pid"] and run["host"] == this_host()
        if local and not _alive(run["pid"]):
            break  # it died without recording an ending: reconcile says so below
        beat = run["heartbeat_ts"]
        if local and beat is not None and time.time() - beat > training.HEARTBEAT_TIMEOUT_S:
            _signal(run["pid"], signal.SIGKILL)
            with store.transaction() as conn:
                conn.execute(
                    "UPDATE runs SET status = 'stopped', pid = NULL, finished = ?, error = ?"
                    " WHERE run_id = ? AND status = 'running'",
                    (time.time(), f"its heartbeat stopped for over {training.HEARTBEAT_TIMEOUT_S:.0f} s "
                                  "after the stop request, so it was killed (the last epoch's checkpoint is kept)",
                     run_id),
                )
            break
        time.sleep(0.2)
    dispatch(store)
    return store.get_run(run_id)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def cancel(store: RunStore, run_id: str) -> dict[str, Any]:
    """Take a queued run off the queue (status ``cancelled``).

    Raises:
        UserError: the run is not queued.
    """
    with store.transaction() as conn:
        updated = conn.execute(
            "UPDATE runs SET status = 'cancelled', finished = ? WHERE run_id = ? AND status = 'queued'",
            (time.time(), run_id),
        ).rowcount
    if not updated:
        run = store.get_run(run_id)
        hint = ": use stop" if run["status"] == "running" else ""
        raise UserError(f"run {run_id} is {run['status']}, not queued{hint}")
    return store.get_run(run_id)


def resume_target(store: RunStore, run_id: str) -> int | None:
    """The epoch a resume without ``epochs`` trains to: the run's current target (the one it
    was launched with, or its last extension), or None for a completed run (it needs a new
    target)."""
    run = store.get_run(run_id)
    return None if run["status"] == "completed" else training.epoch_target(run["config"])


def resume(store: RunStore, run_id: str, *, epochs: int | None = None, background: bool = True) -> dict[str, Any]:
    """Continue a stopped, interrupted or failed run from its last checkpoint.

    Without ``epochs`` the run trains to its target (:func:`resume_target`); a run stopped
    after its last epoch (while being scored) then only computes what it skipped. A new
    target is recorded as an extension in ``config["extensions"]`` (``{"epochs", "at"}``);
    ``config["epochs"]`` keeps the target the run was launched with.

    Args:
        store: the run store.
        run_id: the run.
        epochs: new total number of epochs (to train longer than planned).
        background: queue it as a background job; otherwise train in this process.

    Returns:
        The run record (queued/running when in the background, finished otherwise).

    Raises:
        UserError: the run is active or was cancelled, ``epochs`` is not above the epochs
            already done, or the run is completed and no ``epochs`` is given.
    """
    reconcile(store)
    run = store.get_run(run_id)
    if run["status"] in ("queued", "running"):
        raise UserError(f"run {run_id} is already {run['status']}")
    if run["status"] == "cancelled":
        raise UserError(f"run {run_id} was cancelled before it started: launch it again instead")
    config = dict(run["config"])
    state = read_train_state(store.run_dir(run_id))
    done = state["epochs_done"] if state else 0
    target = training.epoch_target(config)
    if epochs is None and run["status"] == "completed":
        raise UserError(f"run {run_id} is completed: pass --epochs N (more than {done}) to train it further")
    if epochs is not None and epochs <= done:
        raise UserError(f"run {run_id} has done {done} epochs already: ask for more than {done}")
    if epochs is not None and epochs != target:
        extension = {"epochs": int(epochs), "at": iso(time.time())}
        config["extensions"] = [*(config.get("extensions") or []), extension]
    store.update_run(run_id, config=config, stop_requested=0, error=None, finished=None, gpus=None,
                     status="queued" if background else "running")
    if background:
        dispatch(store)
        return store.get_run(run_id)
    return training.execute(store, run_id, resume=True)


def read_log(store: RunStore, run_id: str) -> str:
    """The text of a run's ``train.log`` ('' when there is none)."""
    path = store.run_dir(run_id) / "train.log"
    return path.read_text(errors="replace") if path.exists() else ""


def follow_log(store: RunStore, run_id: str, out=sys.stdout, poll: float = 0.5) -> None:
    """Print a run's log and keep printing what is appended until the run is no longer active."""
    path = store.run_dir(run_id) / "train.log"
    position = 0
    while True:
        if path.exists():
            with open(path, errors="replace") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
            if chunk:
                out.write(chunk)
                out.flush()
        reconcile(store)
        if store.get_run(run_id)["status"] not in ("queued", "running"):
            if path.exists() and path.stat().st_size > position:
                continue
            return
        time.sleep(poll)
