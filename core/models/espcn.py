"""ESPCN (Shi et al. 2016): convolutions at the input's resolution, then a sub-pixel convolution.

The fast baseline of the restoration family: 5x5 conv (``2 * width``), 3x3 conv (``width``),
3x3 conv to ``C * scale^2`` channels and a :class:`PixelShuffle` to the output size (scale 1
for inpaint and denoise, where it is a plain residual ConvNet). Tanh activations, as in the
paper.
"""

from __future__ import annotations

import keras
from keras import layers

from core.models.restoration_io import PixelShuffle, base_image, finish, split_inputs


def build_espcn(input_shape, channels: int, task: str, scale: int = 1, width: int = 32,
                name: str = "espcn") -> keras.Model:
    """Build an ESPCN for inputs of ``input_shape`` (see ``restoration_io`` for the contract)."""
    factor = scale if task == "super-resolution" else 1
    inputs = keras.Input(tuple(input_shape), name="degraded")
    pixels, mask = split_inputs(inputs, task, channels)
    features = pixels if mask is None else layers.Concatenate(name="with_mask")([pixels, mask])
    x = layers.Conv2D(2 * width, 5, padding="same", activation="tanh", name="conv1")(features)
    x = layers.Conv2D(width, 3, padding="same", activation="tanh", name="conv2")(x)
    x = layers.Conv2D(channels * factor * factor, 3, padding="same", name="to_subpixels")(x)
    residual = PixelShuffle(factor, name="pixel_shuffle")(x)
    outputs = finish(base_image(pixels, task, factor), residual, pixels, mask)
    return keras.Model(inputs, outputs, name=name)
