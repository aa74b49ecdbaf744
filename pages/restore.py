"""Restore: degrade an image as a restoration run's task does (or take an upload as it is), then
show the degraded input, the classical baseline, the model's restoration and the original side by
side, with a before/after wipe and a zoomed crop. A dcgan/wgan-gp run inpaints by latent search."""

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from core.app import classify_view, datasets_view, demo_limits, restore_view, runs_view
from core.app.share import Param
from core.common import images
from core.store.checkpoints import checkpoint_path
from pages import ui

CANVAS_SIDE = 224  # pixels of the mask canvas's longer side


@st.cache_data(max_entries=16, show_spinner="Restoring...")
def restored(path: str, mtime: float, run: dict, image: np.ndarray, upload: bool, holes, noise, seed: int):
    method = restore_view.method_of(run)
    model = ui.load_gan(path) if method == "gan-prior" else ui.load_model(path)
    return restore_view.restore_image(run, model, image, degraded_input=upload, holes=holes, noise=noise, seed=seed)


def canvas():
    """The drawing canvas of streamlit-drawable-canvas (a dependency of the project)."""
    return st_canvas


def draw_mask(image: np.ndarray):
    """A mask painted on a canvas beside ``image`` (brush size, eraser); None until something is painted.

    The canvas is black with no picture behind it, so its pixels are the strokes alone."""
    st_canvas = canvas()
    if st_canvas is None:
        st.info("Drawing needs streamlit-drawable-canvas; upload a mask instead.")
        return None
    height, width = image.shape[:2]
    factor = max(1, CANVAS_SIDE // max(height, width))
    tools = st.columns(2)
    brush = tools[0].slider("Brush size (image pixels)", 1, max(2, min(height, width) // 2), 1, key="restore.brush")
    eraser = tools[1].toggle("Eraser", key="restore.eraser")
    sides = st.columns(2)
    with sides[0]:
        drawing = st_canvas(
            stroke_width=brush * factor, stroke_color="#000000" if eraser else "#FFFFFF", background_color="#000000",
            height=height * factor, width=width * factor, drawing_mode="freedraw", return_image_data=True,
            key="restore.canvas",
        )
    with sides[1]:
        ui.image(images.upscale(image, factor), caption="the image, at the canvas's scale")
    if drawing is None or drawing.image_data is None or not drawing.image_data[..., :3].any():
        st.caption("Paint the hole where it lies on the image (white strokes; the eraser paints them out).")
        return None
    return restore_view.mask_from_drawing(drawing.image_data, height, width)


ui.header("Restore")
view = ui.View("restore")
store = ui.store()
runs = restore_view.restorable_runs(
    [run for family in ("restoration", "gan", "classifier") for run in runs_view.runs_with_checkpoints(store, family)]
)
if not [run for run in runs if run["family"] != "classifier"]:
    st.info("No restoration run yet: train an espcn, unet or pix2pix on the Train page (Restoration), or a "
            "dcgan/wgan-gp for GAN-prior inpainting.")
    view.publish()
    st.stop()
cols = st.columns([3, 1])
run, epoch = view.run_and_checkpoint("Run (restoration, or a dcgan/wgan-gp for inpainting)", runs, store, cols)
with ui.guard(stop=True):
    method = restore_view.method_of(run)
    degradation = restore_view.degradation_of(run)
    path = checkpoint_path(store, run["run_id"], epoch)
    data = ui.load_dataset(run["dataset"], run["config"].get("image_size"))
st.caption(f"{run['model']}: {degradation.task}" + (f" x{degradation.scale}" if degradation.task ==
           "super-resolution" else "") + (" by latent search in the GAN (no training)" if method == "gan-prior" else ""))

sources = {"test": "Test image", "draw": "Drawing", "upload": "Upload (restore as it is)"}
source = st.segmented_control("Image", list(sources), format_func=sources.get, required=True,
                              key=view.bind(Param("source", str, "test", choices=tuple(sources))))
options = {param.name: param for param in restore_view.view_params(run, len(data.x_test))}
row = st.columns(4)
seed = row[1].number_input("Seed", step=1, key=view.bind(options["seed"]), help="noise and latent-search seed")
noise = None
if "noise" in options:
    noise = row[2].number_input("Noise sigma", step=0.05, format="%g", key=view.bind(options["noise"]),
                                help="fraction of the pixel range")
image = None
if source == "test":
    index = row[0].number_input(f"Test image (0-{len(data.x_test) - 1})", step=1, key=view.bind(options["image"]))
    image = data.x_test[int(index)]
elif source == "draw":
    height, width, channels = data.x_test.shape[1:]
    st_canvas = canvas()
    if st_canvas is None:
        st.info("Drawing needs streamlit-drawable-canvas; pick a test image or upload one instead.")
    else:
        factor = max(1, CANVAS_SIDE // max(height, width))
        st.caption("Draw with the mouse, white on black like the digits: it is degraded, then restored.")
        drawing = st_canvas(stroke_width=max(2, factor), stroke_color="#FFFFFF", background_color="#000000",
                            height=height * factor, width=width * factor, drawing_mode="freedraw",
                            return_image_data=True, key="restore.drawing")
        if drawing is not None and drawing.image_data is not None:
            with ui.guard(stop=True):
                image = restore_view.image_from_drawing(drawing.image_data, height, width, channels)
else:
    upload = st.file_uploader("An image (png/jpg)", type=["png", "jpg", "jpeg"], key="restore.upload",
                              max_upload_size=demo_limits.DEMO_MAX_UPLOAD_MB if ui.demo() else None)
    if upload is not None:
        with ui.guard(stop=True):
            image = classify_view.decode_image(upload.getvalue(), upload.name)

holes = None
if image is not None and degradation.task == "inpaint":
    mask_source = row[3].selectbox("Mask", list(restore_view.MASK_SOURCES), format_func=restore_view.MASK_SOURCES.get,
                                   key=view.bind(options["mask"]))
    height, width = image.shape[:2]
    with ui.guard(stop=True):
        if mask_source == "draw":
            holes = draw_mask(image)
        elif mask_source == "upload":
            mask_file = st.file_uploader("A mask (white = hole, the image's size)", type=["png", "jpg", "jpeg"],
                                         key="restore.mask_upload")
            if mask_file is not None:
                holes = restore_view.mask_from_upload(classify_view.decode_image(mask_file.getvalue()), height, width)
        else:
            holes = restore_view.preset_mask(mask_source, height, width, seed=int(seed))
if image is None or (degradation.task == "inpaint" and holes is None):
    st.caption("Choose an image" + (" and a mask" if degradation.task == "inpaint" else "") + " to restore.")
    view.publish()
    st.stop()

with ui.guard(stop=True):
    result = restored(str(path), path.stat().st_mtime, run, image, source == "upload", holes, noise, int(seed))
size = result.panels["model"].shape[:2]
shown = {name: restore_view.to_display(panel, *size) for name, panel in result.panels.items() if panel is not None}
columns = st.columns(len(shown))
for column, (name, panel) in zip(columns, shown.items(), strict=True):
    score = result.psnr.get(name)
    hole = result.hole_psnr.get(name)
    caption = name + (f" · {score:.2f} dB" if score is not None else "") + (f" (hole {hole:.2f} dB)" if hole else "")
    with column:
        ui.image(datasets_view.enlarge(panel, 200), caption=caption)

compare = st.columns(2)
with compare[0]:
    against = st.segmented_control("Before", [name for name in shown if name != "model"], required=True,
                                   key=view.bind(Param("before", str, "degraded", choices=tuple(shown))))
    split = st.select_slider("Before | after (model)", options=list(range(0, 101, 10)), format_func="{}%".format,
                             key=view.bind(Param("split", int, 50, choices=tuple(range(0, 101, 10)))))
    ui.image(datasets_view.enlarge(restore_view.wipe(shown[against], shown["model"], split / 100), 320),
             caption=f"model left of the line, {against} right of it")
with compare[1]:
    zoom_at = st.columns(2)
    zoom_row = zoom_at[0].slider("Zoom row %", 0, 100, step=5, key=view.bind(Param("zoom_row", int, 50, minimum=0,
                                                                                    maximum=100)))
    zoom_col = zoom_at[1].slider("Zoom column %", 0, 100, step=5, key=view.bind(Param("zoom_col", int, 50, minimum=0,
                                                                                       maximum=100)))
    side = max(4, min(size) // 2)
    crops = [restore_view.zoom(panel, zoom_row / 100, zoom_col / 100, side) for panel in shown.values()]
    ui.image(datasets_view.enlarge(np.concatenate(crops, axis=1), 160), caption=" | ".join(shown))
view.publish()
