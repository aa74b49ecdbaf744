"""GAN quality metrics: closed-form checks of the distances, and fid_cls/label_accuracy with a
small classifier trained here on sklearn's 8x8 digits."""

import socket
import types

import keras  # conftest.py has imported core, so this is Keras on JAX
import numpy as np
import pytest
import scipy.linalg

from core.common.errors import ModelFileError, UserError
from core.evaluation import gan_metrics
from tests.stored_runs import completed_classifier_run


def _clusters(rng, centres, per_cluster, spread=0.1):
    """Points around each centre: (len(centres) * per_cluster, dim)."""
    return np.concatenate([c + spread * rng.normal(size=(per_cluster, len(c))) for c in centres])


# ---- Frechet distance ------------------------------------------------------------------------


def test_frechet_distance_of_identical_samples_is_zero():
    feats = np.random.default_rng(0).normal(size=(500, 16))
    assert gan_metrics.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_mean_shift_is_squared_shift():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(800, 12)) @ rng.normal(size=(12, 12))  # correlated covariance
    shift = rng.normal(size=12)
    # Same covariance exactly, so FD = ||shift||^2 exactly.
    assert gan_metrics.frechet_distance(feats, feats + shift) == pytest.approx(np.sum(shift**2), rel=1e-6)


def test_frechet_distance_of_scaled_gaussians_matches_closed_form():
    # N(0, s_a^2 I) vs N(0, s_b^2 I) in d dims: FD = d (s_a - s_b)^2.
    rng = np.random.default_rng(2)
    a = 1.0 * rng.normal(size=(20000, 4))
    b = 3.0 * rng.normal(size=(20000, 4))
    assert gan_metrics.frechet_distance(a, b) == pytest.approx(4 * (3.0 - 1.0) ** 2, rel=0.05)


def test_frechet_distance_with_singular_covariances():
    rng = np.random.default_rng(3)
    dead_unit = np.zeros((300, 1))  # a dead ReLU unit: zero variance, singular covariance
    a = np.hstack([rng.normal(size=(300, 7)), dead_unit])
    b = np.hstack([rng.normal(size=(300, 7)) + 1.0, dead_unit])
    distance = gan_metrics.frechet_distance(a, b)
    assert np.isfinite(distance)
    assert distance == pytest.approx(7.0, rel=0.2)  # shift of 1 in 7 dims, same covariance
    # Fewer images than dimensions: the exact cross-Gram path.
    few = rng.normal(size=(10, 64))
    assert gan_metrics.frechet_distance(few, few) == pytest.approx(0.0, abs=1e-8)
    assert gan_metrics.frechet_distance(few, few + 2.0) == pytest.approx(64 * 4.0, rel=1e-6)


def test_frechet_distance_matches_the_sqrtm_formula():
    rng = np.random.default_rng(12)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 1.0
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (
        np.sum((a.mean(0) - b.mean(0)) ** 2)
        + np.trace(cov_a + cov_b)
        - 2 * np.real(np.trace(scipy.linalg.sqrtm(cov_a @ cov_b)))
    )
    assert gan_metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_cross_gram_path_matches_the_covariance_path():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(30, 20)), 2.0 * rng.normal(size=(25, 20)) + 0.5
    via_covariances = gan_metrics.frechet_distance(a, b)  # n >= dim
    # Zero columns change nothing but make dim > n: the cross-Gram path.
    wide_a, wide_b = np.hstack([a, np.zeros((30, 20))]), np.hstack([b, np.zeros((25, 20))])
    assert gan_metrics.frechet_distance(wide_a, wide_b) == pytest.approx(via_covariances, rel=1e-6)


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(UserError, match="same D"):
        gan_metrics.frechet_distance(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(UserError, match="at least 2"):
        gan_metrics.frechet_distance(np.zeros((1, 3)), np.zeros((10, 3)))


# ---- KID ---------------------------------------------------------------------------------------


def test_kernel_distance_is_unbiased_and_detects_shift():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    same = gan_metrics.kernel_distance(a, b, num_subsets=20, subset_size=500)
    shifted = gan_metrics.kernel_distance(a, b + 0.5, num_subsets=20, subset_size=500)
    assert abs(same) < 0.01
    assert shifted > 0.1
    assert abs(same) < 0.02 * shifted
    # Unbiased: over independent pairs the estimate averages to ~0 (a biased MMD^2 would stay > 0).
    estimates = [
        gan_metrics.kernel_distance(rng.normal(size=(200, 16)), rng.normal(size=(200, 16))) for _ in range(8)
    ]
    assert min(estimates) < 0 < max(estimates)
    assert abs(np.mean(estimates)) < 3 * np.std(estimates)


def _naive_kid(a, b, num_subsets, m, seed):
    """KID written out subset by subset, drawing subsets as kernel_distance does."""
    rng = np.random.default_rng(seed)
    subsets_a = [rng.choice(len(a), m, replace=False) for _ in range(num_subsets)]
    subsets_b = [rng.choice(len(b), m, replace=False) for _ in range(num_subsets)]
    estimates = []
    for rows_a, rows_b in zip(subsets_a, subsets_b, strict=True):
        x, y = a[rows_a], b[rows_b]
        k_xx, k_yy, k_xy = ((u @ v.T / a.shape[1] + 1) ** 3 for u, v in ((x, x), (y, y), (x, y)))
        off_diagonal = k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)
        estimates.append(off_diagonal / (m * (m - 1)) - 2 * k_xy.mean())
    return np.mean(estimates)


