"""The dashboard's first minutes in headless Chromium, each on a freshly started server (cold: the
first visit imports JAX and Keras) on a user's machine (no ``KERAS_BACKEND``, a ``keras.json``
naming tensorflow): no raw ``pages/`` file names in the sidebar at any moment, something on
screen while the imports run, ``/home`` is Home, ``ui`` is never a page, Home's GAN picture has
a bounded size, and Classify flags a flat image."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pytest

from core.common.images import png_bytes, save_png
from core.models import build_classifier
from core.store.store import RunStore
from tests.app.browser import CHROMIUM, chromium, errors_on, settle, streamlit_server
from tests.stored_runs import completed_classifier_run
from tests.test_backend_choice import user_environment

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]
# What Streamlit's own menu shows for app.py and pages/*.py before app.py's st.navigation runs.
RAW_NAMES = {"app", "home", "ui", "datasets", "train", "runs", "sample", "classify"}
SNAPSHOT = """() => {
    const sidebar = document.querySelector('[data-testid="stSidebar"]');
    const main = document.querySelector('[data-testid="stMain"]');
    // Texts in the sidebar, each element's own, leaving out icons (their names are ligatures: "home").
    const texts = sidebar ? Array.from(sidebar.querySelectorAll("*"))
        .filter(e => e.children.length === 0 && !e.closest('[data-testid="stIconMaterial"]'))
        .map(e => e.textContent.trim()).filter(t => t) : [];
    return {
        sidebar: texts.join("\\n"),
        builtin_menu: document.querySelector('[data-testid="stSidebarNav"]') !== null,
        ui_links: document.querySelectorAll('a[href$="/ui"]').length,
        main: main ? main.innerText : "",
        title: Array.from(document.querySelectorAll('[data-testid="stMainBlockContainer"] h1')).map(h => h.innerText),
    };
}"""


@pytest.fixture
def user_home(tmp_path, monkeypatch):
    """A store with a classifier run and a GAN sample strip; the server gets a user's environment."""
    home = tmp_path / "store"
    store = RunStore(home)
    keras.utils.set_random_seed(0)
    completed_classifier_run(store, build_classifier("convnet", (8, 8, 1), 10, augment=False), "digits", 0.5)
    gan = store.create_run(family="gan", model="dcgan", dataset="digits", config={"model": "dcgan"}, status="completed")
    save_png(np.full((8, 400, 1), 200, np.uint8), store.run_dir(gan) / "samples" / "epoch_001.png")
    env = user_environment(tmp_path / "user")
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("HOME", env["HOME"])
    return home, gan


def watch_first_paint(page, url: str, timeout: float = 180) -> list[dict]:
    """Open ``url`` and snapshot the page every ~0.1 s until a page title shows."""
    page.goto(url, wait_until="commit")
    snapshots, deadline, reloaded, error = [], time.monotonic() + timeout, False, None
    while time.monotonic() < deadline:
        try:
            snapshot = page.evaluate(SNAPSHOT)
        except Exception as err:  # noqa: BLE001 - the document is still loading
            error = err
            time.sleep(0.1)
            continue
        snapshots.append(snapshot)
        if snapshot["title"]:
            return snapshots
        if "Connection error" in snapshot["main"] + snapshot["sidebar"] and not reloaded:
            page.reload(wait_until="commit")  # a loaded machine may drop the first websocket; a user reloads
            reloaded = True
        time.sleep(0.1)
    raise AssertionError(f"no page title after {timeout:.0f} s; last: {snapshots[-1:]} {error or ''}")


def assert_no_raw_names(snapshots: list[dict]) -> None:
    for snapshot in snapshots:
        lines = {line.strip() for line in snapshot["sidebar"].splitlines()}
        assert not snapshot["builtin_menu"], "Streamlit's own pages/ menu was shown"
        assert not lines & RAW_NAMES, f"raw module names in the sidebar: {sorted(lines & RAW_NAMES)}"
        assert snapshot["ui_links"] == 0, "a link to /ui"


def test_cold_start_shows_the_frame_then_home(user_home, tmp_path):
    home, gan = user_home
    with streamlit_server(home) as base, chromium() as context:
        page = context.new_page()
        snapshots = watch_first_paint(page, base)
        assert_no_raw_names(snapshots)
        before_title = [s for s in snapshots if not s["title"]]
        assert any("Starting ConvGAN Studio" in s["main"] for s in before_title), "blank while JAX and Keras load"
        assert any("Classify" in s["sidebar"] for s in before_title), "the menu waited for the imports"
        settle(page)
        assert_no_raw_names([page.evaluate(SNAPSHOT)])
        assert page.evaluate(SNAPSHOT)["title"] == ["ConvGAN Studio"]
        assert not errors_on(page)
        picture = page.locator('[data-testid="stImage"] img').first
        box = picture.bounding_box()
        assert box is not None and 0 < box["width"] <= 320 and box["height"] <= 320, box

        page.goto(f"{base}/ui")  # the helper module is not a page: Streamlit says so and shows Home
        settle(page)
        assert_no_raw_names([page.evaluate(SNAPSHOT)])
        assert page.evaluate(SNAPSHOT)["title"] == ["ConvGAN Studio"]
        assert "Page not found" in page.content()

        page.goto(f"{base}/classify?source=upload")
        settle(page)
        page.get_by_role("region", name="An image (png/jpg)").locator('input[type="file"]').set_input_files(
            {"name": "grey.png", "mimeType": "image/png", "buffer": png_bytes(np.full((64, 64, 3), 128, np.uint8))}
        )
        page.get_by_text("Unusual image").first.wait_for(timeout=180_000)
        alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
        assert any("a flat image (one colour)" in text for text in alerts), alerts


def test_cold_home_link_is_home(user_home):
    home, _ = user_home
    with streamlit_server(home) as base, chromium() as context:
        page = context.new_page()
        snapshots = watch_first_paint(page, f"{base}/home")
        assert_no_raw_names(snapshots)
        settle(page)
        snapshot = page.evaluate(SNAPSHOT)
        assert_no_raw_names([snapshot])
        assert snapshot["title"] == ["ConvGAN Studio"]
        assert "Page not found" not in page.content()
        assert page.url.rstrip("/").endswith("/home")
        assert not errors_on(page)
