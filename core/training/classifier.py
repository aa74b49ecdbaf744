"""Classifier family: train, evaluate and use image classifiers.

Training is ``model.fit()`` with the run context's callbacks (metrics, checkpoints, stop
requests); everything else works on any saved classifier, which takes raw pixel values 0..255
and returns class probabilities.
"""

from __future__ import annotations

import contextlib
import functools
import math
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np
from PIL import Image

from core.common.config import (
    ClassifierConfig,
    recommended_settings,  # noqa: F401 - re-exported for front ends
)
from core.common.errors import DatasetError, ModelFileError, TrainingFailed, UserError
from core.common.parallel import EVAL_BATCH_SIZE, single_device
from core.data.batches import ShuffledBatches
from core.models.augment import augmentation_preset
from core.models.classifiers import SparseCrossentropy, build_classifier
from core.store import checkpoints
from core.training import validation

WARMUP_FRACTION = 0.1  # of all training steps: linear learning-rate warm-up, then cosine decay

# Per-dataset recipes live in core.common.config, next to the defaults they adjust.
def fit_classifier(config: ClassifierConfig, data, ctx) -> dict[str, Any]:
    """Train (or resume) a classifier on ``data`` and evaluate it on the test split.

    Args:
        config: the run's ``ClassifierConfig``.
        data: a ``core.data.datasets.Dataset`` with labelled train and test splits.
        ctx: the run's ``core.training.runctx.RunContext``: ``initial_epoch``, ``resume_checkpoint``
            (a ``.keras`` file whose optimizer state is restored) and ``callbacks(steps)``.

    Returns:
        The final metrics of ``evaluate_classifier`` (test accuracy and loss, per-class
        accuracy, confusion matrix, ``num_params``).

    Raises:
        ConfigError: the data set has no labels, or fewer training images than a batch.
        DatasetError: the data set's arrays do not match.
        ModelFileError: the resume checkpoint does not fit this data set.
        TrainingFailed: the loss became NaN.
    """
    config.validate()
    validation.check_data(config, data)
    _check_data(data)
    keras.utils.set_random_seed(config.seed)
    batches = ShuffledBatches(data.x_train, data.y_train, config.batch_size, seed=config.seed, epoch=ctx.initial_epoch)
    steps_per_epoch = len(batches)
    if ctx.resume_checkpoint is not None:
        model = _load_checkpoint(ctx.resume_checkpoint, data)
    else:
        with _precision_policy(config.mixed_precision):
            model = build_classifier(
                config.model,
                data.image_shape,
                data.num_classes,
                augment=augmentation_preset(config.dataset, data.image_shape[-1])
                if config.augment
                else False,
                seed=config.seed,
            )
        compile_classifier(model, config, total_steps=config.epochs * steps_per_epoch)
    if ctx.initial_epoch < config.epochs:
        history = model.fit(
            batches,
            epochs=config.epochs,
            initial_epoch=ctx.initial_epoch,
            shuffle=False,  # the batches shuffle themselves, by epoch
            callbacks=[batches.epoch_callback(), EpochTestMetrics(data.x_test, data.y_test),
                       *ctx.callbacks(steps_per_epoch)],
            verbose=0,
        )
        losses = history.history.get("loss", [])
        if losses and not math.isfinite(losses[-1]):
            raise TrainingFailed(
                f"training loss became {losses[-1]}: lower the learning rate (now {config.learning_rate})"
            )
    return evaluate_classifier(model, data)


class EpochTestMetrics(keras.callbacks.Callback):
    """Adds ``val_loss`` and ``val_accuracy`` on the test split to each epoch's logs.

    The same compiled prediction function as ``evaluate_classifier``, where ``fit``'s
    ``validation_data`` would compile a separate test step. Put it before the callbacks that
    read the logs.
    """

    def __init__(self, images, labels):
        super().__init__()
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        probabilities = predict_proba(self.model, self.images)
        picked = probabilities[np.arange(len(self.labels)), self.labels]
        logs["val_loss"] = float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0))))
        logs["val_accuracy"] = float(np.mean(probabilities.argmax(axis=1) == self.labels))


