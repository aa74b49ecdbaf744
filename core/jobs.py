"""Background training jobs: launch, queue, stop, resume, cancel, and crash detection.

A job is a run in the store plus a detached OS process running ``python -m core worker RUN``
(the same ``core.training.execute`` the foreground ``train`` uses). There is no scheduler
daemon: whoever changes the queue (a launch, a finishing worker, any reader that notices a
dead trainer) calls :func:`dispatch`, which starts queued runs while slots are free, under an
``IMMEDIATE`` transaction so two dispatchers never start the same run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core import training
from core.callbacks import read_train_state
from core.config import Config
from core.errors import UserError
from core.store import RunStore, this_host

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A graceful stop that has not ended the trainer after this long becomes a kill.
FORCE_STOP_AFTER_S = 30.0


def max_concurrent_jobs() -> int:
    """Runs that may train at once: ``$CONVGAN_MAX_JOBS``, else one per GPU, else one on CPU."""
    configured = os.environ.get("CONVGAN_MAX_JOBS")
    if configured:
        try:
            return max(1, int(configured))
        except ValueError as err:
            raise UserError(f"CONVGAN_MAX_JOBS must be a whole number, got {configured!r}") from err
    try:
        import jax

        gpus = [d for d in jax.local_devices() if d.platform != "cpu"]
    except RuntimeError:
        gpus = []
    return max(1, len(gpus))


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
    """Start queued runs, oldest first, while fewer than :func:`max_concurrent_jobs` are running.

    Returns:
        The ids of the runs started.
    """
    reconcile(store)
    limit = max_concurrent_jobs()
    now = time.time()
    with store.transaction() as conn:
        running = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
        free = limit - running
        claimed = []
        if free > 0:
            rows = conn.execute(
                "SELECT run_id FROM runs WHERE status = 'queued' ORDER BY created, run_id LIMIT ?", (free,)
            ).fetchall()
            claimed = [row["run_id"] for row in rows]
            for run_id in claimed:
                # Claimed: the fresh heartbeat covers the seconds until the worker beats itself.
                conn.execute(
                    "UPDATE runs SET status = 'running', heartbeat = ?, host = ?, pid = NULL WHERE run_id = ?",
                    (now, this_host(), run_id),
                )
    for run_id in claimed:
        _spawn_worker(store, run_id)
    return claimed


def _spawn_worker(store: RunStore, run_id: str) -> None:
    log_path = store.run_dir(run_id) / "train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CONVGAN_HOME": str(store.home), "PYTHONUNBUFFERED": "1"}
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
    """Body of a worker process: train (resuming from a checkpoint if there is one), then dispatch."""
    from core.callbacks import EpochLog

    run = store.get_run(run_id)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} worker {os.getpid()} on {this_host()}: "
          f"{run['model']} on {run['dataset']}", flush=True)
    try:
        run = training.execute(store, run_id, resume=True, extra_callbacks=[EpochLog()])
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {run['status']}" + (f": {run['error']}" if run["error"] else ""),
              flush=True)
        return run
    finally:
        dispatch(store)


def reconcile(store: RunStore) -> list[str]:
    """Mark running runs whose trainer is gone as ``interrupted``.

    A trainer is gone when its heartbeat is older than ``HEARTBEAT_TIMEOUT_S``, or, on this
    host, when its process no longer exists.

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


def stop(store: RunStore, run_id: str, *, wait: bool = True, force_after: float = FORCE_STOP_AFTER_S) -> dict[str, Any]:
    """Ask a running trainer to stop after its current step and save a checkpoint.

    A queued run is cancelled instead. If the trainer has not stopped after ``force_after``
    seconds it is killed (status ``stopped``; the last epoch checkpoint stays usable).

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
    deadline = time.monotonic() + force_after
    while time.monotonic() < deadline:
        run = store.get_run(run_id)
        if run["status"] != "running":
            return run
        if run["pid"] and run["host"] == this_host() and not _alive(run["pid"]):
            break
        time.sleep(0.2)
    run = store.get_run(run_id)
    if run["status"] == "running":
        if run["pid"] and run["host"] == this_host():
            _signal(run["pid"], signal.SIGKILL)
        store.update_run(run_id, status="stopped", pid=None, finished=time.time(),
                         error=f"did not stop within {force_after:.0f} s and was killed")
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


def resume(store: RunStore, run_id: str, *, epochs: int | None = None, background: bool = True) -> dict[str, Any]:
    """Continue a stopped, interrupted or failed run from its last checkpoint.

    Args:
        store: the run store.
        run_id: the run.
        epochs: new total number of epochs (to train longer than first planned).
        background: queue it as a background job; otherwise train in this process.

    Returns:
        The run record (queued/running when in the background, finished otherwise).

    Raises:
        UserError: the run is active, or ``epochs`` is not above the epochs already done.
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
    if epochs is not None:
        if epochs <= done:
            raise UserError(f"run {run_id} has done {done} epochs already: ask for more than {done}")
        config["epochs"] = epochs
    elif run["status"] == "completed":
        raise UserError(f"run {run_id} is completed: pass --epochs N (more than {done}) to train it further")
    store.update_run(run_id, config=config, stop_requested=0, error=None, finished=None,
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
