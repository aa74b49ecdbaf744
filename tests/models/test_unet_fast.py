"""The restoration U-Net's CPU fast form: the stock model's function and gradients, and a 1x1
one-filter output convolution whose weight gradient is one matrix product (no transposed copies)."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from core.models.fast import fast_model, stock_model
from core.models.patches import patch_conv
from core.models.unet import build_unet

RNG = np.random.default_rng(0)


def _loss_and_gradients(model, degraded, clean):
    """The L1 training loss and its gradients by the weights and the input."""
    non_trainable = [variable.value for variable in model.non_trainable_variables]

    def loss(trainable, inputs):
        restored, _ = model.stateless_call(trainable, non_trainable, inputs)
        return jnp.mean(jnp.abs(restored - clean))

    trainable = [variable.value for variable in model.trainable_variables]
    value, (weight_grads, input_grad) = jax.value_and_grad(loss, argnums=(0, 1))(trainable, jnp.asarray(degraded))
    return float(value), [np.asarray(g) for g in weight_grads], np.asarray(input_grad)


@pytest.mark.parametrize("task, input_shape", [("denoise", (28, 28, 1)), ("inpaint", (16, 16, 4))])
def test_fast_unet_has_the_stock_loss_and_gradients(task, input_shape):
    keras.utils.set_random_seed(3)
    fast = fast_model(build_unet(input_shape, input_shape[-1] - (task == "inpaint"), task, width=8))
    stock = stock_model(fast)
    channels = stock.output_shape[-1]
    degraded = RNG.uniform(0, 255, (4, *input_shape)).astype(np.float32)
    if task == "inpaint":
        degraded[..., -1] = RNG.integers(0, 2, degraded.shape[:3])
    clean = RNG.uniform(0, 255, (4, *input_shape[:2], channels)).astype(np.float32)
    fast_loss, fast_weight_grads, fast_input_grad = _loss_and_gradients(fast, degraded, clean)
    stock_loss, stock_weight_grads, stock_input_grad = _loss_and_gradients(stock, degraded, clean)
    assert fast_loss == pytest.approx(stock_loss, rel=1e-5)
    for fast_grad, stock_grad in zip(fast_weight_grads, stock_weight_grads, strict=True):
        scale = max(1e-3, float(np.abs(stock_grad).max()))
        np.testing.assert_allclose(fast_grad / scale, stock_grad / scale, atol=1e-5)
    scale = float(np.abs(stock_input_grad).max())
    np.testing.assert_allclose(fast_input_grad / scale, stock_input_grad / scale, atol=1e-5)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_one_by_one_one_filter_weight_gradient_is_a_matrix_product(padding):
    x = jnp.asarray(RNG.normal(size=(4, 12, 12, 16)).astype(np.float32))
    kernel = jnp.asarray(RNG.normal(size=(1, 1, 16, 1)).astype(np.float32))
    upstream = jnp.asarray(RNG.normal(size=(4, 12, 12, 1)).astype(np.float32))

    def weight_gradient(x, kernel, upstream):
        return jax.vjp(lambda k: patch_conv(x, k, padding), kernel)[1](upstream)[0]

    expected = jnp.einsum("nhwc,nhwo->co", x, upstream).reshape(kernel.shape)
    np.testing.assert_allclose(weight_gradient(x, kernel, upstream), expected, rtol=1e-5, atol=1e-4)
    compiled = jax.jit(weight_gradient).lower(x, kernel, upstream).compile().as_text()
    assert " convolution(" not in compiled and " transpose(" not in compiled
