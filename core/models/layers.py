"""Layers that compute what a stock Keras layer computes, in a form faster on XLA:CPU.

- :class:`MaxPool2x2`: ``MaxPooling2D(2)`` as a reshape and a max, whose gradient is an
  elementwise compare-and-select instead of ``reduce_window``'s ``select_and_scatter_add``.
- :class:`BatchNormalization`: both batch moments from one pass over the data (one reduction,
  one all-reduce when the batch is split over devices).
- :class:`Dropout`: the mask from XLA's random-bit generator in one fused pass.

``core.models.fast`` substitutes them for the stock layers on the CPU; ``docs/performance.md``
has the measurements. Each is registered under the ``convgan`` package, so checkpoints that
hold them load once ``core.models`` is imported.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from keras import layers, ops, saving

# Dimension numbers of ``jax.lax.conv_general_dilated`` for Keras' channels-last layout.
CHANNELS_LAST = ("NHWC", "HWIO", "NHWC")


class FastPathConv2D(layers.Conv2D):
    """``keras.layers.Conv2D`` with another formulation of some of its cases (base class).

    A subclass says which cases (``_fast``) and computes them without bias (``_fast_conv``);
    bias and activation are Conv2D's, and every other case is plain Conv2D. Weights are
    Conv2D's, so a model can swap one for the other.
    """

    def _fast(self, inputs) -> bool:
        raise NotImplementedError

    def _fast_conv(self, inputs, kernel):
        raise NotImplementedError

    def call(self, inputs):
        if not self._fast(inputs):
            return super().call(inputs)
        outputs = self._fast_conv(inputs, ops.cast(self.kernel, inputs.dtype))
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return self.activation(outputs) if self.activation is not None else outputs


@saving.register_keras_serializable(package="convgan")
class MaxPool2x2(layers.Layer):
    """2x2 max pooling with stride 2 and ``"valid"`` padding (channels last).

    Same outputs as ``keras.layers.MaxPooling2D(2)``: an odd trailing row or column is
    dropped. Gradients are identical wherever a window has a single maximum; for a tie
    each tied input gets the gradient where ``MaxPooling2D`` gives it all to the first one
    (see ``_max_pool_2x2``). Ties are rare in float activations, and after a ReLU a tie
    at 0 gets no gradient either way.
    """

    def call(self, inputs):
        out_h, out_w = inputs.shape[1] // 2, inputs.shape[2] // 2
        return _max_pool_2x2(inputs[:, : 2 * out_h, : 2 * out_w, :])

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height // 2, width // 2, channels)


@ops.custom_gradient
def _max_pool_2x2(x):
    """2x2 max of even-sided channels-last ``x``; the gradient flows to each window's maximum.

    Every input equal to its window's maximum gets the whole gradient, which skips the count
    of maxima JAX's own gradient of ``max`` makes (ties need a window of equal floats; after a
    ReLU their common value is 0, where the ReLU passes no gradient anyway).
    """
    batch, height, width, channels = x.shape
    windows = ops.reshape(x, (-1, height // 2, 2, width // 2, 2, channels))
    pooled = ops.max(windows, axis=(2, 4))

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        is_max = ops.equal(windows, pooled[:, :, None, :, None, :])
        spread = ops.where(is_max, upstream[:, :, None, :, None, :], ops.zeros((), upstream.dtype))
        return ops.reshape(spread, (-1, height, width, channels))

    return pooled, grad


class SeedStateMixin:
    """Saves and restores a layer's ``SeedGenerator`` states with its weights.

    Keras saves neither layer seed generators nor their states, so a reloaded model's
    dropout and augmentation would restart their random streams from the beginning and a
    resumed run would not repeat the uninterrupted one. Files without the states (older
    checkpoints) load with fresh generators.
    """

    def save_own_variables(self, store):
        super().save_own_variables(store)
        for index, generator in enumerate(self._seed_generators):
            store[f"seed_state_{index}"] = generator.state

    def load_own_variables(self, store):
        weights = self._trainable_variables + self._non_trainable_variables
        for index, variable in enumerate(weights):
            variable.assign(store[f"{index}"])
        for index, generator in enumerate(self._seed_generators):
            key = f"seed_state_{index}"
            if key in store:
                generator.state.assign(store[key])


@saving.register_keras_serializable(package="convgan")
class Dropout(SeedStateMixin, layers.Dropout):
    """``keras.layers.Dropout`` whose random state is saved with the model, and whose mask
    comes from XLA's random-bit generator.

    ``lax.rng_bit_generator`` runs the Threefry-2x32 cipher in one fused pass, where XLA:CPU
    runs ``jax.random.bernoulli``'s rounds as a loop. An element is kept when its 32 random
    bits are at least ``rate * 2**32``, so the keep probability is ``1 - rate`` to 2e-10. The
    layer's ``SeedGenerator`` keys it, so masks are reproducible from the seed and saved with
    the model, but they are not the masks Keras' layer draws from the same seed.
    """

    def call(self, inputs, training=False):
        if not training or not 0.0 < self.rate < 1.0:
            return super().call(inputs, training=training)
        state = ops.cast(self.seed_generator.next(), "uint32")  # (seed, counter)
        key = jnp.concatenate([state, jnp.zeros((2,), jnp.uint32)])
        shape = inputs.shape if self.noise_shape is None else tuple(
            inputs.shape[axis] if size is None else size for axis, size in enumerate(self.noise_shape))
        _, bits = lax.rng_bit_generator(key, shape, dtype=jnp.uint32, algorithm=lax.RandomAlgorithm.RNG_THREE_FRY)
        keep = jnp.broadcast_to(bits >= jnp.uint32(min(round(self.rate * 2**32), 2**32 - 1)), inputs.shape)
        return jnp.where(keep, inputs / (1.0 - self.rate), jnp.zeros_like(inputs))


@saving.register_keras_serializable(package="convgan")
class BatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with both batch moments from one pass over the data.

    The variance is ``E[(x - s)^2] - E[x - s]^2`` with the shift ``s`` the moving mean (a
    constant for the gradient), so the two means reduce the same tensor side by side and,
    with a data-parallel batch, travel in one all-reduce. Shifting by a running estimate of
    the mean keeps the subtraction well conditioned (the shifted-data algorithm); outputs and
    gradients match Keras' layer to float32 rounding (``tests/models/test_layers.py``).
    Masked inputs fall back to Keras' computation.
    """

    def _moments(self, inputs, mask):
        if mask is not None or self.synchronized or self.axis not in (-1, len(inputs.shape) - 1):
            return super()._moments(inputs, mask)
        shift = ops.stop_gradient(ops.cast(self.moving_mean, "float32"))
        x = ops.cast(inputs, "float32") - shift  # statistics in float32, as Keras' own moments
        mean = ops.mean(x, axis=self._reduction_axes)
        mean_square = ops.mean(ops.square(x), axis=self._reduction_axes)
        variance = ops.maximum(mean_square - ops.square(mean), 0.0)
        return ops.cast(mean + shift, inputs.dtype), ops.cast(variance, inputs.dtype)
