"""The Runs page as a user drives it: tab and confusion cell in the link, one colour per run,
compare controls (metrics, smoothing, log-y, x axis, differing hyperparameters), parallel
coordinates over the filtered runs, tags and notes, GAN samples in a grid, training vs wall time."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from core.common import images
from core.store.store import RunStore
from tests.app.harness import assert_clean, open_page

CLASSES = [str(digit) for digit in range(10)]
# (model, family, learning rate, batch size) of the stored runs, oldest first.
RUNS = (
    ("convnet", "classifier", 0.001, 64),
    ("convnet", "classifier", 0.01, 128),
    ("dcgan", "gan", 0.0002, 64),
    ("cgan", "gan", 0.0002, 64),
    ("dcgan", "gan", 0.001, 64),
    ("dcgan", "gan", 0.0005, 128),
)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A store of six finished runs written directly (3 epochs of metrics each, GAN sample grids,
    a confusion matrix and an untrained checkpoint for the first classifier)."""
    home = tmp_path_factory.mktemp("runs-page")
    store = RunStore(home)
    ids = []
    for index, (model, family, learning_rate, batch_size) in enumerate(RUNS):
        config = {
            "model": model,
            "dataset": "digits",
            "epochs": 3,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "data": {"class_names": CLASSES},
        }
        run_id = store.create_run(
            family=family, model=model, dataset="digits", config=config, status="completed"
        )
        for epoch in (1, 2, 3):
            if family == "classifier":
                values = {
                    "loss": 1.0 / epoch + index,
                    "val_accuracy": 0.5 + 0.1 * epoch,
                    "epoch_seconds": 1.5,
                }
            else:
                values = {
                    "g_loss": 2.0 / epoch,
                    "d_loss": 1.0,
                    "fid_cls": 50.0 / epoch + index,
                    "epoch_seconds": 2.0,
                }
                images.save_png(
                    np.full((8, 8, 1), 40 * epoch, np.uint8),
                    store.run_dir(run_id) / "samples" / f"epoch_{epoch:03d}.png",
                )
            store.log_metrics(run_id, values, step=epoch * 10, epoch=epoch, scope="epoch")
        if family == "classifier":
            matrix = np.eye(10, dtype=int) * 30
            matrix[2, 0], matrix[7, 1] = 3, 2
            store.update_run(
                run_id, metrics={"test_accuracy": 0.8 + index / 100, "confusion_matrix": matrix.tolist()}
            )
        else:
            store.update_run(run_id, metrics={"fid_cls": 30.0 + index})
        ids.append(run_id)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )
    (store.run_dir(ids[0]) / "checkpoints").mkdir()
    model.save(store.run_dir(ids[0]) / "checkpoints" / "epoch_003.keras")
    return home, ids


@pytest.fixture
def home(stored, monkeypatch):
    path, ids = stored
    monkeypatch.setenv("CONVGAN_HOME", str(path))
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    return path, ids


def _spec(at, key: str) -> dict:
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(f"-{key}"):
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart {key}")


def _frame(at, which: str):
    """The runs table (it has a status column) or the differing-hyperparameters table (it has not):
    AppTest does not expose a dataframe's key."""
    frames = [element.value for element in at.dataframe]
    return next(frame for frame in frames if ("status" in frame.columns) == (which == "table"))


def test_link_reopens_the_tab_and_the_confusion_cell(home):
    _, ids = home
    at = open_page("runs", {"run": ids[0], "tab": "Results", "cell": "7-1"})
    assert_clean(at)
    assert not at.warning, [w.value for w in at.warning]
    assert at.session_state["runs.tab"] == "Results"
    assert at.selectbox(key="runs.cell").value == "7-1"
    assert at.query_params["tab"] == "Results" and at.query_params["cell"] == "7-1"
    at.session_state["runs.tab"] = "Config"  # the user opens another tab
    at.selectbox(key="runs.cell").set_value("2-0").run()
    assert at.query_params["tab"] == "Config" and at.query_params["cell"] == "2-0"
    assert "tab=Config" in at.code[-1].value and "cell=2-0" in at.code[-1].value  # the share link


