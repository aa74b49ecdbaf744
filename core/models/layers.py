"""Small layers that are faster on XLA:CPU than their general Keras counterparts.

``keras.layers.MaxPooling2D`` lowers to ``reduce_window``, whose backward pass
(``select_and_scatter_add``) took ~29 ms of a ~58 ms training step of a small ConvNet on
2 CPU cores. For the common 2x2, stride-2 case the windows do not overlap, so the same pool
is a reshape followed by a max over the two window axes, whose gradient is a cheap
elementwise mask (8 ms in the same step).

Every layer here is registered under the ``convgan`` package, so a saved model reloads with
plain ``keras.saving.load_model(path)``.
"""

from __future__ import annotations

from keras import layers, ops, saving


@saving.register_keras_serializable(package="convgan")
class MaxPool2x2(layers.Layer):
    """2x2 max pooling with stride 2 and ``"valid"`` padding (channels last).

    Same outputs as ``keras.layers.MaxPooling2D(2)``: an odd trailing row or column is
    dropped. Gradients are identical wherever a window has a single maximum; for a tie
    JAX splits the gradient equally between the tied inputs where ``MaxPooling2D`` gives
    it all to the first one. Ties are rare in float activations, and after a ReLU a tie
    at 0 gets no gradient either way.
    """

    def call(self, inputs):
        # (batch, height, width, channels) -> (batch, height/2, 2, width/2, 2, channels)
        height, width, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        out_h, out_w = height // 2, width // 2
        x = inputs[:, : 2 * out_h, : 2 * out_w, :]
        x = ops.reshape(x, (-1, out_h, 2, out_w, 2, channels))
        return ops.max(x, axis=(2, 4))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height // 2, width // 2, channels)
