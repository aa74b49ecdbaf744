"""GPUs on the dashboard: the Train form asks how many GPUs a run takes only where ConvGAN may use
GPUs (``CONVGAN_GPUS`` lists them here, as a user restricting ConvGAN would), and the Runs page's
details say which GPUs a run trained on."""

from __future__ import annotations

import pytest

from core.runs import jobs
from core.store.store import RunStore
from tests.app.harness import assert_clean, open_page


@pytest.fixture
def queue_only(monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda store: [])  # queue only: no trainer in a unit test


def _gpus_field(at):
    return [widget for widget in at.number_input if widget.label == "GPUs"]


def _markdown(at) -> str:
    return " ".join(element.value for element in at.markdown)


def test_a_cpu_only_host_shows_no_gpu_field(empty_home, queue_only, monkeypatch):
    monkeypatch.delenv("CONVGAN_GPUS", raising=False)
    at = open_page("train", {"model": "convnet"})
    assert_clean(at)
    assert _gpus_field(at) == []
    assert "up to 1 run(s) train at once" in _markdown(at)


@pytest.mark.parametrize("link", [{"model": "convnet"}, {"task": "restoration", "model": "unet"}])
def test_the_train_form_asks_how_many_gpus_a_run_takes(empty_home, queue_only, monkeypatch, link):
    monkeypatch.setenv("CONVGAN_GPUS", "0,1")
    at = open_page("train", link)
    assert_clean(at)
    (field,) = _gpus_field(at)
    assert field.value == 1
    assert "GPUs 0, 1 for jobs" in _markdown(at)
    field.set_value(2).run()
    assert "devices=2" in at.sidebar.code[0].value  # the share link carries it
    (launch,) = [button for button in at.button if button.label == "Launch"]
    launch.click().run()
    assert_clean(at)
    (run,) = RunStore(empty_home).list_runs()
    assert run["model"] == link["model"] and run["config"]["devices"] == 2


def test_a_link_asking_for_more_gpus_than_there_are_is_clamped(empty_home, queue_only, monkeypatch):
    monkeypatch.setenv("CONVGAN_GPUS", "0,1")
    at = open_page("train", {"model": "convnet", "devices": "8"})
    assert_clean(at)
    assert _gpus_field(at)[0].value == 2


def test_the_run_details_name_the_gpus_a_run_trained_on(empty_home):
    store = RunStore(empty_home)
    run_id = store.create_run(family="classifier", model="convnet", dataset="digits",
                              config={"model": "convnet", "dataset": "digits", "devices": 2}, status="completed")
    store.update_run(run_id, gpus="2,3", device="gpu: NVIDIA H100 80GB HBM3 x2, CUDA_VISIBLE_DEVICES=2,3")
    at = open_page("runs", {"run": run_id})
    assert_clean(at)
    assert "GPUs 2, 3" in _markdown(at)


def test_a_bad_convgan_gpus_is_one_line_on_the_page(empty_home, queue_only, monkeypatch):
    monkeypatch.setenv("CONVGAN_GPUS", "0,,1")
    at = open_page("train", {"model": "convnet"})
    assert_clean(at)
    errors = {element.value for element in at.error}
    assert errors == {"CONVGAN_GPUS must list GPU ids separated by commas (e.g. 0,1), got '0,,1'"}, errors
    assert _gpus_field(at) == []
