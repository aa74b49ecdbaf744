"""The Train page offers the restoration family: model, task and the one option the task uses,
in the URL like every other field (a link reopens the form and launches nothing)."""

from __future__ import annotations

import pytest

from core.app.restore_view import FIELD_HELP
from core.common.config import config_for
from core.runs import jobs
from core.store.store import RunStore
from tests.app.harness import assert_clean, open_page

# Every restoration field of the form, none at its default, for each task (super-resolution is
# the default task, so its link leaves restore_task out, as the page's own links do).
LINKS = {
    "inpaint": {
        "task": "restoration", "model": "pix2pix", "dataset": "digits", "restore_task": "inpaint",
        "mask": "strokes", "epochs": "3", "batch_size": "16", "learning_rate": "0.0005", "seed": "7",
        "width": "8", "train_images": "300", "l1_weight": "50", "image_size": "16",
    },
    "denoise": {
        "task": "restoration", "model": "unet", "dataset": "digits", "restore_task": "denoise",
        "noise": "0.2", "epochs": "2", "width": "4",
    },
    "super-resolution": {
        "task": "restoration", "model": "espcn", "dataset": "digits", "scale": "4", "image_size": "16", "epochs": "1",
    },
}


@pytest.fixture
def queue_only(monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda store: [])  # queue only: no trainer in a unit test


def _labels(at) -> set[str]:
    return {widget.label for widget in [*at.number_input, *at.selectbox, *at.checkbox]}


@pytest.mark.parametrize("task", LINKS)
def test_a_restoration_link_reopens_the_form_and_launches_it(empty_home, queue_only, task):
    link = LINKS[task]
    at = open_page("train", link)
    assert_clean(at)
    assert not at.warning, [warning.value for warning in at.warning]
    # Only the option the task uses is on the form.
    options = {"Scale": "scale", "Mask": "mask", "Noise sigma": "noise"}
    shown = {name for label, name in options.items() if label in _labels(at)}
    assert shown == {name for name in ("scale", "mask", "noise") if name in link}
    assert ("L1 weight" in _labels(at)) == (link["model"] == "pix2pix")
    assert RunStore(empty_home).list_runs() == []
    at.run()
    assert {name: at.query_params[name] for name in link} == link
    assert all(f"{name}={value}" in at.sidebar.code[0].value for name, value in link.items() if name != "task")
    (launch,) = [button for button in at.button if button.label == "Launch"]
    launch.click().run()
    assert_clean(at)
    (run,) = RunStore(empty_home).list_runs()
    config = run["config"]
    assert run["family"] == "restoration" and config["model"] == link["model"] and config["task"] == task
    for name, text in link.items():
        if name in ("task", "model", "dataset", "restore_task"):
            continue
        assert config[name] == pytest.approx(type(config[name])(text) if name != "mask" else text), name


def test_changing_the_task_swaps_its_option_and_the_preset(empty_home):
    at = open_page("train", {"task": "restoration", "model": "unet", "dataset": "digits"})
    assert_clean(at)
    assert "Scale" in _labels(at) and "Mask" not in _labels(at)
    at.selectbox(key="train.restore_task").set_value("inpaint").run()
    assert_clean(at)
    assert "Mask" in _labels(at) and "Scale" not in _labels(at)
    assert at.query_params["restore_task"] == "inpaint" and "scale" not in at.query_params
    width = [w for w in at.number_input if w.label == FIELD_HELP["width"][0]][0]
    assert width.value == config_for("unet", dataset="digits", task="inpaint").width


def test_x4_on_8x8_digits_is_one_line_and_queues_nothing(empty_home, queue_only):
    at = open_page("train", {"task": "restoration", "model": "unet", "dataset": "digits", "scale": "4"})
    assert_clean(at)
    (launch,) = [button for button in at.button if button.label == "Launch"]
    launch.click().run()
    assert_clean(at)
    assert [error.value for error in at.error if "x4 super-resolution of 8x8 images" in error.value]
    assert RunStore(empty_home).list_runs() == []
