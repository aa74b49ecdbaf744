"""The benchmark's U-Net section: the PyTorch twin computes our U-Net's function with its weights,
and one quick side-by-side measures both training steps."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bench import harness, torch_peers, unet
from core.common.config import config_for
from core.data.datasets import load_dataset

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("image_shape", [(8, 8, 1), (16, 16, 3)])
def test_the_twin_has_our_parameters_and_computes_our_function(image_shape):
    keras.utils.set_random_seed(0)
    ours = unet.build_ours(image_shape, config_for("unet", task="denoise", width=4))
    twin = unet.torch_twin(ours, torch)
    assert torch_peers.parameter_count(twin) == torch_peers.keras_trainable_count(ours)
    images = np.random.default_rng(0).integers(0, 256, (3, *image_shape)).astype(np.float32)
    expected = np.asarray(ours(images))
    with torch.no_grad():
        got = twin(torch.from_numpy(images)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-2)  # grey levels, float32 sums in another order


def test_quick_unet_section_reports_both_sides():
    settings = harness.BenchSettings(rounds=1, convnet_steps=2, warmup_steps=1, time_to_accuracy=False, latency=False)
    result = unet.unet_throughput(load_dataset("digits"), settings, torch)
    assert result["ours_img_s"] > 0 and result["torch_img_s"] > 0 and result["ratio"] > 0
    assert result["params_ours"] == result["params_torch"] and result["task"] == "denoise"
    assert "unet" in harness.format_table({"unet": result})
