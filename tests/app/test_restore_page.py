"""The Restore page under AppTest, on tiny real runs: degraded | baseline | model | original with
their PSNR, links that reproduce the view, GAN-prior inpainting, demo mode, and bad input as one line."""

from __future__ import annotations

import keras
import pytest

from core.common.config import config_for
from core.models.classifiers import build_classifier
from core.runs import training
from core.store.store import RunStore
from tests.app.harness import assert_clean, open_page
from tests.stored_runs import completed_classifier_run


@pytest.fixture(scope="module")
def restore_runs(tmp_path_factory):
    """A store with an x2 super-resolution unet, a centre-inpainting espcn, a dcgan and a classifier."""
    home = tmp_path_factory.mktemp("restore-page")
    store = RunStore(home)
    tiny = {"dataset": "digits", "epochs": 1, "width": 4, "train_images": 256, "sample_grid_size": 4}
    configs = {
        "super-resolution": config_for("unet", task="super-resolution", scale=2, **tiny),
        "inpaint": config_for("espcn", task="inpaint", **tiny),
        "dcgan": config_for("dcgan", dataset="digits", epochs=1, metric_samples=200, sample_grid_size=16),
    }
    run_ids = {}
    for name, config in configs.items():
        run = training.train(config, store=store)
        assert run["status"] == "completed", f"{name}: {run['error']}"
        run_ids[name] = run["run_id"]
    keras.utils.set_random_seed(0)
    classifier = build_classifier("convnet", (8, 8, 1), 10, augment=False)
    run_ids["classifier"] = completed_classifier_run(store, classifier, "digits", test_accuracy=0.5)
    return home, run_ids


@pytest.fixture
def home(restore_runs, monkeypatch):
    home, run_ids = restore_runs
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    return run_ids


def _captions(at) -> str:
    """The captions of every image on the page, as one string."""
    return " ".join(caption for element in at.image for caption in element.captions)


def _pixels(at) -> list:
    """The image URLs (the media store names files by their bytes, so same pixels, same URL)."""
    return [element.value for element in at.image]


def test_super_resolution_shows_four_panels_with_psnr(home):
    at = open_page("restore", {"run": home["super-resolution"], "image": "5"})
    assert_clean(at)
    assert not at.error and not at.warning
    text = _captions(at)
    for name in ("degraded", "baseline", "model", "original"):
        assert name in text, name
    assert text.count(" dB") >= 2  # baseline and model against the original
    assert at.number_input(key="restore.image").value == 5


def test_an_inpainting_link_reproduces_its_view(home):
    link = {"run": home["inpaint"], "image": "3", "mask": "boxes", "seed": "4", "split": "70", "before": "baseline",
            "zoom_row": "25"}
    at = open_page("restore", link)
    assert_clean(at)
    assert not at.error and not at.warning
    assert at.selectbox(key="restore.mask").value == "boxes"
    assert "hole" in _captions(at)
    at.run()
    assert {name: at.query_params[name] for name in link} == link
    # The same link in a new session shows the same pixels.
    again = open_page("restore", link)
    assert _pixels(again) == _pixels(at)


def test_a_gan_run_inpaints_by_latent_search(home):
    at = open_page("restore", {"run": home["dcgan"], "mask": "center"})
    assert_clean(at)
    assert not at.error
    assert "latent search" in " ".join(caption.value for caption in at.caption)
    assert "hole" in _captions(at)


def test_a_classifier_run_is_one_line(home):
    at = open_page("restore", {"run": home["classifier"]})
    assert_clean(at)
    (error,) = at.error
    assert "classifier" in error.value and "dcgan/wgan-gp" in error.value
    assert not at.image


def test_demo_mode_restores_but_never_trains(home, monkeypatch):
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    store = RunStore(__import__("os").environ["CONVGAN_HOME"])
    before = len(store.list_runs())
    at = open_page("restore", {"run": home["super-resolution"]})
    assert_clean(at)
    assert not at.error and "model" in _captions(at)
    train = open_page("train", {"task": "restoration", "model": "unet"})
    assert_clean(train)
    assert not [button for button in train.button if button.label == "Launch"]
    assert len(store.list_runs()) == before


def test_runs_page_shows_quality_against_the_baseline_and_the_time_lapse(home):
    at = open_page("runs", {"run": home["inpaint"], "tab": "Curves"})
    assert_clean(at)
    titles = [chart.proto.spec for chart in at.get("plotly_chart")]
    for name in ("psnr vs baseline", "ssim vs baseline", "hole_psnr vs baseline"):
        assert any(name in spec for spec in titles), name
    at = open_page("runs", {"run": home["inpaint"], "tab": "Results"})
    assert_clean(at)
    assert at.select_slider(key="runs.epoch").options == ["0", "1"]  # the untrained model, then epoch 1
    assert "degraded | baseline | model | original after epoch 1" in _captions(at)
    assert {metric.label for metric in at.metric} >= {"psnr", "baseline_psnr", "hole_psnr", "baseline_hole_psnr"}


def test_the_drawing_source_waits_for_a_drawing(home):
    at = open_page("restore", {"run": home["super-resolution"], "source": "draw"})
    assert_clean(at)
    assert not at.error and not at.image
    assert any("Choose an image" in caption.value for caption in at.caption)
    assert at.query_params["source"] == "draw"


def test_a_drawn_mask_waits_for_strokes(home):
    at = open_page("restore", {"run": home["inpaint"], "mask": "draw"})
    assert_clean(at)
    assert not at.error
    assert any("Paint the hole" in caption.value for caption in at.caption)
    assert at.query_params["mask"] == "draw"
