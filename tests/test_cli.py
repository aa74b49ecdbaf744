"""The CLI end to end, in subprocesses, as a user runs it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.xdist_group("cli")


def cli(store, *args, timeout=300):
    env = {**os.environ, "CONVGAN_HOME": str(store.home)}
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def last_json(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real convnet run on digits, shared by the tests that need a finished classifier."""
    from core.store.store import RunStore

    store = RunStore(tmp_path_factory.mktemp("cli-home"))
    result = cli(store, "train", "--model", "convnet", "--dataset", "digits", "--epochs", "3", "--seed", "0", "--json")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1, result.stdout  # --json: the object alone on stdout
    return store, last_json(result)


def test_train_json_contract(trained):
    store, payload = trained
    assert payload["status"] == "completed"
    assert set(payload) >= {"run_id", "status", "metrics", "seconds", "images_per_second"}
    assert payload["metrics"]["test_accuracy"] > 0.8
    assert payload["seconds"] > 0 and payload["images_per_second"] > 0
    assert len(payload["metrics"]["confusion_matrix"]) == 10


def test_show_runs_and_evaluate(trained):
    store, payload = trained
    run_id = payload["run_id"]
    shown = cli(store, "show", run_id[:12], "--json")
    assert shown.returncode == 0, shown.stderr
    record = last_json(shown)
    for key in ("run_id", "status", "model", "dataset", "config", "metrics", "pid", "created", "finished"):
        assert key in record
    assert record["pid"] is None and record["metrics"]["test_accuracy"] == payload["metrics"]["test_accuracy"]
    listed = last_json(cli(store, "runs", "--json"))["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    evaluated = cli(store, "evaluate", run_id, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert last_json(evaluated)["metrics"]["test_accuracy"] == pytest.approx(payload["metrics"]["test_accuracy"], abs=1e-6)


def test_classify_png(trained, tmp_path):
    store, payload = trained
    from core.data.datasets import load_dataset

    data = load_dataset("digits")
    path = tmp_path / "digit.png"
    Image.fromarray(data.x_test[0][..., 0]).resize((64, 64)).save(path)
    result = cli(store, "classify", payload["run_id"], str(path), "--json")
    assert result.returncode == 0, result.stderr
    [answer] = last_json(result)["results"]
    probabilities = [c["probability"] for c in answer["top"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("case", ["missing_folder", "object_npz", "non_image_folder", "count_mismatch",
                                  "unknown_model", "zero_epochs", "nan_lr", "mixed_precision_gan",
                                  "mixed_precision_cpu", "bad_run"])
def test_bad_input_exits_2_with_one_line(store, tmp_path, case):
    if case == "missing_folder":
        args = ["train", "--model", "convnet", "--dataset", "folder:/nonexistent"]
    elif case == "object_npz":
        path = _write_npz(tmp_path / "obj.npz", x=np.array([object(), 1], dtype=object))
        args = ["train", "--model", "convnet", "--dataset", f"npz:{path}"]
    elif case == "non_image_folder":
        (tmp_path / "imgs" / "a").mkdir(parents=True)
        (tmp_path / "imgs" / "a" / "notes.txt").write_text("not an image")
        args = ["train", "--model", "convnet", "--dataset", f"folder:{tmp_path / 'imgs'}"]
    elif case == "count_mismatch":
        path = _write_npz(tmp_path / "mm.npz", x=np.zeros((10, 8, 8), np.uint8), y=np.zeros(7, np.int64))
        args = ["train", "--model", "convnet", "--dataset", f"npz:{path}"]
    elif case == "unknown_model":
        args = ["train", "--model", "transformer", "--dataset", "digits"]
    elif case == "zero_epochs":
        args = ["train", "--model", "convnet", "--dataset", "digits", "--epochs", "0"]
    elif case == "nan_lr":
        args = ["train", "--model", "convnet", "--dataset", "digits", "--lr", "nan"]
    elif case == "mixed_precision_gan":
        args = ["train", "--model", "dcgan", "--dataset", "digits", "--mixed-precision"]
    elif case == "mixed_precision_cpu":
        import jax

        if jax.devices()[0].platform != "cpu":
            pytest.skip("bfloat16 training is allowed on an accelerator")
        args = ["train", "--model", "convnet", "--dataset", "digits", "--mixed-precision"]
    else:
        args = ["show", "no-such-run"]
    result = cli(store, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert store.list_runs() == [], "bad input creates no run"


def test_usage_error_is_one_line(store):
    result = cli(store, "train", "--epochs", "2")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--model" in result.stderr


def test_devices_json(store):
    result = cli(store, "devices", "--json")
    assert result.returncode == 0
    devices = last_json(result)["devices"]
    assert devices and devices[0]["platform"] in ("cpu", "gpu", "tpu")
