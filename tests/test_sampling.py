"""Seeded sampling: determinism, interpolation endpoints, truncation, loading and validation."""

import keras
import numpy as np
import pytest
from PIL import Image

from core.common.config import GANConfig
from core.common.errors import ConfigError, ModelFileError
from core.evaluation import sampling
from core.models.gans import build_gan


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder with two dcgan checkpoints (weights differ) and a cgan checkpoint file."""
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("runs")
    checkpoints = root / "dcgan" / "checkpoints"
    checkpoints.mkdir(parents=True)
    model = build_gan(GANConfig(model="dcgan", latent_dim=8), (8, 8, 1))
    model.save(checkpoints / "epoch_001.keras")
    # Stand-in for an epoch of training: other weights and step count.
    for variable in model.ema_generator.weights[:2]:
        variable.assign(variable.numpy() * 1.5 + 0.01)
    model.optimizer.iterations.assign(2)
    model.save(checkpoints / "epoch_002.keras")
    cgan = build_gan(GANConfig(model="cgan", latent_dim=8), (8, 8, 1), num_classes=3)
    cgan.save(root / "cgan.keras")
    return root


@pytest.fixture(scope="module")
def dcgan(run_dir):
    return sampling.load_gan(run_dir / "dcgan")


@pytest.fixture(scope="module")
def cgan(run_dir):
    return sampling.load_gan(run_dir / "cgan.keras")


def test_load_gan_picks_latest_or_asked_epoch(run_dir, dcgan):
    assert int(dcgan.optimizer.iterations) == 2  # epoch_002, trained
    first = sampling.load_gan(run_dir / "dcgan", epoch=1)
    assert int(first.optimizer.iterations) == 0
    assert not np.array_equal(sampling.sample(first, 4), sampling.sample(dcgan, 4))


def test_load_gan_errors(run_dir, tmp_path):
    with pytest.raises(ModelFileError, match="no GAN checkpoint"):
        sampling.load_gan(tmp_path / "missing")
    with pytest.raises(ModelFileError, match="no GAN checkpoint"):
        sampling.load_gan(tmp_path)
    with pytest.raises(ModelFileError, match="epoch 7"):
        sampling.load_gan(run_dir / "dcgan", epoch=7)
    with pytest.raises(ConfigError, match="epoch"):
        sampling.load_gan(run_dir / "dcgan", epoch=0)
    with pytest.raises(ConfigError, match="run folder"):
        sampling.load_gan(run_dir / "cgan.keras", epoch=1)
    classifier = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    classifier.save(tmp_path / "classifier.keras")
    with pytest.raises(ModelFileError, match="not a GAN"):
        sampling.load_gan(tmp_path / "classifier.keras")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="cannot load"):
        sampling.load_gan(tmp_path / "broken.keras")


def test_sample_is_deterministic(dcgan):
    a = sampling.sample(dcgan, n=10, seed=3)
    b = sampling.sample(dcgan, n=10, seed=3)
    assert a.dtype == np.uint8 and a.shape == (10, 8, 8, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sampling.sample(dcgan, n=10, seed=4))
    # A latent gives the same image whatever the batch: row 0 of n=70 (two chunks) is n=1.
    np.testing.assert_array_equal(sampling.sample(dcgan, n=70, seed=3)[:10], a)
    np.testing.assert_array_equal(sampling.sample(dcgan, n=1, seed=3)[0], a[0])


def test_truncation(dcgan):
    z = sampling.latents(8, 200, seed=1, truncation=0.5)
    assert np.abs(z).max() <= 0.5
    untruncated = sampling.latents(8, 200, seed=1)
    inside = np.abs(untruncated) <= 0.5
    np.testing.assert_array_equal(z[inside], untruncated[inside])  # values inside are kept
    np.testing.assert_array_equal(sampling.sample(dcgan, 5, seed=1, truncation=0.5),
                                  sampling.sample(dcgan, 5, seed=1, truncation=0.5))
    assert np.abs(sampling.latents(4, 50, seed=0, truncation=0.01)).max() <= 0.01


def test_interpolation_endpoints_are_the_seeds_samples(dcgan):
    frames = sampling.interpolate(dcgan, 5, 9, steps=6)
    assert frames.shape == (6, 8, 8, 1) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], sampling.sample(dcgan, n=1, seed=5)[0])
    np.testing.assert_array_equal(frames[-1], sampling.sample(dcgan, n=1, seed=9)[0])
    assert not np.array_equal(frames[0], frames[-1])


def test_conditional_sampling(cgan):
    frames = sampling.interpolate(cgan, 1, 2, steps=3, label=2)
    np.testing.assert_array_equal(frames[0], sampling.sample(cgan, n=1, seed=1, label=2)[0])
    every_class = sampling.sample(cgan, n=6, seed=0)
    for index in range(6):  # None cycles through the classes: image i gets class i % 3
        np.testing.assert_array_equal(every_class[index], sampling.sample(cgan, n=6, seed=0, label=index % 3)[index])
    assert not np.array_equal(sampling.sample(cgan, 2, seed=0, label=0), sampling.sample(cgan, 2, seed=0, label=1))


def test_latent_walk(dcgan):
    frames = sampling.latent_walk(dcgan, seed=4, steps=5, step_size=0.5)
    assert frames.shape == (5, 8, 8, 1)
    np.testing.assert_array_equal(frames[0], sampling.sample(dcgan, n=1, seed=4)[0])
    np.testing.assert_array_equal(frames, sampling.latent_walk(dcgan, seed=4, steps=5, step_size=0.5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be between 1"),
        ({"n": 5000}, "n must be between 1"),
        ({"n": 2.5}, "whole number"),
        ({"seed": -1}, "seed"),
        ({"label": 0}, "unconditional"),
        ({"truncation": 0.0}, "truncation"),
        ({"truncation": float("nan")}, "truncation"),
        ({"truncation": -1}, "truncation"),
    ],
)
def test_sample_validation(dcgan, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        sampling.sample(dcgan, **kwargs)


def test_conditional_validation(cgan, dcgan):
    for label in (3, -1, True, 1.0):
        with pytest.raises(ConfigError, match="label must be a class index from 0 to 2"):
            sampling.sample(cgan, 2, label=label)
    with pytest.raises(ConfigError, match="steps"):
        sampling.interpolate(dcgan, 0, 1, steps=1)
    with pytest.raises(ConfigError, match="step_size"):
        sampling.latent_walk(dcgan, 0, steps=3, step_size=0)


def test_save_gif(dcgan, tmp_path):
    frames = sampling.interpolate(dcgan, 0, 1, steps=4)
    path = sampling.save_gif(frames, tmp_path / "walk.gif", fps=5, scale=4)
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.size == (32, 32)
    with pytest.raises(ConfigError, match="fps"):
        sampling.save_gif(frames, tmp_path / "x.gif", fps=0)
    with pytest.raises(ConfigError, match="frames"):
        sampling.save_gif(frames[..., 0], tmp_path / "x.gif")


def test_sample_run_writes_a_grid(store, run_dir):
    import shutil

    run_id = store.create_run(family="gan", model="dcgan", dataset="digits", config={"model": "dcgan"})
    shutil.copytree(run_dir / "dcgan" / "checkpoints", store.run_dir(run_id) / "checkpoints")
    out = store.run_dir(run_id) / "grid.png"
    result = sampling.sample_run(store, run_id, n=9, seed=2, epoch=1, out=out)
    assert result["epoch"] == 1 and result["n"] == 9 and result["scale"] == 8
    with Image.open(out) as grid:
        assert grid.size == ((3 * 9 + 1) * 8, (3 * 9 + 1) * 8)