def evaluate_classifier(model: keras.Model, data) -> dict[str, Any]:
    """Test-split metrics of a classifier.

    Returns:
        ``test_accuracy``, ``test_loss`` (mean cross-entropy), ``per_class_accuracy`` (one
        entry per class, ``None`` for a class with no test images), ``confusion_matrix``
        (rows are true classes, columns predicted) and ``num_params``.

    Raises:
        DatasetError: the test split has no labels.
        UserError: the images do not fit the model.
    """
    if data.y_test is None:
        raise DatasetError("this data set's test split has no labels to evaluate against")
    probabilities = predict_proba(model, data.x_test)
    labels = np.asarray(data.y_test, dtype=np.int64)
    num_classes = probabilities.shape[1]
    predictions = probabilities.argmax(axis=1)
    picked = probabilities[np.arange(len(labels)), labels]
    confusion = np.bincount(labels * num_classes + predictions, minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes)
    per_class_total = confusion.sum(axis=1)
    per_class = [
        float(confusion[i, i] / per_class_total[i]) if per_class_total[i] else None
        for i in range(num_classes)
    ]
    return {
        "test_accuracy": float(np.mean(predictions == labels)),
        "test_loss": float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0)))),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
        "num_params": int(model.count_params()),
    }


def predict_proba(model: keras.Model, images) -> np.ndarray:
    """Class probabilities ``(N, num_classes)`` for images shaped like the model's input.

    Raises:
        UserError: the images do not have the model's ``(height, width, channels)``.
    """
    images = np.asarray(images)
    expected = tuple(model.input_shape[1:])
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise UserError(
            f"images of shape {images.shape[1:]} do not fit this model, which takes {expected}: "
            "use prepare_images() to resize and convert them"
        )
    # Outside any data-parallel training split: a last batch of odd size could not be split.
    with single_device():
        probabilities = model.predict(images, batch_size=EVAL_BATCH_SIZE, verbose=0)
    return np.asarray(probabilities, dtype=np.float32)


def classify_images(model: keras.Model, images, class_names, top_k: int = 3) -> list[dict[str, Any]]:
    """The ``top_k`` most probable classes of each image, most probable first.

    Returns:
        One dict per image: the best ``class_index``, ``class_name`` and ``probability``,
        and ``top``, a list of ``{"class_index", "class_name", "probability"}``, best first.

    Raises:
        UserError: ``class_names`` does not match the model's class count, or bad images.
    """
    probabilities = predict_proba(model, images)
    if len(class_names) != probabilities.shape[1]:
        raise UserError(
            f"{len(class_names)} class names given for a model with {probabilities.shape[1]} classes"
        )
    top_k = max(1, min(int(top_k), probabilities.shape[1]))
    results = []
    for row in probabilities:
        order = np.argsort(-row, kind="stable")[:top_k]
        top = [
            {"class_index": int(i), "class_name": str(class_names[i]), "probability": float(row[i])}
            for i in order
        ]
        results.append({**top[0], "top": top})
    return results


