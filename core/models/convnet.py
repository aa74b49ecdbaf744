"""``convnet``: the small, fast default classifier.

One 3x3 convolution per resolution, each followed by batch norm and ReLU, with a 2x2 max pool
between resolutions and the channel count doubling at each pool::

    28x28x1 -> conv 16 @28 -> pool -> conv 32 @14 -> pool -> conv 64 @7 -> flatten -> dropout -> dense

The number of pools depends on the input (``num_pools``): the last feature map is 4 to 7
pixels on its shorter side (8x8 digits: one pool; 28x28: two; 32x32: three; 64x64: four).

Why this shape (measurements in ``docs/performance.md``):
- CPU time grows with multiply-adds and with the memory traffic of full-resolution
  activations, so the full-resolution layer is narrow (16 channels) and there is one
  convolution per resolution (``resnet`` is the larger model).
- Batch norm buys test accuracy for a little more time per step.
- A flatten head beats global average pooling at this size: the spatial layout of a 7x7 map
  still carries class information.
- Small images (8x8 digits) start at 32 channels instead of 16 (``SMALL_IMAGE_PIXELS``).
"""

from __future__ import annotations

import math

import keras
from keras import layers

from core.models.augment import augmentation_for

MAX_FILTERS = 256
# Up to this many pixels (20x20) the first layer is twice as wide: its activations are still
# smaller than 28x28 at width 16, and it is more accurate on the 8x8 digits.
SMALL_IMAGE_PIXELS = 400
# Batch-norm moving averages forget with time constant 1 / (1 - momentum) = 5 steps, so a short
# run does not end with statistics that lag the weights.
BN_MOMENTUM = 0.8


def num_pools(input_shape) -> int:
    """How many 2x2 pools bring the shorter side of ``input_shape`` down to 4-7 pixels."""
    return max(1, int(math.floor(math.log2(min(input_shape[0], input_shape[1]) / 4))))


def build_convnet(
    input_shape,
    num_classes,
    *,
    augment=True,
    seed=0,
    width=None,
    dropout=0.3,
    name="convnet",
):
    """Build the ``convnet`` classifier.

    Args:
        input_shape: ``(height, width, channels)``, 8 to 64 pixels a side.
        num_classes: number of output classes (at least 2).
        augment: ``True`` adds the training-only augmentation suited to the channel count,
            a name from ``core.models.augment.AUGMENTATIONS`` picks one, ``False`` none.
        seed: seed of the augmentation and dropout layers.
        width: channels of the first convolution; each later one doubles (capped at 256).
            Default: 32 for images of at most 400 pixels (20x20), else 16.
        dropout: dropout rate before the last dense layer.

    Returns:
        A ``keras.Model`` from raw pixel values (0..255, any dtype) to class probabilities.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if augment:
        preset = augment if isinstance(augment, str) else None
        x = augmentation_for(input_shape, seed=seed, preset=preset)(x)
    filters = width or (32 if input_shape[0] * input_shape[1] <= SMALL_IMAGE_PIXELS else 16)
    x = _conv_bn_relu(x, filters, "block0")
    for index in range(1, num_pools(input_shape) + 1):
        x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
        filters = min(2 * filters, MAX_FILTERS)
        x = _conv_bn_relu(x, filters, f"block{index}")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def _conv_bn_relu(x, filters, name):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)
