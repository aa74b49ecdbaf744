"""Dashboard pages under streamlit.testing (AppTest): every page renders on an empty store and on
a store of tiny real runs, and the main widgets behave (driven by their keys)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from core.store.store import RunStore
from tests.app.harness import PAGES, assert_clean, open_page


def _grid(at):
    """The Datasets page's image grid: (url, caption)."""
    for element in at.image:
        if element.captions and " images " in element.captions[0]:
            return element.value[0], element.captions[0]
    raise AssertionError("no image grid on the page")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_store(empty_home, page):
    at = open_page(page)
    assert_clean(at)
    assert at.title or page == "home"


def test_home_offers_the_starter_models_and_queues_them(empty_home, monkeypatch):
    from core.runs import jobs

    monkeypatch.setattr(jobs, "dispatch", lambda store: [])  # queue only: no trainer in a unit test
    at = open_page("home")
    at.button(key="home.starters").click().run()
    assert_clean(at)
    runs = RunStore(empty_home).list_runs()
    assert sorted(run["model"] for run in runs) == ["cgan", "convnet", "dcgan"]
    assert {run["status"] for run in runs} == {"queued"}
    assert any("Started 3 starter runs" in s.value for s in at.success)


def test_datasets_class_filter_changes_the_grid(empty_home):
    at = open_page("datasets", {"dataset": "digits"})
    assert_clean(at)
    url_all, caption_all = _grid(at)
    assert "of 1437" in caption_all
    at.selectbox(key="datasets.cls").set_value("3").run()
    url_three, caption_three = _grid(at)
    assert url_three != url_all and "(class 3)" in caption_three
    assert at.query_params["cls"] == "3"
    at.button(key="datasets.reshuffle").click().run()
    assert _grid(at)[0] != url_three and at.query_params["shuffle"] == "1"


def test_datasets_link_reopens_the_same_grid(empty_home):
    query = {"dataset": "digits", "cls": "7", "shuffle": "5", "page": "2", "split": "train"}
    first, second = open_page("datasets", query), open_page("datasets", query)
    assert _grid(first) == _grid(second)
    assert "train images 65-" in _grid(first)[1] and "(class 7)" in _grid(first)[1]


def test_bad_query_parameters_fall_back_with_a_notice(empty_home):
    at = open_page(
        "datasets", {"dataset": "../../etc/passwd", "page": "-4", "shuffle": "zzz", "cls": "<script>"}
    )
    assert_clean(at)
    notices = " ".join(w.value for w in at.warning)
    for name in ("dataset", "page", "shuffle", "cls"):
        assert f"{name}=" in notices
    assert at.query_params["dataset"] == "digits" and "page" not in at.query_params  # default: left out


def _npz_bytes(count=40, size=8):
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, x=rng.integers(0, 255, (count, size, size), dtype=np.uint8), y=np.arange(count) % 2)
    return buffer.getvalue()


def test_uploaded_npz_becomes_a_dataset(empty_home):
    at = open_page("datasets")
    at.file_uploader(key="datasets.upload_file").set_value(
        ("pairs.npz", _npz_bytes(), "application/octet-stream")
    )
    at.run()
    at.text_input(key="datasets.upload_name").set_value("pairs")
    at.button(key="datasets.upload_save").click().run()
    assert_clean(at)
    saved = empty_home / "uploads" / "pairs.npz"
    assert saved.exists()
    assert at.selectbox(key="datasets.dataset").value == f"npz:{saved}"
    assert "of 34" in _grid(at)[1]  # 40 images, 15% held out as test


def test_a_bad_upload_is_one_error_line_and_nothing_is_kept(empty_home):
    at = open_page("datasets")
    at.file_uploader(key="datasets.upload_file").set_value(
        ("broken.zip", b"not a zip at all", "application/zip")
    )
    at.run()
    at.button(key="datasets.upload_save").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value
    assert not list((empty_home / "uploads").glob("*.zip"))


def test_train_form_rejects_a_bad_value_and_creates_no_run(empty_home, monkeypatch):
    from core.runs import jobs

    monkeypatch.setattr(jobs, "dispatch", lambda store: [])
    at = open_page("train")
    assert_clean(at)
    at.number_input(key="train.epochs").set_value(0)
    at.button(key="train.launch").click().run()
    assert [e.value for e in at.error] == ["epochs must be a whole number of at least 1, got 0"]
    assert RunStore(empty_home).list_runs() == []
    # Fixed, the same form queues exactly one run with the form's values.
    at.number_input(key="train.epochs").set_value(2)
    at.button(key="train.launch").click().run()
    runs = RunStore(empty_home).list_runs()
    assert len(runs) == 1 and runs[0]["config"]["epochs"] == 2 and runs[0]["status"] == "queued"


def test_train_form_defaults_come_from_core_config(empty_home):
    from core.common.config import config_for

    at = open_page("train", {"task": "gan", "model": "dcgan"})
    defaults = config_for("dcgan")
    assert at.number_input(key="train.epochs").value == defaults.epochs
    assert at.number_input(key="train.latent_dim").value == defaults.latent_dim
    assert at.number_input(key="train.learning_rate").value == pytest.approx(defaults.learning_rate)


def _zip_of(images: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in images.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# ---- a store of tiny real runs (trained once per session) ----------------------------------------

real = pytest.mark.xdist_group("real_runs")


def _image_urls(at, caption_part: str) -> list[str]:
    return [
        element.value[0] for element in at.image if element.captions and caption_part in element.captions[0]
    ]


@real
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_real_runs(real_home, page):
    at = open_page(page)
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]


