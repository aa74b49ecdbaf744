"""Sample: images from a GAN run's checkpoint for a seed (same run, epoch, seed and class give
the same pixels), and an interpolation between two seeds as a strip and an animated GIF."""

import streamlit as st

from core.app import datasets_view, demo_limits, runs_view, sample_view
from core.app.share import Param
from core.common import images
from core.evaluation import sampling
from core.store.checkpoints import checkpoint_path
from pages import ui


@st.cache_data(max_entries=32, show_spinner="Generating...")
def generate(path: str, mtime: float, n: int, seed: int, label: int | None, truncation: float | None):
    return sampling.sample(ui.load_gan(path), n, seed=seed, label=label, truncation=truncation)


@st.cache_data(max_entries=16, show_spinner="Interpolating...")
def interpolation(path: str, mtime: float, seed_a: int, seed_b: int, steps: int, label: int | None):
    frames = sampling.interpolate(ui.load_gan(path), seed_a, seed_b, steps, label=label)
    return frames, sample_view.gif_bytes(frames)


ui.header("Sample")
view = ui.View("sample")
store = ui.store()
runs = runs_view.runs_with_checkpoints(store, "gan")
if not runs:
    st.info(
        "No GAN run with a checkpoint yet: train a dcgan or cgan on the Train page (or the starter models "
        "on Home). A run saves a checkpoint after each epoch."
    )
    view.publish()
    st.stop()
cols = st.columns([3, 1])
run, epoch = view.run_and_checkpoint("GAN run", runs, store, cols)
run_id = run["run_id"]

controls = st.columns(4)
seed = controls[0].number_input(
    "Seed",
    min_value=0,
    max_value=2**31 - 1,
    step=1,
    key=view.bind(Param("seed", int, 0, minimum=0, maximum=2**31 - 1)),
)
limit = demo_limits.max_samples()
n = controls[1].number_input(
    f"Images (max {limit})",
    min_value=1,
    max_value=limit,
    step=1,
    key=view.bind(Param("n", int, min(64, limit), minimum=1, maximum=limit)),
)
class_names = (run["config"].get("data") or {}).get("class_names") or []
label = None
if run["model"] == "cgan" and class_names:
    options = [None, *range(len(class_names))]
    label = controls[2].selectbox(
        "Class",
        options,
        format_func=lambda i: "every class" if i is None else class_names[i],
        key=view.bind(Param("label", int, None, optional=True).with_choices(options)),
    )
truncation = controls[3].slider(
    "Truncation (0 = off)",
    0.0,
    2.0,
    step=0.1,
    help="resample latent values beyond "
    "this many standard deviations: smaller = more typical, less varied images",
    key=view.bind(Param("truncation", float, 0.0, minimum=0.0, maximum=2.0)),
)

with ui.guard(stop=True):
    path = checkpoint_path(store, run_id, epoch)
    batch = generate(str(path), path.stat().st_mtime, int(n), int(seed), label, truncation or None)
    picture = datasets_view.grid_image(batch, min_side=384)
ui.image(
    picture,
    caption=f"{run_id}, epoch {epoch}, seed {seed}"
    + (f", class {class_names[label]}" if label is not None else "")
    + (f", truncation {truncation:g}" if truncation else ""),
)
st.download_button(
    "Download PNG",
    images.png_bytes(picture),
    file_name=f"{run_id}-e{epoch}-s{seed}.png",
    mime="image/png",
    key="sample.download_png",
    icon=":material/download:",
    on_click="ignore",
)

st.subheader("Interpolation")
cols = st.columns(3)
seed_b = cols[0].number_input(
    "From the seed above to seed",
    min_value=0,
    max_value=2**31 - 1,
    step=1,
    key=view.bind(Param("seed_b", int, 1, minimum=0, maximum=2**31 - 1)),
)
steps = cols[1].slider("Steps", 3, 16, key=view.bind(Param("steps", int, 8, minimum=3, maximum=16)))
with ui.guard():
    frames, gif = interpolation(str(path), path.stat().st_mtime, int(seed), int(seed_b), int(steps), label)
    ui.image(
        datasets_view.grid_image(frames, ncols=len(frames), min_side=96),
        caption=f"seed {seed} -> seed {seed_b} in {steps} steps",
    )
    left, right = st.columns([1, 3])
    left.image(gif, caption="animated", width=192)
    right.download_button(
        "Download GIF",
        gif,
        file_name=f"{run_id}-e{epoch}-{seed}-{seed_b}.gif",
        mime="image/gif",
        key="sample.download_gif",
        icon=":material/download:",
        on_click="ignore",
    )

view.publish()