@pytest.mark.parametrize("sizes", [(120, 130), (600, 700)])  # all pairs at once / subset by subset
def test_kernel_distance_matches_the_subset_by_subset_definition(sizes):
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(sizes[0], 8)), rng.normal(size=(sizes[1], 8)) + 0.3
    expected = _naive_kid(a, b, num_subsets=10, m=100, seed=5)
    assert gan_metrics.kernel_distance(a, b, num_subsets=10, subset_size=100, seed=5) == pytest.approx(
        expected, rel=1e-9
    )


def test_kernel_distance_is_deterministic_given_seed():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(400, 8)) + 0.2
    first = gan_metrics.kernel_distance(a, b, num_subsets=10, subset_size=100, seed=3)
    assert first == gan_metrics.kernel_distance(a, b, num_subsets=10, subset_size=100, seed=3)
    assert first != gan_metrics.kernel_distance(a, b, num_subsets=10, subset_size=100, seed=4)


# ---- precision / recall ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_centres():
    return 10.0 * np.random.default_rng(7).normal(size=(10, 4))  # 10 well-separated modes in 4-D


def test_precision_recall_of_real_against_itself_is_one(cluster_centres):
    real = _clusters(np.random.default_rng(8), cluster_centres, 50)
    assert gan_metrics.precision_recall(real, real) == (1.0, 1.0)


def test_precision_recall_of_far_noise_is_zero(cluster_centres):
    rng = np.random.default_rng(9)
    real = _clusters(rng, cluster_centres, 50)
    noise = 1000.0 + rng.normal(size=(500, 4))
    assert gan_metrics.precision_recall(real, noise) == (0.0, 0.0)


def test_precision_recall_of_mode_dropping_generator(cluster_centres, monkeypatch):
    rng = np.random.default_rng(10)
    real = _clusters(rng, cluster_centres, 60)
    fake = _clusters(rng, cluster_centres[:5], 120)  # half the modes, same number of points
    all_modes = _clusters(rng, cluster_centres, 60)
    precision, recall = gan_metrics.precision_recall(real, fake)
    precision_all, recall_all = gan_metrics.precision_recall(real, all_modes)
    assert precision > 0.85 and abs(precision - precision_all) < 0.05
    assert recall_all > 0.85
    assert 0.4 < recall / recall_all < 0.6
    # Tiny distance blocks give the same answer (batching changes memory, not the result).
    monkeypatch.setattr(gan_metrics, "MAX_BLOCK_ENTRIES", 1000)
    assert gan_metrics.precision_recall(real, fake) == (precision, recall)


# ---- with a reference classifier on 8x8 digits ---------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[..., None]  # (1797, 8, 8, 1)
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(images))
    train, test = order[:1200], order[1200:]
    return types.SimpleNamespace(
        x_train=images[train], y_train=labels[train], x_test=images[test], y_test=labels[test], num_classes=10
    )


