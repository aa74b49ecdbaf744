"""Is an image like the ones a classifier was trained on? Out-of-distribution checks.

Two checks, and an image failing either is ``unusual``:

- **Flat image**: the pixels of the image as given vary by less than ``FLAT_STD`` (of 255), so
  there is nothing to classify (a blank canvas, a flat colour). No model is needed.
- **Mahalanobis distance** (Lee et al., "A Simple Unified Framework for Detecting
  Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018) on the classifier's
  penultimate-layer features (the input of its ``logits`` layer): one Gaussian per class, all
  sharing one covariance, fitted to the training images' features (Ledoit-Wolf shrinkage, as
  the features outnumber what a small training set can estimate). An image's score is its
  squared distance to the nearest class mean. The threshold is the ``PERCENTILE``-th
  percentile of the scores of held-out in-distribution images (every other test image), so
  about 1 % of real test images score above it by design.

The fitted Gaussians and threshold are computed once per checkpoint and kept next to it
(``checkpoints/epoch_NNN.novelty.npz``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import weakref
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn.covariance import LedoitWolf

from core.common.errors import UserError
from core.common.images import atomic_write_bytes
from core.common.parallel import EVAL_BATCH_SIZE, single_device
from core.data.datasets import load_dataset
from core.store.checkpoints import checkpoint_path, load_run_model

FLAT_STD = 4.0  # pixel standard deviation (0..255 scale) below which an image is flat
PERCENTILE = 99.0  # of held-out in-distribution scores: the threshold
MAX_FIT_IMAGES = 10_000  # training images the Gaussians are fitted on (a seeded subset beyond this)
MAX_FEATURES = 256  # features kept (principal components) when the penultimate layer is wider
CALIBRATION = slice(0, None, 2)  # the test images that set the threshold: every other one
SMALL_BATCH = 16  # images per feature call for a few images (the dashboard, the CLI)
CACHE_VERSION = 1
METHOD = "mahalanobis"
_ARRAYS = ("mean", "components", "class_means", "precision")  # Novelty's arrays, in order

# model -> feature extractor: one compiled model per loaded checkpoint (weak keys: a dropped
# model is not kept alive here).
_extractors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class Novelty:
    """Class-conditional Gaussians of a checkpoint's features, and the score threshold.

    Attributes:
        mean: ``(features,)`` mean of the training features (before projection).
        components: ``(features, kept)`` projection onto the principal components, or ``(0, 0)``
            when all features are kept.
        class_means: ``(classes, kept)`` per-class means of the projected features.
        precision: ``(kept, kept)`` inverse of the shared covariance.
        threshold: scores above it are unusual.
    """

    mean: np.ndarray
    components: np.ndarray
    class_means: np.ndarray
    precision: np.ndarray
    threshold: float

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance ``(N,)`` of each feature row to its nearest class mean."""
        x = self._project(features)  # (N, kept)
        diff = x[:, None, :] - self.class_means[None, :, :]  # (N, classes, kept)
        distances = np.einsum("nck,kj,ncj->nc", diff, self.precision, diff)
        return distances.min(axis=1)

    def _project(self, features: np.ndarray) -> np.ndarray:
        centered = np.asarray(features, np.float64) - self.mean
        return centered @ self.components if self.components.size else centered


def features(model, images: np.ndarray) -> np.ndarray:
    """Penultimate-layer features ``(N, features)`` of prepared images (the ``logits`` layer's input).

    Raises:
        UserError: the model has no ``logits`` layer (not one of this project's classifiers).
    """
    extractor = _extractors.get(model)
    if extractor is None:
        try:
            logits = model.get_layer("logits")
        except ValueError as err:
            raise UserError("this model has no 'logits' layer, so its images cannot be checked for novelty") from err
        extractor = keras.Model(model.input, logits.input)
        _extractors[model] = extractor
    images = np.asarray(images)
    # Fixed batch shapes (the last batch padded), so each model compiles at most twice.
    size = SMALL_BATCH if len(images) <= SMALL_BATCH else EVAL_BATCH_SIZE
    out = []
    with single_device():
        for start in range(0, len(images), size):
            batch = images[start:start + size]
            padded = np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), batch.dtype)])
            out.append(np.asarray(extractor.predict_on_batch(padded), np.float64)[: len(batch)])
    return np.concatenate(out).reshape(len(images), -1)


