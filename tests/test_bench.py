"""``python -m core bench`` (``python -m bench`` in a child process): the side-by-side harness runs, reports both sides with equal
parameter counts, and leaves the user's run store alone."""

import json
import os
import subprocess
import sys

import pytest

from bench import harness
from core.store.store import RunStore

pytestmark = pytest.mark.xdist_group("bench")


def test_quick_bench_reports_both_sides_as_json(store):
    env = {**os.environ, "CONVGAN_HOME": str(store.home)}
    result = subprocess.run([sys.executable, "-m", "core", "bench", "--quick", "--dataset", "digits", "--json"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["dataset"] == "digits"
    for name in ("convnet", "dcgan"):
        row = report[name]
        assert row["params_ours"] == row["params_torch"] > 10_000, name
        assert row["ours_img_s"] > 0 and row["torch_img_s"] > 0
        assert row["best_ratio"] == pytest.approx(row["ours_img_s"] / row["torch_img_s"], rel=1e-2)
        assert len(row["ours_rounds_img_s"]) == len(row["torch_rounds_img_s"]) == 3
        pairs = sorted(ours / peer for ours, peer in zip(row["ours_rounds_img_s"], row["torch_rounds_img_s"], strict=True))
        assert row["ratio"] == pytest.approx(pairs[1], rel=1e-2)  # the median pair
        assert row["ours_img_s"] == max(row["ours_rounds_img_s"])
    latency = report["latency"]
    assert latency["sample_64_ms"] > 0 and latency["classify_1_ms"] > 0
    # The second fresh process finds the first one's compiled programs in the cache.
    assert latency["first_step_seconds_warm_cache"] < latency["first_step_seconds_cold_cache"]
    assert "time_to_accuracy" not in report  # --quick leaves the long runs out
    assert "convnet" in result.stderr and "ratio" in result.stderr  # the table, on stderr with --json
    assert RunStore(store.home).list_runs() == []  # training processes used a temporary store


def test_time_to_accuracy_reads_the_epochs_of_a_fresh_training_process():
    result = harness.time_to_accuracy("digits", 0.5, epochs=2)
    assert result["epochs"] == 2 and result["epochs_needed"] in (1, 2)
    assert 0 < result["seconds"] <= result["total_seconds"]
    assert result["final_accuracy"] > 0.9  # the digits preset (batch 32) learns fast
    assert result["peak_rss_mb"] > 100  # JAX and Keras alone take more than this


def test_bench_without_pytorch_is_a_one_line_usage_error(monkeypatch, capsys):
    import keras  # noqa: F401 - before hiding torch: SciPy, imported with Keras, trips on a None sys.modules["torch"]

    monkeypatch.setitem(sys.modules, "torch", None)
    assert harness.main(["--quick"]) == 2  # what `convgan bench` exits with: the child's status
    err = capsys.readouterr().err.strip()
    assert err == "error: PyTorch is needed for the side-by-side benchmark: pip install -r requirements-bench.txt"
