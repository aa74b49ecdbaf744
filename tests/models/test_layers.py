"""Fast layers, augmentation and the label-smoothing loss against their Keras references."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras import layers

from core.models.augment import AUGMENTATIONS, RandomShiftZoomFlip, augmentation_for, augmentation_preset
from core.models.classifiers import SparseCrossentropy
from core.models.downsample import StridedConv2D
from core.models.layers import BatchNormalization, Dropout, MaxPool2x2
from core.models.patches import MAX_CHANNELS, PatchConv2D


def _pool_and_grad(layer, x, upstream):
    # Gradient of <pool(x), upstream>: what backprop hands the layer below.
    def loss(x):
        return jnp.sum(layer(x) * upstream)

    return layer(x), jax.grad(loss)(x)


@pytest.mark.parametrize("shape", [(3, 8, 8, 4), (2, 28, 28, 16), (2, 7, 9, 3)])
def test_maxpool2x2_matches_keras_outputs_and_gradients(shape):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape).astype(np.float32))  # continuous: no ties in a window
    reference = layers.MaxPooling2D(2)
    out_shape = reference.compute_output_shape(shape)
    upstream = jnp.asarray(rng.normal(size=out_shape).astype(np.float32))
    fast_out, fast_grad = _pool_and_grad(MaxPool2x2(), x, upstream)
    ref_out, ref_grad = _pool_and_grad(reference, x, upstream)
    assert fast_out.shape == out_shape
    np.testing.assert_array_equal(np.asarray(fast_out), np.asarray(ref_out))
    np.testing.assert_array_equal(np.asarray(fast_grad), np.asarray(ref_grad))


def test_maxpool2x2_gradient_after_relu_matches_keras_despite_ties():
    # ReLU zeros tie inside windows; the tie gradient differs but the ReLU masks it out.
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 8, 8, 4)).astype(np.float32))
    upstream = jnp.asarray(rng.normal(size=(2, 4, 4, 4)).astype(np.float32))
    grads = [
        jax.grad(lambda x, pool=pool: jnp.sum(pool(jax.nn.relu(x)) * upstream))(x)
        for pool in (MaxPool2x2(), layers.MaxPooling2D(2))
    ]
    np.testing.assert_array_equal(np.asarray(grads[0]), np.asarray(grads[1]))


def test_maxpool2x2_config_round_trip_and_symbolic_shape():
    layer = MaxPool2x2(name="pool")
    clone = MaxPool2x2.from_config(layer.get_config())
    assert clone.name == "pool"
    assert keras.saving.get_registered_name(MaxPool2x2) == "convgan>MaxPool2x2"
    assert clone(keras.Input((9, 28, 5))).shape == (None, 4, 14, 5)


@pytest.mark.parametrize("shape", [(16, 6, 6, 8), (32, 24)])
@pytest.mark.parametrize("offset", [0.0, 300.0])  # a large mean: the one-pass variance must stay exact
def test_batch_normalization_matches_keras_in_training(shape, offset):
    rng = np.random.default_rng(0)
    x = jnp.asarray((rng.normal(size=shape) * 0.5 + offset).astype(np.float32))
    upstream = jnp.asarray(rng.normal(size=shape).astype(np.float32))
    gamma = rng.uniform(0.5, 1.5, shape[-1]).astype(np.float32)
    results = []
    for cls in (BatchNormalization, layers.BatchNormalization):
        layer = cls(momentum=0.8)
        layer.build(shape)
        layer.moving_mean.assign(np.full(shape[-1], offset - 0.7, np.float32))  # a stale running mean
        layer.gamma.assign(gamma)

        def loss(x, gamma, layer=layer):
            y, updates = layer.stateless_call([gamma, layer.beta.value], [layer.moving_mean.value,
                                              layer.moving_variance.value], x, training=True)
            return jnp.sum(y * upstream), (y, updates)

        (_, (y, updates)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, layer.gamma.value)
        results.append((y, updates, grads))
    (y, updates, grads), (ref_y, ref_updates, ref_grads) = results
    np.testing.assert_allclose(np.asarray(y), np.asarray(ref_y), atol=2e-4)
    for ours, theirs in zip([*updates, *grads], [*ref_updates, *ref_grads], strict=True):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-3, atol=2e-3)


def test_batch_normalization_inference_and_config_round_trip():
    layer = BatchNormalization(momentum=0.8, name="bn")
    clone = BatchNormalization.from_config(layer.get_config())
    assert clone.momentum == 0.8 and clone.name == "bn"
    assert keras.saving.get_registered_name(BatchNormalization) == "convgan>BatchNormalization"
    x = np.random.default_rng(0).normal(size=(4, 5, 5, 3)).astype(np.float32)
    reference = layers.BatchNormalization(momentum=0.8)
    np.testing.assert_allclose(np.asarray(layer(x, training=False)), np.asarray(reference(x, training=False)))


def _batch(seed=0, shape=(16, 12, 12, 1)):
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype(np.float32)


def test_augmentation_is_identity_in_inference():
    x = _batch()
    layer = RandomShiftZoomFlip(shift=0.2, zoom=0.2, flip=True, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    assert not np.allclose(np.asarray(layer(x, training=True)), x)


def test_augmentation_without_transform_keeps_images_exactly():
    x = _batch()
    out = RandomShiftZoomFlip(shift=0.0, zoom=0.0, flip=False)(x, training=True)
    np.testing.assert_array_equal(np.asarray(out), x)


def _shifted(image, dy, dx):
    """``image`` moved by (dy, dx) whole pixels, zeros coming in."""
    out = np.zeros_like(image)
    height, width = image.shape[:2]
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = image[
        max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
    ]
    return out


def test_augmentation_shifts_whole_pixels_and_flips_exactly():
    x = _batch(shape=(32, 10, 10, 2))
    layer = RandomShiftZoomFlip(shift=0.2, zoom=0.0, flip=True, seed=7)
    out = np.asarray(layer(x, training=True))
    flipped = 0
    for image, result in zip(x, out, strict=True):
        candidates = {
            (dy, dx, mirror): _shifted(image[:, ::-1] if mirror else image, dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            for mirror in (False, True)
        }
        matches = [key for key, candidate in candidates.items() if np.array_equal(candidate, result)]
        assert matches, "each output must be the input shifted by whole pixels, maybe mirrored"
        flipped += matches[0][2]
    assert 4 <= flipped <= 28  # about half are mirrored


def test_augmentation_is_seeded():
    x = _batch()
    first = RandomShiftZoomFlip(shift=0.1, zoom=0.1, seed=5)(x, training=True)
    second = RandomShiftZoomFlip(shift=0.1, zoom=0.1, seed=5)(x, training=True)
    other = RandomShiftZoomFlip(shift=0.1, zoom=0.1, seed=6)(x, training=True)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    assert not np.array_equal(np.asarray(first), np.asarray(other))


def test_augmentation_config_round_trip():
    layer = RandomShiftZoomFlip(shift=0.07, zoom=0.05, flip=True, seed=11, name="augment")
    config = layer.get_config()
    clone = RandomShiftZoomFlip.from_config(config)
    assert (clone.shift, clone.zoom, clone.flip, clone.seed) == (0.07, 0.05, True, 11)
    with pytest.raises(ValueError, match="shift and zoom"):
        RandomShiftZoomFlip(shift=0.6)


def test_augmentation_presets_never_flip_digits():
    assert augmentation_preset("digits", 1) == "handwriting"
    assert augmentation_preset("mnist", 1) == "handwriting"
    assert augmentation_preset("fashion_mnist", 1) == "centered"
    assert augmentation_preset("cifar10", 3) == "natural"
    assert augmentation_preset("folder:photos", 3) == "natural"
    assert augmentation_preset("folder:letters", 1) == "handwriting"
    assert AUGMENTATIONS["handwriting"]["flip"] is False
    assert augmentation_for((28, 28, 1)).flip is False
    assert augmentation_for((32, 32, 3)).flip is True
    with pytest.raises(ValueError, match="unknown augmentation"):
        augmentation_for((8, 8, 1), preset="sideways")


def test_sparse_crossentropy_matches_keras():
    rng = np.random.default_rng(0)
    probabilities = jax.nn.softmax(jnp.asarray(rng.normal(size=(6, 4)).astype(np.float32)))
    labels = np.array([0, 1, 2, 3, 1, 0])
    plain = SparseCrossentropy()(labels, probabilities)
    reference = keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)
    np.testing.assert_allclose(float(plain), float(reference), rtol=1e-6)
    smoothed = SparseCrossentropy(label_smoothing=0.1)(labels, probabilities)
    one_hot = np.eye(4, dtype=np.float32)[labels]
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(one_hot, probabilities)
    np.testing.assert_allclose(float(smoothed), float(expected), rtol=1e-6)
    assert SparseCrossentropy.from_config(SparseCrossentropy(0.2).get_config()).label_smoothing == 0.2


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_dropout_keeps_one_minus_rate_scaled_like_keras(rate):
    x = np.ones((256, 3136), np.float32)
    layer = Dropout(rate, seed=3)
    first, second = (np.asarray(layer(x, training=True)) for _ in range(2))
    kept = first > 0
    # 802,816 draws: the kept fraction is within 5 standard deviations of 1 - rate.
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / x.size)
    np.testing.assert_allclose(first[kept], 1 / (1 - rate), rtol=1e-6)
    assert (first[~kept] == 0).all()
    assert 0.9 * 2 * rate * (1 - rate) < ((first > 0) != (second > 0)).mean()  # a fresh mask per call
    np.testing.assert_array_equal(np.asarray(layer(x)), x)  # inference: the identity
    gradient = np.asarray(jax.grad(lambda x: jnp.sum(Dropout(rate, seed=3)(x, training=True)))(x))
    np.testing.assert_array_equal(gradient, first)  # the same seed, the same mask, scaled


def test_dropout_masks_follow_the_seed_and_the_noise_shape():
    x = np.ones((64, 5, 3), np.float32)
    masks = [np.asarray(Dropout(0.5, seed=seed)(x, training=True)) for seed in (1, 1, 2)]
    np.testing.assert_array_equal(masks[0], masks[1])
    assert (masks[0] != masks[2]).any()
    shared = np.asarray(Dropout(0.5, noise_shape=(None, 1, 3), seed=1)(x, training=True))
    np.testing.assert_array_equal(shared, np.broadcast_to(shared[:, :1], shared.shape))
    assert 0 < (shared > 0).mean() < 1
    assert (np.asarray(Dropout(0.0)(x, training=True)) == x).all()


def test_seed_states_are_saved_with_the_model(tmp_path):
    # Keras saves no SeedGenerator state; ours do, so a resumed run repeats an uninterrupted one.
    inputs = keras.Input((6, 6, 1))
    x = RandomShiftZoomFlip(shift=0.2, seed=1, name="augment")(inputs)
    outputs = Dropout(0.5, seed=2, name="dropout")(layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    images = _batch(shape=(4, 6, 6, 1))
    model(images, training=True)  # advance both random streams
    model.save(tmp_path / "seeded.keras")
    loaded = keras.saving.load_model(tmp_path / "seeded.keras")
    assert isinstance(loaded.get_layer("dropout"), Dropout)
    for name in ("augment", "dropout"):
        state = np.asarray(model.get_layer(name).seed_generator.state)
        assert state.any()
        np.testing.assert_array_equal(np.asarray(loaded.get_layer(name).seed_generator.state), state)
    np.testing.assert_array_equal(
        np.asarray(loaded(images, training=True)), np.asarray(model(images, training=True))
    )


def _conv_loss(layer, weights, x):
    # A nonlinear function of the output, so every gradient entry is exercised.
    return jnp.sum(jnp.sin(layer.stateless_call(weights, [], x)[0]))


def _twin_convs(fast_class, shape, *args, **kwargs):
    fast, reference = (cls(*args, **kwargs) for cls in (fast_class, layers.Conv2D))
    fast.build(shape)
    reference.build(shape)
    reference.set_weights(fast.get_weights())
    return fast, reference


def _assert_same_outputs_and_gradients(fast, reference, x):
    weights = [fast.kernel.value, fast.bias.value]
    np.testing.assert_allclose(fast(x), reference(x), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda w, x, layer=layer: _conv_loss(layer, w, x), argnums=(0, 1))(weights, x)
             for layer in (fast, reference)]
    # Weight gradients sum over every pixel of the batch, in an order that depends on how XLA
    # splits the work over threads: float32 rounding grows with the largest entry.
    for got, want in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(jnp.max(jnp.abs(want)))))


def _assert_same_gradient_of_input_gradient(fast, reference, x):
    weights = [fast.kernel.value, fast.bias.value]

    def penalty(weights, layer):
        return jnp.sum(jax.grad(lambda x: _conv_loss(layer, weights, x))(x) ** 2)

    got, want = (jax.grad(penalty)(weights, layer) for layer in (fast, reference))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b))))


@pytest.mark.parametrize("shape", [(3, 8, 8, 2), (4, 28, 28, 3), (2, 14, 14, 4), (2, 6, 10, 1)])
def test_strided_conv2d_matches_conv2d_outputs_and_gradients(shape):
    rng = np.random.default_rng(0)
    fast, reference = _twin_convs(StridedConv2D, shape, 5, 4, strides=2, padding="same")
    assert fast._fast(keras.KerasTensor(shape))
    _assert_same_outputs_and_gradients(fast, reference, jnp.asarray(rng.normal(size=shape).astype(np.float32)))


def test_strided_conv2d_gradient_of_its_input_gradient_matches_conv2d():
    # WGAN-GP differentiates the critic's input gradient with respect to the weights.
    shape = (2, 8, 8, 3)
    fast, reference = _twin_convs(StridedConv2D, shape, 4, 4, strides=2, padding="same")
    x = jnp.asarray(np.random.default_rng(1).normal(size=shape).astype(np.float32))
    _assert_same_gradient_of_input_gradient(fast, reference, x)


def test_strided_conv2d_other_cases_are_plain_conv2d_and_it_round_trips():
    odd = StridedConv2D(3, 4, strides=2, padding="same")
    assert not odd._fast(keras.KerasTensor((1, 7, 8, 2)))  # odd side
    assert not StridedConv2D(3, 3, strides=2, padding="same")._fast(keras.KerasTensor((1, 8, 8, 2)))
    x = np.random.default_rng(2).normal(size=(1, 7, 8, 2)).astype(np.float32)
    reference = layers.Conv2D(3, 4, strides=2, padding="same")
    reference.build(x.shape)
    odd.build(x.shape)
    reference.set_weights(odd.get_weights())
    np.testing.assert_allclose(odd(x), reference(x), rtol=1e-6)
    clone = StridedConv2D.from_config(odd.get_config())
    assert keras.saving.get_registered_name(StridedConv2D) == "convgan>StridedConv2D"
    assert clone(keras.Input((28, 28, 1))).shape == (None, 14, 14, 3)


@pytest.mark.parametrize(("shape", "filters", "kernel_size", "padding"), [
    # few input channels: a patch product
    ((3, 8, 8, 1), 6, 3, "same"), ((2, 28, 28, 1), 6, 3, "same"), ((2, 9, 7, 3), 6, 5, "same"),
    ((2, 10, 10, MAX_CHANNELS), 6, 3, "valid"), ((2, 6, 11, 2), 6, (3, 1), "same"),
    # few filters: an overlap-add
    ((2, 28, 28, 32), 1, 3, "same"), ((3, 8, 8, 6), 3, 3, "same"), ((2, 9, 7, 5), MAX_CHANNELS, 5, "same"),
    ((2, 10, 10, 8), 2, 3, "valid"), ((2, 6, 11, 7), 1, (1, 3), "same"),
    # both few
    ((2, 8, 8, 2), 1, 3, "same"),
])
def test_patch_conv2d_matches_conv2d_outputs_and_gradients(shape, filters, kernel_size, padding):
    rng = np.random.default_rng(0)
    fast, reference = _twin_convs(PatchConv2D, shape, filters, kernel_size, padding=padding)
    assert fast._fast(keras.KerasTensor(shape))
    _assert_same_outputs_and_gradients(fast, reference, jnp.asarray(rng.normal(size=shape).astype(np.float32)))


@pytest.mark.parametrize(("shape", "filters"), [((2, 8, 8, 1), 4), ((2, 8, 8, 6), 1)])
def test_patch_conv2d_gradient_of_its_input_gradient_matches_conv2d(shape, filters):
    # A critic with a patch stem under WGAN-GP differentiates its input gradient by the weights.
    fast, reference = _twin_convs(PatchConv2D, shape, filters, 3, padding="same")
    x = jnp.asarray(np.random.default_rng(1).normal(size=shape).astype(np.float32))
    _assert_same_gradient_of_input_gradient(fast, reference, x)


def test_patch_conv2d_other_cases_are_plain_conv2d_and_it_round_trips():
    wide = (1, 6, 6, MAX_CHANNELS + 1)
    assert not PatchConv2D(MAX_CHANNELS + 1, 3, padding="same")._fast(keras.KerasTensor(wide))  # too many channels
    assert not PatchConv2D(3, 3, strides=2, padding="same")._fast(keras.KerasTensor((1, 6, 6, 1)))
    assert not PatchConv2D(3, 4, padding="same")._fast(keras.KerasTensor((1, 6, 6, 1)))  # even kernel
    fast, reference = _twin_convs(PatchConv2D, wide, MAX_CHANNELS + 1, 3, padding="same", activation="relu")
    x = np.random.default_rng(2).normal(size=wide).astype(np.float32)
    np.testing.assert_allclose(fast(x), reference(x), rtol=1e-6)
    assert keras.saving.get_registered_name(PatchConv2D) == "convgan>PatchConv2D"
    clone = PatchConv2D.from_config(fast.get_config())
    assert clone(keras.Input((28, 28, 1))).shape == (None, 28, 28, MAX_CHANNELS + 1)
