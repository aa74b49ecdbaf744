"""GAN quality metrics: fid_cls, kid_cls, precision/recall, label_accuracy, fid_inception.

``fid_cls`` and ``kid_cls`` are the Frechet and kernel (KID) distances measured in the feature
space of a *reference classifier trained on the same dataset* (its penultimate layer), not in
Inception-v3's. They are cheap enough to compute every epoch on CPU and meaningful for 8x8 or
28x28 images that Inception was never trained on, but they are NOT comparable to published FID
or KID numbers, nor across reference classifiers. ``fid_inception`` is the classic Inception FID
(Keras' InceptionV3 ImageNet weights), available only when those weights can be had.

The distance functions are pure functions of feature arrays ``(num_images, feature_dim)``;
:func:`evaluate_generator` ties them to a generator, a dataset and a reference classifier.
This module never trains: it loads a reference classifier run that exists, which the runs layer
makes sure of before a GAN is scored (``core.runs.training.reference_run``).
"""

from __future__ import annotations

import os
import socket
import weakref
from collections.abc import Callable
from typing import Any

import jax
import keras
import numpy as np
import scipy.linalg

from core.common.errors import ModelFileError, UserError
from core.data.datasets import dataset_info
from core.store import checkpoints
from core.store.store import RunStore

# Pairwise-distance blocks in precision_recall hold at most this many float64 entries (32 MB).
MAX_BLOCK_ENTRIES = 1 << 22
# The download of InceptionV3 weights gives up after this many seconds without data.
DOWNLOAD_TIMEOUT_S = 20.0
# What keras.applications.InceptionV3(include_top=False, weights="imagenet") fetches.
INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + INCEPTION_WEIGHTS_FILE
)
INCEPTION_WEIGHTS_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"

SampleFn = Callable[[int, int, np.ndarray | None], np.ndarray]


