"""One GPU per job: the queue counts GPUs, each worker sees only the GPUs it was given
(``CUDA_VISIBLE_DEVICES``), and a run's GPUs free however it ends. The GPU list is given with
``CONVGAN_GPUS`` (what a user sets to restrict ConvGAN to some GPUs), so no GPU is needed: the
workers are real processes, and each records the ``CUDA_VISIBLE_DEVICES`` it received."""

import contextlib
import os
import signal
import subprocess
import sys

import pytest

from core.common import devices
from core.common.config import config_for, config_to_dict
from core.common.errors import ConfigError
from core.runs import jobs, slots
from core.store.store import this_host
from tests.polling import wait_for

pytestmark = pytest.mark.xdist_group("jobs")


@pytest.fixture
def gpus(store, monkeypatch):
    """Set ``CONVGAN_GPUS``; no job limit of its own; no trainer left behind (SIGKILL at teardown)."""
    monkeypatch.delenv("CONVGAN_MAX_JOBS", raising=False)

    def use(ids):
        monkeypatch.setenv("CONVGAN_GPUS", ids)

    yield use
    for run in store.list_runs(status="running"):
        if run["pid"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(run["pid"], signal.SIGKILL)


def _quick_failing_run(store, tmp_path, devices=1):
    # A queued run whose image folder is gone: its worker starts, records the devices it was
    # given, then fails at once ("no images found"), a real failed ending that frees its GPUs.
    config = config_to_dict(config_for("convnet", dataset=str(tmp_path / "deleted-folder"), epochs=1,
                                       devices=devices))
    return store.create_run(family="classifier", model="convnet", dataset=config["dataset"], config=config,
                            status="queued")


def _ended(store, run_id):
    jobs.reconcile(store)
    run = store.get_run(run_id)
    return run if run["status"] not in ("queued", "running") else None


def _visible(run):
    """The CUDA_VISIBLE_DEVICES its worker process recorded (with the device it trained on)."""
    device = run["device"] or ""
    return device.split("CUDA_VISIBLE_DEVICES=")[1] if "CUDA_VISIBLE_DEVICES=" in device else None


def test_the_gpu_list_comes_from_convgan_gpus(monkeypatch):
    monkeypatch.delenv("CONVGAN_GPUS", raising=False)
    assert devices.gpu_ids() == devices.local_gpu_ids()  # the GPUs JAX sees (none on a CPU host)
    for value, expected in [("0,1,2,3", ["0", "1", "2", "3"]), (" 3, 1 ", ["3", "1"]),
                            ("GPU-8f3c2a1e,MIG-1", ["GPU-8f3c2a1e", "MIG-1"]), ("", []), ("none", [])]:
        monkeypatch.setenv("CONVGAN_GPUS", value)
        assert devices.gpu_ids() == expected, value
    for bad in ("0,,1", "0 1", "0,0", "-1"):
        monkeypatch.setenv("CONVGAN_GPUS", bad)
        with pytest.raises(ConfigError, match="CONVGAN_GPUS") as err:
            devices.gpu_ids()
        assert "\n" not in str(err.value)


def test_a_run_asking_for_more_gpus_than_there_are_is_refused_in_one_line(store, gpus):
    with pytest.raises(ConfigError, match="devices must be a whole number"):
        config_for("convnet", devices=-1)
    gpus("0,1")
    with pytest.raises(ConfigError, match=r"asks for 3 GPUs, but ConvGAN may use 2 here \(0, 1\)"):
        jobs.launch(config_for("convnet", dataset="digits", devices=3), store)
    with pytest.raises(ConfigError, match="multiple of the 2 GPUs it trains on"):
        jobs.launch(config_for("convnet", dataset="digits", devices=2, batch_size=33), store)
    assert store.list_runs() == []

    # The CLI: exit 2, one line, the store untouched; a CPU-only host has no GPU to give.
    for env, expected in [({"CONVGAN_GPUS": "0,1"}, "asks for 3 GPUs, but ConvGAN may use 2 here"),
                          ({"CONVGAN_GPUS": "none"}, "ConvGAN sees no GPU here")]:
        result = subprocess.run(
            [sys.executable, "-m", "core", "train", "--model", "convnet", "--dataset", "digits", "--devices", "3",
             "--background"],
            capture_output=True, text=True, timeout=120, env={**os.environ, **env},
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().count("\n") == 0 and expected in result.stderr, result.stderr
    assert store.list_runs() == []


def test_the_queue_counts_gpus_and_each_worker_sees_only_its_own(store, gpus, tmp_path):
    gpus("0,1,2")
    wide_first = jobs.launch(config_for("convnet", dataset="digits", epochs=50, devices=2), store)
    assert store.get_run(wide_first)["gpus"] == ["0", "1"]
    wide = _quick_failing_run(store, tmp_path, devices=2)
    narrow = _quick_failing_run(store, tmp_path, devices=1)
    # One GPU is free: the two-GPU run waits for two, and the run queued after it waits behind it.
    assert jobs.dispatch(store) == []
    assert [store.get_run(run)["status"] for run in (wide, narrow)] == ["queued", "queued"]

    first = wait_for(lambda: _visible(store.get_run(wide_first)), 120, "the first worker to record its devices")
    assert first == "0,1"
    # kill -9: the next dispatch marks it interrupted, and its GPUs go to the queue, oldest first.
    os.kill(store.get_run(wide_first)["pid"], signal.SIGKILL)
    assert wait_for(lambda: _ended(store, wide_first), 30, "the killed run to be noticed")["status"] == "interrupted"
    assert sorted(jobs.dispatch(store)) == sorted([wide, narrow])
    assert store.get_run(wide)["gpus"] == ["0", "1"] and store.get_run(narrow)["gpus"] == ["2"]
    ended = {run: wait_for(lambda run=run: _ended(store, run), 120, f"{run} to end") for run in (wide, narrow)}
    assert [_visible(ended[wide]), _visible(ended[narrow])] == ["0,1", "2"]
    assert all(run["status"] == "failed" and "deleted-folder" in run["error"] for run in ended.values())

    # Every run has ended: all three GPUs are free again, and devices=0 takes all of them.
    every = _quick_failing_run(store, tmp_path, devices=0)
    assert jobs.dispatch(store) == [every]
    assert _visible(wait_for(lambda: _ended(store, every), 120, "the all-GPU run to end")) == "0,1,2"

    # `show` and `runs` say which GPUs a run trained on.
    shown = subprocess.run([sys.executable, "-m", "core", "show", narrow], capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert [line.split(None, 1)[1] for line in shown.stdout.splitlines() if line.startswith("gpus")] == ["2"]
    listed = subprocess.run([sys.executable, "-m", "core", "runs"], capture_output=True, text=True, timeout=120)
    header, *rows = listed.stdout.splitlines()
    column = header.index("GPUS")
    assert {row.split()[0]: row[column:].split()[0] for row in rows}[every] == "0,1,2", listed.stdout


def test_a_completed_or_failed_run_hands_its_gpus_to_the_next_in_the_queue(store, gpus, tmp_path):
    gpus("0,1")
    completes = jobs.launch(config_for("convnet", dataset="digits", epochs=1, devices=2), store)
    one = _quick_failing_run(store, tmp_path, devices=1)
    both = _quick_failing_run(store, tmp_path, devices=2)
    assert store.get_run(one)["status"] == "queued"
    # No one dispatches from here on: each worker does on its way out.
    assert wait_for(lambda: _ended(store, completes), 240, "the first run to end")["status"] == "completed"
    assert _visible(wait_for(lambda: _ended(store, one), 120, "the one-GPU run to end")) == "0"
    assert _visible(wait_for(lambda: _ended(store, both), 120, "the two-GPU run to end")) == "0,1"
    assert [store.get_run(run)["gpus"] for run in (completes, one, both)] == [["0", "1"], ["0"], ["0", "1"]]


def test_a_queued_run_that_can_never_fit_fails_and_the_queue_moves_on(store, gpus, tmp_path):
    gpus("0,1,2,3")
    too_wide = _quick_failing_run(store, tmp_path, devices=4)  # queued while four GPUs were listed
    gpus("0,1")
    after = _quick_failing_run(store, tmp_path, devices=1)
    assert jobs.dispatch(store) == [after]
    run = store.get_run(too_wide)
    assert run["status"] == "failed"
    assert run["error"] == ("it asks for 4 GPUs, but ConvGAN may use 2 here (0, 1): "
                            "launch it again with fewer devices")
    assert _visible(wait_for(lambda: _ended(store, after), 120, "the next run to end")) == "0"


def test_gpus_in_use_are_those_of_running_runs_on_this_host(store):
    config = config_to_dict(config_for("convnet", devices=2))
    here, elsewhere, done = (store.create_run(family="classifier", model="convnet", dataset="digits",
                                              config=config, status="running") for _ in range(3))
    store.update_run(here, gpus="0,1", host=this_host())
    store.update_run(elsewhere, gpus="2", host="another-machine")
    store.update_run(done, gpus="3", host=this_host(), status="completed")
    with store.transaction() as conn:
        assert slots.busy(conn) == {"0", "1"}
    assert slots.wanted(config, 4) == 2 and slots.wanted({**config, "devices": 0}, 4) == 4
    assert slots.wanted({"model": "convnet"}, 4) == 1  # stored before the setting existed


def test_a_run_given_some_of_the_devices_trains_on_exactly_those():
    """What a run trained in the calling process gets on a GPU host (``data_parallel`` with its
    share), shown on the CPU split into three devices: one device, or a mesh of two."""
    program = """
import core, jax, keras, numpy as np
from core.common.parallel import data_parallel
devices = jax.local_devices()
x, y = np.ones((16, 4), "float32"), np.ones((16, 1), "float32")
for share in ([devices[2]], devices[:2]):
    with data_parallel(8, share):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    print(sorted(device.id for device in model.weights[0].value.devices()))
print(keras.distribution.distribution())
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CONVGAN_CPU_DEVICES": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:3] == ["[2]", "[0, 1]", "None"]


def test_a_gan_s_reference_classifier_trains_on_the_gan_s_gpus(store, gpus):
    gpus("0,1,2")
    gan = jobs.launch(config_for("dcgan", dataset="digits", epochs=1, batch_size=64, metric_samples=200,
                                 sample_grid_size=16, devices=2), store)
    assert wait_for(lambda: _ended(store, gan), 300, "the GAN to end")["status"] == "completed"
    (reference,) = store.list_runs(family="classifier")
    assert reference["gpus"] == store.get_run(gan)["gpus"] == ["0", "1"]  # no third GPU taken
    assert _visible(reference) == "0,1"
