"""Contract tests for WGAN-GP: critic loss with gradient penalty, n_critic, logs."""

import keras
import numpy as np
import pytest

from core.common.config import GANConfig
from core.models.gans import build_gan
from core.models.wgan_gp import WGANGP

SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3), (64, 64, 3)]
PARAMS = {(8, 8, 1): (127649, 164865), (28, 28, 1): (519329, 170625),
          (32, 32, 3): (667363, 693569), (64, 64, 3): (1258211, 1742401)}


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_and_parameter_counts(shape):
    model = WGANGP(shape)
    assert model.generator.output_shape == (None, *shape)
    assert model.discriminator.output_shape == (None, 1)
    assert (model.generator.count_params(), model.discriminator.count_params()) == PARAMS[shape]


def test_get_config_round_trip():
    model = WGANGP((8, 8, 1), n_critic=3, gp_weight=5.0, latent_dim=8, width=8)
    config = model.get_config()
    assert config["n_critic"] == 3 and config["gp_weight"] == 5.0
    clone = WGANGP.from_config(config)
    assert clone.get_config() == config
    with pytest.raises(ValueError, match="n_critic"):
        WGANGP((8, 8, 1), n_critic=0)


def test_build_gan_wgan_settings():
    model = build_gan(GANConfig(model="wgan-gp", n_critic=2, gp_weight=3.0, latent_dim=8), (8, 8, 1))
    assert isinstance(model, WGANGP) and model.n_critic == 2 and model.gp_weight == 3.0
    assert model.optimizer.generator.beta_2 == pytest.approx(0.9)


def test_train_steps_critic_every_batch_generator_every_n_critic():
    keras.utils.set_random_seed(0)
    model = build_gan(GANConfig(model="wgan-gp", n_critic=2, latent_dim=8), (8, 8, 1))
    x = np.random.default_rng(0).integers(0, 256, (24, 8, 8, 1), dtype=np.uint8)
    generator_before = [np.array(v.numpy()) for v in model.generator.trainable_variables]
    # One batch: the critic steps, the generator does not (it steps on every 2nd batch).
    model.fit(x[:8], batch_size=8, epochs=1, verbose=0)
    assert int(model.optimizer.discriminator.iterations) == 1
    assert int(model.optimizer.generator.iterations) == 0
    for old, new in zip(generator_before, model.generator.trainable_variables, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    logs = model.fit(x, batch_size=8, epochs=2, initial_epoch=1, verbose=0).history
    assert int(model.optimizer.discriminator.iterations) == 4
    assert int(model.optimizer.generator.iterations) == 2
    assert set(logs) == {"d_loss", "g_loss", "critic_real", "critic_fake", "wasserstein", "gp"}
    for name, value in logs.items():
        assert np.isfinite(value[-1]), name
    assert logs["gp"][-1] > 0.0
    assert logs["wasserstein"][-1] == pytest.approx(logs["critic_real"][-1] - logs["critic_fake"][-1], abs=1e-5)
    changed = [not np.array_equal(old, new.numpy())
               for old, new in zip(generator_before, model.generator.trainable_variables, strict=True)]
    assert all(changed)
