# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. GANs: a DCGAN and a conditional GAN
#
# Train a DCGAN and a cGAN through `core`, watch their sample grids improve epoch by epoch,
# sample from them with seeds (the same seed gives the same pixels), walk between latents, and
# read their quality scores: `fid_cls`, `kid_cls`, precision/recall and, for the cGAN, label
# accuracy.
#
# The parameters below are small so the test suite can run this notebook quickly; the
# comments give values for real use.

# %% tags=["parameters"]
dataset = "digits"  # a labeled dataset for the cGAN: "digits", "fashion_mnist", "mnist", "cifar10", ...
epochs = 1  # real use: 30 on digits, 20 on fashion_mnist
batch_size = 64
metric_samples = 200  # generated images scored at the end; real use: 1000 (the default)
sample_grid_size = 20  # images in the per-epoch sample grid; real use: 64 (the default)
seed = 0
n_samples = 16  # images per sampling call below; real use: 64
interpolation_steps = 8

# %%
# `core` is this project, installed by `make run` (`pip install -e .`).
import core  # first: selects Keras' JAX backend, whatever KERAS_BACKEND or ~/.keras/keras.json say

import keras
import numpy as np
import pandas as pd
from IPython.display import Image, display

from core.app import datasets_view, figures, runs_view, sample_view
from core.common import images
from core.common.config import config_for
from core.data.datasets import load_dataset
from core.evaluation import sampling
from core.runs import training
from core.store.store import RunStore

store = RunStore()  # $CONVGAN_HOME, shared with the dashboard and the CLI
data = load_dataset(dataset)
print(store, data, sep="\n")


def show(picture, caption=None):
    """Display a uint8 (H, W, C) picture losslessly (PNG)."""
    if caption:
        print(caption)
    display(Image(data=images.png_bytes(picture)))


def show_gif(frames, caption=None):
    """Display uint8 frames (T, H, W, C) as an animated GIF (there and back)."""
    if caption:
        print(caption)
    display(Image(data=sample_view.gif_bytes(frames), format="gif"))


class WatchSamples(keras.callbacks.Callback):
    """Shows the run's newest sample grid in place, and prints the losses after every epoch."""

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = run_dir

    def on_train_begin(self, logs=None):
        self.handle = None
        self.show_latest()  # the untrained generator's grid (epoch 0)

    def on_epoch_end(self, epoch, logs=None):
        print(f"epoch {epoch + 1}: " + ", ".join(f"{name} {value:.3f}" for name, value in (logs or {}).items()))
        self.show_latest()

    def show_latest(self):
        latest = runs_view.latest_sample(self.run_dir)  # (epoch, samples/epoch_NNN.png) or None
        if latest is None:
            return
        picture = Image(data=images.png_bytes(datasets_view.enlarge(images.load_png(latest[1]), 160)))
        if self.handle is None:
            self.handle = display(picture, display_id=True)
        else:
            self.handle.update(picture)


# %% [markdown]
# ## Train
#
# One typed config per run (`config_for`), trained in this process by `core.runs.training` in its
# two steps (`prepare` creates the run, `execute` trains it; `train` does both), so the run's
# folder is known while it trains and its sample grid can be watched. After the last epoch the
# trainer scores the generator in the feature space of a *reference classifier*: the best
# classifier run on this dataset in the store (notebook 1's, for example), or one it trains
# there first.

# %%
runs = {}
for model in ("dcgan", "cgan"):
    config = config_for(
        model, dataset=dataset, epochs=epochs, batch_size=batch_size, seed=seed,
        metric_samples=metric_samples, sample_grid_size=sample_grid_size,
    )
    print(f"--- {model}: {config}")
    _, run_id, run_data = training.prepare(config, store, status="running")
    watch = WatchSamples(store.run_dir(run_id))
    run = training.execute(store, run_id, data=run_data, extra_callbacks=[watch])
    if run["status"] != "completed":
        raise RuntimeError(f"run {run['run_id']} ended {run['status']}: {run['error']}")
    runs[model] = run
    print(f"run {run['run_id']}: {run['status']} in {runs_view.format_seconds(runs_view.duration_seconds(run))}")

# %% [markdown]
# ## The sample grids, epoch by epoch
#
# After every epoch the trainer saved a grid of the generator's images for the *same* latent
# vectors (`samples/epoch_NNN.png` in the run folder; epoch 0 is the untrained generator):
# above, each replaced the last while the run trained; here they are side by side and as a
# time-lapse. The cGAN's grid has one class per row.

