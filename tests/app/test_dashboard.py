"""core.app.dashboard and core.app.figures: the view models behind the pages, without Streamlit."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.app import classify_view, datasets_view, figures, runs_view, sample_view
from core.common.errors import UserError
from core.store.store import RunStore


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_smoothing_is_debiased_and_skips_gaps():
    assert figures.smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])
    assert figures.smooth([0.0, None, 10.0], 0.0) == [0.0, None, 10.0]
    smoothed = figures.smooth([0.0, 10.0], 0.5)
    assert smoothed[1] == pytest.approx(10.0 * 0.5 / 0.75)
    with pytest.raises(ValueError):
        figures.smooth([1.0], 1.0)


def test_confusion_cells_per_class_accuracy_and_misclassified():
    matrix = [[5, 2, 0], [0, 4, 1], [3, 0, 2]]
    cells = runs_view.confusion_cells(matrix, ["a", "b", "c"])
    assert [(c["true"], c["predicted"], c["count"]) for c in cells] == [(2, 0, 3), (0, 1, 2), (1, 2, 1)]
    assert cells[0]["label"] == "true c -> predicted a (3)"
    assert runs_view.per_class_accuracy(matrix) == pytest.approx([5 / 7, 4 / 5, 2 / 5])
    labels, predictions = np.array([2, 2, 0, 2]), np.array([0, 2, 1, 0])
    assert runs_view.misclassified(labels, predictions, 2, 0).tolist() == [0, 3]
    figure = figures.confusion_matrix(matrix, ["a", "b", "c"])
    assert figure.data[0].z.tolist() == matrix


def test_canvas_drawing_becomes_white_on_black():
    canvas = np.zeros((20, 20, 4), np.uint8)
    canvas[..., 3] = 255  # opaque black background, as streamlit-drawable-canvas returns it
    assert classify_view.canvas_to_image(canvas) is None
    canvas[5:8, 5:15, :3] = 255
    image = classify_view.canvas_to_image(canvas)
    assert image.shape == (20, 20, 1) and image[6, 10, 0] == 255 and image[0, 0, 0] == 0
    transparent = np.zeros((20, 20, 4), np.uint8)
    transparent[5:8, 5:15] = 255
    assert classify_view.canvas_to_image(transparent)[6, 10, 0] == 255


def test_images_from_a_zip_and_clear_errors():
    digit = np.full((8, 8), 200, np.uint8)
    data = _zip(
        {"b/two.png": _png(digit), "a/one.png": _png(digit), "notes.txt": b"x", "__MACOSX/a/._one.png": b""}
    )
    assert [name for name, _ in classify_view.zip_image_entries(data)] == ["a/one.png", "b/two.png"]
    assert classify_view.decode_image(_png(digit)).shape == (8, 8, 1)
    with pytest.raises(UserError, match="not a zip"):
        classify_view.zip_image_entries(b"plain bytes")
    with pytest.raises(UserError, match="no .png/.jpg images"):
        classify_view.zip_image_entries(_zip({"readme.txt": b"x"}))
    with pytest.raises(UserError, match="not an image"):
        classify_view.decode_image(b"GIF89a broken", "x.gif")


def test_uploads_are_validated_before_they_are_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    store = RunStore(tmp_path / "home")
    rng = np.random.default_rng(0)
    files = {
        f"{label}/{i}.png": _png(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
        for label in ("cats", "dogs")
        for i in range(10)
    }
    spec = datasets_view.save_upload(store, "pets.zip", _zip(files))
    assert spec == f"zip:{store.home / 'uploads' / 'pets.zip'}"
    assert datasets_view.uploaded_datasets(store) == [spec]
    assert datasets_view.dataset_label(spec) == "pets (zip)"
    with pytest.raises(UserError, match=r"upload a \.zip"):
        datasets_view.save_upload(store, "pets.tar", b"x")
    with pytest.raises(UserError):
        datasets_view.save_upload(store, "broken.npz", b"definitely not numpy")
    assert sorted(p.name for p in (store.home / "uploads").iterdir()) == ["pets.zip"]


def test_estimate_uses_the_measured_throughput_of_the_same_model_and_data(tmp_path):
    store = RunStore(tmp_path / "home")
    assert runs_view.estimate(store, "convnet", "digits", 10, 1000) is None
    for speed in (900.0, 1100.0, 1000.0):
        run_id = store.create_run(
            family="classifier", model="convnet", dataset="digits", config={}, status="completed"
        )
        store.update_run(run_id, progress={"images_per_second": speed, "compile_seconds": 4.0})
    other = store.create_run(family="gan", model="dcgan", dataset="digits", config={}, status="completed")
    store.update_run(other, progress={"images_per_second": 1.0})
    guess = runs_view.estimate(store, "convnet", "digits", 10, 1000)
    assert guess == {
        "seconds": pytest.approx(10 * 1000 / 1000.0 + 4.0),
        "images_per_second": 1000.0,
        "runs": 3,
    }


def test_rows_filters_sorting_and_progress(tmp_path):
    store = RunStore(tmp_path / "home")
    first = store.create_run(
        family="classifier", model="convnet", dataset="digits", config={"epochs": 4}, status="completed"
    )
    store.update_run(
        first,
        metrics={"test_accuracy": 0.9, "images_per_second": 500.0},
        started=100.0,
        finished=130.0,
        progress={"epoch": 4, "epochs": 4},
    )
    second = store.create_run(
        family="gan", model="dcgan", dataset="digits", config={"epochs": 2}, status="running"
    )
    store.update_run(
        second,
        progress={
            "epoch": 1,
            "epochs": 2,
            "step": 10,
            "total_steps": 20,
            "fraction": 0.5,
            "images_per_second": 80.0,
            "eta_seconds": 65.0,
            "phase": "training",
        },
    )
    runs = store.list_runs()
    rows = {row["run"]: row for row in runs_view.run_rows(runs)}
    assert (
        rows[first]["test_accuracy"] == 0.9
        and rows[first]["duration_s"] == 30.0
        and rows[first]["epochs"] == "4/4"
    )
    assert [r["run"] for r in runs_view.sort_rows(list(rows.values()), "test_accuracy")] == [first, second]
    assert [r["run_id"] for r in runs_view.filter_runs(runs, family="gan")] == [second]
    assert [r["run_id"] for r in runs_view.filter_runs(runs, statuses=["completed"], text="CONV")] == [first]
    fraction, text = runs_view.progress_line(store.get_run(second))
    assert fraction == 0.5 and "epoch 1/2" in text and "80 img/s" in text and "ETA 1 min 5 s" in text
    assert runs_view.progress_line(store.get_run(first))[0] == 1.0


def test_gif_is_animated_and_metrics_csv_has_every_row(tmp_path):
    frames = np.stack([np.full((8, 8, 1), value, np.uint8) for value in (0, 120, 255)])
    with Image.open(io.BytesIO(sample_view.gif_bytes(frames))) as gif:
        assert gif.format == "GIF" and gif.n_frames == 4  # there and back: 0 120 255 120
    store = RunStore(tmp_path / "home")
    run_id = store.create_run(family="classifier", model="convnet", dataset="digits", config={})
    store.log_metrics(run_id, {"loss": 0.5, "accuracy": float("nan")}, step=3, epoch=1)
    lines = runs_view.metrics_csv(store, run_id).decode().splitlines()
    assert lines[0] == "scope,step,epoch,name,value,time" and len(lines) == 3
    assert lines[1].startswith("step,3,1,accuracy,,")  # NaN is stored as NULL: an empty cell


def test_gan_scores_name_the_classifier_run_that_scored_them(tmp_path):
    store = RunStore(tmp_path / "home")
    classifiers = [
        store.create_run(family="classifier", model="convnet", dataset="digits", config={}, status="completed")
        for _ in range(2)
    ]
    store.update_run(classifiers[0], metrics={"test_accuracy": 0.97})
    gans = [
        store.create_run(family="gan", model="dcgan", dataset="digits", config={}, status="completed")
        for _ in range(3)
    ]
    for gan_id, reference in zip(gans, [classifiers[0], classifiers[0], classifiers[1]], strict=True):
        store.update_run(gan_id, metrics={"fid_cls": 12.5, "reference_run": reference})
    runs = {run["run_id"]: run for run in store.list_runs()}

    rows = {row["run"]: row for row in runs_view.run_rows(runs.values())}
    assert rows[gans[0]]["scored by"] == classifiers[0] and rows[classifiers[0]]["scored by"] is None
    assert runs_view.reference_note(store, runs[gans[0]]) == (
        f"Scored in the feature space of classifier run {classifiers[0]} (test accuracy 97.0%)."
    )
    assert runs_view.reference_note(store, runs[classifiers[0]]) is None
    assert runs_view.mixed_references([runs[gans[0]], runs[gans[1]]]) == {}
    mixed = runs_view.mixed_references(runs.values())
    assert {reference: sorted(ids) for reference, ids in mixed.items()} == {
        classifiers[0]: sorted(gans[:2]), classifiers[1]: [gans[2]]
    }
    store.delete_run(classifiers[1])
    assert runs_view.reference_note(store, runs[gans[2]]).endswith(f"run {classifiers[1]} (since deleted).")
