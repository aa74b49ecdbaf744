"""core.restore_view without Streamlit: masks from a canvas or a file, bad input as UserError,
the restoration panels of a real (untrained) model, the wipe and the zoom, the Runs page helpers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.app import restore_view
from core.common.config import config_for
from core.common.errors import ModelFileError, UserError
from core.models.restorers import build_restorer


def _run(family="restoration", model="unet", **config):
    return {"run_id": f"{model}-x", "family": family, "model": model, "config": {"model": model, **config},
            "metrics": {}}


def test_a_drawing_becomes_holes_and_the_eraser_takes_them_back():
    canvas = np.zeros((80, 80, 4), np.uint8)  # 10 canvas pixels per image pixel of an 8x8 image
    canvas[20:40, 30:60] = (255, 255, 255, 255)  # white strokes: rows 2-3, columns 3-5
    canvas[20:40, 50:60] = (0, 0, 0, 255)  # the eraser over column 5
    holes = restore_view.mask_from_drawing(canvas, 8, 8)
    expected = np.zeros((8, 8), bool)
    expected[2:4, 3:5] = True
    np.testing.assert_array_equal(holes, expected)
    stroke = np.zeros((80, 80, 4), np.uint8)
    stroke[25:35, 0:40] = 255  # a one-pixel brush between rows 2 and 3: half of each row
    assert restore_view.mask_from_drawing(stroke, 8, 8)[2:4, 0:4].all()


@pytest.mark.parametrize("painted, message", [(None, "no hole"), ((0, 80), "whole image")])
def test_a_drawing_with_no_hole_or_all_hole_is_refused(painted, message):
    canvas = np.zeros((80, 80, 4), np.uint8)
    if painted:
        canvas[:, :] = 255
    with pytest.raises(UserError, match=message):
        restore_view.mask_from_drawing(canvas, 8, 8)


def test_an_uploaded_mask_of_another_size_or_with_no_hole_is_one_line():
    with pytest.raises(UserError, match="the mask is 16x16 but the image is 8x8"):
        restore_view.mask_from_upload(np.full((16, 16, 1), 255, np.uint8), 8, 8)
    with pytest.raises(UserError, match="no hole"):
        restore_view.mask_from_upload(np.zeros((8, 8, 3), np.uint8), 8, 8)
    mask = np.zeros((8, 8, 1), np.uint8)
    mask[1:3, 1:3] = 255
    assert restore_view.mask_from_upload(mask, 8, 8).sum() == 4


def test_a_classifier_or_a_cgan_is_refused_where_a_restorer_is_needed():
    with pytest.raises(ModelFileError, match="convnet classifier"):
        restore_view.method_of(_run("classifier", "convnet"))
    with pytest.raises(ModelFileError, match="cgan"):
        restore_view.method_of(_run("gan", "cgan"))
    assert restore_view.method_of(_run("gan", "wgan-gp")) == "gan-prior"
    assert restore_view.degradation_of(_run("gan", "dcgan")).task == "inpaint"


def test_x4_on_8x8_and_an_image_over_the_limit_are_one_line():
    config = config_for("espcn", task="super-resolution", scale=4, width=4)
    model = build_restorer(config, (16, 16, 1))
    run = _run(model="espcn", task="super-resolution", scale=4)
    with pytest.raises(UserError, match="x4 super-resolution of 8x8 images"):
        restore_view.restore_image(run, model, np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(UserError, match="over the limit"):
        restore_view.restore_image(run, model, np.zeros((1025, 1024, 1), np.uint8))
    inpaint = _run(model="espcn", task="inpaint")
    with pytest.raises(UserError, match="the mask is 4x4 but the image is 8x8"):
        restore_view.restore_image(inpaint, model, np.zeros((8, 8, 1), np.uint8), holes=np.ones((4, 4), bool))


def test_restore_image_panels_keep_known_pixels_and_score_against_the_original():
    config = config_for("unet", task="inpaint", width=4)
    model = build_restorer(config, (8, 8, 1))
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 1), dtype=np.uint8)  # no fill guesses it
    holes = restore_view.preset_mask("center", 8, 8)
    result = restore_view.restore_image(_run(task="inpaint"), model, image, holes=holes)
    assert set(result.panels) == set(restore_view.PANELS)
    for name in ("baseline", "model"):
        np.testing.assert_array_equal(result.panels[name][~holes], image[~holes])  # known pixels are kept
        assert result.psnr[name] > result.hole_psnr[name]  # the known pixels are exact
    assert np.all(result.panels["degraded"][holes] == 0)
    upload = restore_view.restore_image(_run(task="inpaint"), model, image, holes=holes, degraded_input=True)
    assert upload.panels["original"] is None and upload.psnr == {}


def test_super_resolution_of_an_upload_tiles_it_to_scale_times_its_size():
    config = config_for("espcn", task="super-resolution", scale=2, width=4)
    model = build_restorer(config, (8, 8, 1))
    upload = np.full((6, 10, 3), 200, np.uint8)  # another size and RGB: tiles, luma
    result = restore_view.restore_image(_run(model="espcn", task="super-resolution", scale=2), model, upload,
                                        degraded_input=True)
    assert result.panels["model"].shape == (12, 20, 1) and result.panels["baseline"].shape == (12, 20, 1)


def test_wipe_and_zoom():
    before, after = np.zeros((4, 10, 1), np.uint8), np.full((4, 10, 1), 100, np.uint8)
    frame = restore_view.wipe(before, after, 0.3)
    assert (frame[:, :3] == 100).all() and (frame[:, 3] == 255).all() and (frame[:, 4:] == 0).all()
    assert (restore_view.wipe(before, after, 1.0) == 100).all()
    image = np.arange(100, dtype=np.uint8).reshape(10, 10, 1)
    np.testing.assert_array_equal(restore_view.zoom(image, 1.0, 0.0, 4), image[6:10, 0:4])


def test_task_params_hold_only_the_option_the_task_uses():
    assert [param.name for param in restore_view.task_params("inpaint")] == ["mask"]
    assert [param.name for param in restore_view.task_params("denoise")] == ["noise"]
    assert restore_view.task_params("super-resolution")[0].choices == (2, 4)
    assert restore_view.config_values({"train_images": 0, "image_size": 16}) == {"train_images": None, "image_size": 16}


def test_runs_page_helpers(tmp_path):
    table = {"epoch": [1, 2], "psnr": [20.0, 21.0], "baseline_psnr": [18.0, 18.0], "ssim": [0.5, 0.6],
             "baseline_ssim": [0.4, 0.4]}
    assert restore_view.quality_curves(table) == [["psnr", "baseline_psnr"], ["ssim", "baseline_ssim"]]
    (tmp_path / "samples").mkdir()
    for epoch in (2, 0, 1):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "samples" / f"epoch_{epoch:03d}.png")
    assert [epoch for epoch, _ in restore_view.time_lapse(tmp_path)] == [0, 1, 2]


def test_usable_runs_come_first_so_the_default_run_restores():
    runs = [_run("gan", "cgan"), _run("classifier", "convnet"), _run("gan", "dcgan"), _run(model="unet")]
    assert [run["model"] for run in restore_view.restorable_runs(runs)] == ["unet", "dcgan", "cgan", "convnet"]


def test_a_drawing_becomes_an_image_of_the_dataset_size():
    canvas = np.zeros((80, 80, 4), np.uint8)
    assert restore_view.image_from_drawing(canvas, 8, 8, 1) is None  # nothing drawn yet
    canvas[0:10, 0:5] = (255, 255, 255, 255)  # half of image pixel (0, 0)
    canvas[70:80, 70:80] = (255, 255, 255, 255)  # all of pixel (7, 7)
    image = restore_view.image_from_drawing(canvas, 8, 8, 3)
    assert image.shape == (8, 8, 3) and image[0, 0, 0] == 128 and image[7, 7, 2] == 255 and image.sum() == 3 * 383
