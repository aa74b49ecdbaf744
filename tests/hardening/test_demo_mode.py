"""The public demo (``CONVGAN_DEMO=1``) is read-only and says so in the same words everywhere.

No page renders a control that launches, stops, cancels, resumes, deletes or uploads, whatever
the URL asks for, and ``core.app.dashboard`` refuses those writes anyway; uploads are capped in size
and sampling in count; checkpoint downloads are offered only where the operator allows them; every
demo line on a page comes from ``demo_limits.demo_notice``.
"""

from __future__ import annotations

import re
import tomllib

import keras
import numpy as np
import pytest

from core.app import datasets_view, demo_limits, run_actions
from core.common.config import config_for
from core.common.images import png_bytes
from core.evaluation import novelty
from core.models import build_classifier
from core.store.checkpoints import checkpoint_path
from core.store.store import RunStore
from tests.app.harness import HOSTILE_QUERY, PAGES, ROOT, assert_clean, open_page, texts, widgets
from tests.stored_runs import completed_classifier_run

pytestmark = pytest.mark.xdist_group("hardening_pages")

# A widget whose key or label names one of these can change the store or start work.
WRITE_WORDS = re.compile(r"launch|starter|train models|stop|cancel|resume|delete|upload|save", re.IGNORECASE)
# The one upload a read-only demo keeps: a single small image to classify (nothing is stored).
READ_ONLY_UPLOADS = {"classify.upload"}
# What a visitor could ask of a store with no runs at all.
EMPTY_STORE_QUERY = {"delete": "1", "launch": "true", "run": "x; rm -rf /", "task": "gan", "n": "100000",
                     "upload": "1"}


def write_widgets(at) -> list[tuple[str, str | None, str]]:
    """Widgets that can write: forms, uploads (but the one image to classify), and buttons,
    checkboxes and toggles whose key or label says so."""
    writes = []
    for kind, key, label in widgets(at):
        if (kind == "form_submit_button"
                or kind == "file_uploader" and key not in READ_ONLY_UPLOADS
                or kind in ("button", "checkbox", "toggle") and WRITE_WORDS.search(f"{key} {label}")):
            writes.append((kind, key, label))
    return writes


def assert_demo_wording(at, page: str) -> None:
    """One banner, the whole notice; every other line that mentions the demo is one of its lines."""
    notice = demo_limits.demo_notice()
    assert "classifying one image at a time" in notice and "checkpoint downloads" in notice
    banners = [info.value for info in at.info if info.value.startswith("Read-only demo")]
    assert banners == [notice], (page, banners)
    lines = [demo_limits.demo_notice(feature) for feature in (*demo_limits.DEMO_ALLOWED, *demo_limits.DEMO_OFF)]
    other = [text for text in texts(at) if "demo" in text.lower() and text != notice]
    assert all(any(line in text for line in lines) for text in other), (page, other)
    if page == "train":
        assert any(demo_limits.demo_notice("train") in caption.value for caption in at.caption)


@pytest.fixture
def demo_home(store, monkeypatch):
    """Demo mode on a store holding one classifier run (untrained weights: the pages only need a checkpoint)."""
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    monkeypatch.delenv(demo_limits.DEMO_DOWNLOADS_ENV, raising=False)
    keras.utils.set_random_seed(0)
    model = build_classifier("convnet", (8, 8, 1), 10, augment=False)
    return store.home, completed_classifier_run(store, model, "digits", 0.5)


def _queries(ids: dict[str, str]) -> dict[str, dict[str, str]]:
    """Links a visitor could craft: none, hostile values, and each run (so its controls would show)."""
    return {
        "plain": {},
        "hostile": HOSTILE_QUERY,
        "running": {"run": ids["running"], "task": "classifier"},
        "failed": {"run": ids["failed"], "source": "upload", "delete": "1"},
        "interrupted": {"run": ids["interrupted"], "resume": "1"},
        "gan": {"run": ids["stopped"], "task": "gan", "model": "dcgan", "n": "100000"},
    }


