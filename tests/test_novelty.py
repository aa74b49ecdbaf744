"""Images unlike the training data are flagged (core.evaluation.novelty), on a tiny real digits classifier:
flat colours, noise and photos are; most held-out test digits are not. The CLI's ``classify``
and ``classify_view.classify`` report it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.app import classify_view, cli
from core.common.config import config_for
from core.common.images import save_png
from core.data.datasets import load_dataset
from core.evaluation import novelty
from core.store.checkpoints import checkpoint_path, load_run_model
from core.store.store import RunStore
from core.training.classifier import prepare_images


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A convnet trained 2 epochs on the 8x8 digits: ``(store, run_id, model, check)``."""
    from core.runs import training

    store = RunStore(tmp_path_factory.mktemp("novelty-home"))
    run = training.train(config_for("convnet", dataset="digits", epochs=2, batch_size=64, seed=0), store=store)
    assert run["status"] == "completed", run["error"]
    model = load_run_model(store, run["run_id"])
    return store, run["run_id"], model, novelty.for_run(store, run["run_id"], model=model)


def _unusual(model, check, images) -> list[bool]:
    """Whether each image (any size) is flagged, each prepared as the Classify page does."""
    prepared = np.concatenate([prepare_images(image, model.input_shape[1:])[0] for image in images])
    return [verdict["unusual"] for verdict in novelty.assess(model, check, list(images), prepared)]


def test_flat_colours_are_unusual(digits_run):
    _, _, model, check = digits_run
    flats = [np.full((8, 8, 1), value, np.uint8) for value in (0, 40, 128, 255)]
    flats += [np.full((120, 90, 3), colour, np.uint8) for colour in ((200, 30, 30), (250, 250, 250))]
    assert all(_unusual(model, check, flats))


def test_noise_and_photos_are_unusual(digits_run):
    from sklearn.datasets import load_sample_images

    _, _, model, check = digits_run
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, size, dtype=np.uint8) for size in ((8, 8, 1), (8, 8, 1), (64, 64, 3))]
    photos = list(load_sample_images().images)  # a temple and a flower, 427x640 RGB
    assert all(_unusual(model, check, noise + photos))


def test_most_held_out_test_digits_are_not_unusual(digits_run):
    _, _, model, check = digits_run
    data = load_dataset("digits")
    every = np.arange(len(data.x_test))
    held_out = data.x_test[np.setdiff1d(every, every[novelty.CALIBRATION])]  # not those that set the threshold
    assert len(held_out) >= len(every) // 3
    flagged = np.mean(_unusual(model, check, list(held_out)))
    assert flagged <= 0.05, f"{flagged:.1%} of real test digits flagged"


def test_the_check_is_fitted_once_per_checkpoint(digits_run):
    store, run_id, model, check = digits_run
    cached = novelty.cache_path(checkpoint_path(store, run_id))
    assert cached.is_file()
    before = cached.stat().st_mtime_ns
    again = novelty.for_run(store, run_id, model=model)
    assert cached.stat().st_mtime_ns == before
    assert again.threshold == pytest.approx(check.threshold)
    np.testing.assert_allclose(again.class_means, check.class_means, rtol=1e-5, atol=1e-5)


def test_dashboard_classify_reports_the_check(digits_run):
    _, _, model, check = digits_run
    result = classify_view.classify(model, np.full((40, 40, 3), 90, np.uint8), [str(i) for i in range(10)], 3, check)
    assert result["unusual"] is True and "flat" in result["unusual_reason"]
    digit = load_dataset("digits").x_test[1]
    assert set(classify_view.classify(model, digit, [str(i) for i in range(10)], 3, check)) >= {"unusual", "ood_score"}


def test_cli_classify_json_says_unusual(digits_run, tmp_path, capsys):
    store, run_id, _, _ = digits_run
    flat = save_png(np.full((32, 32, 1), 200, np.uint8), tmp_path / "flat.png")
    digit = save_png(load_dataset("digits").x_test[1], tmp_path / "digit.png")
    assert cli.main(["--home", str(store.home), "classify", run_id, str(flat), str(digit), "--json"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]
    assert results[0]["unusual"] is True and results[0]["ood_score"] > results[0]["ood_threshold"]
    assert results[1]["unusual"] is False and results[1]["ood_score"] < results[1]["ood_threshold"]
    assert cli.main(["--home", str(store.home), "classify", run_id, str(flat)]) == 0
    assert "unusual: a flat image" in capsys.readouterr().out
