"""Structure of the ``resnet`` classifier; the contract shared with the other classifiers
(shapes, parameters, config, training, saving) is in ``test_classifier_contract.py``."""

import keras
import pytest

from core.models.convnet import num_pools
from tests.models.classifier_contract import unbuilt_models


@pytest.fixture(scope="module")
def models():
    return unbuilt_models("resnet")


def test_stages_are_residual_and_end_on_a_small_map(models):
    model = models[((32, 32, 3), 10)]
    assert num_pools((32, 32, 3)) == 3
    assert model.get_layer("stage3_relu2").output.shape == (None, 4, 4, 256)
    assert sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 3
    # Every stage doubles the channels here, so every shortcut is a 1x1 projection.
    assert all(f"stage{i}_shortcut_conv" in [la.name for la in model.layers] for i in (1, 2, 3))
    # Grayscale images get half the width (16 channels in the stem, 64 at the end).
    assert models[((28, 28, 1), 10)].get_layer("stage2_relu2").output.shape == (None, 7, 7, 64)