def test_compare_draws_each_run_in_one_colour_labels_charts_and_names_runs_without_a_metric(home):
    _, ids = home
    classifier, gan = ids[0], ids[2]
    at = open_page("runs", {"compare": f"{classifier},{gan}", "run": classifier})
    assert_clean(at)
    at.multiselect(key="runs.metric").set_value(["val_accuracy", "loss", "fid_cls"]).run()
    spec = _spec(at, "runs.overlay")
    colors: dict[str, set] = {}
    for trace in spec["data"]:
        colors.setdefault(trace["name"], set()).add(trace["line"]["color"])
    assert set(colors) == {classifier, gan}
    assert all(len(found) == 1 for found in colors.values()) and colors[classifier] != colors[gan]
    layout = spec["layout"]
    legend = layout["legend"]  # horizontal, in the band above the plot area and under the title
    assert legend["orientation"] == "h" and legend["yref"] == "container"
    assert 30 < (1 - legend["y"]) * layout["height"] < layout["margin"]["t"]
    assert layout["title"]["text"]
    for axis in ("xaxis", "xaxis2", "xaxis3", "yaxis", "yaxis2", "yaxis3"):
        assert layout[axis]["title"]["text"], axis
    captions = [caption.value for caption in at.caption]
    assert any(f"{gan} has no val_accuracy" in c and f"{classifier} has no fid_cls" in c for c in captions), (
        captions
    )
    single = _spec(at, "runs.loss")  # the run's own charts are labelled too
    assert single["layout"]["title"]["text"] and single["layout"]["yaxis"]["title"]["text"]
    assert single["layout"]["xaxis"]["title"]["text"] == "epoch"


def test_compare_smooths_uses_log_y_relative_time_and_tables_differing_hyperparameters(home):
    _, ids = home
    at = open_page("runs", {"compare": f"{ids[0]},{ids[1]}"})
    assert_clean(at)
    at.multiselect(key="runs.metric").set_value(["loss"])
    at.slider(key="runs.smooth").set_value(0.6)
    at.toggle(key="runs.logy").set_value(True)
    at.segmented_control(key="runs.x").set_value("time").run()
    assert_clean(at)
    spec = _spec(at, "runs.overlay")
    raw = [trace for trace in spec["data"] if trace["name"].endswith("(raw)")]
    assert len(raw) == 2 and all(trace["opacity"] < 0.5 for trace in raw)
    assert spec["layout"]["yaxis"]["type"] == "log"
    assert spec["layout"]["xaxis"]["title"]["text"] == "seconds since the run started"
    xs = [x for trace in spec["data"] for x in trace["x"]]
    assert min(xs) >= 0 and max(xs) < 600  # seconds, not timestamps
    assert at.query_params["x"] == "time" and at.query_params["logy"] == "true"
    table = _frame(at, "hparams")
    assert list(table.columns) == ["run", "batch_size", "learning_rate"]
    assert list(table["learning_rate"]) == [0.001, 0.01]


def test_parallel_coordinates_follow_the_table_filters(home):
    _, ids = home
    at = open_page("runs", {"final": "fid_cls"})
    assert_clean(at)
    spec = _spec(at, "runs.parallel")
    dimensions = spec["data"][0]["dimensions"]
    assert [d["label"] for d in dimensions][-1] == "fid_cls"
    assert "learning_rate" in [d["label"] for d in dimensions]
    assert len(dimensions[-1]["values"]) == 4  # the four GAN runs
    assert any("have no fid_cls" in c.value and ids[0] in c.value for c in at.caption)
    at.selectbox(key="runs.family").set_value("gan")
    at.text_input(key="runs.q").set_value("dcgan").run()
    spec = _spec(at, "runs.parallel")
    assert sorted(spec["data"][0]["dimensions"][-1]["values"]) == [32.0, 34.0, 35.0]


