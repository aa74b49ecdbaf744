"""fit_gan end to end on a slice of digits: sample grids, checkpoints, metrics, resume."""

import dataclasses

import keras
import numpy as np
import pytest

from core.common import images
from core.common.config import GANConfig
from core.common.errors import ConfigError
from core.data.datasets import load_dataset
from core.evaluation import gan_metrics, sampling
from core.store.store import RunStore
from core.training import gan
from core.training.runctx import RunContext
from tests.stored_runs import completed_classifier_run

SMALL = {"batch_size": 32, "latent_dim": 8, "sample_grid_size": 16, "metric_samples": 40, "log_every_steps": 2}


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return dataclasses.replace(data, x_train=data.x_train[:96], y_train=data.y_train[:96])


def add_reference_classifier(store):
    """A completed classifier run on digits for the GAN metrics to find through the store: a
    small untrained model (enough to compute every score; training one costs seconds a test)."""
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(16),
                                   keras.layers.Dense(10, activation="softmax")])
    return completed_classifier_run(store, classifier, "digits", 0.5)


def new_context(store, config, **kwargs):
    run_id = store.create_run(family="gan", model=config.model, dataset="digits", config={"model": config.model})
    return RunContext(store, run_id, config, **kwargs)


@pytest.fixture(scope="module")
def module_store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def dcgan_run(module_store, digits):
    """A 2-epoch dcgan run: (context, final metrics)."""
    add_reference_classifier(module_store)
    config = GANConfig(model="dcgan", epochs=2, **SMALL)
    ctx = new_context(module_store, config)
    return ctx, gan.fit_gan(config, digits, ctx)


def test_dcgan_run_writes_samples_checkpoints_and_metrics(dcgan_run):
    ctx, final = dcgan_run
    config, store = ctx.config, ctx.store
    samples = ctx.run_dir / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["epoch_000.png", "epoch_001.png", "epoch_002.png"]
    grid = images.load_png(samples / "epoch_002.png")
    assert grid.shape == (4 * 9 + 1, 4 * 9 + 1, 1)  # 16 images of 8x8, one pixel of padding
    assert not np.array_equal(grid, images.load_png(samples / "epoch_000.png"))
    assert (ctx.run_dir / "checkpoints" / "epoch_002.keras").exists()
    for name in ("d_loss", "g_loss", "d_real", "d_fake", "fid_cls", "kid_cls", "precision", "recall",
                 "fid_cls_no_ema"):
        assert np.isfinite(final[name]), name
    # Scored by the classifier run in the store, and that run is named with the scores.
    assert final["reference_run"] == gan_metrics.reference_run("digits", store)["run_id"]
    assert len(store.list_runs(family="classifier")) == 1  # nothing trained on demand
    assert "d_loss" in store.latest_metrics(ctx.run_id)
    # The grid is the EMA generator's sample for the config's seed.
    model = sampling.load_gan(ctx.run_dir)
    np.testing.assert_array_equal(images.make_grid(sampling.sample(model, 16, seed=config.seed), ncols=4), grid)


def test_resume_continues_exactly(dcgan_run, digits):
    straight = dcgan_run[0]
    config, store = straight.config, straight.store
    first = new_context(store, dataclasses.replace(config, epochs=1))
    gan.fit_gan(first.config, digits, first)
    (first.run_dir / "samples" / "epoch_000.png").unlink()
    resumed = RunContext(store, first.run_id, config, initial_epoch=1,
                         resume_checkpoint=first.run_dir / "checkpoints" / "epoch_001.keras")
    gan.fit_gan(config, digits, resumed)
    assert not (first.run_dir / "samples" / "epoch_000.png").exists()  # no untrained grid on resume
    np.testing.assert_array_equal(images.load_png(first.run_dir / "samples" / "epoch_002.png"),
                                  images.load_png(straight.run_dir / "samples" / "epoch_002.png"))
    a, b = sampling.load_gan(straight.run_dir), sampling.load_gan(first.run_dir)
    assert int(b.optimizer.iterations) == int(a.optimizer.iterations) == 6
    for x, y in zip(a.generator.variables, b.generator.variables, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_cgan_grid_has_one_class_per_row(store, digits):
    reference = add_reference_classifier(store)
    config = GANConfig(model="cgan", epochs=1, **{**SMALL, "sample_grid_size": 20})
    ctx = new_context(store, config)
    final = gan.fit_gan(config, digits, ctx)
    grid = images.load_png(ctx.run_dir / "samples" / "epoch_001.png")
    assert grid.shape == (10 * 9 + 1, 2 * 9 + 1, 1)  # 10 rows (classes) x 2 columns
    assert 0.0 <= final["label_accuracy"] <= 1.0 and final["reference_run"] == reference


def test_cgan_needs_labels(store, digits):
    config = GANConfig(model="cgan", epochs=1, **SMALL)
    unlabeled = dataclasses.replace(digits, y_train=None)
    with pytest.raises(ConfigError, match="no labels"):
        gan.fit_gan(config, unlabeled, new_context(store, config))


def test_shuffled_batches_are_full_seeded_and_new_each_epoch():
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    batches = gan.ShuffledBatches(x, np.arange(10), 4, seed=1)
    assert len(batches) == 2
    epoch_0 = [batches[i][1] for i in range(2)]
    batches.set_epoch(1)
    epoch_1 = [batches[i][1] for i in range(2)]
    assert all(len(b) == 4 for b in epoch_0 + epoch_1)
    assert not all(np.array_equal(a, b) for a, b in zip(epoch_0, epoch_1, strict=True))
    again = gan.ShuffledBatches(x, np.arange(10), 4, seed=1, epoch=1)
    np.testing.assert_array_equal(again[0][1], epoch_1[0])
