"""The public demo (``CONVGAN_DEMO=1``) is read-only: no page renders a control that launches,
stops, cancels, resumes, deletes or uploads, whatever the URL asks for; uploads are capped in
size and sampling in count."""

from __future__ import annotations

import tomllib

import pytest

from core import dashboard
from core.store import RunStore
from tests.hardening.apptest import (
    HOSTILE_QUERY,
    PAGES,
    ROOT,
    assert_clean,
    open_page,
    page_text,
    write_widgets,
)

pytestmark = pytest.mark.xdist_group("hardening_pages")


def _queries(ids: dict[str, str]) -> dict[str, dict[str, str]]:
    """Links a visitor could craft: hostile values, and each run (so its controls would show)."""
    return {
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
        assert "Read-only demo" in page_text(at), name
    # Rendering (and whatever the links asked for) changed nothing in the store.
    assert [(run["run_id"], run["status"]) for run in RunStore(home).list_runs()] == before
    assert not (home / "uploads").exists()


def test_outside_demo_the_same_pages_do_render_write_controls(runs_home):
    # The detector in write_widgets() sees the controls when they are there; without this the
    # demo test above could pass on pages that render nothing at all.
    home, ids = runs_home
    found = set()
    for page, query in (("datasets", {}), ("train", {}), ("runs", {"run": ids["failed"]})):
        at = open_page(page, query)
        assert_clean(at)
        found |= {key.split(".")[1] for _, key, _ in write_widgets(at) if key}
    assert {"upload_file", "upload_save", "launch", "stop", "cancel", "resume", "delete"} <= found, found


def test_demo_on_an_empty_store_offers_no_starter_runs(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    RunStore(home)
    at = open_page("home", {"launch": "1"})
    assert_clean(at)
    assert not write_widgets(at)
    monkeypatch.delenv("CONVGAN_DEMO")
    assert write_widgets(open_page("home")), "outside the demo an empty store offers the starter runs"


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_demo_mode_refuses_every_write_in_core(runs_home, monkeypatch, value):
    # Pages hide the controls; core.dashboard refuses anyway, whatever calls it.
    from core.config import config_for

    home, ids = runs_home
    monkeypatch.setenv("CONVGAN_DEMO", value)
    store = RunStore(home)
    writes = {
        "launch": lambda: dashboard.launch(store, config_for("convnet", dataset="digits", epochs=1)),
        "starters": lambda: dashboard.launch_starters(store),
        "stop": lambda: dashboard.stop(store, ids["running"]),
        "cancel": lambda: dashboard.cancel(store, ids["queued"]),
        "resume": lambda: dashboard.resume(store, ids["interrupted"]),
        "delete": lambda: dashboard.delete(store, ids["completed"]),
        "upload": lambda: dashboard.save_upload(store, "x.npz", b"PK\x05\x06" + bytes(18)),
        "annotate": lambda: dashboard.save_annotations(store, ids["completed"], ["x"], "note"),
    }
    before = [(run["run_id"], run["status"], run["stop_requested"]) for run in store.list_runs()]
    for name, write in writes.items():
        with pytest.raises(dashboard.ReadOnlyError, match="read-only demo") as caught:
            write()
        assert "\n" not in str(caught.value), name
    assert [(run["run_id"], run["status"], run["stop_requested"]) for run in store.list_runs()] == before
    assert not (home / "uploads").exists()


def test_upload_size_is_capped_in_the_server_config():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    cap = config["server"]["maxUploadSize"]  # megabytes, Streamlit's default is 200
    assert isinstance(cap, int) and 1 <= cap <= 50, cap


def test_sample_count_is_capped_in_demo_mode(monkeypatch):
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    normal = dashboard.max_samples()
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    assert dashboard.max_samples() == dashboard.DEMO_MAX_SAMPLES <= 64 < normal


# ---- with real checkpoints: the Sample and Classify pages render their controls ------------------


@pytest.mark.xdist_group("hardening_runs")
@pytest.mark.parametrize("page", ["runs", "sample", "classify"])
def test_demo_pages_with_checkpoints_render_no_write_control(checkpoint_home, monkeypatch, page):
    home, ids = checkpoint_home
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    for query in (HOSTILE_QUERY, {"run": ids["classifier"], "source": "upload"},
                  {"run": ids["gan"], "n": "100000", "delete": "1"}):
        at = open_page(page, query)
        assert_clean(at)
        assert not write_widgets(at), write_widgets(at)
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


@pytest.mark.xdist_group("hardening_runs")
def test_demo_sample_count_is_capped_whatever_the_link_asks(checkpoint_home, monkeypatch):
    home, ids = checkpoint_home
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    at = open_page("sample", {"run": ids["gan"], "n": "100000"})
    assert_clean(at)
    count = at.number_input(key="sample.n")
    assert count.value == dashboard.DEMO_MAX_SAMPLES and count.max <= dashboard.DEMO_MAX_SAMPLES
    assert any("n=" in warning.value for warning in at.warning)