def fit(model, data, *, seed: int = 0) -> Novelty:
    """Fit the class-conditional Gaussians on ``data.x_train`` and the threshold on held-out test images.

    Args:
        model: a classifier taking ``data``'s images as they are.
        data: a labelled ``core.data.datasets.Dataset`` (the run's dataset, at the model's image size).
        seed: picks the training subset when there are more than ``MAX_FIT_IMAGES``.

    Raises:
        UserError: unlabelled data.
    """


    if data.y_train is None:
        raise UserError("the novelty check needs a labelled training set")
    x, y = data.x_train, np.asarray(data.y_train)
    if len(x) > MAX_FIT_IMAGES:
        pick = np.sort(np.random.default_rng(seed).choice(len(x), MAX_FIT_IMAGES, replace=False))
        x, y = x[pick], y[pick]
    train = features(model, x)
    mean = train.mean(axis=0)
    centered = train - mean
    components = np.zeros((0, 0))
    if centered.shape[1] > MAX_FEATURES:
        # Principal directions of the training features (right singular vectors), widest first.
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        components = vt[:MAX_FEATURES].T
        centered = centered @ components
    classes = np.unique(y)
    class_means = np.stack([centered[y == c].mean(axis=0) for c in classes])
    within = centered - class_means[np.searchsorted(classes, y)]  # (N, kept): around each class mean
    precision = LedoitWolf(assume_centered=True).fit(within).precision_
    # Means in the projected, centered space; scores() centers and projects the same way.
    novelty = Novelty(mean, components, class_means, precision, threshold=np.inf)
    held_out = novelty.scores(features(model, data.x_test[CALIBRATION]))
    return dataclasses.replace(novelty, threshold=float(np.percentile(held_out, PERCENTILE)))


def cache_path(checkpoint: str | Path) -> Path:
    """Where the fitted check of a checkpoint is kept: ``epoch_NNN.novelty.npz`` beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.novelty.npz")


def for_checkpoint(model, checkpoint: str | Path, data, *, save: bool = True) -> Novelty:
    """The check of ``checkpoint`` (whose model is ``model``): read from its cache file, or
    fitted (:func:`fit`) and cached when the file is missing or older than the checkpoint.

    Args:
        save: write the cache file when fitting (a read-only demo does not write to the store).
    """
    checkpoint = Path(checkpoint)
    path = cache_path(checkpoint)
    if path.exists() and path.stat().st_mtime >= checkpoint.stat().st_mtime:
        try:
            with np.load(path) as saved:
                if int(saved["version"]) == CACHE_VERSION:
                    arrays = (np.asarray(saved[name], np.float64) for name in _ARRAYS)
                    return Novelty(*arrays, threshold=float(saved["threshold"]))
        except (OSError, ValueError, KeyError):
            pass  # unreadable: fit again
    novelty = fit(model, data)
    if save:
        _save(path, novelty)
    return novelty


def _save(path: Path, novelty: Novelty) -> None:
    buffer = io.BytesIO()
    arrays = {name: np.asarray(getattr(novelty, name), np.float32) for name in _ARRAYS}
    np.savez(buffer, version=CACHE_VERSION, threshold=novelty.threshold, **arrays)
    with contextlib.suppress(OSError):  # a read-only store (a public demo): the check works uncached
        atomic_write_bytes(path, buffer.getvalue())


def for_run(store, run_id: str, epoch: int | None = None, model=None) -> Novelty:
    """The check of a classifier run's checkpoint (default: the latest), fitted on the run's dataset.

    Raises:
        UserError: not a classifier run, no checkpoint, the dataset is not on this machine.
    """

    run = store.get_run(run_id)
    path = checkpoint_path(store, run_id, epoch)
    model = model if model is not None else load_run_model(store, run_id, epoch)
    data = load_dataset(run["dataset"], image_size=run["config"].get("image_size"))
    return for_checkpoint(model, path, data)


def assess(model, novelty: Novelty, originals, prepared: np.ndarray) -> list[dict[str, Any]]:
    """Whether each image is unlike the training images.

    Args:
        model: the classifier ``novelty`` was fitted for.
        novelty: its check (:func:`for_checkpoint`).
        originals: the images as given, one per prepared image (any size; for the flatness check).
        prepared: the same images as the model sees them (``core.training.classifier.prepare_images``).

    Returns:
        One dict per image: ``unusual`` (bool), ``ood_score`` (squared Mahalanobis distance),
        ``ood_threshold``, ``ood_method`` and ``unusual_reason`` (a sentence, or None).
    """
    scores = novelty.scores(features(model, prepared))
    results = []
    for original, score in zip(originals, scores, strict=True):
        flat = float(np.asarray(original, np.float64).std()) < FLAT_STD
        far = bool(score > novelty.threshold)
        reason = None
        if flat:
            reason = "a flat image (one colour), with nothing to classify"
        elif far:
            reason = (
                f"unlike the training images (Mahalanobis score {score:.0f}, above the {novelty.threshold:.0f} "
                f"that {100 - PERCENTILE:.0f} % of held-out test images exceed)"
            )
        results.append({
            "unusual": flat or far,
            "ood_score": float(score),
            "ood_threshold": novelty.threshold,
            "ood_method": METHOD,
            "unusual_reason": reason,
        })
    return results
