"""Registry of the classifier models, and the loss they train with.

``build_classifier(name, ...)`` is the one way the rest of ``core`` makes a classifier; each
model lives in its own file (``convnet.py``, ``resnet.py``). Importing this module registers
every custom layer, so ``keras.saving.load_model(path)`` needs no ``custom_objects``.
"""

from __future__ import annotations

import keras
from keras import ops, saving

from core.common.errors import ConfigError
from core.models.convnet import build_convnet
from core.models.fast import for_device
from core.models.resnet import build_resnet

CLASSIFIERS = {"convnet": build_convnet, "resnet": build_resnet}
MIN_IMAGE_SIZE = 8  # pixels; both models pool at least once and keep a 4x4 map


def build_classifier(name, input_shape, num_classes, *, augment=True, seed=0) -> keras.Model:
    """Build an untrained classifier.

    Args:
        name: ``convnet`` (small, fast, the default) or ``resnet`` (residual, more accurate
            on colour images, several times slower per image).
        input_shape: ``(height, width, channels)`` of the images; 8 to 64 pixels a side is
            the tested range, larger works.
        num_classes: number of classes, at least 2.
        augment: ``True`` for the training-only augmentation suited to the channel count, a
            preset name from ``core.models.augment.AUGMENTATIONS``, or ``False``.
        seed: seed of the model's random layers (augmentation, dropout). Weight
            initialisation follows ``keras.utils.set_random_seed``.

    Returns:
        A ``keras.Model`` from raw pixel values (0..255) to class probabilities, with its
        last dense layer named ``logits``; in its fast form on the CPU
        (``core.models.fast.for_device``).

    Raises:
        ConfigError: unknown model name, bad input shape or class count.
    """
    if name not in CLASSIFIERS:
        raise ConfigError(f"unknown classifier model {name!r}: choose one of {', '.join(CLASSIFIERS)}")
    input_shape = tuple(int(size) for size in input_shape)
    if len(input_shape) != 3 or min(input_shape[:2]) < MIN_IMAGE_SIZE or input_shape[2] < 1:
        raise ConfigError(
            f"classifiers need images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels with a "
            f"channel axis (height, width, channels), got {input_shape}: resize the data set"
        )
    if int(num_classes) < 2:
        raise ConfigError(f"a classifier needs at least 2 classes, got {num_classes}")
    model = CLASSIFIERS[name](input_shape, int(num_classes), augment=augment, seed=int(seed))
    return for_device(model)


@saving.register_keras_serializable(package="convgan")
class SparseCrossentropy(keras.losses.Loss):
    """Cross-entropy between integer labels and predicted probabilities, with label smoothing.

    ``keras.losses.SparseCategoricalCrossentropy`` has no ``label_smoothing``; this one-hot
    encodes the labels inside the loss, so the data keeps its integer labels.
    """

    def __init__(self, label_smoothing=0.0, name="sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        num_classes = y_pred.shape[-1]
        one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), num_classes)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
