"""Model files that should not be trusted: code inside a ``.keras`` file never runs, a model of
the wrong family is refused with a clear line, and a model that does not fit the data says so.

``core.store.checkpoints.load_model`` loads with Keras' safe mode. The hostile files are real Keras
files; where Keras itself would not write one, the ``config.json`` inside is edited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from core.common.errors import ModelFileError, UserError
from core.evaluation import sampling
from core.store import checkpoints
from tests.hardening import craft

ROOT = Path(__file__).resolve().parents[2]
# Several tests share the session's trained classifier and GAN file: one xdist worker builds them.
pytestmark = pytest.mark.xdist_group("hardening_runs")


def _lambda_model(path: Path, marker: Path) -> Path:
    """A model whose Lambda layer creates ``marker`` whenever its code runs."""
    import keras

    code = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]"
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Lambda(eval(code))(inputs)))
    keras.Model(inputs, outputs).save(path)
    marker.unlink()  # building the model called the lambda once, symbolically
    return path


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, message
    return message


def test_lambda_layer_is_refused_and_its_code_never_runs(tmp_path):
    import keras

    marker = tmp_path / "lambda-ran"
    path = _lambda_model(tmp_path / "model.keras", marker)
    with pytest.raises(ModelFileError) as caught:
        checkpoints.load_model(path)
    assert "Lambda" in _one_line(caught.value) and path.name in str(caught.value)
    assert not marker.exists(), "the model file's code ran while loading"
    # The control: the file is hostile for real, Keras without safe mode runs its code.
    keras.saving.load_model(path, safe_mode=False)
    assert marker.exists()


def test_lambda_checkpoint_of_a_run_is_refused_by_the_cli_in_one_line(store, tmp_path):
    from core.common.config import config_for, config_to_dict

    marker = tmp_path / "lambda-ran"
    config = config_to_dict(config_for("convnet", dataset="digits", epochs=1))
    run_id = store.create_run(family="classifier", model="convnet", dataset="digits", config=config,
                              status="completed")
    (store.run_dir(run_id) / "checkpoints").mkdir()
    _lambda_model(store.run_dir(run_id) / "checkpoints" / "epoch_001.keras", marker)
    image = craft.write(tmp_path / "digit.png", craft.gray_png(128))
    for argv in (["evaluate", run_id], ["classify", run_id, str(image)]):
        result = subprocess.run([sys.executable, "-m", "core", *argv], cwd=ROOT, capture_output=True,
                                text=True, timeout=180, env={**os.environ, "CONVGAN_HOME": str(store.home)})
        assert result.returncode == 2, (argv, result.returncode, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot load epoch_001.keras" in lines[0] and "Lambda" in lines[0], lines
        assert not marker.exists(), f"{argv[0]} ran the model file's code"


def _edited(source: Path, target: Path, edit) -> Path:
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    edit(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


@pytest.mark.parametrize("activation", [
    {"module": "os", "class_name": "function", "config": "system", "registered_name": "function"},
    {"module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"},
    {"module": "subprocess", "class_name": "function", "config": "getoutput", "registered_name": "function"},
], ids=["os.system", "builtins.exec", "subprocess.getoutput"])
def test_a_config_naming_an_arbitrary_python_function_is_refused(tmp_path, activation):
    import keras

    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2, activation="relu")(inputs)).save(tmp_path / "plain.keras")

    def inject(config):
        config["config"]["layers"][1]["config"]["activation"] = activation

    path = _edited(tmp_path / "plain.keras", tmp_path / "injected.keras", inject)
    with pytest.raises(ModelFileError) as caught:
        checkpoints.load_model(path)
    _one_line(caught.value)


@pytest.mark.parametrize(("name", "data", "words"), [
    ("noise.keras", os.urandom(4096), "cannot load noise.keras"),
    ("empty.keras", b"", "cannot load empty.keras"),
    ("text.keras", b"{\"class_name\": \"Sequential\"}", "cannot load text.keras"),
    ("model.h5", b"\x89HDF\r\n\x1a\n", "model.h5 is not a .keras model file"),
    ("model.pkl", b"\x80\x04K\x01.", "model.pkl is not a .keras model file"),
])
def test_files_that_are_not_keras_models_are_refused(tmp_path, name, data, words):
    path = craft.write(tmp_path / name, data)
    with pytest.raises(ModelFileError, match=words) as caught:
        checkpoints.load_model(path)
    _one_line(caught.value)


def test_a_zip_without_a_model_config_is_refused(tmp_path):
    path = craft.zip_file(tmp_path / "photos.keras", craft.labeled_members())
    with pytest.raises(ModelFileError, match="cannot load photos.keras") as caught:
        checkpoints.load_model(path)
    _one_line(caught.value)


def test_a_missing_checkpoint_is_a_clear_error(store):
    run_id = store.create_run(family="classifier", model="convnet", dataset="digits", config={}, status="failed")
    with pytest.raises(ModelFileError, match="has no checkpoint yet"):
        checkpoints.checkpoint_path(store, run_id)
    with pytest.raises(ModelFileError, match="no checkpoint for epoch 3"):
        checkpoints.checkpoint_path(store, run_id, 3)
    with pytest.raises(UserError, match="not a valid run id"):
        checkpoints.checkpoint_path(store, "../../etc")


# ---- a model of the wrong family -------------------------------------------------------------------


def _cli(store, *argv):
    return subprocess.run([sys.executable, "-m", "core", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "CONVGAN_HOME": str(store.home)})


def _refused_by_cli(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def classifier_file(trained_classifier) -> Path:
    home, run_id = trained_classifier
    from core.store.store import RunStore

    return checkpoints.checkpoint_path(RunStore(home), run_id)


def test_a_gan_run_is_refused_by_classify_before_its_file_is_read(store, tmp_path):
    from core.runs.inference import classify_files

    run_id = craft.add_run(store, "gan", "dcgan")  # no checkpoint at all: refused on the record alone
    image = craft.write(tmp_path / "digit.png", craft.gray_png(128))
    with pytest.raises(ModelFileError, match="is a dcgan GAN, not a classifier") as caught:
        classify_files(store, run_id, [image])
    _one_line(caught.value)
    _refused_by_cli(_cli(store, "classify", run_id, str(image)), "not a classifier")


def test_a_gan_file_in_a_classifier_run_is_refused_by_classify_and_evaluate(store, tmp_path, gan_checkpoint):
    from core.runs.evaluation import evaluate_run
    from core.runs.inference import classify_files

    run_id = craft.add_run(store, "classifier", "convnet", gan_checkpoint)  # a swapped or hand-copied file
    image = craft.write(tmp_path / "digit.png", craft.gray_png(128))
    for call in (lambda: classify_files(store, run_id, [image]), lambda: evaluate_run(store, run_id)):
        with pytest.raises(ModelFileError, match=r"holds a GAN \(DCGAN\), not a classifier") as caught:
            call()
        _one_line(caught.value)
    _refused_by_cli(_cli(store, "classify", run_id, str(image)), "not a classifier")


def test_a_classifier_is_refused_by_sampling(store, tmp_path, classifier_file):
    out = tmp_path / "grid.png"
    for family in ("classifier", "gan"):  # a classifier run, and a GAN run holding a classifier file
        run_id = craft.add_run(store, family, "convnet" if family == "classifier" else "dcgan", classifier_file)
        with pytest.raises(ModelFileError, match="not a GAN") as caught:
            sampling.sample_run(store, run_id, n=4, out=out)
        _one_line(caught.value)
        with pytest.raises(ModelFileError, match="not a GAN"):
            sampling.load_gan(store.run_dir(run_id))
        _refused_by_cli(_cli(store, "sample", run_id, "--n", "4", "--out", str(out)), "not a GAN")
        assert not out.exists()


def test_load_model_checks_the_family_it_is_asked_for(classifier_file, gan_checkpoint):
    assert checkpoints.model_family(checkpoints.load_model(classifier_file, family="classifier")) == "classifier"
    assert checkpoints.model_family(checkpoints.load_model(gan_checkpoint, family="gan")) == "gan"
    with pytest.raises(ModelFileError, match="holds a classifier, not a gan"):
        checkpoints.load_model(classifier_file, family="gan")
    with pytest.raises(ModelFileError, match=r"holds a GAN \(DCGAN\), not a classifier"):
        checkpoints.load_model(gan_checkpoint, family="classifier")


# ---- a model and data that do not fit --------------------------------------------------------------


def test_images_of_another_shape_are_adapted_to_the_model_with_notes(trained_classifier, tmp_path):
    import numpy as np
    from PIL import Image

    from core.runs.inference import classify_files
    from core.store.store import RunStore

    home, run_id = trained_classifier
    rgba = np.zeros((40, 20, 4), np.uint8)
    rgba[5:35, 8:12] = [255, 255, 255, 255]  # a white stroke on a transparent canvas
    files = {
        "photo.jpg": (craft.encode(Image.new("RGB", (32, 32), (200, 30, 30)), "JPEG"), ["colour to grayscale",
                                                                                         "resized from 32x32"]),
        "drawing.png": (craft.encode(Image.fromarray(rgba, "RGBA")), ["padded", "resized from 40x40"]),
        "deep.png": (craft.png_bytes(np.full((16, 16), 60000, np.uint16), bit_depth=16), ["resized from 16x16"]),
        "native.png": (craft.gray_png(0, 8), []),
    }
    paths = [craft.write(tmp_path / name, data) for name, (data, _) in files.items()]
    results = classify_files(RunStore(home), run_id, paths, top_k=3)
    for result, (name, (_, words)) in zip(results, files.items(), strict=True):
        probabilities = [entry["probability"] for entry in result["top"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert all(0.0 <= p <= 1.0 for p in probabilities) and sum(probabilities) <= 1.0 + 1e-5
        notes = " ".join(result["notes"])
        for word in words:
            assert word in notes, (name, result["notes"])
        if not words:
            assert not any("resized" in note for note in result["notes"]), result["notes"]


def test_a_run_whose_data_changed_shape_fails_clearly_on_resume_and_evaluate(store, tmp_path):
    import numpy as np
    from PIL import Image

    from core.common.config import config_for
    from core.data.datasets import load_dataset
    from core.runs import jobs, training
    from core.runs.evaluation import evaluate_run

    digits = load_dataset("digits")
    root = tmp_path / "two-digits"
    for label in (0, 1):
        for index, image in enumerate(digits.x_train[digits.y_train == label][:30]):
            craft.write(root / str(label) / f"{index}.png", craft.encode(Image.fromarray(image[..., 0])))
    run = training.train(config_for("convnet", dataset=f"folder:{root}", epochs=1, batch_size=16), store=store)
    assert run["status"] == "completed", run["error"]
    # The folder is edited after training: the same names now hold 12x12 colour images.
    for path in root.rglob("*.png"):
        path.write_bytes(craft.encode(Image.new("RGB", (12, 12), (90, 20, 200))))
    run = jobs.resume(store, run["run_id"], epochs=2, background=False)
    assert run["status"] == "failed"
    assert "takes (8, 8, 1) images" in run["error"] and "(12, 12, 3)" in run["error"], run["error"]
    assert "\n" not in run["error"]
    assert sorted(checkpoints.list_checkpoints(store.run_dir(run["run_id"]))) == [1], "the good checkpoint stays"
    with pytest.raises(UserError) as caught:
        evaluate_run(store, run["run_id"])
    assert "(12, 12, 3)" in _one_line(caught.value) and "(8, 8, 1)" in str(caught.value)
    assert np.isfinite(store.metric_table(run["run_id"], "epoch")["loss"][0])