@pytest.mark.parametrize("page", PAGES)
def test_demo_pages_render_no_write_control_for_any_link(runs_home, monkeypatch, page):
    home, ids = runs_home
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    before = [(run["run_id"], run["status"]) for run in RunStore(home).list_runs()]
    for name, query in _queries(ids).items():
        at = open_page(page, query)
        assert_clean(at)
        assert not write_widgets(at), (name, write_widgets(at))
        assert_demo_wording(at, f"{page} ({name})")
    # Rendering (and whatever the links asked for) changed nothing in the store.
    assert [(run["run_id"], run["status"]) for run in RunStore(home).list_runs()] == before
    assert not (home / "uploads").exists()


@pytest.mark.parametrize("page", PAGES)
def test_demo_pages_on_an_empty_store_render_no_write_control(store, monkeypatch, page):
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    at = open_page(page, EMPTY_STORE_QUERY)
    assert_clean(at)
    assert not write_widgets(at), write_widgets(at)
    assert_demo_wording(at, page)
    if page == "home":  # no starter runs to offer: Home says training is off instead
        assert any(demo_limits.demo_notice("train") in info.value for info in at.info)
    assert store.list_runs() == [] and not (store.home / "uploads").exists()


def test_outside_demo_the_same_pages_do_render_write_controls(runs_home, tmp_path, monkeypatch):
    # The detector in write_widgets() sees the controls when they are there; without this the
    # demo tests above could pass on pages that render nothing at all.
    home, ids = runs_home
    found = set()
    for page, query in (("datasets", {}), ("train", {}), ("runs", {"run": ids["failed"]})):
        at = open_page(page, query)
        assert_clean(at)
        found |= {key.split(".")[1] for _, key, _ in write_widgets(at) if key}
    empty = RunStore(tmp_path / "empty").home
    monkeypatch.setenv("CONVGAN_HOME", str(empty))  # an empty store: Home offers the starter runs
    found |= {key.split(".")[1] for _, key, _ in write_widgets(open_page("home")) if key}
    assert {"starters", "upload_file", "upload_save", "launch", "stop", "cancel", "resume", "delete"} <= found, found


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_demo_mode_refuses_every_write_in_core(runs_home, monkeypatch, value):
    # Pages hide the controls; core.app.dashboard refuses anyway, whatever calls it.
    home, ids = runs_home
    monkeypatch.setenv("CONVGAN_DEMO", value)
    store = RunStore(home)
    writes = {
        "launch": lambda: run_actions.launch(store, config_for("convnet", dataset="digits", epochs=1)),
        "starters": lambda: run_actions.launch_starters(store),
        "stop": lambda: run_actions.stop(store, ids["running"]),
        "cancel": lambda: run_actions.cancel(store, ids["queued"]),
        "resume": lambda: run_actions.resume(store, ids["interrupted"]),
        "delete": lambda: run_actions.delete(store, ids["completed"]),
        "upload": lambda: datasets_view.save_upload(store, "x.npz", b"PK\x05\x06" + bytes(18)),
        "annotate": lambda: run_actions.save_annotations(store, ids["completed"], ["x"], "note"),
    }
    before = [(run["run_id"], run["status"], run["stop_requested"]) for run in store.list_runs()]
    for name, write in writes.items():
        with pytest.raises(demo_limits.ReadOnlyError, match="read-only demo") as caught:
            write()
        assert "\n" not in str(caught.value), name
    for write in (run_actions.stop, run_actions.cancel, run_actions.resume, run_actions.delete):
        with pytest.raises(demo_limits.ReadOnlyError, match="read-only demo"):  # before the run is looked up
            write(store, "no-such-run")
    assert [(run["run_id"], run["status"], run["stop_requested"]) for run in store.list_runs()] == before
    assert not (home / "uploads").exists()


def test_upload_size_is_capped_in_the_server_config():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    cap = config["server"]["maxUploadSize"]  # megabytes, Streamlit's default is 200
    assert isinstance(cap, int) and 1 <= cap <= 50, cap


