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
# # 1. A dataset and a ConvNet
#
# Look at a dataset, train a ConvNet on it through `core` (the same code path as the CLI and
# the dashboard), then look at what it learned: curves, confusion matrix, the images it gets
# wrong, and where it looks (saliency).
#
# The run lands in the run store (`$CONVGAN_HOME`, default `~/.convgan`), so the dashboard's
# Runs page shows it too, and notebook 3 can reload it.
#
# The parameters below are small so the test suite can run this notebook in seconds; the
# comments give values for real use.

# %% tags=["parameters"]
dataset = "digits"  # any dataset spec: "digits", "fashion_mnist", "mnist", "cifar10", "folder:PATH", ...
model = "convnet"  # or "resnet"
epochs = 1  # real use: 10 on digits, 4 on fashion_mnist (core.training.classifier.recommended_settings)
batch_size = 64  # real use: 32 on digits, 128 elsewhere
seed = 0  # the same seed gives the same run on the same machine
grid_images = 64  # images in the dataset grid
saliency_method = "smoothgrad"  # or "gradcam"

# %%
# `core` is this project, installed by `make run` (`pip install -e .`).
import core  # first: selects Keras' JAX backend, whatever KERAS_BACKEND or ~/.keras/keras.json say

import numpy as np
import pandas as pd
from IPython.display import Image, display

from core.app import classify_view, datasets_view, figures, runs_view
from core.common import images
from core.common.config import config_for
from core.data.datasets import dataset_stats, load_dataset
from core.evaluation import novelty
from core.runs.training import train
from core.store.checkpoints import load_run_model
from core.store.store import RunStore
from core.training.classifier import classify_images, prepare_images, recommended_settings, saliency

store = RunStore()  # $CONVGAN_HOME, shared with the dashboard and the CLI
print(store)


def show(picture, caption=None):
    """Display a uint8 (H, W, C) picture losslessly (PNG)."""
    if caption:
        print(caption)
    display(Image(data=images.png_bytes(picture)))


# %% [markdown]
# ## The dataset
#
# `load_dataset` returns uint8 images `(N, H, W, C)` and int64 labels, split into train and
# test; `dataset_stats` counts them per class and averages them.

# %%
data = load_dataset(dataset)
stats = dataset_stats(data)
print(data)
print(data.info.description)
for note in data.notes:
    print("note:", note)

# %%
show(datasets_view.grid_image(data.x_train[:grid_images]), f"the first {grid_images} training images")
print("labels:", " ".join(data.class_names[label] for label in data.y_train[:grid_images]))

# %%
counts = {split: list(by_class.values()) for split, by_class in stats.class_counts.items()}
figures.class_distribution(counts, data.class_names)

# %%
show(
    datasets_view.grid_image(datasets_view.mean_images(stats.class_mean_images), ncols=data.num_classes),
    "mean image of each class: " + ", ".join(data.class_names),
)
figures.pixel_histogram(datasets_view.histogram_fractions(stats.pixel_histogram))

# %% [markdown]
# ## Train a ConvNet
#
# `config_for` gives the typed config every front end uses, with our overrides applied and
# validated; `train` runs it in this process and returns the finished run's record.
# `recommended_settings` holds the settings measured to work well on this dataset.

# %%
print("recommended for real use:", recommended_settings(dataset, model))
config = config_for(model, dataset=dataset, epochs=epochs, batch_size=batch_size, seed=seed)
config

# %%
run = train(config, store=store)
run_id = run["run_id"]
if run["status"] != "completed":
    raise RuntimeError(f"run {run_id} ended {run['status']}: {run['error']}")
print(f"run {run_id}: {run['status']} in {runs_view.format_seconds(runs_view.duration_seconds(run))}"
      f" on {run['device']}")
print(f"test accuracy {run['metrics']['test_accuracy']:.1%}, {run['metrics']['num_params']:,} parameters")

# %% [markdown]
# ## Curves, from the store
#
# The trainer wrote step and epoch metrics to the store while it ran; these are the same
# numbers and the same figures as on the dashboard's Runs page.

# %%
steps = store.metric_table(run_id, "step")
losses, others = runs_view.loss_and_accuracy(runs_view.metric_names(steps))
figures.curves(steps, losses + others, x="step", smoothing=0.6, title="training, per step (smoothed)")

# %%
per_epoch = store.metric_table(run_id, "epoch")
losses, others = runs_view.loss_and_accuracy(runs_view.metric_names(per_epoch))
display(figures.curves(per_epoch, losses, x="epoch", title="loss"))
figures.curves(per_epoch, others, x="epoch", title="accuracy")

