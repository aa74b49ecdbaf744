"""`python -m core export`: stock Keras files that load without the project, and checked ONNX files."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from core.app import cli, cli_base
from core.common import images
from core.common.config import config_for
from core.evaluation import sampling
from core.models import build_classifier, build_gan
from core.training.classifier import predict_proba
from tests.stored_runs import completed_classifier_run

IMAGE_SHAPE = (8, 8, 1)
NUM_CLASSES = 3

# Runs in a fresh interpreter: isolated (-I: no PYTHONPATH, no script folder on sys.path), started
# in a folder without the project, so `import core` would fail; it also asserts it never happened.
LOAD_ELSEWHERE = textwrap.dedent("""
    import os, sys
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    import numpy as np
    model = keras.saving.load_model(sys.argv[1], safe_mode=True)
    inputs = dict(np.load(sys.argv[2]))
    feed = [inputs[tensor.name] for tensor in model.inputs]
    outputs = model.predict(feed if len(feed) > 1 else feed[0], verbose=0)
    assert not any(name == "core" or name.startswith("core.") for name in sys.modules), "imported core"
    np.save(sys.argv[3], outputs)
    print(sorted({type(layer).__module__.split(".")[0] for layer in model.layers}))
""")


@pytest.fixture
def classifier_run(store):
    model = build_classifier("convnet", IMAGE_SHAPE, NUM_CLASSES, seed=1)
    return completed_classifier_run(store, model, "digits", test_accuracy=0.5), model


@pytest.fixture
def cgan_run(store):
    config = config_for("cgan", latent_dim=8)
    gan = build_gan(config, IMAGE_SHAPE, NUM_CLASSES)
    run_id = store.create_run(family="gan", model="cgan", dataset="digits", config={"model": "cgan"},
                              status="completed")
    (store.run_dir(run_id) / "checkpoints").mkdir()
    gan.save(store.run_dir(run_id) / "checkpoints" / "epoch_001.keras")
    return run_id, gan


def _export(store, run_id, out, *extra):
    return cli.main(["--home", str(store.home), "export", run_id, "--out", str(out), "--json", *extra])


def _predict_elsewhere(tmp_path, model_path, inputs: dict) -> np.ndarray:
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = tmp_path / "load_elsewhere.py"
    script.write_text(LOAD_ELSEWHERE)
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(model_path), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npy")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "['keras']"  # every layer is Keras' own
    return np.load(tmp_path / "out.npy")


def test_exported_classifier_loads_without_the_project_and_predicts_as_classify(store, tmp_path, capsys,
                                                                                  classifier_run):
    run_id, model = classifier_run
    out = tmp_path / "export" / "model.keras"
    assert _export(store, run_id, out) == cli_base.EXIT_OK
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == "classifier" and result["format"] == "keras" and result["out"] == str(out)
    assert result["inputs"] == {"images": [None, *IMAGE_SHAPE]}
    pixels = np.random.default_rng(5).integers(0, 256, (6, *IMAGE_SHAPE)).astype(np.float32)
    exported = _predict_elsewhere(tmp_path, out, {"images": pixels})
    np.testing.assert_allclose(exported, predict_proba(model, pixels), atol=1e-5)


def test_exported_generator_loads_without_the_project_and_draws_what_sample_draws(store, tmp_path, capsys,
                                                                                  cgan_run):
    run_id, gan = cgan_run
    out = tmp_path / "generator.keras"
    assert _export(store, run_id, out) == cli_base.EXIT_OK
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == "generator" and result["inputs"] == {"z": [None, 8], "label": [None]}
    z = sampling.latents(gan.latent_dim, 6, seed=3)
    labels = np.arange(6, dtype=np.int32) % NUM_CLASSES  # what sample() gives image i without a label
    exported = _predict_elsewhere(tmp_path, out, {"z": z, "label": labels})
    np.testing.assert_allclose(exported, gan.generate(z, labels), atol=1e-5)
    drawn = sampling.sample(gan, n=6, seed=3).astype(int)
    assert np.abs(images.to_uint8(exported).astype(int) - drawn).max() <= 1  # rounding at a level's edge


@pytest.mark.parametrize("kind", ["classifier", "generator"])
def test_onnx_export_matches_the_checkpoint_under_onnxruntime(store, tmp_path, capsys, kind, request):
    import onnxruntime

    run_id, model = request.getfixturevalue("classifier_run" if kind == "classifier" else "cgan_run")
    out = tmp_path / "model.onnx"
    assert _export(store, run_id, out, "--format", "onnx") == cli_base.EXIT_OK
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["format"] == "onnx" and result["max_difference"] <= 1e-4
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(9)
    if kind == "classifier":
        feed = {"images": rng.integers(0, 256, (5, *IMAGE_SHAPE)).astype(np.float32)}
        expected = predict_proba(model, feed["images"])
    else:
        feed = {"z": sampling.latents(model.latent_dim, 5, seed=4), "label": np.array([2, 0, 1, 1, 2], np.int32)}
        expected = model.generate(feed["z"], feed["label"])
    assert [spec.name for spec in session.get_inputs()] == list(feed)
    np.testing.assert_allclose(session.run(None, feed)[0], expected, atol=1e-4)


@pytest.mark.parametrize(("out", "extra", "message"), [
    ("model.h5", [], "needs a file ending in .keras"),
    ("model.keras", ["--format", "onnx"], "needs a file ending in .onnx"),
])
def test_bad_export_requests_are_one_line_and_write_nothing(store, tmp_path, capsys, classifier_run, out, extra,
                                                            message):
    run_id, _ = classifier_run
    before = store.get_run(run_id)
    assert _export(store, run_id, tmp_path / out, *extra) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / out).exists() and store.get_run(run_id) == before
    assert not list(tmp_path.glob("*.tmp*"))


def test_export_of_a_run_without_checkpoint_is_one_line(store, tmp_path, capsys):
    run_id = store.create_run(family="classifier", model="convnet", dataset="digits", config={}, status="failed")
    assert _export(store, run_id, tmp_path / "model.keras") == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "has no checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "model.keras").exists()