def prepare_images(images_uint8, model_input_shape, *, background: str | None = "auto"):
    """Make user images (drawings, photos) look like the model's training images.

    Steps, each reported in ``notes`` when it changed something: drop an alpha channel
    (composited over the background that keeps the strokes visible), convert RGB <-> grayscale,
    invert dark-on-light images when the model was trained on light-on-dark ones (decided by
    the mean brightness of each image's border); for light-on-dark data and images over twice
    the model's size, crop a square around the strokes (a digit drawn small in a big canvas
    fills the frame, as the data set's digits do); pad to the model's aspect ratio; resize;
    and for light-on-dark data stretch the contrast of a grey background or faint strokes (a
    photo of paper, thin strokes averaged down to 8x8) to black and full white.

    Args:
        images_uint8: one image ``(H, W)``/``(H, W, C)`` or a batch ``(N, H, W)``/``(N, H, W, C)``,
            C in 1, 3, 4; uint8, or floats in 0..1 or 0..255.
        model_input_shape: ``(height, width, channels)`` (a leading batch axis is ignored).
        background: the training images' background: ``"dark"`` (digits, MNIST,
            Fashion-MNIST), ``"light"``, ``None`` (never invert), or ``"auto"``: dark for
            grayscale models, none for colour ones.

    Returns:
        ``(images, notes)``: uint8 ``(N, height, width, channels)`` and a list of strings.

    Raises:
        UserError: not an image array.
    """
    height, width, channels = (int(size) for size in tuple(model_input_shape)[-3:])
    if background == "auto":
        background = "dark" if channels == 1 else None
    if background not in ("dark", "light", None):
        raise UserError(f"background must be 'dark', 'light', 'auto' or None, got {background!r}")
    images, notes = _as_uint8_batch(images_uint8)
    if images.shape[-1] == 4:
        images = _drop_alpha(images)
        notes.append("removed the alpha channel")
    if channels == 1 and images.shape[-1] == 3:
        images = _to_gray(images)
        notes.append("converted colour to grayscale")
    elif channels == 3 and images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
        notes.append("converted grayscale to colour")
    elif images.shape[-1] != channels:
        raise UserError(f"cannot convert {images.shape[-1]}-channel images to {channels} channels")
    if background is not None:
        light = _border_mean(images) > 127.5  # (N,) background brightness of each image
        invert = light if background == "dark" else ~light
        if invert.any():
            images = np.where(invert[:, None, None, None], 255 - images, images).astype(np.uint8)
            which = "all images" if invert.all() else f"images {np.flatnonzero(invert).tolist()}"
            kind = "dark-on-light" if background == "dark" else "light-on-dark"
            notes.append(f"inverted {which}: {kind}, unlike the training images")
    pieces = list(images)
    if background == "dark" and min(images.shape[1:3]) > 2 * max(height, width):
        # A big drawing or photo: frame the strokes as the data set frames its digits.
        crops = [_crop_to_content(image) for image in images]
        cropped = [index for index, crop in enumerate(crops) if crop is not None]
        if cropped:
            which = "all images" if len(cropped) == len(images) else f"images {cropped}"
            notes.append(f"cropped {which} to the drawing, with a {CROP_MARGIN:.0%} margin")
            pieces = [image if crop is None else crop for image, crop in zip(images, crops, strict=True)]
    if any(piece.shape[0] * width != piece.shape[1] * height for piece in pieces):
        pieces = [_pad_to_aspect(piece[None], height / width)[0] for piece in pieces]
        notes.append(f"padded to the model's {height}:{width} aspect ratio")
    sizes = {piece.shape[:2] for piece in pieces}
    if sizes != {(height, width)}:
        source = f" from {pieces[0].shape[1]}x{pieces[0].shape[0]}" if len(sizes) == 1 else ""
        notes.append(f"resized{source} to {width}x{height}")
        pieces = [_resize(piece[None], height, width)[0] for piece in pieces]
    images = np.stack(pieces)
    if background == "dark":
        images, stretched = _stretch_contrast(images)
        if stretched.any():
            which = "all images" if stretched.all() else f"images {np.flatnonzero(stretched).tolist()}"
            notes.append(f"stretched the contrast of {which} to a black background and full-white strokes")
    return images, notes


def saliency(model: keras.Model, image, class_index: int, method: str = "smoothgrad", *, seed: int = 0):
    """Where in ``image`` the model looks for class ``class_index``.

    ``smoothgrad`` averages the absolute input gradient of the class logit over 32 noisy copies
    of the image (noise 15% of the pixel range); ``gradcam`` weights the last convolutional
    feature map by the class logit's gradient, position by position (the HiResCAM form of
    Grad-CAM, which stays faithful with a flatten head), and upsamples it bilinearly. Both use
    ``jax.grad`` through ``stateless_call`` in inference mode.

    Args:
        model: a classifier from this module (or any whose last dense layer is ``logits``).
        image: one image ``(H, W, C)`` shaped like the model's input, raw pixel values.
        class_index: the class to explain.
        method: ``smoothgrad`` or ``gradcam``.
        seed: seed of the smoothgrad noise (the same seed gives the same map).

    Returns:
        ``float32 (H, W)`` heat map scaled to [0, 1].

    Raises:
        UserError: unknown method, bad class index or image shape.
    """
    image = np.asarray(image, dtype=np.float32)
    expected = tuple(model.input_shape[1:])
    if image.shape != expected:
        raise UserError(f"image of shape {image.shape} does not fit this model, which takes {expected}")
    num_classes = model.output_shape[-1]
    if not 0 <= int(class_index) < num_classes:
        raise UserError(f"class index {class_index} is out of range for {num_classes} classes")
    if method == "smoothgrad":
        heatmap = _smoothgrad(model, image, int(class_index), seed)
    elif method == "gradcam":
        heatmap = _gradcam(model, image, int(class_index))
    else:
        raise UserError(f"unknown saliency method {method!r}: choose smoothgrad or gradcam")
    return _unit_range(np.asarray(heatmap, dtype=np.float32))


