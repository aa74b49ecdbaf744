"""core.store.compare and the compare figures: hyperparameter diff, smoothing over a faint raw curve,
relative time, runs lacking a metric named, durations and parallel-coordinates axes."""

import pytest

from core.app import figures
from core.store import compare
from core.store.store import RunStore


def _run(run_id, config, metrics=None, **times):
    return {
        "run_id": run_id,
        "model": config.get("model", "convnet"),
        "dataset": "digits",
        "config": config,
        "metrics": metrics or {},
        **times,
    }


def test_differing_params_keeps_only_fields_that_differ_nested_and_missing_included():
    runs = [
        _run("a", {"model": "convnet", "epochs": 3, "optimizer": {"lr": 0.001, "beta": 0.9}, "run_id": "a"}),
        _run("b", {"model": "convnet", "epochs": 3, "optimizer": {"lr": 0.01, "beta": 0.9}, "run_id": "b"}),
        _run("c", {"model": "convnet", "epochs": 3, "optimizer": {"lr": 0.001, "beta": 0.9}, "mixup": 0.2,
                   "extensions": [{"epochs": 3, "at": 1.0}], "data": {"train_images": 10}}),
    ]
    names, rows = compare.differing_params(runs)
    assert names == ["mixup", "optimizer.lr"]  # epochs, model, beta equal; run_id, data, extensions are bookkeeping
    assert rows == [
        {"run": "a", "mixup": None, "optimizer.lr": 0.001},
        {"run": "b", "mixup": None, "optimizer.lr": 0.01},
        {"run": "c", "mixup": 0.2, "optimizer.lr": 0.001},
    ]
    assert compare.differing_params(runs[:1]) == ([], [{"run": "a"}])


def test_missing_names_each_run_lacking_a_metric():
    tables = {
        "cls": {"step": [1, 2], "val_accuracy": [0.5, 0.6], "loss": [1.0, 0.5]},
        "gan": {"step": [1, 2], "g_loss": [2.0, 1.0], "loss": [None, None]},  # only empty values
    }
    lacking = compare.missing(tables, ["val_accuracy", "loss", "g_loss"])
    assert lacking == {"val_accuracy": ["gan"], "loss": ["gan"], "g_loss": ["cls"]}
    caption = compare.missing_caption(lacking)
    assert (
        caption.startswith("Not drawn: ")
        and "gan has no val_accuracy" in caption
        and "cls has no g_loss" in caption
    )
    assert compare.missing(tables, ["step"]) == {} and compare.missing_caption({}) is None


