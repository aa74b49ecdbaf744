"""Convolutions of images with few channels, as one matrix product over patches.

A model's first convolution reads the images themselves: one channel (digits, Fashion-MNIST)
or three (CIFAR-10). XLA:CPU's convolution (Eigen) is slow at so short a contraction: the
forward pass of a 3x3 convolution of 128 28x28x1 images into 16 channels ran at 13 GFLOP/s.
:class:`PatchConv2D` computes that forward pass instead as a product of the im2col patch
matrix (``rows * cols * channels`` values per pixel, built by slicing) with the reshaped
kernel. Forward pass alone, measured on 2 CPU cores (Intel Xeon with AVX-512, one XLA device,
Eigen convolutions), 3x3 kernels, "same" padding, ms:

=======================  =========  ============
input -> filters         Conv2D     PatchConv2D
=======================  =========  ============
128x28x28x1 -> 16        2.22       1.48
128x28x28x1 -> 32        2.51       1.49
128x28x28x2 -> 32        2.75       1.71
64x28x28x4 -> 32         1.81       1.39
128x32x32x3 -> 32        4.08       3.22
128x28x28x8 -> 16        2.31       16.1
=======================  =========  ============

The patch matrix grows with the channel count and loses beyond a few channels (the last row),
so only inputs of at most ``MAX_CHANNELS`` take this path. Both gradients are XLA's own, of
the same convolution: outputs and gradients equal ``keras.layers.Conv2D``'s to float32
rounding (``tests/models/test_layers.py``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from keras import saving

from core.models.layers import CHANNELS_LAST, FastPathConv2D

MAX_CHANNELS = 4  # measured faster up to 4 input channels, slower at 8 (table above)


def _conv(x, kernel, padding: str):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding.upper(), dimension_numbers=CHANNELS_LAST)


def _patch_product(x, kernel, padding: str):
    rows, cols, channels, filters = kernel.shape
    if padding == "same":  # odd kernels: as many zeros on each side
        x = jnp.pad(x, ((0, 0), (rows // 2, rows // 2), (cols // 2, cols // 2), (0, 0)))
    batch, height, width = x.shape[0], x.shape[1] - rows + 1, x.shape[2] - cols + 1
    # Channel (i * cols + j) * channels + c of a patch is input channel c at offset (i, j),
    # the order of the kernel's (rows, cols, channels) axes.
    patches = jnp.concatenate(
        [x[:, i : i + height, j : j + width, :] for i in range(rows) for j in range(cols)], axis=-1
    )
    product = patches.reshape(-1, rows * cols * channels) @ kernel.reshape(rows * cols * channels, filters)
    return product.reshape(batch, height, width, filters)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def patch_conv(x, kernel, padding: str):
    """Stride-1 convolution of channels-last ``x`` (no bias), ``padding`` "same" (odd kernel) or "valid"."""
    return _patch_product(x, kernel, padding)


def _forward(x, kernel, padding):
    return _patch_product(x, kernel, padding), (x, kernel)


def _backward(padding, residuals, upstream):
    x, kernel = residuals
    _, vjp = jax.vjp(lambda x, kernel: _conv(x, kernel, padding), x, kernel)
    return vjp(upstream)


patch_conv.defvjp(_forward, _backward)


@saving.register_keras_serializable(package="convgan")
class PatchConv2D(FastPathConv2D):
    """``keras.layers.Conv2D`` whose forward pass over inputs of at most ``MAX_CHANNELS``
    channels is one matrix product over patches (see the module docstring).

    Takes Conv2D's arguments; with stride 1, no dilation or groups, "valid" padding or
    "same" with an odd kernel, and a small channel count it computes the same function
    faster, otherwise it is exactly ``Conv2D`` (``FastPathConv2D``).
    """

    def _fast(self, inputs) -> bool:
        odd = all(size % 2 for size in self.kernel_size)
        return (
            self.strides == (1, 1) and self.dilation_rate == (1, 1) and self.groups == 1
            and self.data_format == "channels_last" and inputs.shape[-1] is not None
            and inputs.shape[-1] <= MAX_CHANNELS and (self.padding == "valid" or (self.padding == "same" and odd))
        )

    def _fast_conv(self, inputs, kernel):
        return patch_conv(inputs, kernel, self.padding)