def test_sample_count_is_capped_in_demo_mode(monkeypatch):
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    normal = demo_limits.max_samples()
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    assert demo_limits.max_samples() == demo_limits.DEMO_MAX_SAMPLES <= 64 < normal


# ---- with real checkpoints: the Runs, Sample and Classify pages render their controls -------------


@pytest.mark.xdist_group("hardening_runs")
@pytest.mark.parametrize("page", ["runs", "sample", "classify"])
def test_demo_pages_with_checkpoints_render_no_write_control(checkpoint_home, monkeypatch, page):
    home, ids = checkpoint_home
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    for query in ({}, HOSTILE_QUERY, {"run": ids["classifier"], "source": "upload"},
                  {"run": ids["gan"], "n": "100000", "delete": "1"}):
        at = open_page(page, query)
        assert_clean(at)
        assert not write_widgets(at), write_widgets(at)
        assert_demo_wording(at, f"{page} {query}")
    assert not (home / "uploads").exists()


@pytest.mark.xdist_group("hardening_runs")
def test_demo_classify_takes_one_small_image_and_no_archive(checkpoint_home, monkeypatch):
    home, ids = checkpoint_home
    query = {"run": ids["classifier"], "source": "upload"}
    normal = open_page("classify", query)
    assert {uploader.key for uploader in normal.file_uploader} == {"classify.upload", "classify.zip"}
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    at = open_page("classify", query)
    assert_clean(at)
    assert [uploader.key for uploader in at.file_uploader] == ["classify.upload"]
    assert 0 < at.file_uploader(key="classify.upload").proto.max_upload_size_mb <= 2
    assert demo_limits.demo_notice("classify") in [caption.value for caption in at.caption]


@pytest.mark.xdist_group("hardening_runs")
def test_demo_sample_count_is_capped_whatever_the_link_asks(checkpoint_home, monkeypatch):
    home, ids = checkpoint_home
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    at = open_page("sample", {"run": ids["gan"], "n": "100000"})
    assert_clean(at)
    count = at.number_input(key="sample.n")
    assert count.value == demo_limits.DEMO_MAX_SAMPLES and count.max <= demo_limits.DEMO_MAX_SAMPLES
    assert any("n='100000'" in warning.value for warning in at.warning)


def _checkpoint_buttons(at) -> list[str]:
    return [button.label for button in at.get("download_button") if "Checkpoint" in button.label]


def test_checkpoint_download_only_where_the_operator_allows_it(demo_home, monkeypatch):
    _, run_id = demo_home
    at = open_page("runs", {"run": run_id})
    assert_clean(at)
    assert [button.label for button in at.get("download_button")], "the metrics CSV is still offered"
    assert _checkpoint_buttons(at) == []
    assert "checkpoint downloads" in demo_limits.demo_notice()
    monkeypatch.setenv(demo_limits.DEMO_DOWNLOADS_ENV, "1")
    at = open_page("runs", {"run": run_id})
    assert _checkpoint_buttons(at) == ["Checkpoint (.keras)"]
    assert "checkpoint downloads" not in demo_limits.demo_notice()
    monkeypatch.delenv("CONVGAN_DEMO")
    monkeypatch.delenv(demo_limits.DEMO_DOWNLOADS_ENV)
    assert _checkpoint_buttons(open_page("runs", {"run": run_id})) == ["Checkpoint (.keras)"]


def test_demo_classify_warns_about_an_upload_unlike_the_training_images_and_writes_nothing(demo_home):
    home, run_id = demo_home
    at = open_page("classify", {"run": run_id, "source": "upload"})
    flat = png_bytes(np.full((48, 48, 3), 30, np.uint8))
    at.file_uploader(key="classify.upload").set_value(("flat.png", flat, "image/png")).run()
    assert_clean(at)
    warnings = [w.value for w in at.warning if w.value.startswith("Unusual image")]
    assert warnings == ["Unusual image: a flat image (one colour), with nothing to classify. "
                        "The label below is a guess, not a confident answer."]
    assert at.get("plotly_chart"), "the label is still shown, with the warning"
    assert not novelty.cache_path(checkpoint_path(RunStore(home), run_id)).exists()
