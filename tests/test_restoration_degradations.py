"""Degradations, classical baselines and metrics of the restoration family, on tiny arrays."""

import numpy as np
import pytest

from core.common.errors import ConfigError, UserError
from core.data import degradations as dg


def test_area_downsample_averages_blocks():
    image = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    low = dg.downsample(image, 2)
    # Block means: (0+1+4+5)/4 = 2.5 -> 2 (round half to even), (2+3+6+7)/4 = 4.5 -> 4, ...
    assert low[0, :, :, 0].tolist() == [[2, 4], [10, 12]]
    assert dg.downsample(np.full((2, 8, 8, 3), 7, np.uint8), 4).shape == (2, 2, 2, 3)


def test_scale_checks_name_the_problem():
    dg.check_scale((8, 8, 1), 2)
    with pytest.raises(ConfigError, match="x4 super-resolution of 8x8 images leaves 2x2"):
        dg.check_scale((8, 8, 1), 4)
    with pytest.raises(ConfigError, match="divisible by 4"):
        dg.check_scale((30, 30, 1), 4)
    with pytest.raises(ConfigError, match="scale must be one of"):
        dg.check_scale((28, 28, 1), 3)


def test_center_mask_is_the_central_half():
    mask = dg.make_masks("center", 2, 28, 28)
    assert mask.shape == (2, 28, 28) and mask[0].sum() == 14 * 14
    assert mask[0, 7:21, 7:21].all() and not mask[0, :7].any()


@pytest.mark.parametrize("kind", ["boxes", "strokes"])
def test_random_masks_repeat_per_seed_and_index(kind):
    first = dg.make_masks(kind, 6, 28, 28, seed=3)
    again = dg.make_masks(kind, 6, 28, 28, seed=3)
    other = dg.make_masks(kind, 6, 28, 28, seed=4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    # Mask i depends on its index, not on the batch it comes in.
    assert np.array_equal(dg.make_masks(kind, 2, 28, 28, seed=3, first_index=4), first[4:])
    assert all(0 < mask.sum() < mask.size for mask in first)


def test_noise_is_seeded_and_of_the_asked_size():
    clean = np.full((50, 16, 16, 1), 128, np.uint8)
    noisy = dg.add_noise(clean, 0.1, seed=1)
    assert np.array_equal(noisy, dg.add_noise(clean, 0.1, seed=1))
    assert not np.array_equal(noisy, dg.add_noise(clean, 0.1, seed=2))
    assert abs(np.std(noisy.astype(float) - 128) - 25.5) < 1.0  # sigma 0.1 of 255 levels


def test_inpaint_degradation_zeroes_the_hole_and_adds_a_mask_channel():
    degradation = dg.Degradation("inpaint", mask="center")
    clean = np.full((1, 8, 8, 1), 200, np.uint8)
    degraded, masks = degradation.apply(clean)
    assert degraded[0, 2:6, 2:6].max() == 0 and degraded[0, 0, 0, 0] == 200
    inputs = dg.model_inputs(degraded, masks)
    assert inputs.shape == (1, 8, 8, 2) and inputs[0, 4, 4, 1] == 1.0 and inputs[0, 0, 0, 1] == 0.0
    assert degradation.input_shape((8, 8, 1)) == (8, 8, 2)
    assert dg.Degradation("super-resolution", scale=4).input_shape((28, 28, 1)) == (7, 7, 1)


def test_psnr_known_values():
    clean = np.zeros((2, 4, 4, 1), np.uint8)
    off_by_10 = np.full((2, 4, 4, 1), 10, np.uint8)
    expected = 10 * np.log10(255**2 / 100)  # MSE 100: 28.13 dB
    assert dg.psnr(clean, off_by_10) == pytest.approx(expected)
    # The per-image mean, not the PSNR of the pooled MSE.
    mixed = np.stack([off_by_10[0], clean[0]])
    assert dg.psnr(clean, mixed) == pytest.approx((expected + dg.PSNR_CAP_DB) / 2)


def test_hole_psnr_counts_only_the_hole():
    clean = np.zeros((1, 4, 4, 1), np.uint8)
    restored = clean.copy()
    restored[0, 0, 0, 0] = 255  # an error outside the hole
    restored[0, 2, 2, 0] = 10
    masks = np.zeros((1, 4, 4), bool)
    masks[0, 2:4, 2:4] = True  # 4 hole pixels, one off by 10: MSE 25
    assert dg.hole_psnr(clean, restored, masks) == pytest.approx(10 * np.log10(255**2 / 25))


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (3, 12, 12, 1), dtype=np.uint8)
    noisy = dg.add_noise(clean, 0.1)
    expected = np.mean([structural_similarity(a[..., 0], b[..., 0], data_range=255) for a, b in zip(clean, noisy, strict=True)])
    assert dg.ssim(clean, noisy) == pytest.approx(expected)
    assert dg.ssim(clean, clean) == pytest.approx(1.0)


def test_bicubic_keeps_a_constant_image_and_upsamples():
    flat = np.full((1, 4, 4, 3), 90, np.uint8)
    assert np.array_equal(dg.bicubic_upsample(flat, 2), np.full((1, 8, 8, 3), 90, np.uint8))


def test_harmonic_fill_of_a_ramp_is_exact():
    # A linear ramp is harmonic, so the fill restores it; a constant row/column border holds it.
    ramp = np.tile(np.arange(0, 80, 10, dtype=np.uint8), (8, 1))[None, :, :, None]  # (1, 8, 8, 1)
    masks = np.zeros((1, 8, 8), bool)
    masks[0, 2:6, 2:6] = True
    holed = np.where(masks[..., None], 0, ramp).astype(np.uint8)
    filled = dg.harmonic_fill(holed, masks)
    assert np.array_equal(filled, ramp)
    with pytest.raises(UserError, match="whole image"):
        dg.harmonic_fill(holed, np.ones((1, 8, 8), bool))


def test_harmonic_fill_handles_different_masks_and_channels():
    rng = np.random.default_rng(1)
    images = np.full((4, 10, 10, 3), 50, np.uint8)
    masks = dg.make_masks("boxes", 4, 10, 10, seed=2)
    holed = np.where(masks[..., None], rng.integers(0, 256, images.shape), images).astype(np.uint8)
    assert np.array_equal(dg.harmonic_fill(holed, masks), images)


def test_denoise_baseline_picks_a_filter_that_helps():
    rng = np.random.default_rng(0)
    smooth = scipy_smooth(rng.integers(0, 256, (20, 16, 16, 1)).astype(np.float32))
    noisy = dg.add_noise(smooth, 0.2)
    method = dg.best_denoise_method(smooth, noisy)
    assert method in dg.denoise_methods()
    assert dg.psnr(smooth, dg.apply_denoise_method(noisy, method)) > dg.psnr(smooth, noisy) + 3.0


def scipy_smooth(images):
    import scipy.ndimage

    return np.clip(scipy.ndimage.gaussian_filter(images, 2.0, axes=(1, 2)) * 3 - 255, 0, 255).astype(np.uint8)