@real
def test_sample_link_gives_the_same_pixels_twice(real_home):
    _, run_ids = real_home
    query = {"run": run_ids["dcgan"], "seed": "5", "n": "16"}
    first, second = open_page("sample", query), open_page("sample", query)
    assert_clean(first)
    grid = _image_urls(first, "epoch 1, seed 5")
    assert len(grid) == 1 and grid == _image_urls(second, "epoch 1, seed 5")
    other = open_page("sample", {**query, "seed": "6"})
    assert _image_urls(other, "epoch 1, seed 6") != grid


@real
def test_cgan_class_comes_from_the_link(real_home):
    _, run_ids = real_home
    at = open_page("sample", {"run": run_ids["cgan"], "label": "3", "seed": "1", "n": "8"})
    assert_clean(at)
    assert at.selectbox(key="sample.label").value == 3
    assert _image_urls(at, "class 3")
    at.selectbox(key="sample.label").set_value(4).run()
    assert at.query_params["label"] == "4" and _image_urls(at, "class 4")


@real
def test_runs_detail_shows_the_misclassified_images_of_a_cell(real_home):
    _, run_ids = real_home
    at = open_page("runs", {"run": run_ids["convnet"]})
    assert_clean(at)
    cell = at.selectbox(key="runs.cell")
    true_index, predicted = map(int, cell.value.split("-"))
    assert true_index != predicted
    shown = [e.captions[0] for e in at.image if e.captions and "predicted as" in e.captions[0]]
    assert len(shown) == 1 and f"class {true_index} predicted as {predicted}" in shown[0]
    assert (
        at.download_button(key="runs.csv") is not None
        and at.download_button(key="runs.checkpoint") is not None
    )


@real
def test_runs_detail_names_the_classifier_that_scored_a_gan(real_home):
    _, run_ids = real_home
    at = open_page("runs", {"run": run_ids["dcgan"]})
    assert_clean(at)
    notes = [c.value for c in at.caption if c.value.startswith("Scored in the feature space")]
    assert len(notes) == 1 and run_ids["convnet"] in notes[0] and "test accuracy" in notes[0], notes
    assert not at.warning


def test_comparing_gans_scored_by_different_classifiers_warns(empty_home):
    from core.common.config import config_for, config_to_dict

    store = RunStore(empty_home)
    gans = []
    for reference in ("convnet-digits-a", "convnet-digits-b"):
        gans.append(store.create_run(family="gan", model="dcgan", dataset="digits",
                                     config=config_to_dict(config_for("dcgan")), status="completed"))
        store.update_run(gans[-1], metrics={"fid_cls": 20.0, "reference_run": reference})
    at = open_page("runs", {"compare": ",".join(gans)})
    assert_clean(at)
    warnings = [w.value for w in at.warning if "different reference classifiers" in w.value]
    assert len(warnings) == 1 and "convnet-digits-a" in warnings[0] and "convnet-digits-b" in warnings[0]


@real
def test_delete_needs_confirmation(real_home):
    from core.common.config import config_for, config_to_dict

    home, _ = real_home
    store = RunStore(home)
    doomed = store.create_run(
        family="classifier",
        model="convnet",
        dataset="digits",
        config=config_to_dict(config_for("convnet")),
        status="failed",
    )
    at = open_page("runs", {"run": doomed})
    assert at.button(key="runs.delete").disabled
    at.checkbox(key="runs.delete_confirm").check().run()
    at.button(key="runs.delete").click().run()
    assert_clean(at)
    assert doomed not in [run["run_id"] for run in store.list_runs()]


@real
def test_classify_a_test_image_an_upload_and_a_zip(real_home):
    _, run_ids = real_home
    at = open_page("classify", {"run": run_ids["convnet"], "source": "test", "image": "5"})
    assert_clean(at)
    assert _image_urls(at, "as the model sees it") and _image_urls(at, "what points to")
    assert at.get("plotly_chart")
    at.segmented_control(key="classify.source").set_value("upload").run()
    digit = np.zeros((32, 32), np.uint8)
    digit[6:26, 14:18] = 255  # a "1"
    png = _png_bytes(digit)
    at.file_uploader(key="classify.upload").set_value(("one.png", png, "image/png")).run()
    assert_clean(at)
    assert _image_urls(at, "one.png")
    at.file_uploader(key="classify.zip").set_value(
        ("batch.zip", _zip_of({"a.png": png, "b/c.png": png, "notes.txt": b"x"}), "application/zip")
    ).run()
    assert_clean(at)
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 2


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _fake_run(home, status: str, model: str = "convnet") -> str:
    from core.common.config import config_for, config_to_dict

    return RunStore(home).create_run(
        family="classifier" if model == "convnet" else "gan",
        model=model,
        dataset="digits",
        config=config_to_dict(config_for(model)),
        status=status,
    )


def test_train_live_panel_lists_queued_jobs_and_cancels_them(empty_home):
    run_id = _fake_run(empty_home, "queued")
    at = open_page("train")
    assert_clean(at)
    assert any(run_id in m.value for m in at.markdown)
    assert any("queued (position 1 in the queue)" in p.proto.text for p in at.get("progress"))
    at.button(key=f"train.cancel.{run_id}").click().run()
    assert_clean(at)
    assert RunStore(empty_home).get_run(run_id)["status"] == "cancelled"


def test_runs_resume_queues_a_stopped_run(empty_home, monkeypatch):
    from core.runs import jobs

    monkeypatch.setattr(jobs, "dispatch", lambda store: [])
    run_id = _fake_run(empty_home, "stopped")
    at = open_page("runs", {"run": run_id})
    assert_clean(at)
    at.button(key="runs.resume").click().run()
    assert_clean(at)
    assert RunStore(empty_home).get_run(run_id)["status"] == "queued"
