"""Bad hyperparameters stop at the door: ``config_for`` and ``python -m core train`` refuse them in
one line (exit status 2 for the CLI) before a run exists, so the store stays empty."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.common.config import config_for
from core.common.errors import ConfigError, DatasetError, UserError
from core.runs import training
from core.store.store import RunStore

ROOT = Path(__file__).resolve().parents[2]


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, message
    return message


@pytest.mark.parametrize("rate", [0, 0.0, -1e-3, math.nan, math.inf, -math.inf, "0.001", True])
def test_bad_learning_rates_are_refused(rate):
    with pytest.raises(ConfigError, match="learning rate must be a positive finite number") as caught:
        config_for("convnet", learning_rate=rate)
    _one_line(caught.value)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("epochs", 0, "epochs must be a whole number of at least 1, got 0"),
    ("epochs", -3, "epochs must be a whole number of at least 1"),
    ("epochs", 2.5, "epochs must be a whole number"),
    ("epochs", True, "epochs must be a whole number"),
    ("batch_size", 0, "batch size must be a whole number of at least 1, got 0"),
    ("batch_size", -64, "batch size must be a whole number of at least 1"),
    ("batch_size", math.nan, "batch size must be a whole number"),
    ("batch_size", "64", "batch size must be a whole number"),
    ("seed", -1, "seed must be a whole number from 0"),
    ("seed", 2**64, "seed must be a whole number from 0"),
    ("log_every_steps", 0, "log_every_steps must be at least 1"),
    ("image_size", 4, "image size must be between 8 and 256"),
    ("image_size", 100_000, "image size must be between 8 and 256"),
    ("image_size", "64", "image size must be between 8 and 256"),
    ("weight_decay", math.nan, "weight_decay must be a finite number"),
    ("weight_decay", -1.0, "weight_decay must be a finite number of at least 0"),
    ("label_smoothing", 1.5, "label_smoothing must be a finite number of at least 0 and below 1"),
])
def test_bad_classifier_settings_are_refused(field, value, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")) as caught:
        config_for("convnet", **{field: value})
    _one_line(caught.value)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("latent_dim", 0, "latent_dim must be at least 1"),
    ("latent_dim", 2.0, "latent_dim must be at least 1"),
    ("n_critic", -1, "n_critic must be at least 1"),
    ("beta_1", math.nan, "beta_1 must be a finite number"),
    ("beta_1", 1.0, "beta_1 must be a finite number of at least 0 and below 1"),
    ("gp_weight", math.inf, "gp_weight must be a finite number"),
    ("ema_decay", math.nan, "ema_decay must be in"),
    ("learning_rate", math.nan, "learning rate must be a positive finite number"),
])
def test_bad_gan_settings_are_refused(field, value, words):
    with pytest.raises(ConfigError, match=words) as caught:
        config_for("wgan-gp", **{field: value})
    _one_line(caught.value)


@pytest.mark.parametrize(("model", "overrides", "words"), [
    ("vgg19", {}, "unknown model 'vgg19': choose one of convnet, resnet, dcgan, cgan, wgan-gp"),
    ("", {}, "unknown model ''"),
    ("convnet", {"dropout": 0.5}, "convnet has no setting dropout"),
    ("convnet", {"latent_dim": 64}, "convnet has no setting latent_dim"),
])
def test_unknown_models_and_settings_are_refused(model, overrides, words):
    with pytest.raises(ConfigError, match=words) as caught:
        config_for(model, **overrides)
    _one_line(caught.value)


@pytest.mark.parametrize(("overrides", "error", "words"), [
    ({"batch_size": 1438}, ConfigError, "batch size 1438 is larger than the 1437 training images of digits"),
    ({"dataset": "imagenet"}, DatasetError, "unknown dataset 'imagenet'"),
    ({"dataset": "folder:/no/such/folder"}, DatasetError, "folder '/no/such/folder' does not exist"),
    ({"dataset": "../../etc/passwd"}, DatasetError, "unknown dataset"),
])
def test_train_refuses_before_creating_a_run(store, overrides, error, words):
    config = config_for("convnet", **{"dataset": "digits", "epochs": 1, **overrides})
    with pytest.raises(error, match=words) as caught:
        training.train(config, store=store)
    _one_line(caught.value)
    assert store.list_runs() == []
    assert list(store.runs_dir.iterdir()) == []


def test_a_gan_that_needs_labels_refuses_unlabeled_data_before_creating_a_run(store, tmp_path):
    import numpy as np

    path = tmp_path / "faces.npz"
    np.savez(path, x=np.zeros((20, 8, 8), np.uint8))
    for model in ("cgan", "convnet"):
        with pytest.raises(ConfigError, match="has no labels"):
            training.train(config_for(model, dataset=f"npz:{path}", epochs=1, batch_size=4), store=store)
    assert store.list_runs() == []


# ---- the CLI, as a user would type it ---------------------------------------------------------------

CLI_CASES = {
    "lr-zero": (["--lr", "0"], "learning rate must be a positive finite number, got 0.0"),
    "lr-negative": (["--lr", "-0.1"], "learning rate must be a positive finite number, got -0.1"),
    "lr-nan": (["--lr", "nan"], "learning rate must be a positive finite number, got nan"),
    "lr-inf": (["--lr", "inf"], "learning rate must be a positive finite number, got inf"),
    "lr-text": (["--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    "batch-zero": (["--batch-size", "0"], "batch size must be a whole number of at least 1, got 0"),
    "batch-too-large": (["--batch-size", "5000"], "batch size 5000 is larger than the 1437 training images"),
    "epochs-zero": (["--epochs", "0"], "epochs must be a whole number of at least 1, got 0"),
    "seed-negative": (["--seed", "-5"], "seed must be a whole number from 0"),
    "unknown-model": (["--model", "vgg19"], "unknown model 'vgg19'"),
    "unknown-dataset": (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    "missing-path": (["--dataset", "zip:/nowhere/pets.zip"], "zip file '/nowhere/pets.zip' does not exist"),
}


# Every case in the foreground; the background path (--background, a queued job) shares the
# validation, so three cases of different kinds cover it.
CLI_RUNS = [(case, False) for case in CLI_CASES] + [
    (case, True) for case in ("lr-nan", "batch-too-large", "unknown-dataset")
]


@pytest.mark.parametrize(("case", "background"), CLI_RUNS,
                         ids=[f"{case}-{'background' if bg else 'foreground'}" for case, bg in CLI_RUNS])
def test_cli_train_refuses_bad_values_with_exit_2_and_no_run(tmp_path, case, background):
    flags, words = CLI_CASES[case]
    argv = ["train", "--model", "convnet", "--dataset", "digits", "--epochs", "1", *flags]
    argv += ["--background"] if background else []
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, "-m", "core", *argv], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "CONVGAN_HOME": str(home), "CONVGAN_MAX_JOBS": "1"})
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not home.exists() or RunStore(home).list_runs() == []


def test_config_errors_are_user_errors():
    # Front ends catch UserError to show one line (the CLI exits 2); a ConfigError must be one.
    assert issubclass(ConfigError, UserError) and issubclass(DatasetError, UserError)
