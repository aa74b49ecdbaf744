"""Convolutions with few input channels or few filters, as matrix products.

A model's first convolution reads the images themselves (one or three channels); a
generator's last one writes them. XLA:CPU's convolution is slow at so short a contraction or
so narrow an output. :class:`PatchConv2D` computes these cases as one fused elementwise pass
or as matrix products:

- **fewest input channels** (at most ``TAP_SUM_CHANNELS``): the sum, over kernel taps and
  input channels, of the shifted input channel times the tap's row of filters, which XLA
  fuses into one elementwise pass that reads the small input and writes the output once;
- **few input channels**: the im2col patch matrix (``rows * cols * channels`` values per
  pixel, built by slicing) times the reshaped kernel;
- **few filters**: every pixel times all the kernel's taps in one product
  (``rows * cols * filters`` values per pixel), then the sum of those products shifted into
  place ("overlap-add", the adjoint of building patches).

The patch matrix grows with the channel count and loses beyond a few channels, so only inputs
(or filters) of at most ``MAX_CHANNELS`` take this path. The input gradient of a stride-1
"same" convolution is the convolution of the output gradient with the kernel rotated 180
degrees and its channels swapped, so one input channel becomes one filter and the other way
round: with one channel on the thin side (``GRADIENT_CHANNELS``) the input gradient is the
other fast form, and a one-filter layer's weight gradient the input against the output
gradient's patches (for a 1x1 kernel one row-times-matrix product, where XLA's own gradient
transposes both operands). Every other case (and "valid" padding, except for 1x1 kernels,
where it is "same") takes XLA's gradients of the same convolution. Outputs and gradients equal
``keras.layers.Conv2D``'s to float32 rounding (``tests/models/test_layers.py``); the measurements behind the thresholds are in
``docs/performance.md``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from keras import saving

from core.models.layers import CHANNELS_LAST, FastPathConv2D

MAX_CHANNELS = 4  # forward pass: faster up to 4 input channels, slower at 8 (docs/performance.md)
TAP_SUM_CHANNELS = 3  # up to this many input channels the tap sum beats the patch product
GRADIENT_CHANNELS = 1  # gradients: faster with one channel on the thin side, not always with 3


def _conv(x, kernel, padding: str):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding.upper(), dimension_numbers=CHANNELS_LAST)


def _pad(x, rows: int, cols: int, padding: str):
    """``x`` with the zeros a ``padding`` convolution adds around it (odd kernels for "same")."""
    if padding == "valid":
        return x
    widths = [(0, 0), (rows // 2, rows // 2), (cols // 2, cols // 2)] + [(0, 0)] * (x.ndim - 3)
    return jnp.pad(x, widths)


def _patches(x, rows: int, cols: int, padding: str):
    """The im2col patches of channels-last ``x``: ``(batch, height, width, rows * cols * channels)``.

    Channel ``(i * cols + j) * channels + c`` of a patch is input channel ``c`` at offset
    ``(i, j)``, the order of a kernel's ``(rows, cols, channels)`` axes.
    """
    x = _pad(x, rows, cols, padding)
    height, width = x.shape[1] - rows + 1, x.shape[2] - cols + 1
    return jnp.concatenate(
        [x[:, i : i + height, j : j + width, :] for i in range(rows) for j in range(cols)], axis=-1
    )


def _patch_product(x, kernel, padding: str):
    """Few input channels: the patch matrix times the reshaped kernel."""
    rows, cols, channels, filters = kernel.shape
    patches = _patches(x, rows, cols, padding)
    product = patches.reshape(-1, rows * cols * channels) @ kernel.reshape(rows * cols * channels, filters)
    return product.reshape(patches.shape[:3] + (filters,))


def _tap_sum(x, kernel, padding: str):
    """Fewest input channels: the sum over kernel taps and input channels of the shifted input
    channel times that tap's filter row, which XLA fuses into one elementwise pass."""
    rows, cols, channels, _ = kernel.shape
    x = _pad(x, rows, cols, padding)
    height, width = x.shape[1] - rows + 1, x.shape[2] - cols + 1
    return sum(
        x[:, i : i + height, j : j + width, c : c + 1] * kernel[i, j, c]
        for i in range(rows) for j in range(cols) for c in range(channels)
    )


