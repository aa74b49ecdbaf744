"""Classifier family: training on digits, resume, metrics, inference helpers and saliency."""

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest

from core.common.config import ClassifierConfig
from core.common.errors import ConfigError, ModelFileError, UserError
from core.data.datasets import load_dataset
from core.training.classifier import (
    ShuffledBatches,
    classify_images,
    evaluate_classifier,
    fit_classifier,
    predict_proba,
    prepare_images,
    recommended_settings,
    saliency,
)


@dataclasses.dataclass
class StubContext:
    """The part of ``core.training.runctx.RunContext`` that a family trainer uses, without a store."""

    run_dir: Path
    initial_epoch: int = 0
    resume_checkpoint: Path | None = None
    extra: tuple = ()

    def callbacks(self, steps_per_epoch, batch_size=None):
        self.steps_per_epoch = steps_per_epoch
        return list(self.extra)


class SaveEachEpoch(keras.callbacks.Callback):
    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        self.model.save(self.folder / f"epoch_{epoch + 1:03d}.keras")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """The default convnet trained on digits with the digits recipe (about 10 s on 2 cores)."""
    config = dataclasses.replace(ClassifierConfig(), **recommended_settings("digits", "convnet"))
    folder = tmp_path_factory.mktemp("digits-run")
    ctx = StubContext(folder, extra=(SaveEachEpoch(folder),))
    metrics = fit_classifier(config, digits, ctx)
    model = keras.saving.load_model(folder / f"epoch_{config.epochs:03d}.keras")
    return config, metrics, model, ctx


def test_digits_convnet_reaches_the_promised_accuracy(trained, digits):
    config, metrics, model, ctx = trained
    assert config.epochs == 10 and config.batch_size == 32
    assert metrics["test_accuracy"] >= 0.95
    assert ctx.steps_per_epoch == len(digits.x_train) // 32  # whole batches only
    # The saved checkpoint gives the same metrics as the model fit_classifier evaluated.
    assert evaluate_classifier(model, digits) == metrics


def test_metrics_are_consistent(trained, digits):
    metrics = trained[1]
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (10, 10)
    assert confusion.sum() == len(digits.y_test)
    np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(digits.y_test, minlength=10))
    assert np.trace(confusion) / confusion.sum() == pytest.approx(metrics["test_accuracy"])
    per_class = np.diag(confusion) / confusion.sum(axis=1)
    np.testing.assert_allclose(metrics["per_class_accuracy"], per_class)
    assert 0 < metrics["test_loss"] < 0.5
    assert metrics["num_params"] == 29_354


def _small(data, train=400, test=100):
    """The first images of each split: enough to exercise training in a few seconds."""
    return dataclasses.replace(
        data,
        x_train=data.x_train[:train],
        y_train=data.y_train[:train],
        x_test=data.x_test[:test],
        y_test=data.y_test[:test],
    )


SHORT = ClassifierConfig(epochs=2, batch_size=50, seed=7)  # on 400 images: 8 whole batches an epoch


