"""`python -m core tag` / `note` / `runs --tag`, run as a user does, from a folder other than the checkout."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.store.store import SCHEMA_VERSION, RunStore

pytestmark = pytest.mark.xdist_group("cli")

REPO = Path(__file__).resolve().parents[1]
STORE_V1 = Path(__file__).parent / "data" / "store_v1"  # written by the store code of 10933f7
CLASSIFIER, GAN = "convnet-digits-1205-125902-c4b382", "dcgan-digits-1205-125903-ed13fa"


def cli(home, *args, cwd):
    """`python -m core ARGS` run in ``cwd`` with the store in CONVGAN_HOME (the checkout on PYTHONPATH,
    as for running a clone from anywhere)."""
    env = {**os.environ, "CONVGAN_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def last_json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def snapshot(home):
    """Everything the store holds: its database as SQL, and its files."""
    with sqlite3.connect(home / "runs.db") as conn:
        dump = list(conn.iterdump())
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    files = sorted(str(p.relative_to(home)) for p in (home / "runs").rglob("*"))
    return version, dump, files


@pytest.fixture
def old_home(tmp_path):
    """A copy of a store written by today's main, before tags and notes existed."""
    home = tmp_path / "old-store"
    shutil.copytree(STORE_V1, home)
    return home


def test_tag_note_and_filter_on_a_store_from_before_tags(old_home, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    listed = last_json(cli(old_home, "runs", "--json", cwd=work))["runs"]
    assert [(r["run_id"], r["tags"], r["note"]) for r in listed] == [(GAN, [], ""), (CLASSIFIER, [], "")]

    assert last_json(cli(old_home, "tag", "convnet", "Baseline", "LR sweep", "--json", cwd=work)) == {
        "run_id": CLASSIFIER, "tags": ["baseline", "lr sweep"]}
    tagged = cli(old_home, "tag", "dcgan", "baseline", cwd=work)
    assert tagged.returncode == 0 and tagged.stdout.strip() == f"{GAN}: baseline"
    assert last_json(cli(old_home, "tag", "convnet", "lr sweep", "--remove", "--json", cwd=work))["tags"] == ["baseline"]
    assert last_json(cli(old_home, "note", "convnet", "lr", "too", "high?", "--json", cwd=work)) == {
        "run_id": CLASSIFIER, "note": "lr too high?"}

    store = RunStore(old_home)
    assert store.get_run(CLASSIFIER)["tags"] == ["baseline"] and store.get_run(CLASSIFIER)["note"] == "lr too high?"
    assert store.all_tags() == ["baseline"]
    assert store.metric_table(CLASSIFIER, "epoch")["step"] == [20, 40], "the migration kept the metrics"

    table = cli(old_home, "runs", "--tag", "BASELINE", cwd=work)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[-1] == "TAGS" and len(rows) == 2
    assert all(row.endswith("baseline") for row in rows)
    store.set_tags(GAN, ["sweep"])
    assert [r["run_id"] for r in last_json(cli(old_home, "runs", "--tag", "sweep", "--json", cwd=work))["runs"]] == [GAN]
    shown = cli(old_home, "show", "convnet", cwd=work).stdout
    assert "tags          baseline" in shown and "note          lr too high?" in shown
    cleared = cli(old_home, "note", "convnet", "", cwd=work)
    assert cleared.returncode == 0 and store.get_run(CLASSIFIER)["note"] == ""


BAD_INPUT = {
    "comma": (["tag", "convnet", "good", "a,b"], "has a comma"),
    "long_tag": (["tag", "convnet", "t" * 41], "at most 40"),
    "unknown_run": (["tag", "nope", "good"], "no run 'nope'"),
    "long_note": (["note", "convnet", "x" * 10_001], "at most 10,000"),
    "filter_by_bad_tag": (["runs", "--tag", "a,b"], "has a comma"),
    "tag_without_tags": (["tag", "convnet"], "required: TAG"),
    "unknown_status": (["runs", "--status", "finished"], "unknown status 'finished'"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_tag_or_note_exits_2_with_one_line_and_changes_nothing(old_home, tmp_path, case):
    args, message = BAD_INPUT[case]
    RunStore(old_home).set_tags(CLASSIFIER, ["keep"])
    before = snapshot(old_home)
    result = cli(old_home, *args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert snapshot(old_home) == before


def test_store_from_newer_code_is_refused_in_one_line(old_home, tmp_path):
    RunStore(old_home)
    with sqlite3.connect(old_home / "runs.db") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = snapshot(old_home)
    result = cli(old_home, "runs", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"schema version {SCHEMA_VERSION + 1}, newer than" in lines[0], result.stderr
    assert snapshot(old_home) == before