# %% [markdown]
# ## Confusion matrix and per-class accuracy
#
# Computed on the test split when training finished, and stored with the run.

# %%
matrix = run["metrics"]["confusion_matrix"]
class_names = list(data.class_names)
display(figures.confusion_matrix(matrix, class_names))
figures.per_class_accuracy(runs_view.per_class_accuracy(matrix), class_names)

# %% [markdown]
# ## What it gets wrong
#
# Reload the model from the run's latest checkpoint (as the dashboard and notebook 3 do) and
# look at the test images it misclassifies, most frequent confusion first.

# %%
classifier = load_run_model(store, run_id)
predictions = runs_view.predict_labels(classifier, data.x_test)
cells = runs_view.confusion_cells(matrix, class_names)
pd.DataFrame(cells[:10], columns=["label", "count"])

# %%
for cell in cells[:3]:
    wrong = runs_view.misclassified(data.y_test, predictions, cell["true"], cell["predicted"])
    show(datasets_view.grid_image(data.x_test[wrong[:32]], min_side=96), cell["label"])

# %%
wrong = np.flatnonzero(predictions != data.y_test)
print(f"{len(wrong)} of {len(data.y_test)} test images misclassified")
if len(wrong):
    first = int(wrong[0])
    result = classify_images(classifier, data.x_test[first : first + 1], class_names, top_k=3)[0]
    show(datasets_view.enlarge(data.x_test[first]), f"test image {first}, true class {class_names[data.y_test[first]]}")
    display(figures.top_k(result["top"]))

# %% [markdown]
# ## Where it looks: saliency
#
# `saliency` explains the predicted class of each image (`smoothgrad`: the averaged input
# gradient over noisy copies; `gradcam`: the last feature map weighted by its gradient).
# Top row: test images (misclassified ones first); bottom row: the saliency map over them.

# %%
picked = np.concatenate([wrong[:4], np.flatnonzero(predictions == data.y_test)[: 8 - min(4, len(wrong))]])
overlays = [
    classify_view.saliency_overlay(data.x_test[i], saliency(classifier, data.x_test[i], int(predictions[i]), saliency_method))
    for i in picked
]
originals = [np.repeat(data.x_test[i], 3 // data.image_shape[-1], axis=-1) for i in picked]  # as RGB
show(
    datasets_view.grid_image(np.stack(originals + overlays), ncols=len(picked), min_side=192),
    "true -> predicted: " + ", ".join(f"{class_names[data.y_test[i]]} -> {class_names[predictions[i]]}" for i in picked),
)

# %% [markdown]
# ## Your own image
#
# `prepare_images` makes an image from elsewhere look like the training images (channels,
# inversion of dark-on-light drawings, aspect ratio, size) and says what it changed. Here a
# test image blown up 4x and inverted stands in for a photo of a drawing.

# %%
drawing = images.upscale(255 - data.x_test[0], 4)
prepared, notes = prepare_images(drawing, classifier.input_shape[1:])
print("\n".join(notes))
result = classify_images(classifier, prepared, class_names)[0]
print(f"true class {class_names[data.y_test[0]]}, predicted {result['class_name']} ({result['probability']:.0%})")
figures.top_k(result["top"])

# %% [markdown]
# ## Unlike the training data?
#
# A classifier gives every image some label, a flat grey square and random noise included.
# `novelty` flags such images: a flat image, or penultimate-layer features far from every
# class (Mahalanobis distance) compared with held-out test images (its 99th percentile). The
# fit runs once per checkpoint and is kept next to it; the dashboard and `python -m core
# classify` use the same check.

# %%
check = novelty.for_run(store, run_id, model=classifier)
rng = np.random.default_rng(seed)
candidates = {
    "the drawing above": drawing,
    "a flat grey square": np.full((64, 64, data.image_shape[-1]), 128, np.uint8),
    "random noise": rng.integers(0, 256, (64, 64, data.image_shape[-1]), dtype=np.uint8),
}
for name, image in candidates.items():
    result = classify_view.classify(classifier, image, class_names, 1, check)
    verdict = f"unusual: {result['unusual_reason']}" if result["unusual"] else "like the training images"
    print(f"{name}: {result['top'][0]['class_name']}, {verdict}")

# %% [markdown]
# The run is in the store: open the dashboard (`make run`) and find it on the Runs page, or
# continue with notebook 2 (GANs), whose quality metrics use a classifier like this one.
