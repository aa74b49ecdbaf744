"""The one seam between stock Keras layers and the project's XLA:CPU fast forms.

Each fast layer computes the same function as a stock Keras layer (or, for ``UpConv2D``, two
of them) with the same weights; ``docs/performance.md`` says why each exists. This module
maps a model built with fast layers to one built with stock layers only, so the result loads
with plain ``keras.saving.load_model`` in a process that never imports this project. The
weights are copied, so the two models give the same outputs to float32 rounding
(``tests/models/test_fast_seam.py``).

Training-only layers that are identities at inference (the project's augmentation) are left
out of the stock model: it is for prediction, not for resuming training.
"""

from __future__ import annotations

import keras
from keras import layers

from core.models import layers as fast_layers
from core.models.augment import RandomShiftZoomFlip
from core.models.upsample import UpConv2D

# Fast layers whose stock form is the stock parent class with the same config and weights.
_SAME_CONFIG = (
    (keras.layers.Conv2D, layers.Conv2D),  # PatchConv2D, StridedConv2D (FastPathConv2D)
    (fast_layers.BatchNormalization, layers.BatchNormalization),
    (fast_layers.Dropout, layers.Dropout),
)


def is_stock(layer) -> bool:
    """Whether ``layer`` is a Keras layer or model class (not a subclass defined elsewhere)."""
    return type(layer).__module__.startswith("keras.")


def stock_model(model: keras.Model, name: str | None = None) -> keras.Model:
    """A copy of the functional ``model`` made of stock Keras layers only, for inference.

    ``PatchConv2D`` and ``StridedConv2D`` become ``Conv2D``, ``MaxPool2x2`` becomes
    ``MaxPooling2D(2)``, ``UpConv2D`` becomes ``UpSampling2D(2)`` and ``Conv2D``, the one-pass
    ``BatchNormalization`` and the seeded ``Dropout`` become Keras' own, and the augmentation
    layer is left out (it passes images through unchanged outside training). Weights are
    copied; layer names are kept (an ``UpConv2D`` named ``up1`` becomes ``up1_upsample`` and
    ``up1_conv``).

    Args:
        model: a functional ``keras.Model`` (a classifier, or a GAN's generator).
        name: name of the copy (default: the model's).

    Returns:
        An uncompiled functional ``keras.Model`` with the same inputs and outputs.

    Raises:
        ValueError: ``model`` is not functional or holds a layer with no stock form.
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_run_through_graph"):
        raise ValueError(f"{type(model).__name__} is not a functional Keras model")
    origins = {}  # id(stock clone) -> the layer it copies

    def clone(layer):
        stock = _stock_layer(layer)
        origins[id(stock)] = layer
        return stock

    def call(stock, *args, **kwargs):
        layer = origins[id(stock)]
        if isinstance(layer, RandomShiftZoomFlip):
            return args[0]
        if isinstance(layer, UpConv2D):
            args = (layers.UpSampling2D(2, name=f"{layer.name}_upsample")(args[0]), *args[1:])
        outputs = stock(*args, **kwargs)
        source = layer.conv if isinstance(layer, UpConv2D) else layer
        if source.weights:
            stock.set_weights(source.get_weights())
        return outputs

    copy = keras.models.clone_model(model, clone_function=clone, call_function=call)
    copy = keras.Model(copy.inputs, copy.outputs, name=name or model.name)  # never compiled
    custom = sorted({type(layer).__name__ for layer in copy.layers if not is_stock(layer)})
    if custom:
        raise ValueError(f"no stock Keras form for layers {', '.join(custom)}")
    return copy


def _stock_layer(layer):
    """A new stock layer that computes what ``layer`` does (weights not yet copied)."""
    if isinstance(layer, fast_layers.MaxPool2x2):
        return layers.MaxPooling2D(2, name=layer.name, dtype=layer.dtype_policy)
    if isinstance(layer, UpConv2D):
        return layers.Conv2D(
            layer.filters, layer.kernel_size, padding="same", use_bias=layer.use_bias,
            name=f"{layer.name}_conv", dtype=layer.dtype_policy,
        )
    if isinstance(layer, RandomShiftZoomFlip):
        return layer  # left out of the graph by stock_model
    for fast_class, stock_class in _SAME_CONFIG:
        if isinstance(layer, fast_class):
            return stock_class.from_config(layer.get_config())
    if is_stock(layer):
        return type(layer).from_config(layer.get_config())
    raise ValueError(f"no stock Keras form for layer {layer.name!r} ({type(layer).__name__})")
