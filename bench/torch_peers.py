"""PyTorch twins of our Keras models, for side-by-side benchmarks (``bench/harness.py``).

:func:`translate` walks a Keras model layer by layer and builds the same network in PyTorch:
the same layers, the same parameter count, the same batch-norm epsilon and momentum, float32.
:func:`copy_weights` copies trained or initial weights across, so a test can check that both
networks compute the same function (the proof that the benchmark compares like with like).

Layouts differ: Keras is channels-last, PyTorch channels-first. The twin takes the same
channels-last uint8 batches (it transposes them, as part of its first layer) and its
``Flatten``/``Reshape`` work in its own layout; :func:`copy_weights` permutes the dense
weights on either side of them, so the functions are still equal.

PyTorch is a benchmark-only dependency (``requirements-bench.txt``); this module imports it
lazily so ``core`` never needs it.
"""

from __future__ import annotations

import functools

import keras
import numpy as np

from core.common.errors import ConfigError

INSTALL_HINT = "PyTorch is needed for the side-by-side benchmark: pip install -r requirements-bench.txt"


def import_torch():
    """Return the ``torch`` module, or raise ConfigError saying how to install it."""
    try:
        import torch  # the optional `bench` extra: missing, the benchmark says how to install it
    except ImportError as err:
        raise ConfigError(INSTALL_HINT) from err
    return torch


def translate(keras_model):
    """A ``torch.nn.Sequential`` computing what the (single-path) Keras model computes.

    Supported layers: InputLayer, Rescaling, Conv2D and its subclasses (stride 1 or 2, ``same`` or ``valid``,
    any activation in ``ACTIVATIONS``), BatchNormalization, ReLU, LeakyReLU, Activation,
    MaxPool2x2/MaxPooling2D(2), UpConv2D / UpSampling2D(2), Flatten, Reshape, Dropout, Dense.

    Raises:
        ConfigError: a layer this translator does not know (the twin would not be the same net).
    """
    torch = import_torch()
    nn = torch.nn
    modules, shape = [], tuple(keras_model.inputs[0].shape[1:])  # channels-last, no batch
    to_channels_first, affine = _own_modules()
    modules.append(to_channels_first() if len(shape) == 3 else nn.Identity())
    for layer in keras_model.layers:
        kind = type(layer).__name__
        out_shape = tuple(layer.output.shape[1:])
        if kind == "InputLayer":
            continue
        elif kind == "Rescaling":
            modules.append(affine(float(layer.scale), float(layer.offset)))
        elif isinstance(layer, keras.layers.Conv2D):  # and its subclasses: StridedConv2D, PatchConv2D
            modules.append(_conv(nn, layer, shape))
            modules.extend(_activation(nn, layer.activation))
        elif kind == "UpConv2D":
            modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
            modules.append(_conv(nn, layer.conv, (2 * shape[0], 2 * shape[1], shape[2])))
        elif kind == "UpSampling2D":
            modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
        elif kind == "BatchNormalization":
            norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            # Keras: new = momentum * old + (1 - momentum) * batch; PyTorch weighs the batch by its momentum.
            modules.append(norm(shape[-1], eps=layer.epsilon, momentum=1.0 - layer.momentum))
        elif kind == "ReLU":
            modules.append(nn.ReLU())
        elif kind == "LeakyReLU":
            modules.append(nn.LeakyReLU(layer.negative_slope))
        elif kind == "Activation":
            modules.extend(_activation(nn, layer.activation))
        elif kind in ("MaxPool2x2", "MaxPooling2D"):
            modules.append(nn.MaxPool2d(2))
        elif kind == "Flatten":
            modules.append(nn.Flatten())
        elif kind == "Reshape":
            height, width, channels = out_shape
            modules.append(nn.Unflatten(1, (channels, height, width)))
        elif kind == "Dropout":
            modules.append(nn.Dropout(layer.rate))
        elif kind == "Dense":
            modules.append(nn.Linear(shape[-1], layer.units, bias=layer.use_bias))
            modules.extend(_activation(nn, layer.activation))
        else:
            raise ConfigError(f"no PyTorch twin for Keras layer {layer.name!r} ({kind})")
        shape = out_shape
    return nn.Sequential(*modules)


def parameter_count(torch_model) -> int:
    """Trainable parameters of a PyTorch module (Keras' ``count_params`` counts these too, plus
    batch-norm statistics, which :func:`keras_trainable_count` leaves out)."""
    return sum(parameter.numel() for parameter in torch_model.parameters() if parameter.requires_grad)


def keras_trainable_count(keras_model) -> int:
    return sum(int(np.prod(variable.shape)) for variable in keras_model.trainable_weights)


