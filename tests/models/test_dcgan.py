"""Contract tests for DCGAN, the shared GAN machinery (two optimizers, EMA, save/load) and the
fast upsampling layer."""

import jax
import keras
import numpy as np
import pytest
from keras import layers

from core.common.config import GANConfig
from core.common.errors import ConfigError
from core.models.dcgan import DCGAN, generator_plan
from core.models.gan_base import GANOptimizer
from core.models.gans import build_gan
from core.models.upsample import UpConv2D, upsample_nearest

SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3), (64, 64, 3)]
# (generator, discriminator) parameters at width 32, latent_dim 64.
PARAMS = {(8, 8, 1): (127649, 164865), (28, 28, 1): (519329, 170625),
          (32, 32, 3): (667363, 693569), (64, 64, 3): (1258211, 1742401)}


def tiny_images(count=16, shape=(8, 8, 1), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def compiled(model, lr=2e-4):
    model.compile(keras.optimizers.Adam(lr, beta_1=0.5), keras.optimizers.Adam(lr, beta_1=0.5))
    return model


def values(variables):
    return [np.array(v.numpy()) for v in variables]


# ---- UpConv2D ---------------------------------------------------------------------------------


def test_upsample_nearest_matches_upsampling2d():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4)).astype("float32")
    np.testing.assert_array_equal(np.asarray(upsample_nearest(x)), np.asarray(layers.UpSampling2D(2)(x)))