# %%
for model, run in runs.items():
    grids = runs_view.sample_epochs(store.run_dir(run["run_id"]))
    frames = np.stack([images.load_png(path) for path in grids.values()])
    show(
        datasets_view.grid_image(frames, ncols=len(frames), min_side=160),
        f"{model}: sample grids after epochs {', '.join(map(str, grids))}",
    )
    show_gif(frames, f"{model}: the same as a time-lapse")

# %%
tables = {run["run_id"]: store.metric_table(run["run_id"], "step") for run in runs.values()}
display(figures.overlay(tables, "d_loss", smoothing=0.6))
figures.overlay(tables, "g_loss", smoothing=0.6)

# %% [markdown]
# ## Seeded sampling
#
# `core.evaluation.sampling` loads a run's checkpoint and draws latents from the seed, never from global
# state: the same seed gives the same pixels, and an image does not depend on what else is in
# the batch.

# %%
dcgan = sampling.load_gan(store.run_dir(runs["dcgan"]["run_id"]))
batch = sampling.sample(dcgan, n=n_samples, seed=seed)
again = sampling.sample(dcgan, n=n_samples, seed=seed)
alone = sampling.sample(dcgan, n=1, seed=seed)
print("same seed, same pixels:", np.array_equal(batch, again))
print("first image alone equals the first of the batch:", np.array_equal(alone[0], batch[0]))
show(datasets_view.grid_image(batch, min_side=256), f"dcgan, seed {seed}")
show(
    datasets_view.grid_image(sampling.sample(dcgan, n=n_samples, seed=seed, truncation=0.7), min_side=256),
    f"dcgan, seed {seed}, truncation 0.7 (more typical, less varied)",
)

# %%
cgan = sampling.load_gan(store.run_dir(runs["cgan"]["run_id"]))
per_class = max(1, n_samples // cgan.num_classes)
by_class = np.concatenate(
    [sampling.sample(cgan, n=per_class, seed=seed, label=label) for label in range(cgan.num_classes)]
)
show(
    datasets_view.grid_image(by_class, ncols=per_class, min_side=256),
    "cgan, one row per class: " + ", ".join(data.class_names),
)

# %% [markdown]
# ## Interpolation and latent walks
#
# `interpolate` follows the great circle between the latents of two seeds (its ends are
# `sample(n=1)` of those seeds); `latent_walk` takes random steps from one seed's latent.

# %%
frames = sampling.interpolate(dcgan, seed, seed + 1, steps=interpolation_steps)
show(datasets_view.grid_image(frames, ncols=len(frames), min_side=96), f"dcgan: seed {seed} -> seed {seed + 1}")
show_gif(frames)
walk = sampling.latent_walk(cgan, seed, steps=interpolation_steps, label=int(data.y_train[0]))
show(
    datasets_view.grid_image(walk, ncols=len(walk), min_side=96),
    f"cgan: a latent walk from seed {seed}, class {data.class_names[data.y_train[0]]}",
)

# %% [markdown]
# ## Quality scores
#
# - `fid_cls`, `kid_cls`: Fréchet and kernel distances between generated and real test images
#   in the reference classifier's feature space (lower is better; not comparable to published
#   Inception FIDs, nor across reference classifiers).
# - `precision` (are the samples realistic?) and `recall` (is the data's variety covered?).
# - `label_accuracy` (cGAN): how often the reference classifier recognises the asked-for class.
# - `fid_cls_no_ema`: `fid_cls` of the raw generator, to see what the weight average buys.
# - `reference_run`: the classifier run that scored the generator (the table's `scored by`); compare
#   scores only between runs with the same one.

# %%
scores = {run["run_id"]: run["metrics"] for run in runs.values()}
columns = ["run", "model", *runs_view.GAN_SCORES, "scored by"]
display(pd.DataFrame(runs_view.run_rows(runs.values()), columns=columns))
for model, run in runs.items():
    metrics = run["metrics"]
    print(f"{model}: fid_cls {metrics['fid_cls']:.3f} with EMA, {metrics['fid_cls_no_ema']:.3f} without")
print("scored by classifier run", *{run["metrics"]["reference_run"] for run in runs.values()})
print(f"cgan label accuracy: {runs['cgan']['metrics']['label_accuracy']:.1%} (chance: {1 / data.num_classes:.0%})")
display(figures.metric_bars(scores, "fid_cls"))
figures.metric_bars(scores, "precision")

# %% [markdown]
# Both runs are in the store: the dashboard's Runs page shows their time-lapses and scores,
# and its Sample page (or notebook 3) samples them with the same seeds and gets the same images.
