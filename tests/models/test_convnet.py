"""Contract tests for the ``convnet`` classifier: shapes, parameters, config, training, saving."""

import keras
import numpy as np
import pytest
from keras.src.backend.common import global_state

from core.errors import ConfigError
from core.models.classifiers import build_classifier
from core.models.convnet import num_pools

NAME = "convnet"
# (input shape, classes) -> parameters. A change here changes every saved checkpoint.
PARAMETERS = {
    ((8, 8, 1), 10): 29_354,
    ((28, 28, 1), 10): 55_002,
    ((32, 32, 3), 10): 118_650,
}


def _images(shape, count=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, *shape), dtype=np.uint8)


def _predict(model, images):
    # One jitted call; eager calls compile every operation separately (seconds on 2 cores).
    return model.predict(images, batch_size=len(images), verbose=0)


@pytest.fixture(scope="module")
def models():
    """One model per tested input shape, with its weights' shapes but not their values.

    Initialising a weight compiles a JAX random kernel per shape (seconds per model on 2
    cores); the structure tests need none of it.
    """
    with keras.StatelessScope(initialize_variables=False):
        built = {key: build_classifier(NAME, *key) for key in PARAMETERS}
    # Drop the deferred initialisers, or the next stateless scope to close would run them all.
    global_state.set_global_attribute("uninitialized_variables", [])
    return built


@pytest.fixture(scope="module")
def trained():
    """A small model after one real training step, with its weights from before the step."""
    keras.utils.set_random_seed(1)
    model = build_classifier(NAME, (8, 8, 1), 10)
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="sparse_categorical_crossentropy")
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(_images((8, 8, 1), count=16), np.arange(16) % 10)
    return model, before, loss


def test_pools_leave_a_4_to_7_pixel_map(models):
    assert [num_pools((size, size, 1)) for size in (8, 12, 16, 28, 32, 64)] == [1, 1, 2, 2, 3, 4]
    assert models[((28, 28, 1), 10)].get_layer("block2_relu").output.shape == (None, 7, 7, 64)
    assert models[((32, 32, 3), 10)].get_layer("block3_relu").output.shape == (None, 4, 4, 128)


@pytest.mark.parametrize("key", list(PARAMETERS))
def test_output_shape_and_parameter_count(models, key):
    shape, classes = key
    model = models[key]
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, classes)
    assert model.count_params() == PARAMETERS[key]
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
    path = tmp_path / f"{NAME}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: our layers are registered
    images = _images((8, 8, 1), seed=2)
    np.testing.assert_array_equal(_predict(loaded, images), _predict(model, images))
    assert int(loaded.optimizer.iterations.numpy()) == 1
    for original, restored in zip(model.non_trainable_weights, loaded.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(np.asarray(original), np.asarray(restored))  # batch-norm statistics


def test_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="at least 8x8"):
        build_classifier(NAME, (4, 4, 1), 10)
    with pytest.raises(ConfigError, match="channel axis"):
        build_classifier(NAME, (28, 28), 10)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_classifier(NAME, (28, 28, 1), 1)
    with pytest.raises(ConfigError, match="unknown classifier model"):
        build_classifier("vgg", (28, 28, 1), 10)


def test_augment_false_has_no_augmentation_layer(models):
    assert "augment" in [layer.name for layer in models[((8, 8, 1), 10)].layers]
    names = [layer.name for layer in build_classifier(NAME, (8, 8, 1), 10, augment=False).layers]
    assert "augment" not in names
