"""The real app in headless Chromium: ``streamlit run app.py`` on localhost, driven with Playwright.

One walk trains and uses models through the pages as a user would; a second walk in demo mode
finds no way to write. Each step checks that no error box or traceback is on the page; a failing
step saves a screenshot to ``$CONVGAN_ARTIFACTS`` (default: the test's tmp folder).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.app.browser import CHROMIUM, chromium, errors_on, settle, streamlit_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("real_runs"),  # shares the session's tiny real runs with test_pages
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]
WRITE_LABELS = ("Launch", "Stop", "Cancel", "Delete", "Resume", "Save dataset", "Train starter models")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("CONVGAN_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def walk_home(real_runs, tmp_path):
    """A copy of the session's store of tiny real runs (the walk adds runs of its own)."""
    home, run_ids = real_runs
    copy = tmp_path / "walk-home"
    shutil.copytree(home, copy)
    return copy, run_ids


@contextlib.contextmanager
def step(page, artifacts: Path, name: str):
    """A named step: on failure, a full-page screenshot ``<name>.png`` goes to the artifacts."""
    try:
        yield
        found = errors_on(page)
        assert not found, f"{name}: error on the page: {found}"
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
        raise


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    box = page.get_by_test_id("stSelectbox").filter(has_text=label).first
    box.click()
    page.get_by_role("option", name=option, exact=True).first.click()


def set_number(page, label: str, value) -> None:
    """Type a number; Enter commits it (no page uses an st.form, where Enter would submit)."""
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")


def grid_src(page, caption_part: str) -> str:
    """The src of the image whose caption contains ``caption_part``."""
    figure = page.get_by_test_id("stImageContainer").filter(has_text=caption_part).first
    return figure.locator("img").first.get_attribute("src")


def share_link(page) -> str:
    return page.get_by_test_id("stSidebar").get_by_test_id("stCode").inner_text().replace("\n", "").strip()


def image_bytes(page, src: str) -> bytes:
    return page.request.get(src).body()


def digit_png() -> bytes:
    """A test digit from the embedded dataset, as an uploaded PNG (upscaled to 32x32)."""
    from PIL import Image

    from core.data.datasets import load_dataset

    data = load_dataset("digits")
    image = Image.fromarray(np.asarray(data.x_test[0])[..., 0]).resize((32, 32), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_walk_train_watch_sample_classify_share(walk_home, artifacts, tmp_path):
    home, run_ids = walk_home
    gan_run = run_ids["dcgan"]
    with streamlit_server(home, log_path=artifacts / "streamlit-walk.log") as base, chromium() as context:
        page = context.new_page()

        with step(page, artifacts, "1-datasets"):
            page.goto(f"{base}/datasets?dataset=digits")
            settle(page)
            choose(page, "Class", "5")
            settle(page)
            assert (
                "(class 5)"
                in page.get_by_test_id("stImageContainer").filter(has_text=" images ").first.inner_text()
            )
            assert "cls=5" in page.url

        with step(page, artifacts, "2-train"):
            page.goto(f"{base}/train?task=classifier&model=convnet&dataset=digits")
            settle(page)
            set_number(page, "Epochs", 2)
            page.get_by_role("button", name="Launch").click()
            page.get_by_text(re.compile(r"Launched convnet-digits-")).wait_for(timeout=60_000)
            run_id = re.search(
                r"Launched (\S+):", page.get_by_test_id("stAlertContentSuccess").inner_text()
            ).group(1)
            # The live panel (a fragment refreshing every 2 s) shows the job until it completes.
            page.get_by_text(re.compile(r"^running: epoch|^queued|^completed")).first.wait_for(timeout=30_000)
            page.get_by_text(re.compile(r"^completed: epoch 2/2")).wait_for(timeout=300_000)
            assert page.get_by_text(run_id).count() >= 1

        with step(page, artifacts, "3-runs"):
            page.goto(f"{base}/runs?run={run_id}")
            settle(page)
            assert page.get_by_test_id("stDataFrame").count() == 1
            assert page.get_by_test_id("stPlotlyChart").count() >= 1
            page.get_by_role("tab", name="Results").click()
            page.get_by_text("Confusion matrix").first.wait_for(timeout=30_000)

        with step(page, artifacts, "4-sample"):
            page.goto(f"{base}/sample?run={gan_run}")
            settle(page)
            set_number(page, "Seed", 7)
            settle(page)
            link = share_link(page)
            assert "seed=7" in link and f"run={gan_run}" in link
            src = grid_src(page, "epoch 1, seed 7")
            first_bytes = image_bytes(page, src)

        fresh = context.new_page()
        with step(fresh, artifacts, "5-share-link"):
            fresh.goto(link)
            settle(fresh)
            again = grid_src(fresh, "epoch 1, seed 7")
            assert again == src and image_bytes(fresh, again) == first_bytes

        with step(page, artifacts, "6-classify"):
            page.goto(f"{base}/classify?run={run_id}&source=upload")
            settle(page)
            upload = tmp_path / "digit.png"
            upload.write_bytes(digit_png())
            page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(str(upload))
            page.get_by_text("as the model sees it").first.wait_for(timeout=60_000)
            settle(page)
            assert page.get_by_test_id("stPlotlyChart").count() >= 1

        with step(page, artifacts, "7-draw"):
            page.goto(f"{base}/classify?run={run_id}&source=draw")
            settle(page)
            canvas = page.locator("canvas").last  # streamlit-drawable-canvas (a components-v2 element)
            canvas.wait_for(timeout=30_000)
            box = canvas.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
            page.mouse.down()
            for i in range(1, 21):  # a vertical stroke: a "1"
                page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.15 + 0.035 * i))
            page.mouse.up()
            page.get_by_text("as the model sees it").first.wait_for(timeout=60_000)
            settle(page)
            assert page.get_by_text("your drawing").count() >= 1


def test_demo_walk_finds_no_way_to_write(tmp_path, artifacts, monkeypatch):
    from core.app import demo_limits
    from core.common.config import config_for, config_to_dict
    from core.store.store import RunStore

    home = tmp_path / "demo-home"
    store = RunStore(home)  # one finished run, so the Runs page shows a run's actions (if any)
    run_id = store.create_run(
        family="classifier",
        model="convnet",
        dataset="digits",
        config=config_to_dict(config_for("convnet")),
        status="completed",
    )
    store.log_metrics(run_id, {"loss": 1.0, "accuracy": 0.5}, step=10, epoch=1, scope="epoch")
    monkeypatch.setenv("CONVGAN_DEMO", "1")  # the banner as the demo server words it
    banner = demo_limits.demo_notice()
    hostile = "?run=..%2F..%2Fetc&delete=1&launch=1&n=100000&seed=-1&dataset=%3Cscript%3E&task=gan"
    with (
        streamlit_server(home, demo=True, log_path=artifacts / "streamlit-demo.log") as base,
        chromium() as context,
    ):
        page = context.new_page()
        for name in ("home", "datasets", "train", "runs", "sample", "classify"):
            with step(page, artifacts, f"demo-{name}"):
                page.goto(f"{base}/{name}{hostile}")
                settle(page)
                assert page.get_by_text(banner).count() == 1  # one banner; feature lines reuse its words
                for label in WRITE_LABELS:
                    assert page.get_by_role("button", name=label, exact=True).count() == 0, (name, label)
                assert page.get_by_test_id("stForm").count() == 0
                if name == "datasets":
                    assert page.get_by_test_id("stFileUploader").count() == 0
