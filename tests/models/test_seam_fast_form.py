"""Model files build stock Keras layers; ``core.models.fast`` substitutes the fast forms on the CPU only."""

import keras
import numpy as np
import pytest

from core.common.config import GANConfig
from core.models import build_classifier, build_gan, fast
from core.models.convnet import build_convnet
from core.models.dcgan import build_discriminator, build_generator
from core.models.downsample import StridedConv2D
from core.models.fast import fast_model, is_stock
from core.models.layers import BatchNormalization, Dropout, MaxPool2x2
from core.models.patches import PatchConv2D
from core.models.resnet import build_resnet
from core.models.upsample import UpConv2D

MODEL_FILES = {
    "convnet": lambda: build_convnet((28, 28, 1), 4, augment=False),
    "resnet": lambda: build_resnet((16, 16, 3), 4, augment=False),
    "dcgan generator": lambda: build_generator((28, 28, 1), 8, 8, "g"),
    "dcgan discriminator": lambda: build_discriminator((28, 28, 1), 8, "d"),
}


@pytest.mark.parametrize("name", list(MODEL_FILES))
def test_model_files_build_stock_keras_layers_only(name):
    model = MODEL_FILES[name]()
    assert [layer.name for layer in model.layers if not is_stock(layer)] == []


def test_the_cpu_trains_the_fast_form_with_the_stock_models_initial_weights():
    keras.utils.set_random_seed(3)
    stock = build_convnet((28, 28, 1), 4, augment=False, seed=3)
    keras.utils.set_random_seed(3)
    model = build_classifier("convnet", (28, 28, 1), 4, augment=False, seed=3)
    kinds = {layer.name: type(layer) for layer in model.layers}
    assert kinds["block0_conv"] is PatchConv2D and kinds["pool1"] is MaxPool2x2
    assert kinds["block0_bn"] is BatchNormalization and kinds["dropout"] is Dropout
    assert [w.path for w in model.weights] == [w.path for w in stock.weights]
    for ours, theirs in zip(model.weights, stock.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_gan_networks_take_the_fast_forms_and_keep_their_weight_names():
    gan = build_gan(GANConfig(model="dcgan", latent_dim=8), (28, 28, 1))
    generator, discriminator = gan.generator, gan.discriminator
    assert type(generator.get_layer("up0")) is UpConv2D and generator.get_layer("up0").conv.kernel.shape[:2] == (3, 3)
    assert type(generator.get_layer("to_image")) is PatchConv2D
    assert type(discriminator.get_layer("down0")) is StridedConv2D
    assert type(discriminator.get_layer("stem")) is PatchConv2D
    # The paths the fast layers had when the model files built them directly: older checkpoints load.
    assert "up0/conv/kernel" in [w.path for w in generator.weights]


def test_building_the_fast_form_draws_no_random_numbers():
    keras.utils.set_random_seed(5)
    build_generator((28, 28, 1), 8, 8, "g")
    expected = build_discriminator((28, 28, 1), 8, "d").get_weights()
    keras.utils.set_random_seed(5)
    fast_model(build_generator((28, 28, 1), 8, 8, "g"))
    for ours, theirs in zip(build_discriminator((28, 28, 1), 8, "d").get_weights(), expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_fast_model_of_a_fast_model_is_itself():
    model = build_classifier("convnet", (16, 16, 1), 3)
    assert fast_model(model) is model


def test_other_devices_get_the_stock_layers(monkeypatch):
    monkeypatch.setattr(fast, "on_cpu", lambda: False)
    model = build_classifier("resnet", (16, 16, 1), 3, augment=False)
    assert all(is_stock(layer) for layer in model.layers)
    gan = build_gan(GANConfig(model="dcgan", latent_dim=8), (16, 16, 1))
    assert all(is_stock(layer) for net in (gan.generator, gan.discriminator) for layer in net.layers)


def test_a_checkpoint_with_the_older_project_layers_still_loads(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = PatchConv2D(4, 3, padding="same", name="conv")(inputs)
    x = MaxPool2x2(name="pool")(BatchNormalization(name="bn")(x))
    x = UpConv2D(2, name="up")(Dropout(0.5, seed=1, name="drop")(x))
    x = StridedConv2D(2, 4, strides=2, padding="same", name="down")(x)
    model = keras.Model(inputs, x)
    model.save(tmp_path / "old.keras")
    loaded = keras.saving.load_model(tmp_path / "old.keras")
    images = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6)
