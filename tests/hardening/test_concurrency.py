"""Several processes on one store: two background trainers write metrics every step while this
process reads the way the dashboard does. No metric is lost and no reader sees "database is
locked"."""

from __future__ import annotations

import sqlite3
import time

import pytest

from core.common.config import config_for
from core.runs import jobs

pytestmark = [pytest.mark.xdist_group("hardening_runs"), pytest.mark.slow]


def test_two_trainers_and_a_reader_lose_nothing_and_never_see_a_locked_database(store, monkeypatch):
    monkeypatch.setenv("CONVGAN_MAX_JOBS", "2")
    epochs, batch_size = 6, 32
    steps_per_epoch = 1437 // batch_size  # trainers use whole batches only
    # log_every_steps=1: every optimizer step writes a metric row and the progress record.
    config = config_for("convnet", dataset="digits", epochs=epochs, batch_size=batch_size, log_every_steps=1)
    run_ids = [jobs.launch(config, store), jobs.launch(config, store)]
    assert [store.get_run(run_id)["status"] for run_id in run_ids] == ["running", "running"]

    reads, errors, step_rows_seen = 0, [], {run_id: 0 for run_id in run_ids}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:  # what the Runs and Train pages do on every rerun
            jobs.reconcile(store)
            listed = store.list_runs()
            for run_id in run_ids:
                store.describe(run_id)
                store.metric_table(run_id, "epoch")
                rows = len(store.metrics(run_id, scope="step"))
                assert rows >= step_rows_seen[run_id], "step metrics went backwards"
                step_rows_seen[run_id] = rows
            reads += 1
        except sqlite3.OperationalError as error:
            errors.append(str(error))
        if all(run["status"] not in ("queued", "running") for run in listed if run["run_id"] in run_ids):
            break
    assert not errors, errors[:5]
    assert reads > 20, f"only {reads} read rounds: the reader did not overlap the trainers"

    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run["status"] == "completed", (run_id, run["status"], run["error"], jobs.read_log(store, run_id)[-2000:])
        table = store.metric_table(run_id, "epoch")
        assert table["step"] == [steps_per_epoch * epoch for epoch in range(1, epochs + 1)]
        assert all(value is not None for value in table["loss"] + table["val_accuracy"])
        # Every optimizer step logged its loss, once.
        step_losses = [row["step"] for row in store.metrics(run_id, scope="step") if row["name"] == "loss"]
        assert step_losses == list(range(1, epochs * steps_per_epoch + 1))
    # The two trainers really overlapped in time.
    first, second = (store.get_run(run_id) for run_id in run_ids)
    assert first["started_ts"] < second["finished_ts"] and second["started_ts"] < first["finished_ts"]
