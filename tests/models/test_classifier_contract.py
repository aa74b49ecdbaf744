"""Contract tests shared by the classifiers (``convnet``, ``resnet``): shapes, parameters,
config, training, saving. Model-specific structure is tested in ``test_<model>.py``."""

import keras
import numpy as np
import pytest

from core.common.errors import ConfigError
from core.models.classifiers import build_classifier
from tests.models.classifier_contract import PARAMETERS, unbuilt_models


def _images(shape, count=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, *shape), dtype=np.uint8)


def _predict(model, images):
    # One jitted call; eager calls compile every operation separately (seconds on 2 cores).
    return model.predict(images, batch_size=len(images), verbose=0)


@pytest.fixture(scope="module", params=["convnet", "resnet"])
def name(request):
    return request.param


@pytest.fixture(scope="module")
def models(name):
    return unbuilt_models(name)


@pytest.fixture(scope="module")
def trained(name):
    """A small model after one real training step, with its weights from before the step."""
    keras.utils.set_random_seed(1)
    model = build_classifier(name, (8, 8, 1), 10)
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="sparse_categorical_crossentropy")
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(_images((8, 8, 1), count=16), np.arange(16) % 10)
    return model, before, loss


def test_output_shape_and_parameter_count(models, name):
    for (shape, classes), model in models.items():
        assert model.input_shape == (None, *shape)
        assert model.output_shape == (None, classes)
        assert model.count_params() == PARAMETERS[(name, shape, classes)], (name, shape)
        assert model.get_layer("logits").units == classes


def test_predicts_probabilities_from_raw_pixels(trained):
    model = trained[0]
    images = _images((8, 8, 1))
    probabilities = _predict(model, images)
    assert probabilities.shape == (8, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(_predict(model, images), probabilities)  # no dropout/augmentation
    float_probabilities = _predict(model, images.astype(np.float32))
    np.testing.assert_allclose(float_probabilities, probabilities, rtol=1e-5, atol=1e-6)


def test_config_round_trip(trained):
    model = trained[0]
    clone = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert clone.count_params() == model.count_params()
    assert clone.get_layer("augment").get_config() == model.get_layer("augment").get_config()
    clone.set_weights(model.get_weights())
    images = _images((8, 8, 1))
    np.testing.assert_array_equal(_predict(clone, images), _predict(model, images))


def test_one_training_step_changes_every_weight(trained):
    model, before, loss = trained
    assert np.isfinite(loss)
    after = model.trainable_weights
    assert all(not np.array_equal(b, np.asarray(a)) for b, a in zip(before, after, strict=True))


def test_save_and_load_give_identical_predictions(trained, tmp_path):
    model = trained[0]
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: our layers are registered
    images = _images((8, 8, 1), seed=2)
    np.testing.assert_array_equal(_predict(loaded, images), _predict(model, images))
    assert int(loaded.optimizer.iterations.numpy()) == 1
    for original, restored in zip(model.non_trainable_weights, loaded.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(np.asarray(original), np.asarray(restored))  # batch-norm statistics


def test_bad_arguments_raise_config_errors(name):
    with pytest.raises(ConfigError, match="at least 8x8"):
        build_classifier(name, (4, 4, 1), 10)
    with pytest.raises(ConfigError, match="channel axis"):
        build_classifier(name, (28, 28), 10)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_classifier(name, (28, 28, 1), 1)
    with pytest.raises(ConfigError, match="unknown classifier model"):
        build_classifier("vgg", (28, 28, 1), 10)


def test_augment_false_has_no_augmentation_layer(models, name):
    assert "augment" in [layer.name for layer in models[((8, 8, 1), 10)].layers]
    names = [layer.name for layer in build_classifier(name, (8, 8, 1), 10, augment=False).layers]
    assert "augment" not in names