# -- training helpers ----------------------------------------------------------------------


def _check_data(data) -> None:
    """The labelled arrays agree with each other (that there are labels is ``core.training.validation``'s rule)."""
    if len(data.x_train) != len(data.y_train) or len(data.x_test) != len(data.y_test):
        raise DatasetError("the data set's images and labels differ in number")
    if len(data.x_train) == 0 or len(data.x_test) == 0:
        raise DatasetError("the data set needs images in both its train and test splits")
    if data.num_classes < 2:
        raise DatasetError(f"a classifier needs at least 2 classes, this data set has {data.num_classes}")
    for split in (data.y_train, data.y_test):
        if split.min() < 0 or split.max() >= data.num_classes:
            raise DatasetError(f"labels must be between 0 and {data.num_classes - 1}")


def compile_classifier(model: keras.Model, config: ClassifierConfig, total_steps: int) -> None:
    """Compile ``model`` as ``fit_classifier`` does: AdamW with a warm-up + cosine schedule over
    ``total_steps`` and the config's (label-smoothed) cross-entropy."""
    # The schedule is a function of optimizer.iterations, which a checkpoint restores, so a
    # resumed run continues on the same curve.
    warmup_steps = max(1, int(WARMUP_FRACTION * total_steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=config.learning_rate,
        warmup_steps=warmup_steps,
    )
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
    if config.label_smoothing > 0:
        loss = SparseCrossentropy(label_smoothing=config.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def _load_checkpoint(path, data) -> keras.Model:
    model = checkpoints.load_model(path)
    if tuple(model.input_shape[1:]) != tuple(data.image_shape) or model.output_shape[-1] != data.num_classes:
        raise ModelFileError(
            f"checkpoint {path} takes {tuple(model.input_shape[1:])} images and {model.output_shape[-1]} "
            f"classes, the data set has {tuple(data.image_shape)} and {data.num_classes}"
        )
    if model.optimizer is None:
        raise ModelFileError(f"checkpoint {path} holds no optimizer state to resume from")
    return model


@contextlib.contextmanager
def _precision_policy(mixed: bool):
    # bfloat16 is slower than float32 on CPUs without bf16 matrix units: GPU only.
    if not mixed or jax.default_backend() != "gpu":
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# -- image helpers ---------------------------------------------------------------------------


def _as_uint8_batch(images) -> tuple[np.ndarray, list[str]]:
    images = np.asarray(images)
    notes: list[str] = []
    if images.ndim == 2:
        images = images[None, :, :, None]
    elif images.ndim == 3:
        # (H, W, C) with C in 1/3/4 is one image; anything else a batch of grayscale images.
        images = images[None] if images.shape[-1] in (1, 3, 4) else images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or images.size == 0:
        raise UserError(
            f"expected images shaped (H, W), (H, W, C) or (N, H, W, C) with 1, 3 or 4 channels, got {images.shape}"
        )
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.number) or not np.isfinite(images).all():
            raise UserError("images must hold finite numbers")
        values = images.astype(np.float32)
        if np.issubdtype(images.dtype, np.floating) and values.max() <= 1.0:
            values = values * 255.0
            notes.append("scaled 0..1 pixel values to 0..255")
        images = np.clip(np.round(values), 0, 255).astype(np.uint8)
    return images, notes


def _drop_alpha(images: np.ndarray) -> np.ndarray:
    # Composite over black when the strokes are light and over white when they are dark, so
    # a drawing on a transparent canvas stays visible either way.
    alpha = images[..., 3:].astype(np.float32) / 255.0
    colour = images[..., :3].astype(np.float32)
    ink = (colour * alpha).sum(axis=(1, 2, 3)) / np.maximum(3 * alpha.sum(axis=(1, 2, 3)), 1e-6)
    backdrop = np.where(ink > 127.5, 0.0, 255.0)[:, None, None, None]
    return np.round(colour * alpha + backdrop * (1.0 - alpha)).astype(np.uint8)


def _to_gray(images: np.ndarray) -> np.ndarray:
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601
    return np.round(luma)[..., None].astype(np.uint8)


def _border_pixels(images: np.ndarray) -> np.ndarray:
    """``(N, pixels)`` brightness of each image's outer ring (1/8 of the side, at least 1 pixel)."""
    height, width = images.shape[1:3]
    band = max(1, min(height, width) // 8)
    mask = np.zeros((height, width), dtype=bool)
    mask[:band], mask[-band:], mask[:, :band], mask[:, -band:] = True, True, True, True
    return images.astype(np.float32).mean(axis=-1)[:, mask]


def _border_mean(images: np.ndarray) -> np.ndarray:
    return _border_pixels(images).mean(axis=1)


CROP_MARGIN = 0.15  # empty border around a cropped drawing, per side, as a fraction of its size


def _crop_to_content(image: np.ndarray) -> np.ndarray | None:
    """A square around the bright strokes of a light-on-dark ``image`` (H, W, C), with a
    ``CROP_MARGIN`` border of background; None when the image is blank or already filled."""
    gray = image.astype(np.float32).mean(axis=-1)  # (H, W)
    background = float(np.median(_border_pixels(image[None])))
    peak = float(np.percentile(gray, 99.5))
    if peak - background < 32:
        return None
    rows = np.flatnonzero((gray > background + 0.3 * (peak - background)).any(axis=1))
    cols = np.flatnonzero((gray > background + 0.3 * (peak - background)).any(axis=0))
    extent = max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0])
    side = int(round(extent * (1 + 2 * CROP_MARGIN)))
    if side >= 0.9 * min(gray.shape):
        return None
    top = int(round((rows[0] + rows[-1] + 1) / 2 - side / 2))
    left = int(round((cols[0] + cols[-1] + 1) / 2 - side / 2))
    out = np.full((side, side, image.shape[-1]), round(background), dtype=np.uint8)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + side, image.shape[0]), min(left + side, image.shape[1])
    out[src_top - top : src_bottom - top, src_left - left : src_right - left] = image[
        src_top:src_bottom, src_left:src_right
    ]
    return out


