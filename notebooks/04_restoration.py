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
# # 4. Restoration: super-resolution, inpainting and denoising
#
# Degrade images the way the restoration family does, restore them with the classical
# baselines (bicubic, harmonic fill, the better of Gaussian and median filtering), train
# `espcn`, `unet` and `pix2pix` through `core`, and fill a hole with a trained GAN by latent
# search (no new training).
#
# The parameters below are small so the test suite can run this notebook quickly; the
# comments give values for real use.

# %% tags=["parameters"]
dataset = "digits"  # digits allow x2 only (8x8 images); real use: "fashion_mnist" (x2 and x4)
epochs = 1  # real use: the preset's (2 on fashion_mnist)
width = 8  # channels of the first level; real use: 16 (the fashion_mnist preset)
train_images = 512  # training pairs per epoch; real use: None (the whole split) or 20000
seed = 0
latent_steps = 100  # Adam steps of the GAN-prior search; real use: 300 (the default)

# %%
# `core` is this project, installed by `make run` (`pip install -e .`).
import core  # first: selects Keras' JAX backend, whatever KERAS_BACKEND or ~/.keras/keras.json say

import numpy as np
import plotly.graph_objects as go
from IPython.display import Image, display

from core.app import datasets_view, restore_view, runs_view
from core.app.share import share_url
from core.common import images
from core.common.config import config_for
from core.data import degradations
from core.data.datasets import load_dataset
from core.evaluation import sampling
from core.runs import training
from core.store.checkpoints import checkpoint_path, load_run_model
from core.store.store import RunStore

store = RunStore()  # $CONVGAN_HOME, shared with the dashboard and the CLI
data = load_dataset(dataset)
clean = data.x_test[:8]  # uint8 (8, H, W, C)
print(store, data, sep="\n")


def show(picture, caption=None):
    """Display a uint8 (H, W, C) picture losslessly (PNG)."""
    if caption:
        print(caption)
    display(Image(data=images.png_bytes(picture)))


# %% [markdown]
# ## Degradations and their baselines
#
# Each task makes its inputs from clean images on the fly; the same seed gives the same
# degradations. Rows: degraded, baseline, original; the PSNR (dB, data range 255) is the
# mean over these images.

# %%
tasks = {
    "super-resolution x2": degradations.Degradation("super-resolution", scale=2),
    "inpaint (centre)": degradations.Degradation("inpaint", mask="center"),
    "inpaint (strokes)": degradations.Degradation("inpaint", mask="strokes"),
    "denoise (sigma 0.3)": degradations.Degradation("denoise", noise=0.3),
}
for name, degradation in tasks.items():
    degraded, masks = degradation.apply(clean, seed=seed)
    method = degradations.best_denoise_method(clean, degraded) if degradation.task == "denoise" else None
    restored = degradations.baseline(degradation, degraded, masks, denoise_method=method)
    shown = np.stack([restore_view.to_display(image, *clean.shape[1:3]) for image in degraded])
    print(f"{name}: baseline PSNR {degradations.psnr(clean, restored):.2f} dB"
          + (f" ({method})" if method else ""))
    show(datasets_view.grid_image(np.concatenate([shown, restored, clean]), ncols=len(clean), min_side=48))

# %% [markdown]
# ## espcn vs unet vs pix2pix
#
# Three models on x2 super-resolution, each a run in the store (it shows on the dashboard's
# Runs page with its PSNR/SSIM curves against the baseline and its before/after time-lapse).

# %%
runs = {}
for model in ("espcn", "unet", "pix2pix"):
    config = config_for(model, dataset=dataset, task="super-resolution", scale=2, epochs=epochs, width=width,
                        train_images=train_images, seed=seed)
    run = training.train(config, store=store)
    if run["status"] != "completed":
        raise RuntimeError(f"run {run['run_id']} ended {run['status']}: {run['error']}")
    runs[model] = run
    metrics = run["metrics"]
    print(f"{model} ({run['run_id']}): psnr {metrics['psnr']:.2f} dB, ssim {metrics['ssim']:.3f} "
          f"(bicubic: {metrics['baseline_psnr']:.2f} dB, {metrics['baseline_ssim']:.3f})")

figure = go.Figure([
    go.Bar(name="model", x=list(runs), y=[run["metrics"]["psnr"] for run in runs.values()]),
    go.Bar(name="bicubic", x=list(runs), y=[run["metrics"]["baseline_psnr"] for run in runs.values()]),
])
figure.update_layout(title="x2 super-resolution: PSNR on the test images (dB)", barmode="group", height=320)
figure.show()

# %%
grids = runs_view.sample_epochs(store.run_dir(runs["unet"]["run_id"]))
last = max(grids)
show(datasets_view.enlarge(images.load_png(grids[last]), 240),
     f"unet after epoch {last}: degraded | bicubic | model | original")

# %% [markdown]
# ## GAN-prior inpainting
#
# A trained dcgan fills a hole without new training: Adam searches its latent space for an
# image that matches the known pixels (`core.gan_prior`). A dcgan already in the store (from
# notebook 2) is used if there is one on this dataset; otherwise one is trained.

# %%
gans = [run for run in runs_view.runs_with_checkpoints(store, "gan")
        if run["model"] == "dcgan" and run["dataset"] == dataset]
if gans:
    gan_run = gans[0]
else:
    gan_run = training.train(config_for("dcgan", dataset=dataset, epochs=epochs, seed=seed, metric_samples=200,
                                        sample_grid_size=16), store=store)
gan = sampling.load_gan(checkpoint_path(store, gan_run["run_id"]))
holes = restore_view.preset_mask("center", *clean.shape[1:3])
results = [restore_view.restore_image(gan_run, gan, image, holes=holes, seed=seed, steps=latent_steps)
           for image in clean[:4]]
prior = np.mean([result.hole_psnr["model"] for result in results])
harmonic = np.mean([result.hole_psnr["baseline"] for result in results])
print(f"{gan_run['run_id']}: hole PSNR {prior:.2f} dB by latent search, {harmonic:.2f} dB by harmonic fill")
rows = [result.panels[name] for name in restore_view.PANELS for result in results]
show(datasets_view.grid_image(np.stack(rows), ncols=len(results), min_side=48),
     "rows: degraded, harmonic fill, GAN prior, original")

# %% [markdown]
# ## The same view in the dashboard
#
# The Restore page opens a run on a test image with the link below (the dashboard's address
# on this machine, started with `make run`).

# %%
unet = load_run_model(store, runs["unet"]["run_id"])
result = restore_view.restore_image(runs["unet"], unet, data.x_test[3])
print(f"unet on test image 3: {result.psnr['model']:.2f} dB (bicubic {result.psnr['baseline']:.2f} dB)")
print(share_url("http://localhost:8501/restore", {"run": runs["unet"]["run_id"], "image": 3}))
