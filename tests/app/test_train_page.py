"""The Train page under AppTest: its form lives in the URL (a link reopens it and launches
nothing), and a link value that was rejected for a fallback holds Launch back until the user picks."""

from __future__ import annotations

import pytest

from core.app import share, train_view
from core.common.config import config_for
from core.runs import jobs
from core.store.store import RunStore
from tests.app.harness import assert_clean, open_page

# Every field of the form, for a classifier and for the GAN with the most fields, none at its default.
LINKS = {
    "convnet": {
        "task": "classifier", "model": "convnet", "dataset": "digits", "epochs": "3", "batch_size": "64",
        "learning_rate": "0.0005", "seed": "7", "weight_decay": "0.001", "label_smoothing": "0.2",
        "augment": "false", "image_size": "16",
    },
    "wgan-gp": {
        "task": "gan", "model": "wgan-gp", "dataset": "digits", "epochs": "4", "batch_size": "48",
        "learning_rate": "0.0003", "seed": "11", "latent_dim": "40", "beta_1": "0.3", "ema_decay": "0.95",
        "n_critic": "3", "gp_weight": "7", "metric_samples": "300", "image_size": "24",
    },
}


@pytest.fixture
def queue_only(monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda store: [])  # queue only: no trainer in a unit test


def _launch(at):
    """The Launch button, whatever its kind (at.button lists a form's submit button too)."""
    (button,) = [button for button in at.button if button.label == "Launch"]
    return button


def _field(at, name: str):
    """The form's widget for config field ``name``, found by its label."""
    label = train_view.FIELD_HELP[name][0]
    (widget,) = [w for w in [*at.number_input, *at.checkbox] if w.label == label]
    return widget


def _notices(at) -> str:
    return " ".join(warning.value for warning in at.warning)


def test_an_unknown_dataset_in_a_link_holds_launch_until_the_user_picks(empty_home, queue_only):
    at = open_page("train", {"dataset": "cats-on-another-machine"})
    assert_clean(at)
    assert at.selectbox(key="train.dataset").value == "digits"
    for _ in range(2):  # the first run, then a rerun (the notice used to vanish on it)
        assert _launch(at).disabled
        assert "dataset='cats-on-another-machine'" in _notices(at)
        assert "pick a value for dataset" in _notices(at)
        at.run()
    assert RunStore(empty_home).list_runs() == []
    # Keeping the fallback is a pick: Launch works, on the kept dataset.
    at.button(key="train.keep.dataset").click().run()
    assert not _launch(at).disabled
    assert "cats-on-another-machine" not in _notices(at)
    _launch(at).click().run()
    runs = RunStore(empty_home).list_runs()
    assert [run["dataset"] for run in runs] == ["digits"]


def test_changing_a_widget_that_held_a_fallback_releases_launch(empty_home, queue_only):
    at = open_page("train", {"model": "convnet", "epochs": "ten", "seed": "3"})
    assert_clean(at)
    assert _field(at, "seed").value == 3  # a usable value is used as is
    assert _launch(at).disabled and "pick a value for epochs" in _notices(at)
    _field(at, "epochs").set_value(2).run()
    assert not _launch(at).disabled
    _launch(at).click().run()
    (run,) = RunStore(empty_home).list_runs()
    assert run["config"]["epochs"] == 2 and run["config"]["seed"] == 3


@pytest.mark.parametrize("model", LINKS)
def test_a_link_with_every_field_reopens_the_form_and_launches_nothing(empty_home, queue_only, model):
    link = LINKS[model]
    at = open_page("train", link)
    assert_clean(at)
    defaults = config_for(model, dataset="digits")
    for name, text in link.items():
        if name in ("task", "model", "dataset"):
            assert at.session_state[f"train.{name}"] == text
            continue
        widget = _field(at, name)
        expected = {"false": False, "true": True}.get(text)
        expected = float(text) if expected is None else expected
        assert widget.value == pytest.approx(expected), name
        assert getattr(defaults, name) != widget.value, f"{name}: the link must not hold the default"
    assert not at.warning and not _launch(at).disabled
    assert RunStore(empty_home).list_runs() == []
    # The URL (and so the sidebar's share link) carries the same form after a rerun.
    at.run()
    fields = [name for name in link if name != "task"]  # task=classifier is the default, left out
    assert {name: at.query_params[name] for name in fields} == {name: link[name] for name in fields}
    share = at.sidebar.code[0].value
    assert all(f"{name}={link[name]}" in share for name in fields), share
    assert RunStore(empty_home).list_runs() == []


def test_an_edited_field_goes_into_the_share_link(empty_home):
    at = open_page("train", {"model": "convnet"})
    _field(at, "epochs").set_value(7).run()
    assert "epochs=7" in at.sidebar.code[0].value


def test_a_rejected_run_in_a_link_holds_resume_and_delete(empty_home):
    store = RunStore(empty_home)
    run_id = store.create_run(
        family="classifier", model="convnet", dataset="digits",
        config={"model": "convnet", "dataset": "digits"}, status="completed",
    )
    at = open_page("runs", {"run": "deleted-long-ago"})
    assert_clean(at)
    assert at.selectbox(key="runs.run").value == run_id  # the newest run, as a fallback
    assert at.button(key="runs.delete").disabled and at.button(key="runs.resume").disabled
    at.checkbox(key="runs.delete_confirm").check().run()
    assert at.button(key="runs.delete").disabled and "pick a value for run" in _notices(at)
    at.button(key="runs.keep.run").click().run()
    assert not at.button(key="runs.resume").disabled and not at.button(key="runs.delete").disabled


def test_fallbacks_stay_pending_until_the_user_sets_another_value_or_keeps_it():
    fallbacks = share.Fallbacks()
    dataset = share.Param("dataset", str, "digits").with_choices(["digits", "fashion"])
    value, notice = share.parse_value(dataset, ["cats"])
    fallbacks.record("dataset", value, notice)
    fallbacks.observe("dataset", "digits")  # a rerun with the fallback still in place
    fallbacks.replace("dataset", "digits")  # the page, not the user, set it
    assert list(fallbacks.pending()) == ["dataset"] and fallbacks.pending(["seed"]) == {}
    fallbacks.observe("dataset", "fashion")
    assert fallbacks.pending() == {}
    fallbacks.record("epochs", 10, "ignored epochs='ten' from the link")
    fallbacks.observe("epochs", 10.0)  # the same number from a float widget is no choice
    assert "epochs" in fallbacks.pending()
    fallbacks.confirm("epochs")
    assert fallbacks.pending() == {}
