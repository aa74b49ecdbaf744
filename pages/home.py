"""Home: what the app does, the devices, recent runs, and a one-click first run."""

import streamlit as st

from core.app import datasets_view, demo_limits, run_actions, runs_view, train_view
from core.common.images import load_png
from core.store import compare
from pages import ui

HOME_PICTURE_SIDE = 320  # pixels: the latest GAN samples at a glance, never the page's full width

ui.header("ConvGAN Studio")
st.markdown(
    "Train **ConvNet classifiers** and **GANs** on image datasets, watch them learn, and use them: "
    "sample images from a GAN, classify your own images with a ConvNet. Runs train as background jobs "
    "(Keras 3 on JAX) in the run store that the CLI (`python -m core`) and the notebooks share."
)
store = ui.store()
runs = store.list_runs(limit=8)

if not runs:
    st.subheader("First run")
    if ui.demo():
        st.info(f"This demo has no runs yet. {demo_limits.demo_notice('train')}")
    else:
        st.write(
            "The store is empty. Train three small starter models on the embedded 8x8 digits: a ConvNet "
            "classifier, a DCGAN and a conditional GAN (about two minutes on CPU in all, one after another), "
            "so every page has something to show."
        )
        if st.button(
            "Train starter models", key="home.starters", type="primary", icon=":material/rocket_launch:"
        ):
            with ui.guard():
                st.session_state["home.launched"] = run_actions.launch_starters(store)
                st.rerun()

launched = st.session_state.get("home.launched")
if launched:
    st.success(f"Started {len(launched)} starter runs: " + ", ".join(launched), icon=":material/check:")
    st.page_link("pages/train.py", label="Watch them train", icon=":material/model_training:")

st.subheader("Devices")
with ui.guard():
    for line in train_view.device_lines(ui.devices()):
        st.markdown(f"- {line}")

if runs:
    st.subheader("Recent runs")
    columns = ["run", "status", "model", "dataset", "epochs", "test_accuracy", "fid_cls", "training_s", "wall_s"]
    training = {run["run_id"]: compare.training_seconds(store, run["run_id"]) for run in runs}
    rows = [{key: row[key] for key in columns} for row in runs_view.run_rows(runs, training=training)]
    st.dataframe(
        rows,
        hide_index=True,
        placeholder="—",  # test accuracy of a GAN, fid_cls of a classifier
        column_config={
            "test_accuracy": st.column_config.NumberColumn("test accuracy", format="percent"),
            "fid_cls": st.column_config.NumberColumn("fid_cls", format="%.2f"),
            "training_s": st.column_config.NumberColumn("training (s)", format="%.0f", help="time spent in epochs"),
            "wall_s": st.column_config.NumberColumn("wall (s)", format="%.0f", help="from creation to the end"),
        },
    )
    latest = runs_view.latest_gan_samples(store, runs)
    if latest:
        run_id, epoch, path = latest
        picture, width = datasets_view.bounded(load_png(path), HOME_PICTURE_SIDE)
        ui.image(picture, caption=f"{run_id} after epoch {epoch}", width=width)

st.subheader("Where to next")
cols = st.columns(5)
links = [
    ("pages/datasets.py", "Browse datasets", ":material/photo_library:"),
    ("pages/train.py", "Train a model", ":material/model_training:"),
    ("pages/runs.py", "Compare runs", ":material/monitoring:"),
    ("pages/sample.py", "Sample a GAN", ":material/auto_awesome:"),
    ("pages/classify.py", "Classify images", ":material/category:"),
]
for col, (path, label, icon) in zip(cols, links, strict=True):
    col.page_link(path, label=label, icon=icon)
