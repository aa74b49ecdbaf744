"""The seam between fast and stock layers: same function, same gradients, stock Keras layers only."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from core.models import build_classifier
from core.models.cgan import build_conditional_generator, build_projection_discriminator
from core.models.dcgan import build_discriminator, build_generator
from core.models.fast import fast_model, is_stock, stock_model

RNG = np.random.default_rng(0)
LABELS = np.array([0, 2, 1], np.int32)


def _pixels(shape):
    return RNG.uniform(0, 255, (3, *shape)).astype(np.float32)


def _images(shape):
    return RNG.uniform(-1, 1, (3, *shape)).astype(np.float32)


def _latents():
    return RNG.normal(size=(3, 8)).astype(np.float32)


# name -> () -> (model, inputs, training); generators train so batch norm uses the batch's moments
CASES = {
    "convnet": lambda: (build_classifier("convnet", (16, 16, 1), 4, seed=1), [_pixels((16, 16, 1))], False),
    "resnet": lambda: (build_classifier("resnet", (16, 16, 3), 4, seed=1), [_pixels((16, 16, 3))], False),
    "dcgan generator": lambda: (fast_model(build_generator((16, 16, 1), 8, 8, "g")), [_latents()], True),
    "dcgan discriminator": lambda: (fast_model(build_discriminator((16, 16, 3), 8, "d")),
                                    [_images((16, 16, 3))], True),
    "cgan generator": lambda: (fast_model(build_conditional_generator((28, 28, 1), 8, 3, 8, "g")),
                               [_latents(), LABELS], True),
    "cgan discriminator": lambda: (fast_model(build_projection_discriminator((28, 28, 1), 3, 8, "d")),
                                   [_images((28, 28, 1)), LABELS], True),
}


def _outputs_and_gradients(model, inputs, training):
    """Outputs, and gradients of a fixed projection of them by the weights and the float inputs."""
    projection = jnp.asarray(np.random.default_rng(1).normal(size=(3, *model.output_shape[1:])).astype(np.float32))
    non_trainable = [variable.value for variable in model.non_trainable_variables]

    def loss(trainable, first):
        feed = [first, *inputs[1:]] if isinstance(model.input, (list, tuple)) else first
        outputs, _ = model.stateless_call(trainable, non_trainable, feed, training=training)
        return jnp.sum(outputs * projection), outputs

    trainable = [variable.value for variable in model.trainable_variables]
    (_, outputs), (weight_grads, input_grad) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        trainable, jnp.asarray(inputs[0]))
    return np.asarray(outputs), [np.asarray(g) for g in weight_grads], np.asarray(input_grad)


@pytest.mark.parametrize("name", list(CASES))
def test_stock_model_computes_the_same_function_and_gradients(name):
    model, inputs, training = CASES[name]()
    stock = stock_model(model)
    assert all(is_stock(layer) for layer in stock.layers)
    assert not all(is_stock(layer) for layer in model.layers)  # the fast form is what the CPU trains
    fast_out, fast_weight_grads, fast_input_grad = _outputs_and_gradients(model, inputs, training)
    stock_out, stock_weight_grads, stock_input_grad = _outputs_and_gradients(stock, inputs, training)
    np.testing.assert_allclose(stock_out, fast_out, rtol=1e-5, atol=1e-5)
    assert [g.shape for g in stock_weight_grads] == [g.shape for g in fast_weight_grads]
    for stock_grad, fast_grad in zip(stock_weight_grads, fast_weight_grads, strict=True):
        scale = max(1.0, float(np.abs(fast_grad).max()))
        np.testing.assert_allclose(stock_grad / scale, fast_grad / scale, atol=1e-5)
    if name != "convnet" and name != "resnet":  # classifiers rescale pixels: their input gradient is tiny
        scale = max(1.0, float(np.abs(fast_input_grad).max()))
        np.testing.assert_allclose(stock_input_grad / scale, fast_input_grad / scale, atol=1e-5)


def test_stock_model_keeps_layer_names_and_leaves_augmentation_out():
    model = build_classifier("convnet", (28, 28, 1), 4, augment=True)
    stock = stock_model(model, name="classifier")
    names = [layer.name for layer in stock.layers]
    assert stock.name == "classifier" and "augment" in [layer.name for layer in model.layers]
    assert "augment" not in names and {"block0_conv", "pool1", "block0_bn", "dropout", "logits"} <= set(names)
    assert type(stock.get_layer("pool1")) is keras.layers.MaxPooling2D
    assert type(stock.get_layer("block0_conv")) is keras.layers.Conv2D


def test_upconv_becomes_upsampling_and_conv_with_its_weights():
    generator = fast_model(build_generator((16, 16, 1), 8, 8, "g"))
    stock = stock_model(generator)
    assert type(stock.get_layer("up0")) is keras.layers.UpSampling2D
    conv = stock.get_layer("up0_conv")
    np.testing.assert_array_equal(conv.kernel.numpy(), generator.get_layer("up0").conv.kernel.numpy())


def test_stock_model_refuses_a_layer_without_stock_form():
    class Doubling(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="Doubling"):
        stock_model(keras.Model(inputs, Doubling()(inputs)))