def test_tags_and_note_are_edited_shown_and_filtered(tmp_path, monkeypatch, stored):
    source, ids = stored
    home = tmp_path / "home"
    import shutil

    shutil.copytree(source, home)
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    at = open_page("runs", {"run": ids[1]})
    assert_clean(at)
    at.multiselect(key="runs.tags").set_value(["Baseline", "lr-sweep"])
    at.text_area(key="runs.note").set_value("higher learning rate").run()
    at.button(key="runs.save_annotations").click().run()
    assert_clean(at)
    record = RunStore(home).get_run(ids[1])
    assert record["tags"] == ["baseline", "lr-sweep"] and record["note"] == "higher learning rate"
    assert any("saved" in s.value for s in at.success)
    rows = _frame(at, "table")
    assert list(rows.loc[rows["run"] == ids[1], "tags"].iloc[0]) == ["baseline", "lr-sweep"]
    at.multiselect(key="runs.tag").set_value(["baseline"]).run()
    assert list(_frame(at, "table")["run"]) == [ids[1]]
    assert at.query_params["tag"] == "baseline"
    linked = open_page("runs", {"tag": "lr-sweep"})  # the link keeps the filter
    assert list(_frame(linked, "table")["run"]) == [ids[1]]
    monkeypatch.setenv("CONVGAN_DEMO", "1")
    demo = open_page("runs", {"run": ids[1]})
    assert_clean(demo)
    keys = {element.key for kind in ("button", "multiselect", "text_area") for element in demo.get(kind)}
    assert "runs.save_annotations" not in keys and "runs.tags" not in keys and "runs.note" not in keys
    assert any("`baseline`" in m.value and "higher learning rate" in m.value for m in demo.markdown)


def test_gan_samples_wrap_in_rows_of_three_with_run_model_and_epoch(home):
    _, ids = home
    gans = ids[2:]
    at = open_page("runs", {"compare": ",".join(gans), "side_epoch": "2"})
    assert_clean(at)
    captions = [m.value for m in at.markdown if m.value.startswith("**") and "· epoch 2" in m.value]
    assert len(captions) == 4
    for run_id, caption in zip(gans, captions, strict=True):
        assert caption.startswith(f"**{run_id}**") and (
            "dcgan on digits" in caption or "cgan on digits" in caption
        )
    rows = _sample_rows(at, captions)
    assert [len(row) for row in rows] == [3, 1]


def _sample_rows(at, captions):
    """The caption texts of each row of columns that holds sample captions."""
    rows = []

    def walk(node):
        children = list(getattr(node, "children", {}).values())
        if getattr(node, "type", None) == "horizontal" or (
            children and all(getattr(c, "type", None) == "column" for c in children)
        ):
            row = [m.value for c in children for m in _markdowns(c) if m.value in captions]
            if row:
                rows.append(row)
                return
        for child in children:
            walk(child)

    walk(at._tree)
    return rows


def _markdowns(node):
    found = []
    if getattr(node, "type", None) == "markdown":
        found.append(node)
    for child in getattr(node, "children", {}).values():
        found += _markdowns(child)
    return found


def test_run_table_and_detail_show_training_time_and_wall_time_apart(home):
    _, ids = home
    at = open_page("runs", {"run": ids[0]})
    assert_clean(at)
    rows = _frame(at, "table").set_index("run")
    assert rows.loc[ids[0], "training_s"] == 4.5  # three epochs of 1.5 s
    assert rows.loc[ids[2], "training_s"] == 6.0
    assert rows.loc[ids[0], "wall_s"] >= 0  # from creation, the run has no start or end recorded
    head = next(m.value for m in at.markdown if m.value.startswith(f"**{ids[0]}**"))
    assert "training 4 s" in head and "wall " in head
