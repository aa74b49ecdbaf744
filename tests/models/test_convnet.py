"""Structure of the ``convnet`` classifier; the contract shared with the other classifiers
(shapes, parameters, config, training, saving) is in ``test_classifier_contract.py``."""

import pytest

from core.models.convnet import num_pools
from tests.models.classifier_contract import unbuilt_models


@pytest.fixture(scope="module")
def models():
    return unbuilt_models("convnet")


def test_pools_leave_a_4_to_7_pixel_map(models):
    assert [num_pools((size, size, 1)) for size in (8, 12, 16, 28, 32, 64)] == [1, 1, 2, 2, 3, 4]
    assert models[((28, 28, 1), 10)].get_layer("block2_relu").output.shape == (None, 7, 7, 64)
    assert models[((32, 32, 3), 10)].get_layer("block3_relu").output.shape == (None, 4, 4, 128)
