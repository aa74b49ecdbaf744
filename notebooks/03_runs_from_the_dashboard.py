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
# # 3. Runs from the dashboard, in a notebook
#
# The dashboard, the CLI and these notebooks share one run store (`$CONVGAN_HOME`). A run
# launched from the dashboard's Train page is a background job writing to that store, so here
# it is like any other: list and compare runs, load a checkpoint, sample from it, and print
# the link that opens the same view in the dashboard.
#
# The parameters below are small so the test suite can run this notebook quickly; the
# comments give values for real use.

# %% tags=["parameters"]
dashboard_url = "http://localhost:8501"  # where `make run` serves the dashboard
run_id = None  # a GAN run (id, unique prefix or "latest"); None: the newest GAN run with a checkpoint
seed = 0
n_samples = 16  # real use: 64
compare_runs = 5  # the newest runs of each family to compare
fallback_epochs = 1  # only when the store has no GAN run: a DCGAN is trained first (real use: 8)

# %%
# `core` is this project, installed by `make run` (`pip install -e .`).
import core  # first: selects Keras' JAX backend, whatever KERAS_BACKEND or ~/.keras/keras.json say

import pandas as pd
from IPython.display import Image, display

from core.app import datasets_view, figures, runs_view, share
from core.common import images
from core.common.config import config_for
from core.evaluation import sampling
from core.runs import jobs
from core.runs.evaluation import evaluate_run
from core.runs.training import train
from core.store.checkpoints import checkpoint_path
from core.store.store import RunStore

store = RunStore()  # $CONVGAN_HOME, shared with the dashboard and the CLI
print(store)


def show(picture, caption=None):
    """Display a uint8 (H, W, C) picture losslessly (PNG)."""
    if caption:
        print(caption)
    display(Image(data=images.png_bytes(picture)))


# %% [markdown]
# ## Every run in the store
#
# The same table as the dashboard's Runs page (`core.app.runs_view.run_rows`). `jobs.reconcile`
# first marks runs whose background trainer died as `interrupted`, as the dashboard does.

# %%
jobs.reconcile(store)
pd.DataFrame(runs_view.run_rows(store.list_runs()))

# %% [markdown]
# Runs the dashboard launched may still be queued or training. Their progress and their
# trainer's log (`train.log`) are in the store; re-run this cell to follow them.

# %%
active = runs_view.active_runs(store)
for position, run in enumerate(active, start=1):
    print(run["run_id"], "-", runs_view.progress_line(run, position if run["status"] == "queued" else None)[1])
    print(runs_view.log_tail(jobs.read_log(store, run["run_id"]), lines=5))
if not active:
    print("nothing training right now")

# %% [markdown]
# This notebook needs a GAN run with a checkpoint; an empty store gets a small DCGAN first
# (what the dashboard's starter button would train).

# %%
if not runs_view.runs_with_checkpoints(store, "gan"):
    print("no GAN run with a checkpoint yet: training a small DCGAN")
    fallback = train(config_for("dcgan", dataset="digits", epochs=fallback_epochs, seed=seed), store=store)
    print(fallback["run_id"], fallback["status"], fallback["error"] or "")

# %% [markdown]
# ## Compare runs
#
# Curves of several runs overlaid, and their final scores, from the store's metrics.

# %%
compared = {}
for family, metric, score in (("classifier", "val_accuracy", "test_accuracy"), ("gan", "g_loss", "fid_cls")):
    newest = store.list_runs(family=family, status="completed", limit=compare_runs)
    if not newest:
        continue
    compared[family] = [run["run_id"] for run in newest]
    tables = {run["run_id"]: store.metric_table(run["run_id"], "epoch") for run in newest}
    display(figures.overlay(tables, metric, x="epoch"))
    display(figures.metric_bars({run["run_id"]: run["metrics"] for run in newest}, score))

# %% [markdown]
# ## Load a checkpoint and sample from it
#
# Every run saves a checkpoint after each epoch (`checkpoints/epoch_NNN.keras`). Sampling it
# with a seed gives exactly the images the dashboard's Sample page shows for that run, epoch
# and seed.

# %%
gan_run = store.get_run(store.resolve(run_id) if run_id else runs_view.runs_with_checkpoints(store, "gan")[0]["run_id"])
run_id = gan_run["run_id"]
epoch = runs_view.checkpoint_epochs(store, run_id)[-1]
path = checkpoint_path(store, run_id, epoch)
generator = sampling.load_gan(path)
print(f"{run_id}: {gan_run['model']} on {gan_run['dataset']}, {gan_run['status']}, checkpoint {path.name}")
batch = sampling.sample(generator, n=n_samples, seed=seed)
show(datasets_view.grid_image(batch, min_side=384), f"{run_id}, epoch {epoch}, seed {seed}")

# %% [markdown]
# A classifier checkpoint reloads the same way; evaluating it again on the test split gives
# the accuracy the run recorded.

# %%
classifiers = runs_view.runs_with_checkpoints(store, "classifier")
if classifiers:
    classifier_run = classifiers[0]
    again = evaluate_run(store, classifier_run["run_id"])
    print(f"{classifier_run['run_id']}: recorded test accuracy {classifier_run['metrics'].get('test_accuracy', float('nan')):.1%},"
          f" evaluated again from its checkpoint {again['test_accuracy']:.1%}")

# %% [markdown]
# ## Open the same view in the dashboard
#
# Dashboard views live in their URL (`core.app.share`), so these links reopen them: the Sample page
# on this run, checkpoint and seed (the same pixels as above), and the Runs page on this run
# with the compared runs overlaid.

# %%
sample_link = share.share_url(
    f"{dashboard_url}/sample", {"run": run_id, "epoch": epoch, "seed": seed, "n": n_samples}
)
runs_link = share.share_url(f"{dashboard_url}/runs", {"run": run_id, "compare": compared.get("gan", [run_id])})
print("Sample page:", sample_link)
print("Runs page:  ", runs_link)
