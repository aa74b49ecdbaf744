"""The versioned store schema: a store written before versioning opens with nothing lost; tags and notes."""

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.common.errors import RunNotFound, UserError
from core.store.store import NOTE_MAX_LENGTH, SCHEMA_VERSION, InvalidAnnotation, RunStore, StoreError

# Written by core/store/store.py of commit 10933f7 (before the schema had a version): a completed
# convnet with step and epoch metrics (one NaN), a stopped dcgan; each run folder has a train.log.
STORE_V1 = Path(__file__).parent / "data" / "store_v1"
CLASSIFIER, GAN = "convnet-digits-1205-125902-c4b382", "dcgan-digits-1205-125903-ed13fa"


@pytest.fixture
def old_store(tmp_path):
    home = tmp_path / "old"
    shutil.copytree(STORE_V1, home)
    return home


def _raw(home, sql):
    with sqlite3.connect(home / "runs.db") as conn:
        return conn.execute(sql).fetchall()


def _user_version(home):
    return _raw(home, "PRAGMA user_version")[0][0]


def test_store_from_before_versioning_opens_with_nothing_lost(old_store):
    assert _user_version(old_store) == 0
    runs_before = _raw(old_store, "SELECT * FROM runs ORDER BY run_id")
    metrics_before = _raw(old_store, "SELECT * FROM metrics ORDER BY run_id, scope, step, name")
    assert len(runs_before) == 2 and len(metrics_before) == 20

    store = RunStore(old_store)
    assert _user_version(old_store) == SCHEMA_VERSION
    # Every old column keeps its value; the new ones (note, gpus) come after them, empty.
    runs_after = _raw(old_store, "SELECT * FROM runs ORDER BY run_id")
    width = len(runs_before[0])
    assert [row[:width] for row in runs_after] == runs_before
    assert {row[width:] for row in runs_after} == {("", None)}
    assert _raw(old_store, "SELECT * FROM metrics ORDER BY run_id, scope, step, name") == metrics_before

    assert [run["run_id"] for run in store.list_runs()] == [GAN, CLASSIFIER]
    clf = store.describe(CLASSIFIER)
    assert clf["status"] == "completed" and clf["config"]["batch_size"] == 64
    assert clf["metrics"] == {"test_accuracy": 0.91, "test_loss": 0.3, "seconds": 5.0}
    assert clf["versions"] == {"keras": "3", "jax": "0.4"} and clf["progress"]["epoch"] == 2
    assert (clf["tags"], clf["note"]) == ([], "")
    table = store.metric_table(CLASSIFIER, "epoch")
    assert table["step"] == [20, 40] and table["val_accuracy"] == pytest.approx([0.65, 0.85])
    assert table["broken"] == [None, None]
    gan = store.describe(GAN)
    assert gan["status"] == "stopped" and gan["error"] == "stopped by user"
    assert store.metric_table(GAN, "step")["g_loss"] == pytest.approx([0.2, 0.1, 2 / 30])
    assert (store.run_dir(GAN) / "train.log").read_text().startswith(GAN)

    assert store.set_tags(CLASSIFIER, ["Baseline", "digits"]) == ["baseline", "digits"]
    store.set_note(CLASSIFIER, "first try")
    # Reopening migrates nothing again and keeps what was written.
    again = RunStore(old_store)
    assert _user_version(old_store) == SCHEMA_VERSION
    run = again.get_run(CLASSIFIER)
    assert (run["tags"], run["note"]) == (["baseline", "digits"], "first try")
    assert len(again.metrics(CLASSIFIER)) == len(store.metrics(CLASSIFIER))


def test_processes_opening_an_old_store_at_once_migrate_it_once(old_store):
    """A dashboard, a CLI and a worker may all be first to open a store after an upgrade."""
    repo = Path(__file__).resolve().parents[1]
    code = "import sys; from core.store.store import RunStore; print(len(RunStore(sys.argv[1]).list_runs()))"
    processes = [subprocess.Popen([sys.executable, "-c", code, str(old_store)], cwd=repo, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env={**os.environ, "PYTHONPATH": str(repo)}) for _ in range(4)]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0 and out.strip() == "2", err
    assert _user_version(old_store) == SCHEMA_VERSION
    assert len(_raw(old_store, "SELECT * FROM metrics")) == 20