# ---- distances between feature sets -----------------------------------------------------------


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    ``||mu_a - mu_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^(1/2))``. Only the trace of the
    matrix square root is needed, and it is computed exactly from symmetric problems, so
    singular covariances (dead ReLU units, fewer images than dimensions) need no ``eps * I``
    and give no complex values:

    - ``dim <= n``: the eigenvalues of ``C_a C_b`` are those of the symmetric PSD matrix
      ``C_a^(1/2) C_b C_a^(1/2)`` (``eigh``); the trace is the sum of their square roots.
      ``scipy.linalg.sqrtm(C_a C_b)`` gives the same value (see the tests) but is 3x slower at
      dim 512 and needs a fallback when the product is singular.
    - ``n < dim`` (e.g. Inception's 2048 features of 1000 images): the same eigenvalues are the
      squared singular values of the centred cross-Gram matrix ``A_c B_c^T / sqrt((n_a-1)(n_b-1))``,
      an ``n x n`` problem.

    Args:
        feats_a: features ``(n_a, dim)``, at least 2 rows.
        feats_b: features ``(n_b, dim)``, at least 2 rows.

    Returns:
        The distance (>= 0; tiny negative rounding errors are clipped to 0).

    Raises:
        UserError: not two 2-D arrays with the same number of columns and >= 2 rows each.
    """
    a, b = _check_features(feats_a, feats_b, min_rows=2)
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    centred_a, centred_b = a - mean_a, b - mean_b  # (n, dim)
    scale_a, scale_b = len(a) - 1, len(b) - 1
    trace_a = float(np.sum(centred_a**2)) / scale_a  # tr(C_a)
    trace_b = float(np.sum(centred_b**2)) / scale_b
    if min(len(a), len(b)) < a.shape[1]:
        cross_gram = centred_a @ centred_b.T  # (n_a, n_b)
        trace_sqrt = float(np.linalg.svd(cross_gram, compute_uv=False).sum()) / np.sqrt(scale_a * scale_b)
    else:
        cov_a = centred_a.T @ centred_a / scale_a  # (dim, dim)
        cov_b = centred_b.T @ centred_b / scale_b
        values, vectors = scipy.linalg.eigh(cov_a)
        root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T  # C_a^(1/2)
        eigenvalues = scipy.linalg.eigvalsh(root_a @ cov_b @ root_a)
        trace_sqrt = float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))
    distance = float(np.sum((mean_a - mean_b) ** 2)) + trace_a + trace_b - 2.0 * trace_sqrt
    return max(distance, 0.0)


def kernel_distance(
    feats_a: np.ndarray, feats_b: np.ndarray, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> float:
    """Kernel distance (KID): unbiased MMD^2 with the kernel ``k(x, y) = (x.y / dim + 1)^3``.

    Averaged over ``num_subsets`` random subsets of ``min(subset_size, n_a, n_b)`` rows of each
    set (Binkowski et al. 2018). Unbiased, so it is near 0 for two samples of the same
    distribution and can then be slightly negative. When the subsets are the whole of both
    sets, every subset gives the same value and it is computed once. When the sets are not
    much larger than a subset, the kernel is computed once for all pairs and each subset's sums
    are taken from it (same value, far less work than recomputing overlapping subsets).

    Args:
        feats_a: features ``(n_a, dim)``, at least 2 rows.
        feats_b: features ``(n_b, dim)``, at least 2 rows.
        num_subsets: subsets to average over.
        subset_size: rows per subset.
        seed: seed of the subset draws.

    Returns:
        The mean MMD^2 estimate over the subsets.

    Raises:
        UserError: bad feature arrays, num_subsets < 1 or subset_size < 2.
    """
    a, b = _check_features(feats_a, feats_b, min_rows=2)
    if num_subsets < 1 or subset_size < 2:
        raise UserError(
            f"KID needs num_subsets >= 1 and subset_size >= 2, got {num_subsets} and {subset_size}"
        )
    m = min(subset_size, len(a), len(b))
    if m == len(a) == len(b):
        num_subsets = 1
    rng = np.random.default_rng(seed)
    subsets_a = [rng.choice(len(a), m, replace=False) for _ in range(num_subsets)]
    subsets_b = [rng.choice(len(b), m, replace=False) for _ in range(num_subsets)]
    # Multiply-adds of the two ways: all pairs once (kernel + one product per subset column),
    # or each subset's pairs on their own.
    all_pairs_cost = (len(a) + len(b)) ** 2 * (a.shape[1] + num_subsets)
    per_subset_cost = num_subsets * (2 * m) ** 2 * a.shape[1]
    if all_pairs_cost <= per_subset_cost:
        estimates = _mmd_estimates(a, b, _membership(subsets_a, len(a)), _membership(subsets_b, len(b)), m)
    else:
        ones = np.ones((m, 1))
        estimates = np.concatenate(
            [
                _mmd_estimates(a[rows_a], b[rows_b], ones, ones, m)
                for rows_a, rows_b in zip(subsets_a, subsets_b, strict=True)
            ]
        )
    return float(np.mean(estimates))


def _membership(subsets: list[np.ndarray], num_rows: int) -> np.ndarray:
    """(num_rows, num_subsets) matrix: 1 where a row belongs to a subset."""
    member = np.zeros((num_rows, len(subsets)))
    for column, rows in enumerate(subsets):
        member[rows, column] = 1.0
    return member


def _mmd_estimates(
    x: np.ndarray, y: np.ndarray, member_x: np.ndarray, member_y: np.ndarray, m: int
) -> np.ndarray:
    """Unbiased MMD^2 of each subset (a column of the membership matrices, m rows each)."""
    dim = x.shape[1]
    diag_x = (np.sum(x**2, axis=1) / dim + 1.0) ** 3 @ member_x  # (subsets,) sum of k(x_i, x_i)
    diag_y = (np.sum(y**2, axis=1) / dim + 1.0) ** 3 @ member_y
    within = _kernel_sums(x, x, member_x, member_x) - diag_x + _kernel_sums(y, y, member_y, member_y) - diag_y
    return within / (m * (m - 1)) - 2.0 * _kernel_sums(x, y, member_x, member_y) / (m * m)


def _kernel_sums(x: np.ndarray, y: np.ndarray, member_x: np.ndarray, member_y: np.ndarray) -> np.ndarray:
    """For each subset s, the sum of k(x_i, y_j) over i in s (of x) and j in s (of y)."""
    dim = x.shape[1]
    sums = np.zeros(member_x.shape[1])
    for rows in _row_blocks(len(x), len(y)):
        kernel = x[rows] @ y.T / dim + 1.0  # (rows, n_y)
        kernel = kernel * kernel * kernel  # 3x faster than ** 3
        sums += np.sum(member_x[rows] * (kernel @ member_y), axis=0)
    return sums


def precision_recall(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points, each ball reaching the point's
    k-th nearest neighbour in the same set. Precision is the fraction of fake points inside the
    real manifold (are samples realistic?); recall the fraction of real points inside the fake
    manifold (is the data's variety covered?). Distances are computed in blocks of rows, so
    memory stays bounded (:data:`MAX_BLOCK_ENTRIES`) whatever the number of points.

    Args:
        real_feats: features ``(n_real, dim)``, more than ``k`` rows.
        fake_feats: features ``(n_fake, dim)``, more than ``k`` rows.
        k: neighbourhood size (3 in the paper).

    Returns:
        ``(precision, recall)``, each in [0, 1].

    Raises:
        UserError: bad feature arrays or k.
    """
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    real, fake = _check_features(real_feats, fake_feats, min_rows=k + 1)
    real_radii = _kth_neighbour_sq_distances(real, k)
    fake_radii = _kth_neighbour_sq_distances(fake, k)
    precision = _fraction_covered(fake, real, real_radii)
    recall = _fraction_covered(real, fake, fake_radii)
    return precision, recall


def _row_blocks(num_rows: int, num_cols: int):
    rows = max(1, MAX_BLOCK_ENTRIES // max(num_cols, 1))
    for start in range(0, num_rows, rows):
        yield slice(start, min(start + rows, num_rows))


def _sq_distances(x: np.ndarray, y: np.ndarray, y_sq_norms: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(x), len(y)), clipped at 0 against rounding."""
    d = np.sum(x**2, axis=1)[:, None] + y_sq_norms[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d, 0.0)


def _kth_neighbour_sq_distances(points: np.ndarray, k: int) -> np.ndarray:
    """Squared distance of each point to its k-th nearest other point."""
    sq_norms = np.sum(points**2, axis=1)
    radii = np.empty(len(points))
    for rows in _row_blocks(len(points), len(points)):
        d = _sq_distances(points[rows], points, sq_norms)
        # The point itself is at distance 0, so its k-th neighbour is the (k+1)-th smallest.
        radii[rows] = np.partition(d, k, axis=1)[:, k]
    return radii


def _fraction_covered(queries: np.ndarray, centres: np.ndarray, centre_sq_radii: np.ndarray) -> float:
    """Fraction of queries inside at least one ball (centre, radius)."""
    sq_norms = np.sum(centres**2, axis=1)
    inside = 0
    for rows in _row_blocks(len(queries), len(centres)):
        d = _sq_distances(queries[rows], centres, sq_norms)
        inside += int(np.any(d <= centre_sq_radii[None, :], axis=1).sum())
    return inside / len(queries)


def _check_features(feats_a, feats_b, *, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise UserError(
            f"expected two feature arrays (N, D) with the same D, got shapes {a.shape} and {b.shape}"
        )
    if min(len(a), len(b)) < min_rows:
        raise UserError(f"need at least {min_rows} feature rows in each set, got {len(a)} and {len(b)}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise UserError("features contain NaN or infinite values: the images or the model are broken")
    return a, b


# ---- features from a classifier ----------------------------------------------------------------


class _BatchedModel:
    """A model applied in fixed-size batches by one jitted function (one compile per input shape).

    The last, partial batch is padded to the batch size, so the shape, and thus the compiled
    program, never changes. ``preprocess`` (e.g. resizing) runs inside the jitted function on
    float32 images; without it, images must fit the model's input shape.
    """

    def __init__(self, model: keras.Model, batch_size: int, preprocess=None):
        self.model = model
        self.batch_size = batch_size
        self.check_shape = preprocess is None

        def apply(trainable, non_trainable, images):
            x = keras.ops.cast(images, "float32")
            if preprocess is not None:
                x = preprocess(x)
            outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return jax.tree_util.tree_map(lambda t: keras.ops.cast(t, "float32"), outputs)

        self._apply = jax.jit(apply)

    def __call__(self, images: np.ndarray):
        images = np.asarray(images)
        if images.ndim != 4 or len(images) == 0:
            raise UserError(f"expected a non-empty (N, H, W, C) array of images, got shape {images.shape}")
        expected = tuple(self.model.input_shape[1:])
        if self.check_shape and any(
            want is not None and want != got for want, got in zip(expected, images.shape[1:], strict=True)
        ):
            raise UserError(f"images of shape {images.shape[1:]} do not fit a model expecting {expected}")
        trainable = [v.value for v in self.model.trainable_variables]
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        batch = min(self.batch_size, len(images))
        chunks = []
        for start in range(0, len(images), batch):
            part = images[start : start + batch]
            count = len(part)
            if count < batch:
                part = np.concatenate([part, np.repeat(part[-1:], batch - count, axis=0)])
            outputs = self._apply(trainable, non_trainable, part)
            chunks.append(jax.tree_util.tree_map(lambda t, count=count: np.asarray(t)[:count], outputs))
        return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *chunks)


# One compiled (features, outputs) function per classifier, reused across calls (e.g. epochs).
_CLASSIFIER_APPLY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _features_and_outputs(classifier: keras.Model, batch_size: int = 256) -> _BatchedModel:
    cached = _CLASSIFIER_APPLY.get(classifier)
    if cached is not None and cached.batch_size == batch_size:
        return cached
    dense = next(
        (layer for layer in reversed(classifier.layers) if isinstance(layer, keras.layers.Dense)), None
    )
    if dense is None:
        raise ModelFileError(
            f"classifier {classifier.name!r} has no Dense layer: cannot find its feature layer"
        )
    try:
        both = keras.Model(classifier.inputs, [dense.input, classifier.outputs[0]])
    except (AttributeError, ValueError, TypeError) as err:
        raise ModelFileError(
            f"cannot take features from {classifier.name!r}: it must be a built functional or Sequential "
            f"model whose last Dense layer is called once ({err})"
        ) from err
    applied = _BatchedModel(both, batch_size)
    _CLASSIFIER_APPLY[classifier] = applied
    return applied


def feature_extractor(classifier: keras.Model, batch_size: int = 256) -> Callable[[np.ndarray], np.ndarray]:
    """Return a function mapping images to the classifier's penultimate features.

    The features are the input of the classifier's last Dense layer, flattened to
    ``(N, D)`` float32. Images are raw pixels (uint8 0..255), as the classifier takes them.

    Args:
        classifier: a built functional or Sequential Keras classifier.
        batch_size: images per jitted call.

    Returns:
        ``extract(images (N, H, W, C)) -> features (N, D)``.

    Raises:
        ModelFileError: the model has no usable Dense layer.
    """
    applied = _features_and_outputs(classifier, batch_size)

    def extract(images: np.ndarray) -> np.ndarray:
        features, _ = applied(images)
        return features.reshape(len(features), -1)

    return extract


# ---- reference classifier ----------------------------------------------------------------------


def find_reference_run(store: RunStore, dataset_spec: str, *, image_size: int | None = None) -> dict[str, Any] | None:
    """The run record of a data set's reference classifier, or None when the store has none.

    The completed classifier run on ``dataset_spec`` (and ``image_size``) with the highest
    ``test_accuracy``. Scores are comparable only between generators scored by the same run:
    training a better classifier changes the reference.

    Args:
        store: the run store.
        dataset_spec: the data set spec, as in ``GANConfig.dataset``.
        image_size: the image size the GAN trains at (None = native).

    Raises:
        DatasetError: unknown data set spec.
    """
    name = dataset_info(dataset_spec).name  # canonical spec; raises DatasetError for a bad one
    runs = [
        run
        for run in store.list_runs(status="completed", family="classifier")
        if run["dataset"] in {dataset_spec, name}
        and run["config"].get("image_size") == image_size
        and isinstance((run.get("metrics") or {}).get("test_accuracy"), (int, float))
    ]
    return max(runs, key=lambda run: run["metrics"]["test_accuracy"], default=None)


def reference_run(dataset_spec: str, store: RunStore | None = None, *, image_size: int | None = None) -> dict[str, Any]:
    """Like :func:`find_reference_run`, for a data set that must have a reference classifier.

    Args:
        dataset_spec: the data set spec.
        store: the run store (default: ``$CONVGAN_HOME``).
        image_size: the image size the GAN trains at (None = native).

    Returns:
        The classifier run's record.

    Raises:
        UserError: unknown data set, or no completed classifier run on it to score with.
    """
    store = store if store is not None else RunStore()
    run = find_reference_run(store, dataset_spec, image_size=image_size)
    if run is None:
        at_size, size_flag = ("", "") if image_size is None else (f" at {image_size} pixels", f" --image-size {image_size}")
        raise UserError(
            f"no reference classifier for {dataset_spec}{at_size}: GAN "
            "metrics need a completed classifier run on the same data; train one with "
            f"`python -m core train --model convnet --dataset {dataset_spec}{size_flag}`"
        )
    return run


def reference_classifier(dataset_spec: str, store: RunStore | None = None, *,
                         image_size: int | None = None) -> keras.Model:
    """The classifier whose feature space defines ``fid_cls``/``kid_cls`` for a data set.

    Loads the checkpoint of :func:`reference_run` (same arguments); never trains one.

    Returns:
        The trained classifier (takes raw 0..255 pixels).

    Raises:
        UserError: unknown data set, or no reference classifier run for it.
    """
    store = store if store is not None else RunStore()
    return load_classifier(store, reference_run(dataset_spec, store, image_size=image_size)["run_id"])


# Loaded reference classifiers by checkpoint file and modification time: a GAN evaluated every
# epoch loads (and compiles for) its reference classifier once.
_LOADED: dict[tuple[str, float], keras.Model] = {}


def load_classifier(store, run_id: str) -> keras.Model:
    """The latest checkpoint of classifier run ``run_id``, loaded once per checkpoint file."""
    path = checkpoints.checkpoint_path(store, run_id)
    key = (str(path), os.path.getmtime(path))
    if key not in _LOADED:
        _LOADED[key] = checkpoints.load_model(path)
    return _LOADED[key]


# ---- evaluating a generator --------------------------------------------------------------------


def evaluate_generator(
    sample_fn: SampleFn,
    data,
    *,
    classifier: keras.Model | None = None,
    num_samples: int = 1000,
    seed: int = 0,
    conditional: bool = False,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Score a generator against real images in a reference classifier's feature space.

    Args:
        sample_fn: ``sample_fn(n, seed, labels) -> uint8 images (n, H, W, C)``; ``labels`` is
            an int64 array ``(n,)`` when ``conditional``, else None.
        data: a ``core.data.datasets.Dataset``; real images come from its test split, or from the
            train split when the test split has fewer than ``num_samples`` images.
        classifier: the reference classifier; default :func:`reference_classifier` of
            ``data``'s spec and image size, found in ``$CONVGAN_HOME`` (never trained here).
        num_samples: generated (and real) images to compare; capped to the real images there are.
        seed: seeds the real subset, the generator call and the KID subsets.
        conditional: also measure ``label_accuracy`` on balanced labels.
        num_classes: classes for the labels (default ``data.num_classes``).

    Returns:
        ``fid_cls``, ``kid_cls`` (classifier-feature FID/KID, not Inception's), ``precision``,
        ``recall``, ``label_accuracy`` (conditional only), ``num_samples`` and ``notes``.

    Raises:
        UserError: bad arguments, no reference classifier run (when ``classifier`` is None), or
            ``sample_fn`` returned the wrong shape or dtype.
    """
    if num_samples < 2:
        raise UserError(f"num_samples must be at least 2, got {num_samples}")
    notes: list[str] = []
    real_pool, split = _real_pool(data, num_samples)
    if len(real_pool) < num_samples:
        notes.append(
            f"num_samples capped from {num_samples} to {len(real_pool)}: the {split} split has "
            f"only {len(real_pool)} images"
        )
        num_samples = len(real_pool)
    elif split == "train":
        notes.append("real images drawn from the train split (the test split is smaller than num_samples)")
    if classifier is None:
        classifier = reference_classifier(data.info.name, image_size=_image_size_of(data))
    rng = np.random.default_rng(seed)
    real = real_pool[np.sort(rng.permutation(len(real_pool))[:num_samples])]

    labels = None
    if conditional:
        num_classes = num_classes or getattr(data, "num_classes", None)
        if not num_classes:
            raise UserError("conditional evaluation needs num_classes (the dataset has no labels)")
        labels = rng.permutation(np.arange(num_samples) % num_classes).astype(np.int64)
    fake = np.asarray(sample_fn(num_samples, seed, labels))
    if fake.dtype != np.uint8 or fake.shape != real.shape:
        raise UserError(
            f"sample_fn returned {fake.dtype} images of shape {fake.shape}; expected uint8 {real.shape} "
            "(convert generator output with core.common.images.to_uint8)"
        )

    applied = _features_and_outputs(classifier)
    real_features, _ = applied(real)
    fake_features, fake_outputs = applied(fake)
    real_features = real_features.reshape(num_samples, -1)
    fake_features = fake_features.reshape(num_samples, -1)
    precision, recall = precision_recall(real_features, fake_features)
    results: dict[str, Any] = {
        "fid_cls": frechet_distance(real_features, fake_features),
        "kid_cls": kernel_distance(real_features, fake_features, seed=seed),
        "precision": precision,
        "recall": recall,
    }
    if conditional:
        results["label_accuracy"] = float(np.mean(np.argmax(fake_outputs, axis=-1) == labels))
    results["num_samples"] = num_samples
    results["notes"] = notes
    return results


def _image_size_of(data) -> int | None:
    """The ``image_size`` a dataset was loaded with (None: its native size)."""
    native = dataset_info(data.info.name).image_shape
    return None if tuple(data.image_shape) == tuple(native) else int(data.image_shape[0])


def _real_pool(data, num_samples: int) -> tuple[np.ndarray, str]:
    test = getattr(data, "x_test", None)
    if test is not None and len(test) >= num_samples:
        return test, "test"
    if test is not None and len(test) >= len(data.x_train):
        return test, "test"
    return data.x_train, "train"


# ---- Inception FID -----------------------------------------------------------------------------


_INCEPTION: dict[tuple[Any, int, int], _BatchedModel] = {}


def fid_inception(
    real_uint8: np.ndarray,
    fake_uint8: np.ndarray,
    weights: str | None = "imagenet",
    *,
    image_size: int = 299,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Classic Inception FID on InceptionV3's 2048 pooled features, when its weights can be had.

    Images are resized (bilinear) to ``image_size`` squared, grayscale is repeated to RGB and
    ``keras.applications.inception_v3.preprocess_input`` applied. Keras' ImageNet weights are
    not the TF graph of the original FID code, so values are not comparable with published
    FIDs either. The weights come from the Keras cache (``~/.keras/models``) or are
    downloaded; without them (no network) the metric is skipped, never hangs. Heavy on CPU
    (~5 images/s at 299x299 on 2 busy cores): use a GPU, or fewer images.

    Args:
        real_uint8: real images ``(N, H, W, C)``, uint8, C in {1, 3}.
        fake_uint8: generated images, same pixel size and channels.
        weights: ``"imagenet"``, a weights file, or None (random weights: for tests only).
        image_size: side the images are resized to (299 as trained; at least 75).
        batch_size: images per forward pass.

    Returns:
        ``{"fid_inception": float or None, "notes": [...]}``.

    Raises:
        UserError: bad images or image_size.
    """
    if image_size < 75:
        raise UserError(f"InceptionV3 needs images of at least 75x75 pixels, got image_size={image_size}")
    real, fake = np.asarray(real_uint8), np.asarray(fake_uint8)
    if real.ndim != 4 or fake.ndim != 4 or real.shape[1:] != fake.shape[1:] or real.shape[-1] not in (1, 3):
        raise UserError(
            f"expected real and fake images (N, H, W, 1 or 3) of one size, got {real.shape} and {fake.shape}"
        )
    try:
        applied = _inception(weights, image_size, batch_size)
    except Exception as err:  # noqa: BLE001 - no network, HTTP error, corrupt cache: skip the metric
        cache = os.path.join(os.environ.get("KERAS_HOME") or "~/.keras", "models")
        return {
            "fid_inception": None,
            "notes": [
                "fid_inception skipped: InceptionV3 ImageNet weights not in the Keras cache and no network "
                f"(put {INCEPTION_WEIGHTS_FILE} in {cache}) [{type(err).__name__}: {str(err)[:200]}]"
            ],
        }
    return {"fid_inception": frechet_distance(applied(real), applied(fake)), "notes": []}


def _inception(weights, image_size: int, batch_size: int) -> _BatchedModel:
    key = (weights, image_size, batch_size)
    if key not in _INCEPTION:
        if weights == "imagenet":
            # Fetch the file before building: building InceptionV3 takes seconds, wasted if the
            # weights cannot be had.
            weights = _fetch_inception_weights()
        model = keras.applications.InceptionV3(
            include_top=False, pooling="avg", weights=weights, input_shape=(image_size, image_size, 3)
        )

        def preprocess(x):  # (batch, height, width, 1 or 3) float32 in 0..255
            if x.shape[-1] == 1:
                x = keras.ops.repeat(x, 3, axis=-1)
            x = keras.ops.image.resize(x, (image_size, image_size), interpolation="bilinear")
            return keras.applications.inception_v3.preprocess_input(x)

        _INCEPTION[key] = _BatchedModel(model, batch_size, preprocess)
    return _INCEPTION[key]


def _fetch_inception_weights() -> str:
    """Path of the ImageNet weights in the Keras cache, downloaded there if missing."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # urlretrieve has no timeout of its own
    try:
        return keras.utils.get_file(
            INCEPTION_WEIGHTS_FILE,
            INCEPTION_WEIGHTS_URL,
            cache_subdir="models",
            file_hash=INCEPTION_WEIGHTS_MD5,
        )
    finally:
        socket.setdefaulttimeout(previous)
