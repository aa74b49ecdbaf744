"""Fast 2x upsampling for generators on XLA:CPU.

``Conv2DTranspose`` lowers to a convolution with a dilated input (``lhs_dilation``), which
XLA:CPU runs through a slow generic path. Measured on this machine (2 shared CPU cores, JAX
0.10.2, Keras 3.15.1), forward + backward of one layer, batch 64, min over 5 x 10 runs:

===========================================  ====================  =====================
formulation                                  7x7x128 -> 14x14x64   14x14x64 -> 28x28x32
===========================================  ====================  =====================
``Conv2DTranspose(k=4, strides=2)``          340 ms                596 ms
``UpSampling2D(2)`` + ``Conv2D(3)``           66 ms                 93 ms
nearest by broadcast+reshape + ``Conv2D(3)``  67 ms                 86 ms
sub-pixel ``Conv2D(4f, 3)`` + depth_to_space  74 ms                104 ms
same as row 2 as one 2x2 conv on the input   106 ms                118 ms
  (4 phase kernels, 2.25x fewer FLOPs)
===========================================  ====================  =====================

A whole DCGAN step at 28x28 (G + D, batch 64) took ~950 ms with ``Conv2DTranspose`` and
~260-360 ms with any of the other four (the machine is shared, so +-30 % noise).
The fast ones are within noise of each other; we use nearest-neighbour upsampling followed by a
3x3 convolution (Odena et al. 2016, "Deconvolution and checkerboard artifacts"): it has no
checkerboard artifacts, is exactly ``UpSampling2D(2)`` + ``Conv2D(filters, 3, padding="same")``
(tested), and its nearest upsample is a broadcast + reshape whose gradient is a cheap sum.
The sub-pixel formulation has 4x the parameters for the same speed.
"""

from __future__ import annotations

import keras
from keras import layers, ops, saving


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


@saving.register_keras_serializable(package="convgan")
class UpConv2D(layers.Layer):
    """2x nearest-neighbour upsampling followed by a stride-1 ``"same"`` convolution.

    Equivalent to ``UpSampling2D(2)`` then ``Conv2D(filters, kernel_size, padding="same")`` with
    the same kernel and bias (outputs and gradients), about 6x faster than a
    ``Conv2DTranspose`` of stride 2 on XLA:CPU (see the module docstring).

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
        return self.conv(upsample_nearest(inputs, 2))

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