def _small_classifier(final_softmax=False):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10)(x)
    if final_softmax:
        outputs = keras.layers.Activation("softmax")(outputs)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def classifier(digits):
    keras.utils.set_random_seed(0)
    model = _small_classifier()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(digits.x_train, digits.y_train, epochs=15, batch_size=64, verbose=0)
    _, accuracy = model.evaluate(digits.x_test, digits.y_test, verbose=0)
    assert accuracy > 0.9, f"the test classifier itself is too weak ({accuracy:.3f})"
    return model


def _real_sampler(pool, pool_labels):
    """A 'generator' that returns real images (of the asked labels, when given)."""

    def sample(n, seed, labels):
        rng = np.random.default_rng(seed)
        if labels is None:
            return pool[rng.choice(len(pool), n, replace=False)]
        return np.stack([pool[rng.choice(np.flatnonzero(pool_labels == label))] for label in labels])

    return sample


def _noise_sample(n, seed, labels):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8)


def test_feature_extractor_takes_the_input_of_the_last_dense_layer(classifier, digits):
    extract = gan_metrics.feature_extractor(classifier, batch_size=100)
    images = digits.x_test[:250]  # 2 full batches and a padded one
    features = extract(images)
    assert features.shape == (250, 64) and features.dtype == np.float32
    penultimate = keras.Model(classifier.inputs, classifier.layers[-1].input)
    np.testing.assert_allclose(features, penultimate.predict(images, verbose=0), rtol=1e-5, atol=1e-5)
    # A final softmax layer after the Dense layer does not change which features are taken.
    with_softmax = _small_classifier(final_softmax=True)
    assert gan_metrics.feature_extractor(with_softmax)(images).shape == (250, 64)


def test_feature_extractor_needs_a_dense_layer():
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs)))
    with pytest.raises(ModelFileError, match="no Dense layer"):
        gan_metrics.feature_extractor(model)


def test_real_images_score_far_better_than_noise(classifier, digits):
    real_sampler = _real_sampler(digits.x_train, digits.y_train)
    real = gan_metrics.evaluate_generator(real_sampler, digits, classifier=classifier, num_samples=500)
    noise = gan_metrics.evaluate_generator(_noise_sample, digits, classifier=classifier, num_samples=500)
    assert real["num_samples"] == noise["num_samples"] == 500 and real["notes"] == []
    assert 0 <= real["fid_cls"] < noise["fid_cls"] / 20
    assert abs(real["kid_cls"]) < noise["kid_cls"] / 20
    assert real["precision"] > 0.6 and real["recall"] > 0.6
    # Noise lands in a few outliers' wide k-NN balls (a known trait of the metric), not more.
    assert noise["precision"] < real["precision"] - 0.5 and noise["recall"] < real["recall"] - 0.5
    assert "label_accuracy" not in real


def test_label_accuracy_of_real_images_with_their_labels_is_high(classifier, digits):
    real_sampler = _real_sampler(digits.x_train, digits.y_train)
    asked = []

    def recording_sampler(n, seed, labels):
        asked.append(labels)
        return real_sampler(n, seed, labels)

    real = gan_metrics.evaluate_generator(
        recording_sampler, digits, classifier=classifier, num_samples=500, conditional=True
    )
    assert real["label_accuracy"] > 0.9
    assert np.bincount(asked[0], minlength=10).tolist() == [50] * 10  # balanced labels
    noise = gan_metrics.evaluate_generator(
        _noise_sample, digits, classifier=classifier, num_samples=500, conditional=True
    )
    assert noise["label_accuracy"] < 0.5


def test_evaluate_generator_caps_num_samples_and_is_deterministic(classifier, digits):
    first = gan_metrics.evaluate_generator(
        _noise_sample, digits, classifier=classifier, num_samples=5000, seed=1
    )
    # The test split (597) is smaller than 5000, so the larger train split (1200) is used and capped.
    assert first["num_samples"] == 1200
    assert any("capped from 5000 to 1200" in note for note in first["notes"])
    again = gan_metrics.evaluate_generator(
        _noise_sample, digits, classifier=classifier, num_samples=5000, seed=1
    )
    assert again == first
    other = gan_metrics.evaluate_generator(
        _noise_sample, digits, classifier=classifier, num_samples=5000, seed=2
    )
    assert other["fid_cls"] != first["fid_cls"]


def test_evaluate_generator_rejects_float_images(classifier, digits):
    def float_sample(n, seed, labels):
        return np.zeros((n, 8, 8, 1), dtype=np.float32)

    with pytest.raises(UserError, match="to_uint8"):
        gan_metrics.evaluate_generator(float_sample, digits, classifier=classifier, num_samples=100)


