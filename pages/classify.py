"""Classify: run a ConvNet run on an uploaded, drawn or test image (input as the model sees it,
top-k probabilities, saliency), or on a zip of images (table + CSV)."""

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from core.app import classify_view, datasets_view, demo_limits, figures, runs_view
from core.app.share import Param
from core.data.datasets import load_dataset
from core.evaluation import novelty
from core.runs.inference import class_names_of
from core.store.checkpoints import checkpoint_path
from pages import ui

SOURCES = {"test": "Test image", "upload": "Upload", "draw": "Draw"}
SALIENCY = ("smoothgrad", "gradcam")  # core.training.classifier.saliency methods


@st.cache_data(max_entries=32, show_spinner="Computing the saliency map...")
def explain(path: str, mtime: float, prepared, class_index: int, method: str):
    return classify_view.saliency_map(ui.load_model(path), prepared, class_index, method)


@st.cache_resource(max_entries=6, show_spinner="Learning what the training images look like (once per checkpoint)...")
def novelty_check(path: str, mtime: float, dataset: str, image_size: int | None):
    data = load_dataset(dataset, image_size=image_size)
    return novelty.for_checkpoint(ui.load_model(path), path, data, save=not ui.demo())  # a demo writes nothing


def canvas():
    """The drawing canvas of streamlit-drawable-canvas (a dependency of the project)."""
    return st_canvas


ui.header("Classify")
view = ui.View("classify")
store = ui.store()
runs = runs_view.runs_with_checkpoints(store, "classifier")
if not runs:
    st.info(
        "No classifier run with a checkpoint yet: train a convnet on the Train page (or the starter models "
        "on Home)."
    )
    view.publish()
    st.stop()
cols = st.columns([3, 1, 1])
run, epoch = view.run_and_checkpoint("Classifier run", runs, store, cols)
run_id = run["run_id"]
top_k = cols[2].number_input(
    "Top k", min_value=1, max_value=10, step=1, key=view.bind(Param("top_k", int, 3, minimum=1, maximum=10))
)

with ui.guard(stop=True):
    path = checkpoint_path(store, run_id, epoch)
    model = ui.load_model(path)
    class_names = class_names_of(run, int(model.output_shape[-1]))

source = st.segmented_control(
    "Image",
    list(SOURCES),
    format_func=SOURCES.get,
    required=True,
    key=view.bind(Param("source", str, "test", choices=tuple(SOURCES))),
)
image, caption = None, ""
if source == "test":
    with ui.guard(stop=True):
        data = ui.load_dataset(run["dataset"], run["config"].get("image_size"))
    count = len(data.x_test)
    index_key = view.bind(Param("image", int, 0, minimum=0, maximum=max(0, count - 1)))

    def _random():
        st.session_state[index_key] = int(np.random.default_rng().integers(count))

    pick = st.columns([2, 1, 3], vertical_alignment="bottom")
    index = pick[0].number_input(
        f"Test image (0-{count - 1})", min_value=0, max_value=max(0, count - 1), step=1, key=index_key
    )
    pick[1].button("Random", key="classify.random", on_click=_random, icon=":material/casino:")
    image = data.x_test[int(index)]
    truth = data.class_names[int(data.y_test[int(index)])] if data.y_test is not None else "?"
    caption = f"test image {index} (true class: {truth})"
elif source == "upload":
    if ui.demo():
        st.caption(demo_limits.demo_notice("classify"))
    upload = st.file_uploader(
        "An image (png/jpg)",
        type=["png", "jpg", "jpeg"],
        key="classify.upload",
        max_upload_size=demo_limits.DEMO_MAX_UPLOAD_MB if ui.demo() else None,
    )
    if upload is not None:
        with ui.guard(stop=True):
            image = classify_view.decode_image(upload.getvalue(), upload.name)
        caption = upload.name
else:
    st_canvas = canvas()
    if st_canvas is None:
        st.info(
            "Drawing needs streamlit-drawable-canvas (`pip install streamlit-drawable-canvas`); upload an "
            "image instead."
        )
    else:
        st.caption("Draw with the mouse: white on black, like the digits.")
        drawing = st_canvas(
            stroke_width=18,
            stroke_color="#FFFFFF",
            background_color="#000000",
            height=224,
            width=224,
            drawing_mode="freedraw",
            return_image_data=True,
            key="classify.canvas",
        )
        if drawing is not None and drawing.image_data is not None:
            image = classify_view.canvas_to_image(drawing.image_data)
            caption = "your drawing"

result = None
if image is None:
    st.caption("Choose an image to classify.")
else:
    check = None
    with ui.guard():  # without the check (the run's dataset is gone), classify all the same
        check = novelty_check(str(path), path.stat().st_mtime, run["dataset"], run["config"].get("image_size"))
    with ui.guard():
        result = classify_view.classify(model, image, class_names, int(top_k), check)
if result is not None:
    if result.get("unusual"):
        st.warning(
            f"Unusual image: {result['unusual_reason']}. The label below is a guess, not a confident answer.",
            icon=":material/help:",
        )
    cols = st.columns([1, 1, 2])
    with cols[0]:
        ui.image(datasets_view.enlarge(image, 160), caption=caption)
    with cols[1]:
        ui.image(datasets_view.enlarge(result["prepared"], 160), caption="as the model sees it")
        for note in result["notes"]:
            st.caption(f"note: {note}")
    cols[2].plotly_chart(figures.top_k(result["top"]), key="classify.top_chart")

    st.subheader("Saliency")
    scols = st.columns([1, 1, 2])
    best = int(result["top"][0]["class_index"])
    target = scols[2].selectbox(
        "Explain the class",
        list(range(len(class_names))),
        format_func=class_names.__getitem__,
        index=None,
        placeholder=f"the predicted class ({class_names[best]})",
        key=view.bind(Param("explain", int, None, optional=True).with_choices(range(len(class_names)))),
    )
    method = scols[2].segmented_control(
        "Method", SALIENCY, required=True, key=view.bind(Param("method", str, SALIENCY[0], choices=SALIENCY))
    )
    class_index = best if target is None else int(target)
    with ui.guard():
        heat = explain(str(path), path.stat().st_mtime, result["prepared"], class_index, method)
        with scols[0]:
            ui.image(
                datasets_view.enlarge(classify_view.saliency_overlay(result["prepared"], heat), 160),
                caption=f"what points to {class_names[class_index]}",
            )
        with scols[1]:
            ui.image(
                datasets_view.enlarge(classify_view.heat_image(heat), 160), caption=f"{method} map (bright = strong)"
            )

if not ui.demo():  # a public demo takes single small images only, no archives
    st.subheader("Many images")
    batch = st.file_uploader("A zip of images", type=["zip"], key="classify.zip")
    if batch is not None:
        with ui.guard():
            rows = classify_view.classify_zip(model, batch.getvalue(), class_names, int(top_k))
            st.dataframe(rows, hide_index=True, key="classify.table")
            st.download_button(
                "Download CSV",
                classify_view.rows_csv(rows),
                file_name=f"{run_id}-classified.csv",
                mime="text/csv",
                key="classify.csv",
                icon=":material/download:",
                on_click="ignore",
            )

view.publish()
