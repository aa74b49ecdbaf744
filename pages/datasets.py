"""Datasets: what is in a dataset (counts, classes, images, mean images, pixel values), and uploads."""

import streamlit as st

from core.app import datasets_view, figures
from core.app.share import Param
from core.data.datasets import dataset_stats
from pages import ui

PER_PAGE = 64


@st.cache_data(max_entries=8, show_spinner="Computing statistics...")
def stats(spec: str, version: float):
    return dataset_stats(ui.load_dataset(spec))


@st.cache_data(max_entries=32, show_spinner=False)
def grid(spec: str, version: float, split: str, class_index: int | None, seed: int, page: int) -> tuple:
    data = ui.load_dataset(spec)
    x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
    order = datasets_view.shuffled_indices(y, len(x), class_index, seed)
    chosen = order[(page - 1) * PER_PAGE : page * PER_PAGE]
    if len(chosen) == 0:
        return None, len(order)
    return datasets_view.grid_image(x[chosen], ncols=16, min_side=320), len(order)


ui.header("Datasets")
view = ui.View("datasets")
store = ui.store()

if not ui.demo():
    with st.expander("Upload a dataset (zip of class folders, or npz)", icon=":material/upload:"):
        upload = st.file_uploader(
            "Dataset file",
            type=["zip", "npz"],
            key="datasets.upload_file",
            help="zip: one folder per class with .png/.jpg images (or flat, unlabeled: GANs "
            "only). npz: arrays x (N,H,W[,C]) and optional y.",
        )
        name = st.text_input("Name", key="datasets.upload_name", placeholder="default: the file name")
        if st.button("Save dataset", key="datasets.upload_save", disabled=upload is None):
            with ui.guard():
                spec = datasets_view.save_upload(store, upload.name, upload.getvalue(), name or None)
                view.set("dataset", spec)
                st.success(f"Saved. Train on it with the dataset `{spec}`.", icon=":material/check:")

with ui.guard(stop=True):
    infos = {info.name: info for info in ui.list_datasets()}
    specs = ui.dataset_specs()
dataset_key = view.bind(Param("dataset", str, "digits").with_choices(specs))
spec = st.selectbox("Dataset", specs, key=dataset_key, format_func=datasets_view.dataset_label)

info = infos.get(spec)
if info is not None and not info.available:
    st.warning(
        f"{spec} is not on this machine. How to get it: {info.how_to_get}", icon=":material/cloud_off:"
    )
    view.publish()
    st.stop()

with ui.guard(stop=True):
    data = ui.load_dataset(spec)
    version = datasets_view.spec_version(spec)
    summary = stats(spec, version)

info = data.info
st.caption(
    f"{info.description} · source: {info.source}" + (f" · license: {info.license}" if info.license else "")
)
for note in data.notes:
    st.caption(f"note: {note}")
height, width, channels = data.image_shape
cols = st.columns(4)
cols[0].metric("Train images", f"{summary.split_counts['train']:,}")
cols[1].metric("Test images", f"{summary.split_counts['test']:,}")
cols[2].metric("Image shape", f"{height}x{width}x{channels}")
cols[3].metric("Classes", data.num_classes if data.labeled else "unlabeled")

if data.labeled:
    counts = {split: list(by_class.values()) for split, by_class in summary.class_counts.items()}
    st.plotly_chart(figures.class_distribution(counts, data.class_names), key="datasets.class_chart")

st.subheader("Images")
controls = st.columns([2, 2, 2, 2, 1.4], vertical_alignment="bottom")
split = controls[0].segmented_control(
    "Split",
    ["train", "test"],
    key=view.bind(Param("split", str, "train", choices=("train", "test"))),
    required=True,
)
class_options = ["all", *data.class_names] if data.labeled else ["all"]
class_name = controls[1].selectbox(
    "Class",
    class_options,
    key=view.bind(Param("cls", str, "all").with_choices(class_options, default="all", pinned=False)),
)
class_index = None if class_name == "all" else data.class_names.index(class_name)
shuffle_key = view.bind(Param("shuffle", int, 0, minimum=0, maximum=2**31 - 1))
controls[2].number_input(
    "Shuffle seed (0 = dataset order)", min_value=0, max_value=2**31 - 1, step=1, key=shuffle_key
)
labels = data.y_train if split == "train" else data.y_test
total = len(
    datasets_view.shuffled_indices(labels, len(data.x_train if split == "train" else data.x_test), class_index, 0)
)
pages = datasets_view.page_count(total, PER_PAGE)
page = controls[3].number_input(
    f"Page (of {pages})",
    min_value=1,
    max_value=pages,
    step=1,
    key=view.bind(Param("page", int, 1, minimum=1, maximum=pages)),
)


def _reshuffle():
    st.session_state[shuffle_key] = int(st.session_state[shuffle_key]) % (2**31 - 1) + 1


controls[4].button("Reshuffle", key="datasets.reshuffle", on_click=_reshuffle, icon=":material/shuffle:")
picture, count = grid(spec, version, split, class_index, int(st.session_state[shuffle_key]), int(page))
if picture is None:
    st.info(f"No {split} images" + (f" of class {class_name}" if class_index is not None else "") + ".")
else:
    first = (page - 1) * PER_PAGE + 1
    ui.image(
        picture,
        caption=f"{split} images {first}-{min(count, page * PER_PAGE)} of {count}"
        + (f" (class {class_name})" if class_index is not None else ""),
    )

left, right = st.columns(2)
with left:
    st.subheader("Mean image per class" if data.labeled else "Mean image")
    means = datasets_view.mean_images(summary.class_mean_images)[:50]
    names = list(data.class_names)[:50] if data.labeled else ["all images"]
    st.image([datasets_view.enlarge(mean, 64) for mean in means], caption=names, output_format="PNG")
with right:
    st.plotly_chart(
        figures.pixel_histogram(datasets_view.histogram_fractions(summary.pixel_histogram)),
        key="datasets.histogram",
    )
    st.caption(
        "pixel mean "
        + ", ".join(f"{v:.1f}" for v in summary.pixel_mean)
        + " · std "
        + ", ".join(f"{v:.1f}" for v in summary.pixel_std)
    )

view.publish()
