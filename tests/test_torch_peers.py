"""The PyTorch twins the benchmark times are the same networks as ours: same parameter counts
and, with our weights copied in, the same outputs."""

import keras
import numpy as np
import pytest
import torch

from bench import torch_peers
from core.common.errors import ConfigError
from core.models import dcgan
from core.models.classifiers import build_classifier


def _same_outputs(keras_model, inputs, *, channels_first_output=False):
    twin = torch_peers.translate(keras_model)
    assert torch_peers.parameter_count(twin) == torch_peers.keras_trainable_count(keras_model)
    torch_peers.copy_weights(keras_model, twin)
    twin.eval()
    ours = np.asarray(keras_model(inputs, training=False))
    with torch.no_grad():
        theirs = twin(torch.from_numpy(inputs)).numpy()
    if channels_first_output:
        theirs = theirs.transpose(0, 2, 3, 1)
    return ours, theirs


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
def test_convnet_twin_computes_the_same_probabilities(shape):
    keras.utils.set_random_seed(0)
    model = build_classifier("convnet", shape, 10, augment=False)
    # Non-trivial batch-norm statistics, so a mistake in copying them would show.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.linspace(-0.5, 0.5, layer.moving_mean.shape[0]))
            layer.moving_variance.assign(np.linspace(0.5, 2.0, layer.moving_variance.shape[0]))
    images = np.random.default_rng(0).integers(0, 256, (6, *shape), dtype=np.uint8)
    ours, logits = _same_outputs(model, images)
    np.testing.assert_allclose(ours, torch.softmax(torch.from_numpy(logits), -1).numpy(), atol=1e-5)
    assert ours.argmax(1).tolist() == logits.argmax(1).tolist()


@pytest.mark.parametrize("size", [8, 28])
def test_dcgan_twins_compute_the_same_images_and_logits(size):
    keras.utils.set_random_seed(0)
    generator = dcgan.build_generator((size, size, 1), latent_dim=16, width=8, name="g")
    latents = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)
    ours, theirs = _same_outputs(generator, latents, channels_first_output=True)
    assert ours.shape == theirs.shape == (4, size, size, 1)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)

    discriminator = dcgan.build_discriminator((size, size, 1), width=8, name="d")
    images = np.random.default_rng(2).uniform(-1, 1, (4, size, size, 1)).astype(np.float32)
    ours, theirs = _same_outputs(discriminator, images)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_training_mode_batch_norm_matches_too():
    keras.utils.set_random_seed(0)
    generator = dcgan.build_generator((8, 8, 1), latent_dim=16, width=8, name="g")
    twin = torch_peers.translate(generator)
    torch_peers.copy_weights(generator, twin)
    latents = np.random.default_rng(3).normal(size=(32, 16)).astype(np.float32)
    ours = np.asarray(generator(latents, training=True))
    theirs = twin.train()(torch.from_numpy(latents)).detach().numpy().transpose(0, 2, 3, 1)
    # Batch statistics: PyTorch normalises by the biased variance, as Keras does.
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_a_layer_without_a_twin_is_refused():
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="gap")(inputs))
    with pytest.raises(ConfigError, match="no PyTorch twin for Keras layer 'gap'"):
        torch_peers.translate(model)


def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    with pytest.raises(ConfigError, match="pip install -r requirements-bench.txt"):
        torch_peers.import_torch()
