"""Background jobs with real trainer processes: queue, stop, kill -9, resume, cancel."""

import os
import signal
import subprocess
import sys
import time

import pytest

from core.common.config import config_for
from core.runs import jobs
from core.training.callbacks import read_train_state
from tests.polling import wait_for

pytestmark = pytest.mark.xdist_group("jobs")


def _status(store, run_id):
    jobs.reconcile(store)
    return store.get_run(run_id)["status"]


@pytest.fixture
def one_slot(monkeypatch):
    monkeypatch.setenv("CONVGAN_MAX_JOBS", "1")


def test_three_launches_run_one_at_a_time_in_order(store, one_slot):
    config = config_for("convnet", dataset="digits", epochs=1, batch_size=128)
    ids = [jobs.launch(config, store) for _ in range(3)]
    statuses = [store.get_run(run_id)["status"] for run_id in ids]
    assert statuses == ["running", "queued", "queued"]
    wait_for(lambda: all(_status(store, r) == "completed" for r in ids), 240, "all three runs to complete")
    runs = [store.get_run(run_id) for run_id in ids]
    assert all(run["pid"] is None for run in runs)
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert earlier["finished_ts"] <= later["started_ts"], "queued run started before the previous finished"
    log = jobs.read_log(store, ids[0])
    assert "epoch 1/1:" in log and "completed" in log


def test_cancel_queued_run(store, one_slot):
    config = config_for("convnet", dataset="digits", epochs=30)
    first = jobs.launch(config, store)
    second = jobs.launch(config, store)
    assert store.get_run(second)["status"] == "queued"
    assert jobs.cancel(store, second)["status"] == "cancelled"
    with pytest.raises(Exception, match="not queued"):
        jobs.cancel(store, second)
    jobs.stop(store, first)
    assert store.get_run(second)["status"] == "cancelled"  # never started by the freed slot


def test_graceful_stop_saves_checkpoint_within_seconds(store, one_slot):
    run_id = jobs.launch(config_for("convnet", dataset="digits", epochs=200), store)
    wait_for(lambda: store.metrics(run_id, scope="step"), 120, "first step metrics")
    started = time.monotonic()
    run = jobs.stop(store, run_id)
    seconds = time.monotonic() - started
    print(f"stop took {seconds:.2f} s")
    assert run["status"] == "stopped"
    assert seconds < 5.0
    assert run["error"] is None
    checkpoints = list((store.run_dir(run_id) / "checkpoints").glob("*.keras"))
    assert checkpoints, "a stopped run keeps a checkpoint"


def test_kill_9_is_interrupted_then_resume_continues_without_duplicates(store, one_slot):
    run_id = jobs.launch(config_for("convnet", dataset="digits", epochs=40, log_every_steps=5), store)
    run_dir = store.run_dir(run_id)
    wait_for(lambda: (read_train_state(run_dir) or {}).get("epochs_done", 0) >= 2, 120, "two checkpointed epochs")
    pid = store.get_run(run_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _status(store, run_id) == "interrupted", 20, "interrupted status")
    before = store.metrics(run_id)
    assert before, "metrics written before the kill are kept"
    state = read_train_state(run_dir)
    # Resume with fewer epochs so the test stays short; it must continue from the checkpoint.
    done = state["epochs_done"]
    resumed = subprocess.run(
        [sys.executable, "-m", "core", "resume", run_id, "--epochs", str(done + 3), "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "CONVGAN_HOME": str(store.home)},
    )
    assert resumed.returncode == 0, resumed.stderr
    run = store.get_run(run_id)
    assert run["status"] == "completed"
    epoch_steps = store.metric_table(run_id, "epoch")["step"]
    steps_per_epoch = state["steps_per_epoch"]
    assert epoch_steps == [steps_per_epoch * e for e in range(1, done + 4)], "no gap, no duplicate"
    kept = {(r["scope"], r["step"], r["name"]): r["value"] for r in before if r["step"] <= state["global_step"]}
    after = {(r["scope"], r["step"], r["name"]): r["value"] for r in store.metrics(run_id)}
    assert all(after[key] == value for key, value in kept.items()), "history before the checkpoint unchanged"
    step_rows = [(r["step"], r["name"]) for r in store.metrics(run_id, scope="step")]
    assert len(step_rows) == len(set(step_rows))


def test_stale_heartbeat_is_interrupted(store):
    run_id = store.create_run(family="classifier", model="convnet", dataset="digits", config={}, status="running")
    store.update_run(run_id, heartbeat=time.time() - 3600, host="another-host", pid=4242)
    assert jobs.reconcile(store) == [run_id]
    run = store.get_run(run_id)
    assert run["status"] == "interrupted" and run["pid"] is None and "without a word" in run["error"]
    fresh = store.create_run(family="classifier", model="convnet", dataset="digits", config={}, status="running")
    store.update_run(fresh, heartbeat=time.time(), host="another-host", pid=4242)
    assert jobs.reconcile(store) == []


def test_resume_refuses_active_and_completed_without_more_epochs(store):
    run_id = store.create_run(family="classifier", model="convnet", dataset="digits",
                              config={"model": "convnet", "epochs": 1}, status="running")
    store.update_run(run_id, heartbeat=time.time())
    with pytest.raises(Exception, match="already running"):
        jobs.resume(store, run_id)
    store.update_run(run_id, status="completed")
    with pytest.raises(Exception, match="--epochs"):
        jobs.resume(store, run_id)