@pytest.fixture(scope="module")
def short_run(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("short-run")
    return fit_classifier(SHORT, _small(digits), StubContext(folder))


def test_same_seed_gives_the_same_metrics(short_run, digits, tmp_path):
    assert fit_classifier(SHORT, _small(digits), StubContext(tmp_path)) == short_run
    other_seed = fit_classifier(dataclasses.replace(SHORT, seed=8), _small(digits), StubContext(tmp_path))
    assert other_seed != short_run


class StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def test_resume_continues_exactly_where_training_stopped(short_run, digits, tmp_path):
    small = _small(digits)
    interrupted = StubContext(tmp_path, extra=(SaveEachEpoch(tmp_path), StopAfterFirstEpoch()))
    fit_classifier(SHORT, small, interrupted)
    first = keras.saving.load_model(tmp_path / "epoch_001.keras")
    assert int(np.asarray(first.optimizer.iterations)) == 8
    assert 0 < float(np.asarray(first.optimizer.learning_rate)) < SHORT.learning_rate  # mid-schedule

    resumed = StubContext(
        tmp_path / "resumed",
        initial_epoch=1,
        resume_checkpoint=tmp_path / "epoch_001.keras",
        extra=(SaveEachEpoch(tmp_path),),
    )
    metrics = fit_classifier(SHORT, small, resumed)
    final = keras.saving.load_model(tmp_path / "epoch_002.keras")
    assert int(np.asarray(final.optimizer.iterations)) == 16
    assert float(np.asarray(final.optimizer.learning_rate)) == pytest.approx(
        0.0, abs=1e-6
    )  # end of the cosine
    # Same batches, optimizer state and augmentation seeds: the same result as no interruption.
    assert metrics == short_run


def test_batches_are_whole_and_seeded_by_epoch():
    images, labels = np.arange(10).reshape(10, 1, 1, 1), np.arange(10)
    batches = ShuffledBatches(images, labels, batch_size=4, seed=3)
    assert len(batches) == 2
    epoch0 = [batches[i][1].tolist() for i in range(2)]
    assert all(len(batch) == 4 for batch in epoch0) and len(set(sum(epoch0, []))) == 8
    batches.set_epoch(1)
    epoch1 = [batches[i][1].tolist() for i in range(2)]
    assert epoch1 != epoch0
    resumed = ShuffledBatches(images, labels, batch_size=4, seed=3, epoch=1)
    assert [resumed[i][1].tolist() for i in range(2)] == epoch1
    np.testing.assert_array_equal(batches[0][0].ravel(), batches[0][1])  # images stay with their labels


def test_resume_from_a_checkpoint_of_other_data_fails_clearly(digits, tmp_path):
    path = tmp_path / "other.keras"
    from core.models.classifiers import build_classifier

    build_classifier("convnet", (8, 8, 1), 3).save(path)  # 3 classes, not 10
    ctx = StubContext(tmp_path, initial_epoch=1, resume_checkpoint=path)
    with pytest.raises(ModelFileError, match="takes"):
        fit_classifier(ClassifierConfig(epochs=2), _small(digits), ctx)


def test_unlabeled_data_is_refused(digits, tmp_path):
    unlabeled = dataclasses.replace(digits, y_train=None, y_test=None)
    with pytest.raises(ConfigError, match="no labels"):
        fit_classifier(ClassifierConfig(epochs=1), unlabeled, StubContext(tmp_path))


def test_classify_images_orders_classes_and_sums_to_one(trained, digits):
    model = trained[2]
    names = [f"digit {i}" for i in range(10)]
    results = classify_images(model, digits.x_test[:5], names, top_k=10)
    probabilities = predict_proba(model, digits.x_test[:5])
    for result, row in zip(results, probabilities, strict=True):
        top = [entry["probability"] for entry in result["top"]]
        assert top == sorted(top, reverse=True)
        assert sum(top) == pytest.approx(1.0, abs=1e-5)
        assert result["class_index"] == int(row.argmax())
        assert result["class_name"] == names[result["class_index"]]
    assert len(classify_images(model, digits.x_test[:2], names, top_k=3)[0]["top"]) == 3
    assert len(classify_images(model, digits.x_test[:2], names, top_k=99)[0]["top"]) == 10
    with pytest.raises(UserError, match="3 class names"):
        classify_images(model, digits.x_test[:2], names[:3])
    with pytest.raises(UserError, match="prepare_images"):
        predict_proba(model, np.zeros((1, 28, 28, 1), np.uint8))


def _dark_digit_on_paper(size=64):
    """A thick dark '1' on light paper: what a user draws or photographs."""
    image = np.full((size, size), 230, np.uint8)
    image[size // 8 : -size // 8, size // 2 - size // 10 : size // 2 + size // 10] = 20
    return image


def test_prepare_images_inverts_dark_on_light_and_resizes():
    prepared, notes = prepare_images(_dark_digit_on_paper(), (8, 8, 1))
    assert prepared.shape == (1, 8, 8, 1) and prepared.dtype == np.uint8
    assert any("inverted" in note for note in notes)
    assert any("resized from 64x64 to 8x8" in note for note in notes)
    assert prepared[0, 0, 0, 0] < 40 and prepared[0, 4, 4, 0] > 200  # light stroke on dark


def test_prepare_images_keeps_light_on_dark_images(digits):
    prepared, notes = prepare_images(digits.x_test[:3], (8, 8, 1))
    np.testing.assert_array_equal(prepared, digits.x_test[:3])
    assert notes == []


def test_prepare_images_converts_channels_and_aspect():
    rgb = np.stack([_dark_digit_on_paper(40)[:, :30]] * 3, axis=-1)  # (40, 30, 3)
    prepared, notes = prepare_images(rgb, (28, 28, 1))
    assert prepared.shape == (1, 28, 28, 1)
    assert "converted colour to grayscale" in notes
    assert any("aspect ratio" in note for note in notes)
    colour, notes = prepare_images(np.zeros((2, 32, 32, 1), np.uint8), (32, 32, 3))
    assert colour.shape == (2, 32, 32, 3) and "converted grayscale to colour" in notes
    assert not any("inverted" in note for note in notes)  # colour models are never inverted


def test_prepare_images_crops_a_small_drawing_to_fill_the_frame():
    canvas = np.full((280, 280), 255, np.uint8)  # a small dark "7" drawn in a big white canvas
    canvas[100:108, 120:160] = 0
    canvas[108:170, 150:158] = 0
    prepared, notes = prepare_images(canvas, (8, 8, 1))
    assert any("cropped all images to the drawing" in note for note in notes)
    digit = prepared[0, :, :, 0]
    assert digit.max() == 255 and digit[:2].max() > 200 and digit[:, :2].max() < 50  # framed like a digit
    uncropped, _ = prepare_images(np.full((12, 12), 255, np.uint8), (8, 8, 1))  # not > 2x: left alone
    assert uncropped.max() == 0


def test_prepare_images_handles_transparent_drawings_and_floats():
    canvas = np.zeros((50, 50, 4), np.uint8)  # transparent canvas, black strokes
    canvas[10:40, 22:28] = (0, 0, 0, 255)
    prepared, notes = prepare_images(canvas, (8, 8, 1))
    assert "removed the alpha channel" in notes and any("inverted" in note for note in notes)
    assert prepared[0, 4, 4, 0] > 150 and prepared[0, 0, 0, 0] == 0
    floats, notes = prepare_images(np.full((8, 8), 0.25, np.float32), (8, 8, 1))
    assert floats[0, 0, 0, 0] == 64 and "scaled 0..1 pixel values to 0..255" in notes
    with pytest.raises(UserError, match="expected images"):
        prepare_images(np.zeros((2, 3, 8, 8, 1)), (8, 8, 1))


@pytest.mark.parametrize("method", ["smoothgrad", "gradcam"])
def test_saliency_is_a_deterministic_unit_map_on_the_digit(trained, digits, method):
    model = trained[2]
    image = digits.x_test[0]
    label = int(digits.y_test[0])
    heatmap = saliency(model, image, label, method=method)
    assert heatmap.shape == (8, 8) and heatmap.dtype == np.float32
    assert np.isfinite(heatmap).all() and heatmap.min() >= 0.0 and heatmap.max() == pytest.approx(1.0)
    assert heatmap.std() > 0.05
    np.testing.assert_array_equal(saliency(model, image, label, method=method), heatmap)
    if method == "smoothgrad":
        # Averaged over test digits, the model looks at the middle more than the corners.
        maps = np.mean(
            [saliency(model, x, int(y)) for x, y in zip(digits.x_test[:8], digits.y_test[:8], strict=True)],
            axis=0,
        )
        corners = np.mean([maps[0, 0], maps[0, -1], maps[-1, 0], maps[-1, -1]])
        assert maps[2:6, 2:6].mean() > corners


def test_saliency_rejects_bad_input(trained, digits):
    model = trained[2]
    with pytest.raises(UserError, match="class index"):
        saliency(model, digits.x_test[0], 10)
    with pytest.raises(UserError, match="unknown saliency method"):
        saliency(model, digits.x_test[0], 0, method="lime")
    with pytest.raises(UserError, match="does not fit"):
        saliency(model, np.zeros((28, 28, 1)), 0)


def test_recommended_settings():
    assert recommended_settings("digits", "convnet") == {"epochs": 10, "batch_size": 32}
    assert recommended_settings("fashion_mnist", "convnet") == {"epochs": 4, "learning_rate": 5e-3, "augment": False}
    assert recommended_settings("folder:cats", "convnet") == {}
