"""2x nearest upsampling followed by a convolution, in one pass without the upsampled tensor.

:class:`UpConv2D` computes exactly ``UpSampling2D(2)`` followed by a 3x3 ``"same"``
convolution (no checkerboard artifacts; Odena et al. 2016), but output pixel ``(2i + a, 2j +
b)`` sees only a 2x2 neighbourhood of the input, so the 3x3 kernel folds into four 2x2
"phase" kernels (2.25x fewer multiply-adds) applied as one 2x2 convolution with
``4 * filters`` outputs, whose phases are then interleaved. ``core.models.fast`` substitutes
it for the stock pair on the CPU; ``docs/performance.md`` compares it with
``Conv2DTranspose``, the stock pair and sub-pixel convolution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras import layers, ops, saving

# Which rows of a 3x3 kernel each of the two 2x2 phase kernels sums, per axis:
# (phase, tap, kernel row). Output row 2i reads input rows i-1 (tap 0: kernel row 0) and i
# (tap 1: kernel rows 1 + 2); output row 2i + 1 reads rows i (rows 0 + 1) and i + 1 (row 2).
_PHASE_TAPS = np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], dtype=np.float32)


def upsample_nearest(x, factor: int = 2):
    """Nearest-neighbour upsampling of a channels-last batch by an integer factor.

    Same values as ``keras.layers.UpSampling2D(factor)``; written as a broadcast and a reshape
    so the backward pass is a reshape and a sum (no gather/scatter).
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    # (batch, height, 1, width, 1, channels) -> (batch, height, f, width, f, channels)
    x = ops.expand_dims(ops.expand_dims(x, 2), 4)
    x = ops.broadcast_to(x, (ops.shape(x)[0], height, factor, width, factor, channels))
    return ops.reshape(x, (-1, height * factor, width * factor, channels))


def fold_phase_kernels(taps, kernel):
    """The 2x2 phase kernels of :func:`phase_upsample`, ``(2, 2, in, 4 * out)``.

    Tap ``(r, s)`` of phase ``(a, b)`` (output channels ``(2 * a + b) * out`` onwards) is the
    sum of the kernel taps ``(u, v)`` with ``taps[a, r, u]`` and ``taps[b, s, v]`` set, the
    einsum ``aru,bsv,uvio->rsiabo`` written as sums of kernel slices: XLA fuses them into one
    elementwise pass, where it runs the einsum as two small matrix products per call.

    Args:
        taps: a 0/1 NumPy array ``(2 phases, 2 taps, rows)``.
        kernel: ``(rows, rows, in, out)``.
    """
    taps = np.asarray(taps)
    channels, filters = kernel.shape[2], kernel.shape[3]

    def tap(a, r, b, s):
        rows, cols = np.flatnonzero(taps[a, r]), np.flatnonzero(taps[b, s])
        return sum(kernel[u, v] for u in rows for v in cols)

    phases = [
        [ops.concatenate([tap(a, r, b, s) for a in range(2) for b in range(2)], axis=-1) for s in range(2)]
        for r in range(2)
    ]
    return ops.reshape(ops.stack([ops.stack(row) for row in phases]), (2, 2, channels, 4 * filters))


def phase_upsample(x, taps, kernel):
    """Twice the size of channels-last ``x``, each output pixel a 2x2 window of ``x`` times one
    of four phase kernels folded from ``kernel``.

    ``taps[phase, tap, row]`` says which rows of ``kernel`` (``(rows, rows, in, out)``) the
    2x2 kernel of output phase ``phase`` (even or odd rows) sums at ``tap``, the same along
    columns. Output pixel ``(2i + a, 2j + b)`` reads the window at ``(i + a, j + b)`` of ``x``
    padded by one pixel. The four phases run as one 2x2 convolution with ``4 * out`` channels.

    Returns:
        ``(batch, 2 * height, 2 * width, out)``.
    """
    height, width, filters = x.shape[1], x.shape[2], kernel.shape[3]
    phases = fold_phase_kernels(taps, kernel)
    padded = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = ops.conv(padded, phases, strides=1, padding="valid")  # (batch, height + 1, width + 1, 4 * filters)
    return interleave_phases(ops.reshape(y, (-1, height + 1, width + 1, 2, 2, filters)))


def _interleave(y):
    height, width = y.shape[1] - 1, y.shape[2] - 1
    # Phase (a, b) of output pixel (i, j) is window (i + a, j + b).
    rows = [
        jnp.stack([y[:, a : a + height, b : b + width, a, b, :] for b in range(2)], axis=3)
        for a in range(2)
    ]  # each (batch, height, width, 2, filters)
    return jnp.reshape(jnp.stack(rows, axis=2), (-1, 2 * height, 2 * width, y.shape[-1]))


@jax.custom_vjp
def interleave_phases(y):
    """The image of :func:`phase_upsample` from its phase windows ``y``, ``(batch, height + 1,
    width + 1, 2, 2, filters)``: output pixel ``(2i + a, 2j + b)`` is ``y[:, i + a, j + b, a, b]``.

    Its gradient is written as one stack of four padded phases. Differentiated, the slices
    above become four zero-padded copies of the whole window tensor and a sum of them, which XLA
    leaves as separate passes.
    """
    return _interleave(y)


def _interleave_forward(y):
    return _interleave(y), None


def _interleave_backward(_, upstream):
    batch, rows, cols, filters = upstream.shape
    phases = jnp.reshape(upstream, (batch, rows // 2, 2, cols // 2, 2, filters))
    # Window (p, q) of phase (a, b) was output pixel (2(p - a) + a, 2(q - b) + b): phase (a, b)
    # of the upstream gradient shifted by (a, b), zero where no output pixel read the window.
    padded = [
        [jnp.pad(phases[:, :, a, :, b, :], ((0, 0), (a, 1 - a), (b, 1 - b), (0, 0))) for b in range(2)]
        for a in range(2)
    ]
    return (jnp.stack([jnp.stack(row, axis=3) for row in padded], axis=3),)


interleave_phases.defvjp(_interleave_forward, _interleave_backward)


@saving.register_keras_serializable(package="convgan")
class UpConv2D(layers.Layer):
    """2x nearest-neighbour upsampling followed by a stride-1 ``"same"`` convolution.

    Equivalent to ``UpSampling2D(2)`` then ``Conv2D(filters, kernel_size, padding="same")`` with
    the same kernel and bias (outputs and gradients; the weights live in the ``conv``
    sub-layer, so they can be copied either way). Kernel size 3 with known height and width
    uses the folded phase kernels; other cases upsample, then convolve.

    Args:
        filters: output channels.
        kernel_size: size of the square convolution kernel (odd).
        use_bias: add a bias.
        kernel_initializer: initializer of the convolution kernel.
    """

    def __init__(self, filters: int, kernel_size: int = 3, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd so 'same' padding is symmetric, got {kernel_size}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.conv = layers.Conv2D(
            self.filters, self.kernel_size, padding="same", use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer, name="conv",
        )

    def build(self, input_shape):
        batch, height, width, channels = input_shape
        self.conv.build((batch, None if height is None else 2 * height, None if width is None else 2 * width,
                         channels))

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        if self.kernel_size != 3 or height is None or width is None:
            return self.conv(upsample_nearest(inputs, 2))
        outputs = phase_upsample(inputs, _PHASE_TAPS, ops.cast(self.conv.kernel, inputs.dtype))
        if self.use_bias:
            outputs = outputs + ops.cast(self.conv.bias, outputs.dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, None if height is None else 2 * height, None if width is None else 2 * width, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
