"""Contract tests for the class-conditional GAN (label embedding in G, projection in D)."""

import keras
import numpy as np
import pytest

from core.common.config import GANConfig
from core.common.errors import ConfigError
from core.models.cgan import CGAN
from core.models.gans import build_gan

SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3), (64, 64, 3)]
PARAMS = {(8, 8, 1): (144353, 169985), (28, 28, 1): (720353, 233345),
          (32, 32, 3): (798755, 734529), (64, 64, 3): (1389603, 1783361)}


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_and_parameter_counts(shape):
    model = CGAN(shape, num_classes=10)
    assert model.conditional
    assert model.generator.output_shape == (None, *shape)
    assert model.discriminator.output_shape == (None, 1)
    assert [tuple(i.shape) for i in model.generator.inputs] == [(None, 64), (None,)]
    assert (model.generator.count_params(), model.discriminator.count_params()) == PARAMS[shape]


def test_get_config_round_trip():
    model = CGAN((8, 8, 1), num_classes=3, latent_dim=8, width=8)
    clone = CGAN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.num_classes == 3 and clone.count_params() == model.count_params()


def test_needs_classes_and_labels():
    with pytest.raises(ValueError, match="at least 2 classes"):
        CGAN((8, 8, 1), num_classes=0)
    with pytest.raises(ConfigError, match="labeled"):
        build_gan(GANConfig(model="cgan"), (8, 8, 1), num_classes=0)
    model = CGAN((8, 8, 1), num_classes=3, latent_dim=8, width=8)
    with pytest.raises(ValueError, match="labels"):
        model.generate(np.zeros((2, 8), "float32"))


def test_train_step_with_labels_and_label_changes_image():
    keras.utils.set_random_seed(0)
    model = build_gan(GANConfig(model="cgan", latent_dim=8), (8, 8, 1), num_classes=3)
    x = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
    y = np.arange(16) % 3
    projection = np.array(model.discriminator.get_layer("projection").embeddings.numpy())
    logs = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v[-1]) for v in logs.values())
    assert not np.array_equal(projection, model.discriminator.get_layer("projection").embeddings.numpy())
    z = np.zeros((3, 8), "float32")
    out = model.generate(z, np.array([0, 1, 2]))
    assert not np.array_equal(out[0], out[1]) and not np.array_equal(out[1], out[2])
    with pytest.raises(ValueError, match="labels"):
        model.fit(x, batch_size=8, epochs=1, verbose=0)


def test_one_pass_over_real_and_fake_equals_two_passes():
    """``discriminate_pair`` interleaves the batches; each image keeps its own label and logit."""
    keras.utils.set_random_seed(0)
    model = CGAN((8, 8, 1), num_classes=3, latent_dim=8, width=8)
    rng = np.random.default_rng(0)
    real, fake = (rng.uniform(-1, 1, (5, 8, 8, 1)).astype("float32") for _ in range(2))
    labels = np.array([0, 1, 2, 1, 0])
    weights = [v.value for v in model.discriminator.trainable_variables]
    real_logits, fake_logits = model.discriminate_pair(weights, real, fake, labels)
    np.testing.assert_allclose(real_logits, model.discriminate(weights, real, labels), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fake_logits, model.discriminate(weights, fake, labels), rtol=1e-5, atol=1e-6)
    assert not np.allclose(real_logits, fake_logits)
