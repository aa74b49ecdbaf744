"""What the CLI prints: piped into a reader that stops early, long ids, ETAs, devices, wrong-family sampling."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.store.store import this_host

pytestmark = pytest.mark.xdist_group("cli")

REPO = Path(__file__).resolve().parents[1]


def cli(store, *args):
    env = {**os.environ, "CONVGAN_HOME": str(store.home)}
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=REPO)


def _run(store, *, model="convnet", dataset="digits", family="classifier", status="completed", **fields):
    run_id = store.create_run(family=family, model=model, dataset=dataset, config={"epochs": 5}, status=status)
    if fields:
        store.update_run(run_id, **fields)
    return run_id


def test_runs_into_a_reader_that_stops_early_prints_no_traceback(store):
    """`runs | head`: the reader is gone before the CLI writes; it ends quietly, as Unix tools do."""
    for _ in range(3):
        _run(store)
    env = {**os.environ, "CONVGAN_HOME": str(store.home)}
    process = subprocess.Popen([sys.executable, "-m", "core", "runs"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    process.stdout.close()  # what `head` does once it has its lines
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141, stderr
    assert stderr == ""


def test_runs_columns_stay_aligned_for_long_ids_and_datasets(store):
    short = _run(store, model="convnet", device="cpu:0", metrics={"test_accuracy": 0.9})
    long = _run(store, model="wgan-gp", family="gan", dataset="folder:/data/a-very-long-dataset-name",
                status="stopped", progress={"epoch": 12, "epochs": 100})
    store.set_tags(long, ["baseline", "long run"])
    result = cli(store, "runs")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert len(long) > 38 and {row.split()[0] for row in rows} == {short, long}
    columns = ["STATUS", "MODEL", "DATASET", "PROGRESS", "KEY METRIC", "DEVICE", "TAGS"]
    starts = [header.index(name) for name in columns]
    for row in rows:
        for start in starts:
            assert start >= len(row) or row[start - 2:start] == "  ", (header, row)
        assert row == row.rstrip()
    by_id = {row.split()[0]: row for row in rows}
    assert by_id[long][header.index("STATUS"):].startswith("stopped")
    assert by_id[long][header.index("PROGRESS"):].startswith("12/100")
    assert by_id[long][header.index("TAGS"):] == "baseline,long run"
    assert by_id[short][header.index("KEY METRIC"):].startswith("test_accuracy=0.9")


def test_show_gives_an_eta_only_while_the_run_runs(store):
    progress = {"epoch": 3, "epochs": 5, "step": 30, "total_steps": 50, "eta_seconds": 42.0}
    stopped = _run(store, status="stopped", progress=progress)
    # This test's process stands in for a live trainer on this host.
    running = _run(store, status="running", progress=progress, pid=os.getpid(), host=this_host(),
                   heartbeat=time.time() + 600)
    shown = cli(store, "show", stopped)
    assert shown.returncode == 0, shown.stderr
    assert "epoch 3/5, step 30/50" in shown.stdout and "ETA" not in shown.stdout
    shown = cli(store, "show", running)
    assert shown.returncode == 0, shown.stderr
    assert "status        running" in shown.stdout and "epoch 3/5, step 30/50, ETA 42 s" in shown.stdout


def test_devices_prints_one_readable_line_per_device(store):
    import jax

    result = cli(store, "devices")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(jax.local_devices())
    for line, device in zip(lines, jax.local_devices(), strict=True):
        assert line.startswith(f"{device.platform}:{device.id}  "), line
        assert line == line.strip() and "   " not in line, repr(line)


def test_sampling_a_classifier_points_to_classify(store, tmp_path):
    run_id = _run(store)
    out = tmp_path / "grid.png"
    result = cli(store, "sample", run_id, "--out", str(out))
    assert result.returncode == 2, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: run {run_id} is a classifier") and f"python -m core classify {run_id}" in line
    assert not out.exists()
