"""The one seam between stock Keras layers and the project's XLA:CPU fast forms.

Model files build stock Keras layers only. Each fast layer computes the same function as a
stock Keras layer (or, for ``UpConv2D``, two of them) with the same weights;
``docs/performance.md`` says why each exists. :func:`for_device` turns a stock-built model
into its fast form when JAX runs on the CPU (the builders ``build_classifier`` and
``GAN.__init__`` call it) and leaves it alone elsewhere; :func:`stock_model` maps a model
back to stock layers only, so the result loads with plain ``keras.saving.load_model`` in a
process that never imports this project. Both copy the weights, so the two forms give the
same outputs to float32 rounding (``tests/models/test_fast_seam.py``).

Training-only layers that are identities at inference (the project's augmentation) are left
out of the stock model: it is for prediction, not for resuming training.
"""

from __future__ import annotations

import jax
import keras
from keras import layers

import core.models.layers as fast_layers
from core.models.augment import RandomShiftZoomFlip
from core.models.downsample import KERNEL_SIZE as STRIDED_KERNEL_SIZE
from core.models.downsample import StridedConv2D
from core.models.patches import PatchConv2D
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
    copied; layer names are kept (an ``UpConv2D`` named ``up1`` becomes ``up1`` and
    ``up1_conv``, the names the model files give the stock pair).

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
            args = (layers.UpSampling2D(2, name=layer.name)(args[0]), *args[1:])
        outputs = stock(*args, **kwargs)
        source = layer.conv if isinstance(layer, UpConv2D) else layer
        if source is not stock and source.weights:
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
    if not isinstance(layer, keras.layers.Layer):
        return layer  # an op of the graph (slicing, arithmetic): stock already, nothing to copy
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


def on_cpu() -> bool:
    """Whether JAX's default backend is the CPU, where the fast forms pay off."""
    return jax.default_backend() == "cpu"


def for_device(model: keras.Model) -> keras.Model:
    """``model`` in the form that trains fastest where JAX runs: :func:`fast_model` on the CPU,
    ``model`` itself on a GPU or TPU (stock layers).

    Args:
        model: a functional ``keras.Model`` built with stock layers (a model file's output).

    Returns:
        A model with the same function and weights.
    """
    return fast_model(model) if on_cpu() else model


def fast_model(model: keras.Model) -> keras.Model:
    """A copy of the stock-built functional ``model`` with the XLA:CPU fast forms substituted.

    ``Conv2D`` becomes ``PatchConv2D`` (4x4 stride-2 "same" ones ``StridedConv2D``), each of
    which falls back to ``Conv2D``'s computation outside its fast cases; ``MaxPooling2D(2)``
    becomes ``MaxPool2x2``; ``UpSampling2D(2)`` followed by a linear stride-1 ``"same"``
    ``Conv2D`` with an odd kernel becomes one ``UpConv2D`` named as the upsampling layer;
    ``BatchNormalization`` and ``Dropout`` become the project's forms. Other layers are shared
    with ``model``, not copied. The new layers start from constant initializers and get
    ``model``'s weights, so building the copy draws no random numbers.

    Args:
        model: a functional ``keras.Model``.

    Returns:
        The fast copy (same name, inputs and outputs, uncompiled), or ``model`` itself when
        it has nothing to substitute.

    Raises:
        ValueError: ``model`` is not functional.
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_run_through_graph"):
        raise ValueError(f"{type(model).__name__} is not a functional Keras model")
    pairs = _upsample_conv_pairs(model)  # id(conv) -> the upsampling layer before it
    skipped = {id(upsample) for upsample in pairs.values()}
    if not pairs and not any(_fast_layer(layer) is not None for layer in model.layers):
        return model
    origins = {}  # id(fast clone) -> the stock layer it copies

    def clone(layer):
        if id(layer) in pairs:
            upsample = pairs[id(layer)]
            fast = UpConv2D(layer.filters, layer.kernel_size[0], use_bias=layer.use_bias, kernel_initializer="zeros",
                            name=upsample.name, dtype=layer.dtype_policy)
        else:
            fast = _fast_layer(layer) or layer
        origins[id(fast)] = layer
        return fast

    def call(fast, *args, **kwargs):
        layer = origins[id(fast)]
        if id(layer) in skipped:
            return args[0]  # its UpConv2D upsamples
        outputs = fast(*args, **kwargs)
        if fast is not layer and layer.weights:
            target = fast.conv if isinstance(fast, UpConv2D) else fast
            target.set_weights(layer.get_weights())
        return outputs

    copy = keras.models.clone_model(model, clone_function=clone, call_function=call)
    return keras.Model(copy.inputs, copy.outputs, name=model.name)


def _fast_layer(layer):
    """A new fast layer for the stock ``layer`` (weights not yet copied), or None."""
    kind = type(layer)
    if kind is layers.Conv2D:
        fast_class = StridedConv2D if _is_strided_4x4(layer) else PatchConv2D
        return fast_class.from_config({**layer.get_config(), "kernel_initializer": "zeros", "bias_initializer": "zeros"})
    if kind is layers.MaxPooling2D and _is_pool_2x2(layer):
        return fast_layers.MaxPool2x2(name=layer.name, dtype=layer.dtype_policy.name)
    if kind is layers.BatchNormalization:
        return fast_layers.BatchNormalization.from_config(layer.get_config())
    if kind is layers.Dropout:
        return fast_layers.Dropout.from_config(layer.get_config())
    return None


def _is_strided_4x4(conv) -> bool:
    return (conv.kernel_size == (STRIDED_KERNEL_SIZE, STRIDED_KERNEL_SIZE) and conv.strides == (2, 2)
            and conv.padding == "same")


def _is_pool_2x2(pool) -> bool:
    return (tuple(pool.pool_size) == (2, 2) and tuple(pool.strides) == (2, 2) and pool.padding == "valid"
            and pool.data_format == "channels_last")


def _upsample_conv_pairs(model) -> dict:
    """``{id(conv): upsampling}`` for each 2x nearest ``UpSampling2D`` whose only consumer is a
    linear, stride-1, ``"same"`` ``Conv2D`` with an odd square kernel: what ``UpConv2D`` computes."""
    pairs = {}
    for conv in model.layers:
        if type(conv) is not layers.Conv2D or len(conv._inbound_nodes) != 1:
            continue
        rows, cols = conv.kernel_size
        linear = conv.activation is keras.activations.linear
        if not (rows == cols and rows % 2 == 1 and conv.strides == (1, 1) and conv.padding == "same" and linear
                and conv.dilation_rate == (1, 1) and conv.groups == 1 and conv.data_format == "channels_last"):
            continue
        (source,) = conv._inbound_nodes[0].input_tensors
        upsample = source._keras_history.operation
        if (type(upsample) is layers.UpSampling2D and tuple(upsample.size) == (2, 2)
                and upsample.interpolation == "nearest" and upsample.data_format == "channels_last"
                and len(upsample._outbound_nodes) == 1):
            pairs[id(conv)] = upsample
    return pairs
