"""``resnet``: a small residual network with batch norm, for 32x32 colour data and smaller.

A stem convolution at full resolution, then one stage per 2x2 max pool, each stage a
residual block of two 3x3 convolutions (post-activation, as in ResNet v1) with the channel
count doubling::

    32x32x3 -> conv 32 @32 -> pool -> res 64 @16 -> pool -> res 128 @8 -> pool -> res 256 @4
            -> flatten -> dropout -> dense
    28x28x1 -> conv 16 @28 -> pool -> res 32 @14 -> pool -> res 64 @7 -> flatten -> dropout -> dense

The pool count follows ``convnet.num_pools`` (the last map is 4-7 pixels a side). Pooling
before each stage, not strided convolutions, keeps every 3x3 convolution at the lower
resolution, which on a CPU is where the time goes.
The shortcut is the identity where the channel count stays, else a 1x1 convolution.

Grayscale data gets width 16 with a flatten head (more accurate than global average pooling
on Fashion-MNIST; ``docs/performance.md``); colour images, the harder case this model is
meant for, width 32 (4x the multiply-adds).
"""

from __future__ import annotations

import keras
from keras import layers

from core.models.augment import augmentation_for
from core.models.convnet import BN_MOMENTUM, MAX_FILTERS, num_pools


def build_resnet(
    input_shape,
    num_classes,
    *,
    augment=True,
    seed=0,
    width=None,
    dropout=0.3,
    head="flatten",
    name="resnet",
):
    """Build the ``resnet`` classifier.

    Args:
        input_shape: ``(height, width, channels)``, 8 to 64 pixels a side.
        num_classes: number of output classes (at least 2).
        augment: ``True`` adds the training-only augmentation suited to the channel count,
            a name from ``core.models.augment.AUGMENTATIONS`` picks one, ``False`` none.
        seed: seed of the augmentation and dropout layers.
        width: channels of the stem; each stage doubles them (capped at 256). Default: 16
            for grayscale, 32 for colour images.
        dropout: dropout rate before the last dense layer.
        head: ``"flatten"`` or ``"average"`` (global average pooling) before the last dense
            layer.

    Returns:
        A ``keras.Model`` from raw pixel values (0..255, any dtype) to class probabilities.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if augment:
        preset = augment if isinstance(augment, str) else None
        x = augmentation_for(input_shape, seed=seed, preset=preset)(x)
    filters = width or (32 if input_shape[-1] == 3 else 16)
    x = _conv_bn(x, filters, "stem")
    x = layers.ReLU(name="stem_relu")(x)
    for stage in range(1, num_pools(input_shape) + 1):
        x = layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        filters = min(2 * filters, MAX_FILTERS)
        x = _residual_block(x, filters, f"stage{stage}")
    if head == "flatten":
        x = layers.Flatten(name="flatten")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def _conv_bn(x, filters, name, kernel_size=3):
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv")(x)
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)


def _residual_block(x, filters, name):
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, f"{name}_shortcut", kernel_size=1)
    x = layers.ReLU(name=f"{name}_relu1")(_conv_bn(x, filters, f"{name}_a"))
    x = _conv_bn(x, filters, f"{name}_b")
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(x)