def _stretch_contrast(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map each image's background level to 0 and its brightest strokes to 255, where the
    background is not black (> 16) or the strokes are faint (< 224); returns the images and
    which ones changed."""
    values = images.astype(np.float32)
    low = np.median(_border_pixels(values), axis=1)  # (N,) background level
    high = np.percentile(values.reshape(len(values), -1), 99.5, axis=1)  # (N,) stroke level
    stretch = ((low > 16) | (high < 224)) & (high - low > 32)  # a blank image stays as it is
    if not stretch.any():
        return images, stretch
    scale = 255.0 / np.maximum(high - low, 1.0)
    stretched = np.clip(np.round((values - low[:, None, None, None]) * scale[:, None, None, None]), 0, 255)
    return np.where(stretch[:, None, None, None], stretched, values).astype(np.uint8), stretch


def _pad_to_aspect(images: np.ndarray, aspect: float) -> np.ndarray:
    """Pad with each image's border colour to height/width == ``aspect``, centred."""
    count, height, width, channels = images.shape
    new_height = max(height, int(round(width * aspect)))
    new_width = max(width, int(round(height / aspect)))
    fill = np.round(_border_mean(images)).astype(np.uint8)
    out = np.empty((count, new_height, new_width, channels), dtype=np.uint8)
    out[:] = fill[:, None, None, None]
    top, left = (new_height - height) // 2, (new_width - width) // 2
    out[:, top : top + height, left : left + width] = images
    return out


def _resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    # Area averaging when shrinking (as the 8x8 digits were made from 32x32 bitmaps), bicubic
    # when enlarging.
    shrinking = images.shape[1] > height or images.shape[2] > width
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    out = np.empty((len(images), height, width, images.shape[-1]), dtype=np.uint8)
    for index, image in enumerate(images):
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        out[index] = np.asarray(pil.resize((width, height), resample=resample)).reshape(height, width, -1)
    return out


# -- saliency helpers ------------------------------------------------------------------------

# model -> {method: (stateless function(s), variables)}: one compilation per model and method,
# whichever image and class; weak keys, so a model that is dropped is not kept alive here.
_saliency_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

SMOOTHGRAD_SAMPLES = 32
SMOOTHGRAD_NOISE = 0.15  # noise standard deviation as a fraction of the 0..255 pixel range


def _logit_model(model: keras.Model) -> keras.Model:
    try:
        return keras.Model(model.input, model.get_layer("logits").output)
    except ValueError:
        return model  # no "logits" layer: explain the probability instead


def _stateless_fn(model: keras.Model):
    """``(variables, x) -> outputs`` in inference mode, and the model's variables.

    The variables are returned as Keras variables and read at each call, so the cached
    function stays right if the model is trained further.
    """

    def call(variables, x):
        outputs, _ = model.stateless_call(variables[0], variables[1], x, training=False)
        return outputs

    return call, (model.trainable_variables, model.non_trainable_variables)


def _values(variables):
    return tuple([v.value for v in group] for group in variables)


def _smoothgrad(model: keras.Model, image: np.ndarray, class_index: int, seed: int) -> np.ndarray:
    cache = _saliency_cache.setdefault(model, {})
    if "smoothgrad" not in cache:
        cache["smoothgrad"] = _stateless_fn(_logit_model(model))
    call, variables = cache["smoothgrad"]
    return np.asarray(_smoothgrad_map(call, _values(variables), image, class_index, jax.random.PRNGKey(seed)))


@functools.partial(jax.jit, static_argnums=0)
def _smoothgrad_map(call, variables, image, class_index, key):
    noise = jax.random.normal(key, (SMOOTHGRAD_SAMPLES, *image.shape)) * (SMOOTHGRAD_NOISE * 255.0)

    def score(noisy):  # (samples, H, W, C): the samples are independent, so one sum suffices
        return jnp.sum(jnp.take(call(variables, noisy), class_index, axis=1))

    grads = jax.grad(score)(image[None] + noise)
    return jnp.abs(grads).mean(axis=0).max(axis=-1)  # (H, W)


def _gradcam(model: keras.Model, image: np.ndarray, class_index: int) -> np.ndarray:
    cache = _saliency_cache.setdefault(model, {})
    if "gradcam" not in cache:
        feature_layer = _last_feature_layer(model)
        logits = _logit_model(model).output
        cache["gradcam"] = (
            _stateless_fn(keras.Model(model.input, feature_layer.output)),
            _stateless_fn(keras.Model(feature_layer.output, logits)),
        )
    (features_fn, features_vars), (head_fn, head_vars) = cache["gradcam"]
    return np.asarray(
        _gradcam_map(features_fn, head_fn, _values(features_vars), _values(head_vars), image, class_index)
    )


@functools.partial(jax.jit, static_argnums=(0, 1))
def _gradcam_map(features_fn, head_fn, features_vars, head_vars, image, class_index):
    features = features_fn(features_vars, image[None])  # (1, h, w, channels)
    grads = jax.grad(lambda f: jnp.take(head_fn(head_vars, f)[0], class_index))(features)
    # Element-wise gradient x activation (HiResCAM): with a flatten head each position has its
    # own weights, and Grad-CAM's spatially averaged gradient can cancel to an empty map.
    heatmap = jax.nn.relu((grads * features).sum(axis=-1))[0]  # (h, w)
    return jax.image.resize(heatmap, image.shape[:2], method="linear")


def _last_feature_layer(model: keras.Model):
    """The last layer whose output is a spatial feature map (before global pooling/flatten)."""
    for layer in reversed(model.layers):
        shape = getattr(layer.output, "shape", None)
        if shape is not None and len(shape) == 4 and min(shape[1:3]) > 1 and layer.name != "augment":
            if layer.name in ("images", "rescale"):
                break
            return layer
    raise UserError("gradcam needs a model with a convolutional feature map: use smoothgrad")


def _unit_range(heatmap: np.ndarray) -> np.ndarray:
    # Scale by the 99th percentile, as SmoothGrad does, so one hot pixel does not flatten the map.
    heatmap = np.nan_to_num(heatmap, nan=0.0, posinf=0.0, neginf=0.0)
    heatmap = heatmap - heatmap.min()
    top = np.percentile(heatmap, 99)
    if top <= 0:
        top = heatmap.max()
    if top <= 0:
        return np.zeros_like(heatmap, dtype=np.float32)
    return np.clip(heatmap / top, 0.0, 1.0).astype(np.float32)
