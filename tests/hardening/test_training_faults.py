"""Long jobs that go wrong: a diverging loss, a full disk while checkpointing, and ``kill -9`` at
random moments. Each ends in a consistent store, keeps the last good checkpoint, and resumes.

Real training on the embedded digits, real trainer processes, a real full file system (a small
tmpfs mounted over the run's checkpoint folder, which needs root).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.common.config import config_for
from core.runs import jobs, training
from core.store import checkpoints
from core.store.store import RunStore
from core.training.callbacks import read_train_state

pytestmark = [pytest.mark.xdist_group("hardening_runs"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _finite_model(path: Path):
    """Load a checkpoint and check every weight and a prediction are finite."""
    from core.data.datasets import load_dataset

    model = checkpoints.load_model(path)
    assert all(np.isfinite(np.asarray(weight)).all() for weight in model.weights), f"{path.name} holds NaN"
    probabilities = model.predict(load_dataset("digits").x_test[:64], verbose=0)
    assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    return model


def _epoch_table_is_consistent(store: RunStore, run_id: str, epochs: int, steps_per_epoch: int) -> None:
    table = store.metric_table(run_id, "epoch")
    assert table["step"] == [steps_per_epoch * epoch for epoch in range(1, epochs + 1)], table["step"]
    assert table["epoch"] == list(range(1, epochs + 1))
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert all(value is not None for value in table[name]), (name, table[name])
    steps = [(row["step"], row["name"]) for row in store.metrics(run_id, scope="step")]
    assert len(steps) == len(set(steps)) and all(step <= epochs * steps_per_epoch for step, _ in steps)


# ---- a diverging loss ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """``python -m core train`` with a learning rate of 1e6, as a user could type it.

    AdamW's decoupled weight decay multiplies each weight by (1 - lr * decay) per step: once the
    warm-up has brought lr * decay past 2 that factor grows without bound, and within a few
    epochs the weights overflow to inf and the loss to NaN. The warm-up spans 10% of all steps
    (of 1000 epochs here), so the first epochs are still finite and leave good checkpoints.
    """
    home = tmp_path_factory.mktemp("diverged")
    argv = ["train", "--model", "convnet", "--dataset", "digits", "--epochs", "1000", "--batch-size", "32",
            "--lr", "1e6", "--json"]
    result = subprocess.run([sys.executable, "-m", "core", *argv], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "CONVGAN_HOME": str(home)})
    return RunStore(home), result


def test_nan_loss_fails_the_run_with_the_reason_and_keeps_the_last_good_checkpoint(diverged):
    store, result = diverged
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    report = json.loads(result.stdout.strip().splitlines()[-1])
    run = store.get_run(report["run_id"])
    assert report["status"] == run["status"] == "failed"
    # The loss, or a weight before the loss (batch-norm statistics can overflow first), went NaN.
    assert ("loss" in run["error"] or "weight" in run["error"]) and "nan" in run["error"].lower(), run["error"]
    assert "\n" not in run["error"]
    state = read_train_state(store.run_dir(run["run_id"]))
    assert state is not None, "no checkpoint survived: the run diverged in its first epoch"
    done = state["epochs_done"]
    assert 1 <= done < 1000
    found = checkpoints.list_checkpoints(store.run_dir(run["run_id"]))
    assert max(found) == done, "a checkpoint was written after the loss went bad"
    _finite_model(found[done])
    losses = store.metric_table(run["run_id"], "epoch")
    good = [value for epoch, value in zip(losses["epoch"], losses["loss"], strict=True) if epoch <= done]
    assert len(good) == done and all(value is not None and math.isfinite(value) for value in good)


def test_nan_loss_is_reported_in_one_line_without_a_traceback(diverged):
    store, result = diverged
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


# ---- a full disk -----------------------------------------------------------------------------------


def _mount_tmpfs(folder: Path, size_bytes: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint_and_resumes(store, trained_classifier):
    # Room for one checkpoint of this model but not for a second beside it.
    home, reference_run = trained_classifier
    size = checkpoints.checkpoint_path(RunStore(home), reference_run).stat().st_size
    config = config_for("convnet", dataset="digits", epochs=3, batch_size=64)
    store, run_id, data = training.prepare(config, store, status="running")
    folder = store.run_dir(run_id) / "checkpoints"
    _mount_tmpfs(folder, int(size * 1.5))
    try:
        run = training.execute(store, run_id, data=data)
        assert run["status"] == "failed", (run["status"], run["error"])
        assert "No space left on device" in run["error"] and "\n" not in run["error"], run["error"]
        state = read_train_state(store.run_dir(run_id))
        assert state["checkpoint"] == "epoch_001.keras" and state["epochs_done"] == 1
        assert sorted(path.name for path in folder.iterdir()) == ["epoch_001.keras"], "a partial file was left"
        _finite_model(folder / "epoch_001.keras")
        # Space comes back (the tmpfs grows, as a user would free space): the run resumes.
        subprocess.run(["mount", "-o", "remount,size=16m", str(folder)], check=True)
        run = jobs.resume(store, run_id, background=False)
        assert run["status"] == "completed", run["error"]
        assert sorted(checkpoints.list_checkpoints(store.run_dir(run_id))) == [1, 2, 3]
        _epoch_table_is_consistent(store, run_id, 3, 1437 // 64)  # whole batches only
    finally:
        subprocess.run(["umount", str(folder)], check=False)


# ---- kill -9 at random moments -------------------------------------------------------------------


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _kill_at_a_random_moment(store: RunStore, run_id: str, rng: random.Random, done_before: int) -> str:
    """Wait for a randomly chosen phase of the trainer, then a random delay, then SIGKILL it."""
    run_dir = store.run_dir(run_id)
    phase = rng.choice(["starting", "compiling", "training", "checkpoint"])

    seen = set()  # phases this trainer reported (the record still shows the previous trainer's)

    def reached():
        run = store.get_run(run_id)
        if run["status"] != "running":
            return True
        seen.add((run["progress"] or {}).get("phase"))
        if phase == "compiling":
            return "compiling" in seen
        if phase == "training":
            return "compiling" in seen and (run["progress"] or {}).get("phase") == "training"
        if phase == "checkpoint":
            return ((read_train_state(run_dir) or {}).get("epochs_done") or 0) > done_before
        return True

    assert _wait(reached, 240), f"the trainer never reached {phase}"
    delay = rng.uniform(0.0, 3.0 if phase == "starting" else 1.0)
    time.sleep(delay)
    pid = store.get_run(run_id)["pid"]
    if pid:
        with contextlib.suppress(ProcessLookupError):  # it may have just finished
            os.kill(pid, signal.SIGKILL)
    return f"{phase}+{delay:.2f}s"


def _check_after_kill(store: RunStore, run_id: str, moment: str) -> int:
    """The store is consistent right after a kill; returns the epochs the checkpoint holds."""

    def settled():  # SIGKILL takes effect within milliseconds; reconcile sees the dead trainer
        jobs.reconcile(store)
        return store.get_run(run_id)["status"] != "running"

    assert _wait(settled, 10), (moment, "still running 10 s after kill -9")
    run = store.get_run(run_id)
    assert run["status"] in ("interrupted", "completed"), (moment, run["status"])
    assert run["pid"] is None, moment
    state = read_train_state(store.run_dir(run_id))
    if state is None:
        return 0
    path = store.run_dir(run_id) / "checkpoints" / state["checkpoint"]
    assert path.exists(), (moment, state)
    assert state["global_step"] == state["epochs_done"] * state["steps_per_epoch"], (moment, state)
    checkpoints.load_model(path)
    epoch_steps = store.metric_table(run_id, "epoch")["step"]
    assert epoch_steps == sorted(set(epoch_steps)), (moment, epoch_steps)
    # Every epoch the checkpoint holds has its metrics; a later epoch's may exist (logged just
    # before its checkpoint) and resume drops them.
    assert epoch_steps[: state["epochs_done"]] == [state["steps_per_epoch"] * e for e in
                                                   range(1, state["epochs_done"] + 1)], (moment, epoch_steps)
    return state["epochs_done"]


def test_kill_9_at_ten_random_moments_never_leaves_the_store_inconsistent(store, monkeypatch):
    monkeypatch.setenv("CONVGAN_MAX_JOBS", "1")
    seed = int(os.environ.get("CONVGAN_KILL_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    batch_size, steps_per_epoch = 64, 1437 // 64  # whole batches only
    run_id = jobs.launch(config_for("convnet", dataset="digits", epochs=3, batch_size=batch_size,
                                    log_every_steps=4), store)
    done, moments = 0, []
    for kill in range(10):
        if kill:  # the same run again, three epochs further, in a new background trainer
            jobs.resume(store, run_id, epochs=done + 3, background=True)
        total = training.epoch_target(store.get_run(run_id)["config"])  # the launch target or the last extension
        moment = _kill_at_a_random_moment(store, run_id, rng, done)
        moments.append(moment)
        context = f"seed {seed}, kill {kill + 1} at {moment}"
        done = _check_after_kill(store, run_id, context)
        if store.get_run(run_id)["status"] != "completed":
            run = jobs.resume(store, run_id, background=False)
            assert run["status"] == "completed", (context, run["error"])
        done = total
        _epoch_table_is_consistent(store, run_id, total, steps_per_epoch)
        _finite_model(checkpoints.checkpoint_path(store, run_id))
    print(f"kill seed {seed}: {', '.join(moments)}")
