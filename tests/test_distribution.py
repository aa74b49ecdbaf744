"""Data-parallel training over two (forced) CPU devices matches single-device training."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.xdist_group("distribution")


def _train(home, device_count):
    env = {**os.environ, "CONVGAN_HOME": str(home),
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={device_count}"}
    args = ["train", "--model", "convnet", "--dataset", "digits", "--epochs", "2", "--seed", "0",
            "--batch-size", "64", "--no-augment", "--json"]
    result = subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    from core.store import RunStore

    store = RunStore(home)
    run = store.get_run(payload["run_id"])
    return run, store.metric_table(payload["run_id"], "epoch")


def test_two_devices_match_one(tmp_path):
    single, single_curve = _train(tmp_path / "one", 1)
    double, double_curve = _train(tmp_path / "two", 2)
    assert double["device"].startswith("cpu") and "x2" not in single["device"]
    assert single_curve["loss"] == pytest.approx(double_curve["loss"], rel=2e-3, abs=2e-3)
    assert double["metrics"]["test_accuracy"] == pytest.approx(single["metrics"]["test_accuracy"], abs=0.02)
