import multiprocessing
import time

import pytest

from core.common.errors import RunNotFound, UserError
from core.store.store import RunStore


def _new(store, **kw):
    args = dict(family="classifier", model="convnet", dataset="digits", config={"epochs": 2}, seed=0)
    args.update(kw)
    return store.create_run(**args)


def test_create_get_list_update(store):
    run_id = _new(store)
    run = store.get_run(run_id)
    assert run["status"] == "queued" and run["config"] == {"epochs": 2} and run["pid"] is None
    assert run["created"].endswith("Z")
    assert store.run_dir(run_id).is_dir()
    store.update_run(run_id, status="running", pid=123, progress={"epoch": 1})
    run = store.get_run(run_id)
    assert (run["status"], run["pid"], run["progress"]) == ("running", 123, {"epoch": 1})
    assert [r["run_id"] for r in store.list_runs(status="running")] == [run_id]
    assert store.list_runs(status="completed") == []
    with pytest.raises(ValueError):
        store.update_run(run_id, status="exploded")


def test_resolve_prefix_latest_and_unknown(store):
    first = _new(store, model="dcgan")
    time.sleep(0.01)
    second = _new(store, model="convnet")
    assert store.resolve(first) == first
    assert store.resolve("dcgan") == first
    assert store.resolve("latest") == second
    with pytest.raises(RunNotFound, match="no run 'nope'"):
        store.resolve("nope")
    with pytest.raises(RunNotFound):
        store.get_run("../../etc")


def test_metrics_replace_truncate_and_pivot(store):
    run_id = _new(store)
    store.log_metrics(run_id, {"loss": 1.0, "accuracy": 0.5}, step=10, epoch=1)
    store.log_metrics(run_id, {"loss": 0.9}, step=10, epoch=1)  # same step again: replaced
    store.log_metrics(run_id, {"loss": 0.5, "bad": float("nan"), "text": "x"}, step=20, epoch=1)
    rows = store.metrics(run_id, scope="step")
    assert [(r["step"], r["name"], r["value"]) for r in rows] == [
        (10, "accuracy", 0.5), (10, "loss", 0.9), (20, "bad", None), (20, "loss", 0.5)]
    table = store.metric_table(run_id, "step")
    assert table["step"] == [10, 20] and table["loss"] == [0.9, 0.5] and table["accuracy"] == [0.5, None]
    store.truncate_metrics(run_id, after_step=10)
    assert [r["step"] for r in store.metrics(run_id)] == [10, 10]


def test_delete_refuses_active_and_removes_files(store):
    run_id = _new(store, status="running")
    with pytest.raises(UserError, match="stop or cancel"):
        store.delete_run(run_id)
    store.update_run(run_id, status="completed")
    store.log_metrics(run_id, {"loss": 1}, step=1)
    store.delete_run(run_id)
    assert not store.run_dir(run_id).exists()
    assert store.metrics(run_id) == []
    with pytest.raises(RunNotFound):
        store.get_run(run_id)


def _writer(home, run_id, offset, count):
    store = RunStore(home)
    for step in range(count):
        store.log_metrics(run_id, {"loss": float(step), "accuracy": 0.5}, step=offset + step, epoch=1)
        store.update_run(run_id, heartbeat=time.time())


def test_concurrent_writers_and_reader_lose_nothing(store):
    """Two writer processes and a reader at once: no 'database is locked', no lost row."""
    run_a, run_b = _new(store), _new(store)
    count = 300
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(str(store.home), run, 0, count)) for run in (run_a, run_b)]
    for process in writers:
        process.start()
    reads = 0
    while any(p.is_alive() for p in writers):
        store.list_runs()
        store.metric_table(run_a, "step")
        reads += 1
    for process in writers:
        process.join()
        assert process.exitcode == 0
    assert reads > 0
    for run_id in (run_a, run_b):
        assert len(store.metrics(run_id)) == 2 * count
