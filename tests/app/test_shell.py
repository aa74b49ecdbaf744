"""The dashboard's frame (AppTest): demo mode says the same thing on every page and offers no
checkpoint download unless the operator allows it; Home's GAN picture has a bounded size;
Classify checks whether an image is like the training images."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core import dashboard
from core.models import build_classifier
from core.store import RunStore
from tests.app.conftest import assert_clean, open_page
from tests.stored_runs import completed_classifier_run

PAGES = ("home", "datasets", "train", "runs", "sample", "classify")


@pytest.fixture
def demo_home(empty_home, monkeypatch):
    """Demo mode on a store holding one classifier run (untrained weights: the pages only need a checkpoint)."""
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    monkeypatch.delenv(dashboard.DEMO_DOWNLOADS_ENV, raising=False)
    keras.utils.set_random_seed(0)
    model = build_classifier("convnet", (8, 8, 1), 10, augment=False)
    run_id = completed_classifier_run(RunStore(empty_home), model, "digits", 0.5)
    return empty_home, run_id


def _texts(at) -> list[str]:
    return [element.value for kind in ("info", "caption", "warning", "markdown") for element in getattr(at, kind)]


def test_demo_mode_says_the_same_thing_on_every_page(demo_home):
    notice = dashboard.demo_notice()
    assert "classifying one image at a time" in notice and "checkpoint downloads" in notice
    for page in PAGES:
        at = open_page(page)
        assert_clean(at)
        banners = [info.value for info in at.info if info.value.startswith("Read-only demo")]
        assert banners == [notice], (page, banners)
        # No other wording of what the demo allows: every demo line comes from demo_notice().
        other = [t for t in _texts(at) if "demo" in t.lower() and t != notice]
        allowed = [dashboard.demo_notice(feature) for feature in (*dashboard.DEMO_ALLOWED, *dashboard.DEMO_OFF)]
        assert all(any(line in t for line in allowed) for t in other), (page, other)


def test_demo_lines_of_train_and_classify_come_from_the_notice(demo_home):
    at = open_page("train")
    assert any(dashboard.demo_notice("train") in caption.value for caption in at.caption)
    at = open_page("classify", {"source": "upload"})
    assert_clean(at)
    assert dashboard.demo_notice("classify") in [caption.value for caption in at.caption]


def test_demo_home_without_runs_says_training_is_off(empty_home, monkeypatch):
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    at = open_page("home")
    assert any(dashboard.demo_notice("train") in info.value for info in at.info)


def _checkpoint_buttons(at) -> list[str]:
    return [button.label for button in at.get("download_button") if "Checkpoint" in button.label]


def test_checkpoint_download_only_where_the_operator_allows_it(demo_home, monkeypatch):
    _, run_id = demo_home
    at = open_page("runs", {"run": run_id})
    assert_clean(at)
    assert [button.label for button in at.get("download_button")], "the metrics CSV is still offered"
    assert _checkpoint_buttons(at) == []
    assert "checkpoint downloads" in dashboard.demo_notice()
    monkeypatch.setenv(dashboard.DEMO_DOWNLOADS_ENV, "1")
    at = open_page("runs", {"run": run_id})
    assert _checkpoint_buttons(at) == ["Checkpoint (.keras)"]
    assert "checkpoint downloads" not in dashboard.demo_notice()
    monkeypatch.delenv("CONVGAN_DEMO")
    monkeypatch.delenv(dashboard.DEMO_DOWNLOADS_ENV)
    assert _checkpoint_buttons(open_page("runs", {"run": run_id})) == ["Checkpoint (.keras)"]


def test_home_shows_training_time_and_wall_time_apart(demo_home):
    home, run_id = demo_home
    store = RunStore(home)
    for epoch in (1, 2):
        store.log_metrics(run_id, {"epoch_seconds": 1.5}, step=epoch, scope="epoch")
    at = open_page("home")
    assert_clean(at)
    table = at.dataframe[0].value
    assert {"training_s", "wall_s"} <= set(table.columns) and "duration_s" not in table.columns
    row = table[table["run"] == run_id].iloc[0]
    assert row["training_s"] == 3.0 and row["wall_s"] >= 0


def test_home_bounds_the_latest_gan_picture():
    """The browser test measures the picture on Home; here, the sizes Home asks for."""
    for shape, enlarged, width in (
        ((8, 400, 1), (8, 400), 320),  # a one-row grid: enlarge(..., 200) made it 10,000 px wide
        ((24, 40, 1), (192, 320), 320),  # small grids grow by whole factors, pixels stay sharp
        ((100, 60, 1), (300, 180), 180),  # tall grids are bounded by their height
        ((1056, 1056, 3), (1056, 1056), 320),  # large grids are shown smaller
    ):
        image, shown = dashboard.bounded(np.zeros(shape, np.uint8), 320)
        assert (image.shape[:2], shown) == (enlarged, width), shape


def test_classify_checks_test_images_against_the_training_images(demo_home, monkeypatch):
    monkeypatch.delenv("CONVGAN_DEMO")
    _, run_id = demo_home
    at = open_page("classify", {"source": "test", "image": "3"})
    assert_clean(at)
    assert not [w.value for w in at.warning if "Unusual image" in w.value]  # a real test digit
    from core import novelty
    from core.checkpoints import checkpoint_path

    assert novelty.cache_path(checkpoint_path(RunStore(demo_home[0]), run_id)).is_file()


def test_classify_warns_about_an_upload_unlike_the_training_images(demo_home):
    """In the demo (which takes one image at a time), writing nothing to the store."""
    from core import novelty
    from core.checkpoints import checkpoint_path
    from core.images import png_bytes

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