@pytest.mark.parametrize("kernel_size", [3, 5])  # 3: folded phase kernels; 5: upsample + conv
def test_upconv_equals_upsampling_plus_conv_outputs_and_gradients(kernel_size):
    keras.utils.set_random_seed(1)
    fast = UpConv2D(6, kernel_size)
    reference = keras.Sequential([layers.UpSampling2D(2), layers.Conv2D(6, kernel_size, padding="same")])
    x = np.random.default_rng(0).standard_normal((2, 5, 7, 4)).astype("float32")
    fast(x), reference(x)
    reference.layers[1].set_weights(fast.conv.get_weights())
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(reference(x)), rtol=1e-5, atol=1e-5)

    def grads(layer):
        def loss(weights, inputs):
            out, _ = layer.stateless_call(weights, [], inputs)
            return (out * np.arange(out.shape[-1], dtype="float32")).sum()

        return jax.grad(loss, argnums=(0, 1))([v.value for v in layer.trainable_variables], x)

    (fast_w, fast_x), (ref_w, ref_x) = grads(fast), grads(reference)
    np.testing.assert_allclose(np.asarray(fast_x), np.asarray(ref_x), rtol=1e-4, atol=1e-4)
    for a, b in zip(fast_w, ref_w, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_upconv_config_round_trip_and_shape():
    layer = UpConv2D(8, 5, use_bias=False, name="up")
    clone = UpConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert layer.compute_output_shape((None, 7, 7, 3)) == (None, 14, 14, 8)
    assert layer(np.zeros((1, 7, 7, 3), "float32")).shape == (1, 14, 14, 8)
    with pytest.raises(ValueError, match="odd"):
        UpConv2D(8, 4)


# ---- networks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "plan"), [(8, (2, 2)), (28, (7, 2)), (32, (4, 3)), (64, (4, 4))])
def test_generator_plan(size, plan):
    assert generator_plan((size, size, 1)) == plan


@pytest.mark.parametrize("shape", [(8, 6, 1), (30, 30, 1), (4, 4, 1)])
def test_generator_plan_rejects_unmakeable_shapes(shape):
    with pytest.raises(ConfigError):
        generator_plan(shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_and_parameter_counts(shape):
    model = DCGAN(shape)
    assert model.generator.output_shape == (None, *shape)
    assert model.discriminator.output_shape == (None, 1)
    assert (model.generator.count_params(), model.discriminator.count_params()) == PARAMS[shape]
    assert model.ema_generator.count_params() == model.generator.count_params()
    assert not model.ema_generator.trainable_variables  # EMA weights are non-trainable state
    if shape == (8, 8, 1):
        out = model.generate(np.zeros((3, 64), "float32"))
        assert out.shape == (3, *shape) and out.dtype == np.float32
        assert np.all(np.abs(out) <= 1.0)


def test_get_config_round_trip():
    model = DCGAN((8, 8, 1), ema_decay=0.9, seed=3, name="g")
    clone = DCGAN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()


def test_build_gan_uses_config():
    model = build_gan(GANConfig(model="dcgan", latent_dim=16, learning_rate=1e-3, beta_1=0.4), (8, 8, 1))
    assert isinstance(model, DCGAN) and model.latent_dim == 16
    assert isinstance(model.optimizer, GANOptimizer)
    for optimizer in (model.optimizer.generator, model.optimizer.discriminator):
        assert float(optimizer.learning_rate) == pytest.approx(1e-3)
        assert optimizer.beta_1 == pytest.approx(0.4)
    with pytest.raises(ConfigError, match="square"):
        build_gan(GANConfig(), (8, 16, 1))


# ---- training ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    """A DCGAN before and after one epoch (2 steps) on tiny uint8 data (fit takes raw pixels)."""
    keras.utils.set_random_seed(0)
    model = compiled(DCGAN((8, 8, 1), latent_dim=8, width=8, ema_decay=0.5))
    before = {
        "generator": values(model.generator.trainable_variables),
        "discriminator": values(model.discriminator.trainable_variables),
        "ema": values(model.ema_generator.variables),
        "seed": np.array(model.seed_generator.state.numpy()),
    }
    history = model.fit(tiny_images(), None, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model, before, history.history


def test_train_step_updates_both_networks_and_logs(trained):
    model, before, logs = trained
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v[-1]) for v in logs.values())
    assert 0.0 < logs["d_real"][-1] < 1.0 and 0.0 < logs["d_fake"][-1] < 1.0
    for old, new in zip(before["generator"], values(model.generator.trainable_variables), strict=True):
        assert not np.array_equal(old, new)
    for old, new in zip(before["discriminator"], values(model.discriminator.trainable_variables), strict=True):
        assert not np.array_equal(old, new)
    assert int(model.optimizer.iterations) == 2
    assert int(model.optimizer.generator.iterations) == 2
    assert int(model.optimizer.discriminator.iterations) == 2
    assert not np.array_equal(before["seed"], model.seed_generator.state.numpy())  # noise advanced


def test_ema_follows_generator(trained):
    """Two steps with decay min(0.5, (1+t)/(10+t)): ema2 = d2*(d1*ema0 + (1-d1)*g1) + (1-d2)*g2."""
    model, before, _ = trained
    generator = model.generator
    index = next(i for i, v in enumerate(generator.variables) if v.trainable)
    ema_now = np.asarray(model.ema_generator.variables[index].numpy())
    g_now = np.asarray(generator.variables[index].numpy())
    ema_before = before["ema"][index]
    assert not np.array_equal(ema_now, ema_before)
    assert not np.array_equal(ema_now, g_now)
    # Between the initial and the current weights (g1 is unknown here, so check the envelope).
    d1, d2 = min(0.5, 2 / 11), min(0.5, 3 / 12)
    assert np.abs(ema_now - g_now).max() <= np.abs(ema_before - g_now).max() * (d1 * d2) + 1e-2
    # Batch-norm statistics are copied, not averaged.
    for ema_var, var in zip(model.ema_generator.variables, generator.variables, strict=True):
        if not var.trainable:
            np.testing.assert_array_equal(ema_var.numpy(), var.numpy())


def test_save_load_restores_everything_and_resumes(trained, tmp_path):
    model = trained[0]
    path = tmp_path / "dcgan.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, DCGAN) and isinstance(loaded.optimizer, GANOptimizer)
    z = np.random.default_rng(1).standard_normal((5, 8)).astype("float32")
    np.testing.assert_array_equal(loaded.generate(z), model.generate(z))
    np.testing.assert_array_equal(loaded.generate(z, ema=False), model.generate(z, ema=False))
    for a, b in zip(values(model.optimizer.variables), values(loaded.optimizer.variables), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.seed_generator.state.numpy(), loaded.seed_generator.state.numpy())
    loaded.fit(tiny_images(), batch_size=8, epochs=2, initial_epoch=1, verbose=0)
    assert int(loaded.optimizer.iterations) == 4
    assert int(loaded.optimizer.generator.iterations) == 4


def test_gan_optimizer_refuses_to_guess_variables():
    optimizer = GANOptimizer("adam", "adam")
    with pytest.raises(ValueError, match="compile the GAN"):
        optimizer.build([])
    config = optimizer.get_config()
    clone = GANOptimizer.from_config(config)
    assert type(clone.generator) is keras.optimizers.Adam