# ---- reference classifier from the run store ---------------------------------------------------


def test_reference_classifier_is_the_best_completed_run(store):
    models = [_small_classifier() for _ in range(4)]
    completed_classifier_run(store, models[0], "digits", 0.80)
    best = completed_classifier_run(store, models[1], "digits", 0.95)
    completed_classifier_run(store, models[2], "mnist", 0.99)  # another dataset
    completed_classifier_run(store, models[3], "digits", 0.99, image_size=16)  # another size
    failed = store.create_run(
        family="classifier", model="convnet", dataset="digits", config={"dataset": "digits"}, status="failed"
    )
    store.update_run(failed, metrics={"test_accuracy": 1.0})

    chosen = gan_metrics.reference_classifier("digits", store)
    for got, want in zip(chosen.get_weights(), models[1].get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert gan_metrics.reference_run("digits", store)["run_id"] == best


def test_evaluate_generator_uses_the_stored_reference_classifier(store, classifier):
    from core.data.datasets import load_dataset

    data = load_dataset("digits")
    completed_classifier_run(store, classifier, "digits", 0.97)  # found through $CONVGAN_HOME
    result = gan_metrics.evaluate_generator(
        _real_sampler(data.x_train, data.y_train), data, num_samples=300, conditional=True
    )
    assert result["num_samples"] == 300 and result["notes"] == []
    assert result["label_accuracy"] > 0.9
    assert len(store.list_runs()) == 1  # nothing trained on demand


# ---- Inception FID -----------------------------------------------------------------------------


@pytest.mark.slow  # building InceptionV3 compiles ~55 random initializers: 10-15 s of CPU
def test_fid_inception_code_path_with_random_weights(digits):
    real, other = digits.x_test[:6], digits.x_train[:6]
    same = gan_metrics.fid_inception(real, real, weights=None, image_size=75)
    different = gan_metrics.fid_inception(real, other, weights=None, image_size=75)
    assert same["notes"] == [] and different["notes"] == []
    assert same["fid_inception"] == pytest.approx(0.0, abs=1e-6 * max(different["fid_inception"], 1.0))
    assert np.isfinite(different["fid_inception"]) and different["fid_inception"] > 0


def test_fid_inception_without_weights_or_network_is_skipped(tmp_path, monkeypatch, digits):
    def no_network(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(keras.src.backend.config, "keras_home", lambda: str(tmp_path))  # empty cache
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    timeout_before = socket.getdefaulttimeout()
    result = gan_metrics.fid_inception(digits.x_test[:4], digits.x_test[:4])
    assert result["fid_inception"] is None
    assert result["notes"][0].startswith(
        "fid_inception skipped: InceptionV3 ImageNet weights not in the Keras cache"
    )
    assert gan_metrics.INCEPTION_WEIGHTS_FILE in result["notes"][0]
    assert socket.getdefaulttimeout() == timeout_before


def test_metrics_improve_as_a_dcgan_trains(classifier, digits):
    from core.common import images
    from core.common.config import GANConfig
    from core.evaluation import sampling
    from core.models.gans import build_gan

    config = GANConfig(model="dcgan", batch_size=32)
    keras.utils.set_random_seed(0)
    model = build_gan(config, (8, 8, 1))
    batches = digits.x_train[: len(digits.x_train) // 32 * 32]  # whole batches: one compiled step

    def sample(n, seed, labels):
        return images.to_uint8(model.generate(sampling.latents(model.latent_dim, n, seed)))

    history = []
    for epochs in (0, 2, 10):
        if epochs:
            model.fit(batches, batch_size=32, epochs=epochs, verbose=0)
        history.append(gan_metrics.evaluate_generator(sample, digits, classifier=classifier, num_samples=500))
    fid = [scores["fid_cls"] for scores in history]
    kid = [scores["kid_cls"] for scores in history]
    assert fid[2] < fid[1] < fid[0] and fid[2] < fid[0] / 4, fid
    # KID is noisier early on (it rose after 2 epochs in one run), so only the end is compared.
    assert kid[2] < kid[0] / 2, kid
    assert history[2]["precision"] > history[0]["precision"] and history[2]["recall"] >= history[0]["recall"]
