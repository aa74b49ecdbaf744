"""The reference classifier of GAN metrics: gan_metrics only loads one, the runs layer makes sure
of it (training it if missing) before a GAN is scored."""

import keras
import numpy as np
import pytest

from core.common.config import GANConfig
from core.common.errors import UserError
from core.data.datasets import load_dataset
from core.evaluation import gan_metrics
from core.models.gans import build_gan
from core.runs import training
from core.training import gan
from tests.stored_runs import completed_classifier_run

SMALL_GAN = GANConfig(model="dcgan", epochs=1, batch_size=32, latent_dim=8, metric_samples=40)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _real_images(data):
    def sample(n, seed, labels):
        return data.x_test[:n]

    return sample


def test_evaluating_without_a_reference_classifier_is_a_one_line_error(store, digits):
    with pytest.raises(UserError) as caught:
        gan_metrics.evaluate_generator(_real_images(digits), digits, num_samples=50)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("no reference classifier for digits: ")
    assert "python -m core train --model convnet --dataset digits" in message
    assert store.list_runs() == [], "nothing trained on demand"


def test_the_error_names_the_image_size_to_train_at(store):
    with pytest.raises(UserError, match="at 16 pixels: .* --dataset digits --image-size 16`$"):
        gan_metrics.reference_classifier("digits", store, image_size=16)
    assert store.list_runs() == []


def test_scoring_a_gan_outside_a_run_skips_the_metrics_and_trains_nothing(store, digits, caplog):
    keras.utils.set_random_seed(0)
    model = build_gan(SMALL_GAN, digits.image_shape)
    assert gan.evaluate_gan(model, digits, SMALL_GAN, store=store) == {}
    assert "GAN metrics skipped: UserError: no reference classifier for digits" in caplog.text
    assert store.list_runs() == []


def test_the_runs_layer_returns_the_best_stored_reference_without_training(store):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4),
                              keras.layers.Dense(10, activation="softmax")])
    completed_classifier_run(store, model, "digits", 0.5)
    best = completed_classifier_run(store, model, "digits", 0.9)
    assert training.reference_run("digits", store)["run_id"] == best
    assert gan_metrics.reference_run("digits", store)["run_id"] == best
    assert len(store.list_runs()) == 2


@pytest.mark.slow
def test_the_runs_layer_trains_a_missing_reference_once(store, digits):
    """A GAN run scores after training the reference classifier it lacked, in the same store."""
    run = training.reference_run("digits", store, epochs=1)
    assert run["status"] == "completed" and run["family"] == "classifier"
    assert training.reference_run("digits", store)["run_id"] == run["run_id"]  # found: no second run
    assert len(store.list_runs(family="classifier")) == 1
    classifier = gan_metrics.reference_classifier("digits", store)
    scores = gan_metrics.evaluate_generator(_real_images(digits), digits, classifier=classifier, num_samples=50)
    assert np.isfinite(scores["fid_cls"])
