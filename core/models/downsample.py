"""Stride-2 convolutions whose input gradient is fast on XLA:CPU.

The gradient of a stride-2 convolution with respect to its input is a transposed
convolution, which XLA lowers to a convolution of the output gradient dilated with zeros
(``lhs_dilation=2``): three of every four multiply-adds are with a zero, on a generic path.
A discriminator needs that gradient twice per GAN step (to reach its earlier layers' weights,
and to pass the generator its gradient). :class:`StridedConv2D` computes it instead as one
stride-1 2x2 convolution of the undilated gradient with four "phase" kernels, whose outputs
are interleaved (``core.models.upsample.phase_upsample``, as in ``UpConv2D``).

The forward pass and the weight gradient are XLA's own; outputs and both gradients equal
``keras.layers.Conv2D``'s to float32 rounding (``tests/models/test_layers.py``).
``core.models.fast`` substitutes it for 4x4 stride-2 ``Conv2D`` layers on the CPU;
``docs/performance.md`` has the measurements.
"""

from __future__ import annotations

import jax
import numpy as np
from jax import lax
from keras import saving

from core.models.layers import CHANNELS_LAST, FastPathConv2D
from core.models.upsample import phase_upsample

KERNEL_SIZE = 4
# Rows of a 4x4 kernel each phase of the input gradient uses, per axis: (phase, tap, kernel
# row). With "same" padding (one row of zeros on each side) input row 2p is read by output
# rows p (kernel row 1) and p - 1 (row 3); input row 2p + 1 by p (row 2) and p + 1 (row 0).
# Over the output gradient padded by one row on each side, tap 0 of phase 0 is row p - 1.
_PHASE_TAPS = np.zeros((2, 2, KERNEL_SIZE), np.float32)
_PHASE_TAPS[0, 0, 3] = _PHASE_TAPS[0, 1, 1] = _PHASE_TAPS[1, 0, 2] = _PHASE_TAPS[1, 1, 0] = 1.0


def _conv(x, kernel):
    return lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)), dimension_numbers=CHANNELS_LAST)


def _input_gradient(upstream, kernel):
    """Gradient of ``_conv(x, kernel)`` with respect to ``x``, from the output gradient: the
    transposed convolution, as a phase upsampling with input and output channels swapped."""
    return phase_upsample(upstream, _PHASE_TAPS, jax.numpy.transpose(kernel, (0, 1, 3, 2)))


@jax.custom_vjp
def strided_conv(x, kernel):
    """4x4, stride-2, ``"same"`` convolution of even-sided channels-last ``x`` (no bias)."""
    return _conv(x, kernel)


def _forward(x, kernel):
    return _conv(x, kernel), (x, kernel)


def _backward(residuals, upstream):
    x, kernel = residuals
    (kernel_gradient,) = jax.linear_transpose(lambda k: _conv(x, k), kernel)(upstream)
    return _input_gradient(upstream, kernel), kernel_gradient


strided_conv.defvjp(_forward, _backward)


@saving.register_keras_serializable(package="convgan")
class StridedConv2D(FastPathConv2D):
    """``keras.layers.Conv2D`` whose 4x4, stride-2, ``"same"`` case has a fast input gradient.

    Takes Conv2D's arguments; with a 4x4 kernel, stride 2, ``"same"`` padding, no dilation
    or groups and even input sides it computes the same function with the phase-kernel
    gradient (see the module docstring), otherwise exactly ``Conv2D`` (``FastPathConv2D``).
    """

    def _fast(self, inputs) -> bool:
        height, width = inputs.shape[1], inputs.shape[2]
        return (
            self.kernel_size == (KERNEL_SIZE, KERNEL_SIZE) and self.strides == (2, 2)
            and self.padding == "same" and self.dilation_rate == (1, 1) and self.groups == 1
            and self.data_format == "channels_last" and height is not None and width is not None
            and height % 2 == 0 and width % 2 == 0
        )

    def _fast_conv(self, inputs, kernel):
        return strided_conv(inputs, kernel)
