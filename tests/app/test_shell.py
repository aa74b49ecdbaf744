"""The dashboard's frame (AppTest): Home shows training time and wall time apart and gives its
GAN picture a bounded size; Classify checks whether an image is like the training images.

Demo mode is tested in ``tests/hardening/test_demo_mode.py``."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.app import datasets_view
from core.evaluation import novelty
from core.models import build_classifier
from core.store.checkpoints import checkpoint_path
from core.store.store import RunStore
from tests.app.harness import assert_clean, open_page
from tests.stored_runs import completed_classifier_run


@pytest.fixture
def classifier_home(empty_home):
    """A store holding one classifier run (untrained weights: the pages only need a checkpoint)."""
    keras.utils.set_random_seed(0)
    model = build_classifier("convnet", (8, 8, 1), 10, augment=False)
    run_id = completed_classifier_run(RunStore(empty_home), model, "digits", 0.5)
    return empty_home, run_id


def test_home_shows_training_time_and_wall_time_apart(classifier_home):
    home, run_id = classifier_home
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
        image, shown = datasets_view.bounded(np.zeros(shape, np.uint8), 320)
        assert (image.shape[:2], shown) == (enlarged, width), shape


def test_classify_checks_test_images_against_the_training_images(classifier_home):
    _, run_id = classifier_home
    at = open_page("classify", {"source": "test", "image": "3"})
    assert_clean(at)
    assert not [w.value for w in at.warning if "Unusual image" in w.value]  # a real test digit
    assert novelty.cache_path(checkpoint_path(RunStore(classifier_home[0]), run_id)).is_file()