def _overlap_add(x, kernel, padding: str):
    """Few filters: each pixel times every kernel tap in one matrix product, then the shifted sum.

    Output pixel ``(h, w)`` is the sum over taps ``(i, j)`` of tap ``(i, j)``'s product at
    pixel ``(h + i, w + j)`` of the padded input.
    """
    rows, cols, channels, filters = kernel.shape
    batch, height, width = x.shape[:3]
    taps = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(channels, rows * cols * filters)
    products = (x.reshape(-1, channels) @ taps).reshape(batch, height, width, rows, cols, filters)
    products = _pad(products, rows, cols, padding)
    out_height, out_width = products.shape[1] - rows + 1, products.shape[2] - cols + 1
    return sum(
        products[:, i : i + out_height, j : j + out_width, i, j, :] for i in range(rows) for j in range(cols)
    )


def _fast_form(x, kernel, padding: str):
    """The convolution as a tap sum or a patch product (few inputs) or an overlap-add (few filters)."""
    if x.shape[-1] <= TAP_SUM_CHANNELS:
        return _tap_sum(x, kernel, padding)
    if x.shape[-1] <= MAX_CHANNELS:
        return _patch_product(x, kernel, padding)
    return _overlap_add(x, kernel, padding)


def _flipped(kernel):
    """The kernel of the input gradient of a stride-1 "same" convolution: rotated 180 degrees,
    input and output channels swapped."""
    return jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))


def _kernel_gradient_few_filters(x, upstream, kernel_shape):
    """Gradient of a "same" convolution with few filters by its kernel: the input against the
    patches of the (few-channel) output gradient, taps in reverse order.

    ``dW[i, j, c, o]`` sums ``x[h, w, c] * upstream[h - i + p, w - j + p, o]`` over pixels, and
    patch tap ``(i', j')`` of ``upstream`` is ``upstream[h + i' - p, w + j' - p]``: ``i' = 2p - i``.
    """
    rows, cols, _, filters = kernel_shape
    if rows == cols == 1 and filters == 1:  # a row times a matrix, where XLA would transpose both
        return (upstream.reshape(1, -1) @ x.reshape(-1, x.shape[-1])).reshape(kernel_shape)
    patches = _patches(upstream, rows, cols, "same").reshape(upstream.shape[:3] + (rows, cols, filters))
    return jnp.einsum("nhwc,nhwijo->ijco", x, patches[:, :, :, ::-1, ::-1, :])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def patch_conv(x, kernel, padding: str):
    """Stride-1 convolution of channels-last ``x`` (no bias), ``padding`` "same" (odd kernel) or
    "valid", with few input channels or few filters (at most ``MAX_CHANNELS``)."""
    return _fast_form(x, kernel, padding)


def _forward(x, kernel, padding):
    return _fast_form(x, kernel, padding), (x, kernel)


def _backward(padding, residuals, upstream):
    x, kernel = residuals
    if kernel.shape[:2] == (1, 1):
        padding = "same"  # the same convolution as "valid"
    if padding != "same" or min(x.shape[-1], kernel.shape[-1]) > GRADIENT_CHANNELS:
        _, vjp = jax.vjp(lambda x, kernel: _conv(x, kernel, padding), x, kernel)
        return vjp(upstream)
    # The input gradient is the same kind of convolution with the flipped kernel, its channel
    # counts swapped: one input channel becomes one filter and the other way round.
    input_gradient = _fast_form(upstream, _flipped(kernel), "same")
    if x.shape[-1] <= GRADIENT_CHANNELS:  # XLA's own weight gradient is as fast here
        (kernel_gradient,) = jax.linear_transpose(lambda k: _conv(x, k, "same"), kernel)(upstream)
    else:
        kernel_gradient = _kernel_gradient_few_filters(x, upstream, kernel.shape)
    return input_gradient, kernel_gradient


patch_conv.defvjp(_forward, _backward)


@saving.register_keras_serializable(package="convgan")
class PatchConv2D(FastPathConv2D):
    """``keras.layers.Conv2D`` computed as a tap sum or matrix products when its inputs or its
    filters number at most ``MAX_CHANNELS`` (see the module docstring).

    ``core.models.fast`` substitutes it for ``Conv2D`` on the CPU.

    Takes Conv2D's arguments; with stride 1, no dilation or groups, "valid" padding or
    "same" with an odd kernel, and few input channels or few filters it computes the same
    function faster, otherwise it is exactly ``Conv2D`` (``FastPathConv2D``).
    """

    def _fast(self, inputs) -> bool:
        odd = all(size % 2 for size in self.kernel_size)
        few = inputs.shape[-1] is not None and min(inputs.shape[-1], self.filters) <= MAX_CHANNELS
        return (
            self.strides == (1, 1) and self.dilation_rate == (1, 1) and self.groups == 1
            and self.data_format == "channels_last" and few
            and (self.padding == "valid" or (self.padding == "same" and odd))
        )

    def _fast_conv(self, inputs, kernel):
        return patch_conv(inputs, kernel, self.padding)