def test_new_store_is_at_the_current_version(tmp_path):
    RunStore(tmp_path / "new")
    assert _user_version(tmp_path / "new") == SCHEMA_VERSION
    assert SCHEMA_VERSION >= 2


def test_store_from_newer_code_is_refused_and_left_alone(old_store):
    with sqlite3.connect(old_store / "runs.db") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = hashlib.sha256((old_store / "runs.db").read_bytes()).hexdigest()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than") as err:
        RunStore(old_store)
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)
    assert hashlib.sha256((old_store / "runs.db").read_bytes()).hexdigest() == before
    assert _raw(old_store, "SELECT name FROM sqlite_master WHERE name = 'run_tags'") == []


def test_a_file_that_is_not_a_database_is_one_clear_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "runs.db").write_text("not sqlite " * 100)
    with pytest.raises(StoreError, match="cannot open the run store"):
        RunStore(tmp_path / "bad")


def _new(store, **kw):
    return store.create_run(family="classifier", model="convnet", dataset="digits", config={"epochs": 1}, **kw)


def test_tags_are_normalised_added_removed_and_filtered(store):
    first, second = _new(store), _new(store)
    assert store.set_tags(first, [" Baseline ", "baseline", "lr  sweep", "A"]) == ["a", "baseline", "lr sweep"]
    assert store.add_tag(first, "Best") == ["a", "baseline", "best", "lr sweep"]
    assert store.add_tag(first, "best") == ["a", "baseline", "best", "lr sweep"]
    assert store.remove_tag(first, "A") == ["baseline", "best", "lr sweep"]
    assert store.remove_tag(first, "never-there") == ["baseline", "best", "lr sweep"]
    store.set_tags(second, ["baseline"])
    assert store.all_tags() == ["baseline", "best", "lr sweep"]
    assert {r["run_id"] for r in store.list_runs(tag="Baseline")} == {first, second}
    assert [r["run_id"] for r in store.list_runs(tag=["baseline", "best"])] == [first]
    assert store.list_runs(tag=["baseline", "other"]) == []
    assert store.list_runs(tag=[]) == store.list_runs()
    assert store.get_run(first)["tags"] == ["baseline", "best", "lr sweep"]
    assert store.describe(second)["tags"] == ["baseline"]
    assert store.set_tags(second, []) == [] and store.all_tags() == ["baseline", "best", "lr sweep"]
    store.update_run(first, status="completed")
    store.delete_run(first)
    assert store.all_tags() == []


@pytest.mark.parametrize("tags, message", [
    ([""], "cannot be empty"), (["  "], "cannot be empty"), (["a,b"], "has a comma"),
    (["x" * 41], "at most 40"), ("baseline", "a list of tags"), ([3], "a tag is text"),
])
def test_bad_tags_change_nothing(store, tags, message):
    run_id = _new(store)
    store.set_tags(run_id, ["keep"])
    with pytest.raises(InvalidAnnotation, match=message) as err:
        store.set_tags(run_id, ["fine", *tags] if isinstance(tags, list) else tags)
    assert "\n" not in str(err.value)
    assert store.get_run(run_id)["tags"] == ["keep"]


def test_notes_set_clear_and_cap(store):
    run_id = _new(store)
    store.set_note(run_id, "  lr too high?\nretry with 3e-4  ")
    assert store.get_run(run_id)["note"] == "lr too high?\nretry with 3e-4"
    assert store.list_runs()[0]["note"] == "lr too high?\nretry with 3e-4"
    with pytest.raises(InvalidAnnotation, match=f"at most {NOTE_MAX_LENGTH:,}"):
        store.set_note(run_id, "x" * (NOTE_MAX_LENGTH + 1))
    assert store.get_run(run_id)["note"] == "lr too high?\nretry with 3e-4"
    store.set_note(run_id, "")
    assert store.get_run(run_id)["note"] == ""


def test_tags_and_notes_of_an_unknown_run(store):
    for call in (lambda: store.set_tags("nope", ["a"]), lambda: store.add_tag("nope", "a"),
                 lambda: store.remove_tag("nope", "a"), lambda: store.set_note("nope", "text")):
        with pytest.raises(RunNotFound):
            call()
    assert store.all_tags() == []