def copy_weights(keras_model, torch_model) -> None:
    """Copy the Keras model's weights (and batch-norm statistics) into its :func:`translate` twin."""
    torch = import_torch()
    keras_layers = [layer for layer in keras_model.layers if layer.weights]
    torch_layers = [module for module in torch_model if any(True for _ in module.parameters())]
    if len(keras_layers) != len(torch_layers):
        raise ConfigError("the PyTorch model is not this Keras model's twin (weighted layers differ)")
    with torch.no_grad():
        for layer, module in zip(keras_layers, torch_layers, strict=True):
            kind = type(layer).__name__
            source = layer.conv if kind == "UpConv2D" else layer
            if isinstance(source, keras.layers.Conv2D):
                module.weight.copy_(torch.from_numpy(np.transpose(_numpy(source.kernel), (3, 2, 0, 1)).copy()))
            elif kind == "Dense":
                module.weight.copy_(torch.from_numpy(_dense_kernel(layer, keras_model).T.copy()))
            elif kind == "BatchNormalization":
                module.weight.copy_(torch.from_numpy(_numpy(layer.gamma)))
                module.bias.copy_(torch.from_numpy(_numpy(layer.beta)))
                module.running_mean.copy_(torch.from_numpy(_numpy(layer.moving_mean)))
                module.running_var.copy_(torch.from_numpy(_numpy(layer.moving_variance)))
                continue
            if getattr(source, "use_bias", False):
                module.bias.copy_(torch.from_numpy(_numpy(source.bias)))


def _dense_kernel(layer, keras_model) -> np.ndarray:
    """The Dense kernel (in, out) with rows/columns reordered for channels-first neighbours."""
    kernel = _numpy(layer.kernel)
    index = keras_model.layers.index(layer)
    before = [earlier for earlier in keras_model.layers[:index] if type(earlier).__name__ != "Dropout"]
    previous = before[-1] if before else None
    if previous is not None and type(previous).__name__ == "Flatten":
        # Keras flattens (h, w, c); the twin flattens (c, h, w).
        kernel = kernel[_channels_first_order(previous.input.shape[1:])]
    following = [later for later in keras_model.layers[index + 1 :] if type(later).__name__ == "Reshape"]
    if following:
        kernel = kernel[:, _channels_first_order(following[0].output.shape[1:])]
    return kernel


def _channels_first_order(shape) -> np.ndarray:
    """Where each (c, h, w)-flattened element sits in the (h, w, c) flattening."""
    height, width, channels = (int(size) for size in shape)
    return np.arange(height * width * channels).reshape(height, width, channels).transpose(2, 0, 1).reshape(-1)


def _numpy(variable) -> np.ndarray:
    return np.asarray(variable.numpy(), dtype=np.float32)


def _conv(nn, layer, input_shape):
    kernel_size, stride = layer.kernel_size[0], layer.strides[0]
    if layer.padding == "valid":
        padding = 0
    elif stride == 1:
        padding = kernel_size // 2
    else:
        # "same" with stride s pads (k - s) in all when the side divides by s; twin pads symmetrically.
        total = kernel_size - stride
        if total % 2 or input_shape[0] % stride:
            raise ConfigError(f"layer {layer.name!r}: 'same' padding here is asymmetric, no exact PyTorch twin")
        padding = total // 2
    return nn.Conv2d(input_shape[-1], layer.filters, kernel_size, stride=stride, padding=padding,
                     bias=layer.use_bias)


ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")


def _activation(nn, activation):
    name = getattr(activation, "__name__", str(activation))
    if name == "linear":
        return []
    if name == "softmax":
        # Trained with CrossEntropyLoss on logits (log-softmax inside the loss), as PyTorch users do.
        return []
    table = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    if name not in table:
        raise ConfigError(f"no PyTorch twin for activation {name!r}")
    return [table[name]()]


@functools.cache
def _own_modules():
    """The two small modules the twins need that PyTorch lacks (defined once torch is imported)."""
    torch = import_torch()

    class ToChannelsFirst(torch.nn.Module):
        """(batch, height, width, channels) -> (batch, channels, height, width)."""

        def forward(self, x):
            return x.permute(0, 3, 1, 2)

    class Affine(torch.nn.Module):
        """Keras' Rescaling: ``x * scale + offset`` in float32 (uint8 pixels in)."""

        def __init__(self, scale: float, offset: float):
            super().__init__()
            self.scale, self.offset = scale, offset

        def forward(self, x):
            return x.float() * self.scale + self.offset

    return ToChannelsFirst, Affine
