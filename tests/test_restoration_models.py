"""Contract tests of the restoration models: shapes, config round trip, saving, one training step."""

import keras
import numpy as np
import pytest

from core.common.config import config_for
from core.models.pix2pix import Pix2Pix
from core.models.restoration_io import PixelShuffle
from core.models.restorers import build_restorer

CASES = [
    ("espcn", {"task": "super-resolution", "scale": 4}, (4, 4, 3), (16, 16, 3)),
    ("unet", {"task": "inpaint"}, (8, 8, 2), (8, 8, 1)),
    ("pix2pix", {"task": "denoise"}, (8, 8, 1), (8, 8, 1)),
]


def test_pixel_shuffle_places_subpixels():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    assert np.asarray(PixelShuffle(2)(x))[0, :, :, 0].tolist() == [[0, 1], [2, 3]]


@pytest.mark.parametrize(("model_name", "settings", "input_shape", "image_shape"), CASES)
def test_restorer_contract(model_name, settings, input_shape, image_shape, tmp_path):
    config = config_for(model_name, width=4, **settings)
    model = build_restorer(config, image_shape)
    rng = np.random.default_rng(0)
    degraded = rng.integers(0, 256, (4, *input_shape)).astype(np.float32)
    if settings["task"] == "inpaint":
        degraded[..., -1] = 0.0
        degraded[:, 2:6, 2:6, -1] = 1.0
    clean = rng.integers(0, 256, (4, *image_shape)).astype(np.float32)
    restored = np.asarray(model.predict(degraded, verbose=0))
    assert restored.shape == (4, *image_shape)
    if settings["task"] == "inpaint":  # known pixels are kept exactly
        known = degraded[..., -1] == 0
        assert np.allclose(restored[known][:, 0], degraded[known][:, 0], atol=1e-3)
    # get_config round trip builds the same architecture.
    if isinstance(model, Pix2Pix):
        clone = Pix2Pix.from_config(model.get_config())
    else:
        clone = keras.Model.from_config(model.get_config())
    assert clone.count_params() == model.count_params()
    # One real training step changes the weights and reports a finite loss.
    before = [np.array(w) for w in model.trainable_weights]
    logs = model.fit(degraded, clean, batch_size=4, epochs=1, verbose=0).history
    assert all(np.isfinite(values[-1]) for values in logs.values())
    assert any(not np.array_equal(a, np.array(b)) for a, b in zip(before, model.trainable_weights, strict=True))
    # Saving and loading (safe mode) gives the same restorations.
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert np.allclose(loaded.predict(degraded, verbose=0), model.predict(degraded, verbose=0), atol=1e-4)


def test_config_presets_and_validation():
    from core.common.errors import ConfigError

    preset = config_for("unet", task="denoise", dataset="fashion_mnist")
    assert (preset.width, preset.epochs, preset.train_images) == (16, 2, 20000)
    assert config_for("unet", task="denoise", dataset="fashion_mnist", epochs=5).epochs == 5  # explicit wins
    assert config_for("unet", dataset="digits").width == 32
    for bad, message in (({"task": "deblur"}, "unknown task"), ({"scale": 3}, "scale must be"),
                         ({"mask": "ring"}, "unknown mask"), ({"noise": 1.5}, "noise must be")):
        with pytest.raises(ConfigError, match=message):
            config_for("unet", **bad)
    with pytest.raises(ConfigError, match="convnet has no setting task"):
        config_for("convnet", task="inpaint")
