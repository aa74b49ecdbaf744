"""The queue moves within 5 s of a slot freeing, however the run before ended: completed,
stopped, failed (each worker dispatches on its way out) and kill -9 (noticed by the next CLI
command, or within seconds by a front end's Dispatcher), with real trainer processes."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from core.common.config import config_for, config_to_dict
from core.runs import jobs
from tests.polling import wait_for

pytestmark = pytest.mark.xdist_group("jobs")

# The bound: a queued run leaves ``queued`` this soon after its slot frees.
SLOT_TO_START_S = 5.0


class QueueClock:
    """Polls the store (reading only: no reconcile, no dispatch) and notes the wall time at
    which each run was first seen out of ``queued``."""

    def __init__(self, store):
        self.store, self.left_queue = store, {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        while not self._done.wait(0.05):
            now = time.time()
            for run in self.store.list_runs():
                if run["status"] != "queued":
                    self.left_queue.setdefault(run["run_id"], now)

    def close(self):
        self._done.set()
        self._thread.join()


@pytest.fixture
def queue(store, monkeypatch):
    """One slot, a QueueClock, and no trainer left behind (SIGKILL at teardown)."""
    monkeypatch.setenv("CONVGAN_MAX_JOBS", "1")
    clock = QueueClock(store)
    yield clock
    clock.close()
    for run in store.list_runs(status="running"):
        if run["pid"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(run["pid"], signal.SIGKILL)


def _vanished_dataset_run(store, tmp_path):
    # What a launch leaves queued when its image folder is deleted before the run's turn:
    # its worker fails at once ("no images found"), a real failed ending.
    config = config_to_dict(config_for("convnet", dataset=str(tmp_path / "deleted-folder"), epochs=1))
    return store.create_run(family="classifier", model="convnet", dataset=config["dataset"], config=config,
                            status="queued")


def _assert_started_soon(clock, store, before, after, freed_at=None):
    freed_at = freed_at if freed_at is not None else store.get_run(before)["finished_ts"]
    left = wait_for(lambda: clock.left_queue.get(after), 30, f"{after} to leave the queue")
    print(f"{after} left the queue {left - freed_at:.2f} s after {before} freed its slot")
    assert left - freed_at < SLOT_TO_START_S, f"{after} stayed queued {left - freed_at:.1f} s after the slot freed"


def test_queue_moves_after_completed_stopped_and_failed_runs(store, queue, tmp_path):
    completes = jobs.launch(config_for("convnet", dataset="digits", epochs=1, batch_size=128), store)
    stopped = jobs.launch(config_for("convnet", dataset="digits", epochs=50), store)
    fails = _vanished_dataset_run(store, tmp_path)
    last = _vanished_dataset_run(store, tmp_path)
    assert [store.get_run(r)["status"] for r in (completes, stopped, fails, last)] == [
        "running", "queued", "queued", "queued"]

    wait_for(lambda: store.get_run(completes)["status"] != "running", 240, "the first run to end")
    assert store.get_run(completes)["status"] == "completed"
    _assert_started_soon(queue, store, completes, stopped)

    wait_for(lambda: store.metrics(stopped, scope="step"), 240, "the second run's first steps")
    jobs.stop(store, stopped, wait=False)  # the dashboard's Stop: nothing waits in this process
    wait_for(lambda: store.get_run(stopped)["status"] != "running", 60, "the second run to stop")
    assert store.get_run(stopped)["status"] == "stopped"
    _assert_started_soon(queue, store, stopped, fails)

    wait_for(lambda: store.get_run(fails)["status"] not in ("queued", "running"), 120, "the third run to fail")
    failed = store.get_run(fails)
    assert failed["status"] == "failed" and "deleted-folder" in failed["error"], failed["error"]
    _assert_started_soon(queue, store, fails, last)


def test_queue_moves_after_kill_9_at_the_next_cli_command_or_within_seconds_with_a_front_end_open(
    store, queue, tmp_path
):
    first = jobs.launch(config_for("convnet", dataset="digits", epochs=50), store)
    second = jobs.launch(config_for("convnet", dataset="digits", epochs=50), store)
    third = _vanished_dataset_run(store, tmp_path)
    wait_for(lambda: store.metrics(first, scope="step"), 240, "the first run's first steps")

    # No front end open: nothing alive can notice; the next CLI command does, when it starts.
    os.kill(store.get_run(first)["pid"], signal.SIGKILL)
    time.sleep(1.0)
    assert store.get_run(second)["status"] == "queued"
    cli_started = time.time()
    listed = subprocess.run([sys.executable, "-m", "core", "show", first], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "CONVGAN_HOME": str(store.home)})
    assert listed.returncode == 0, listed.stderr
    assert "interrupted" in listed.stdout
    assert store.get_run(second)["status"] != "queued", "the CLI command left the freed slot empty"
    assert queue.left_queue[second] >= cli_started

    # A front end open (the dashboard's server runs this Dispatcher): within seconds.
    dispatcher = jobs.watch(store)
    try:
        wait_for(lambda: store.metrics(second, scope="step"), 240, "the second run's first steps")
        killed_at = time.time()
        os.kill(store.get_run(second)["pid"], signal.SIGKILL)
        _assert_started_soon(queue, store, second, third, freed_at=killed_at)
    finally:
        dispatcher.stop()
    assert not dispatcher.alive
    for run_id in (first, second):
        run = store.get_run(run_id)
        assert run["status"] == "interrupted" and "without a word" in run["error"]