def test_metric_table_has_relative_time_and_merges_step_and_epoch_rows(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    run_id = store.create_run(family="classifier", model="convnet", dataset="digits", config={})
    clock = iter([1000.0, 1003.5, 1007.0])
    monkeypatch.setattr("core.store.store.time.time", lambda: next(clock))
    store.log_metrics(run_id, {"loss": 2.0}, step=5, epoch=1, scope="step")
    store.log_metrics(run_id, {"loss": 1.5, "val_accuracy": 0.4}, step=10, epoch=1, scope="epoch")
    store.log_metrics(run_id, {"loss": 1.0}, step=15, epoch=2, scope="step")
    table = compare.metric_table(store, run_id, None, started=998.0)
    assert table["step"] == [5, 10, 15]
    assert table["time"] == [2.0, 5.5, 9.0]  # seconds since the run started, not timestamps
    assert table["loss"] == [2.0, 1.5, 1.0] and table["val_accuracy"] == [None, 0.4, None]
    assert compare.metric_table(store, run_id, "epoch")["time"] == [0.0]  # from the first row without a start
    assert compare.relative_times([5.0, 4.0], 4.5) == [0.5, 0.0]


def test_compare_figure_smooths_every_curve_over_its_faint_raw_curve_one_colour_per_run():
    tables = {
        "a": {"step": [1, 2, 3], "loss": [1.0, 0.0, 1.0], "acc": [0.1, 0.2, 0.3]},
        "b": {"step": [1, 2, 3], "loss": [2.0, 1.0, 2.0]},
    }
    figure = figures.compare_runs(tables, ["loss", "acc"], x="step", smoothing=0.5, log_y=True)
    traces = [trace for trace in figure.data]
    raw = [trace for trace in traces if trace.name.endswith("(raw)")]
    smoothed = [trace for trace in traces if not trace.name.endswith("(raw)")]
    assert len(raw) == len(smoothed) == 3  # a: loss, acc; b: loss (b has no acc)
    assert all(trace.opacity < 0.5 for trace in raw)
    a_loss = next(trace for trace in smoothed if trace.name == "a" and trace.xaxis == "x")
    assert list(a_loss.y) == pytest.approx(figures.smooth([1.0, 0.0, 1.0], 0.5))
    colors = {trace.name.removesuffix(" (raw)"): set() for trace in traces}
    for trace in traces:
        colors[trace.name.removesuffix(" (raw)")].add(trace.line.color)
    assert all(len(found) == 1 for found in colors.values()) and colors["a"] != colors["b"]
    assert figure.layout.yaxis.type == "log" and figure.layout.yaxis2.type == "log"
    assert figure.layout.yaxis.title.text == "loss" and figure.layout.xaxis.title.text == "step"
    legend, height, top = figure.layout.legend, figure.layout.height, figure.layout.margin.t
    # Horizontal, in the band above the plots (below the title): never on an axis title.
    assert legend.orientation == "h" and legend.yref == "container" and 30 < (1 - legend.y) * height < top


def test_run_colors_are_distinct_and_follow_the_order():
    colors = compare.run_colors([f"r{i}" for i in range(10)])
    assert len(set(colors.values())) == 10
    assert compare.run_colors(["x", "y"]) == {"x": compare.PALETTE[0], "y": compare.PALETTE[1]}


def test_training_time_sums_epochs_across_resumes_and_wall_time_spans_creation_to_end(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create_run(family="classifier", model="convnet", dataset="digits", config={})
    assert compare.training_seconds(store, run_id) is None
    for epoch, seconds in ((1, 2.0), (2, 3.0)):
        store.log_metrics(run_id, {"epoch_seconds": seconds}, step=epoch * 10, epoch=epoch, scope="epoch")
    store.log_metrics(run_id, {"epoch_seconds": 4.0}, step=30, epoch=3, scope="epoch")  # after a resume
    assert compare.training_seconds(store, run_id) == 9.0
    assert compare.wall_seconds({"created_ts": 100.0, "finished_ts": 160.0}) == 60.0
    assert compare.wall_seconds({"created_ts": 100.0, "finished_ts": None}, now=130.0) == 30.0
    assert compare.wall_seconds({"created_ts": None}) is None


def test_parallel_dimensions_use_differing_config_and_leave_out_runs_without_the_metric():
    runs = [
        _run("a", {"model": "convnet", "lr": 0.1, "optimizer": "adam"}),
        _run("b", {"model": "convnet", "lr": 0.01, "optimizer": "sgd"}),
        _run("c", {"model": "convnet", "lr": 0.001, "optimizer": "adam"}),
        _run("g", {"model": "dcgan", "lr": 0.5}),
    ]
    finals = {
        "a": {"test_accuracy": 0.9},
        "b": {"test_accuracy": 0.7},
        "c": {"test_accuracy": 0.8},
        "g": {"fid_cls": 30.0},
    }
    dimensions, left_out = compare.parallel_dimensions(runs, finals, "test_accuracy")
    assert left_out == ["g"]
    assert [d["label"] for d in dimensions] == ["lr", "optimizer", "test_accuracy"]
    assert dimensions[0]["values"] == [0.1, 0.01, 0.001]
    assert dimensions[1]["ticktext"] == ["adam", "sgd"] and dimensions[1]["values"] == [0, 1, 0]
    assert dimensions[2]["values"] == [0.9, 0.7, 0.8]
    figure = figures.parallel_coordinates(dimensions, "test_accuracy")
    assert len(figure.data[0].dimensions) == 3 and "test_accuracy" in figure.layout.title.text
    assert compare.parallel_dimensions(runs, finals, "kid_cls") == ([], ["a", "b", "c", "g"])


def test_final_metrics_prefer_recorded_finals_and_keep_only_numbers():
    run = _run("a", {}, {"test_accuracy": 0.9, "confusion_matrix": [[1]], "reference_run": "x", "loss": None})
    assert compare.final_metrics(run, {"loss": 0.3, "val_accuracy": 0.85}) == {
        "loss": 0.3,
        "val_accuracy": 0.85,
        "test_accuracy": 0.9,
    }


def test_samples_wrap_in_rows_with_readable_captions():
    assert compare.chunks(list("abcdefg"), compare.SAMPLE_COLUMNS) == [
        ["a", "b", "c"],
        ["d", "e", "f"],
        ["g"],
    ]
    caption = compare.sample_caption(_run("dcgan-1", {"model": "dcgan"}), 7)
    assert caption.startswith("**dcgan-1**") and "dcgan on digits" in caption and "epoch 7" in caption


def test_default_final_prefers_a_test_score():
    assert compare.default_final(["fid_cls", "test_accuracy", "val_accuracy"]) == "test_accuracy"
    assert compare.default_final(["zeta"]) == "zeta"


def test_default_metrics_pick_an_accuracy_and_a_loss():
    assert compare.default_metrics(["accuracy", "d_loss", "loss", "val_accuracy"]) == ["val_accuracy", "loss"]
    assert compare.default_metrics(["zeta"]) == ["zeta"]
