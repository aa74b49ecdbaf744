"""The restoration family through the run store, checkpoints, resume and the CLI (digits, tiny widths)."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from core.app import cli
from core.common.config import config_for
from core.models.classifiers import build_classifier
from core.models.gans import build_gan
from core.runs import jobs
from core.store.store import RunStore
from tests.stored_runs import completed_classifier_run


def run_cli(capsys, home, *args):
    code = cli.main(["--home", str(home), *args])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return code, (json.loads(lines[-1]) if code == 0 and "--json" in args else None), captured.err


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A store holding a (random-weights) digits classifier, so classifier metrics are reported."""
    home = tmp_path_factory.mktemp("restore-home")
    keras.utils.set_random_seed(0)
    classifier = build_classifier("convnet", (8, 8, 1), 10, augment=False)
    completed_classifier_run(RunStore(home), classifier, "digits", test_accuracy=0.5)
    return home


@pytest.fixture(scope="module")
def super_resolution_run(home):
    code = cli.main(["--home", str(home), "train", "--model", "unet", "--task", "super-resolution", "--scale", "2",
                     "--dataset", "digits", "--epochs", "1", "--width", "4", "--json"])
    assert code == 0
    store = RunStore(home)
    return next(run for run in store.list_runs(family="restoration") if run["model"] == "unet")


def test_train_reports_metrics_beside_the_baseline(super_resolution_run, home):
    run = super_resolution_run
    metrics = run["metrics"]
    assert run["status"] == "completed"
    for name in ("psnr", "ssim", "baseline_psnr", "baseline_ssim", "classifier_accuracy_clean",
                 "classifier_accuracy_degraded", "classifier_accuracy_restored"):
        assert isinstance(metrics[name], float), name
    assert metrics["baseline_method"] == "bicubic"
    assert 5.0 < metrics["baseline_psnr"] < 40.0 and 0.0 < metrics["baseline_ssim"] <= 1.0
    store = RunStore(home)
    epoch_rows = store.metric_table(run["run_id"], "epoch")
    assert epoch_rows["psnr"] and epoch_rows["baseline_psnr"][0] == pytest.approx(metrics["baseline_psnr"])
    run_dir = store.run_dir(run["run_id"])
    assert (run_dir / "checkpoints" / "epoch_001.keras").is_file()
    grid = np.asarray(Image.open(run_dir / "samples" / "epoch_001.png"))
    assert grid.shape[:2] == (8 * 9 + 1, 4 * 9 + 1)  # 8 rows of degraded | baseline | model | original
    assert (run_dir / "samples" / "epoch_000.png").is_file()


def test_resume_continues_to_more_epochs(super_resolution_run, home):
    store = RunStore(home)
    run = jobs.resume(store, super_resolution_run["run_id"], epochs=2, background=False)
    assert run["status"] == "completed"
    assert len(store.metric_table(run["run_id"], "epoch")["psnr"]) == 2
    assert (store.run_dir(run["run_id"]) / "samples" / "epoch_002.png").is_file()


def test_restore_tiles_a_larger_input(super_resolution_run, home, tmp_path, capsys):
    source = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 13), dtype=np.uint8)).save(source)
    out = tmp_path / "out.png"
    code, payload, err = run_cli(capsys, home, "restore", super_resolution_run["run_id"], str(source),
                                 "--out", str(out), "--json")
    assert code == 0, err
    assert payload["output_size"] == [26, 20] and payload["tiles"] > 1
    assert Image.open(out).size == (26, 20)


def test_bad_input_is_one_line_and_writes_nothing(super_resolution_run, home, tmp_path, capsys):
    store = RunStore(home)
    before = len(store.list_runs())
    code, _, err = run_cli(capsys, home, "train", "--model", "unet", "--task", "super-resolution", "--scale", "4",
                           "--dataset", "digits", "--json")
    assert code == 2 and "x4 super-resolution of 8x8 images" in err and len(err.strip().splitlines()) == 1
    assert len(store.list_runs()) == before
    huge = tmp_path / "huge.png"
    Image.fromarray(np.zeros((1100, 1000), np.uint8)).save(huge)
    out = tmp_path / "never.png"
    code, _, err = run_cli(capsys, home, "restore", super_resolution_run["run_id"], str(huge), "--out", str(out))
    assert code == 2 and "over the limit" in err and not out.exists()
    classifier = next(run for run in store.list_runs(family="classifier"))
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(small)
    code, _, err = run_cli(capsys, home, "restore", classifier["run_id"], str(small), "--out", str(out))
    assert code == 2 and "classifier" in err and "restoration run" in err and not out.exists()


def test_pix2pix_inpaint_and_masks(home, tmp_path, capsys):
    code, payload, err = run_cli(capsys, home, "train", "--model", "pix2pix", "--task", "inpaint", "--mask", "center",
                                 "--dataset", "digits", "--epochs", "1", "--width", "4", "--json")
    assert code == 0, err
    metrics = payload["metrics"]
    for name in ("hole_psnr", "baseline_hole_psnr", "fid_cls", "baseline_fid_cls", "classifier_accuracy_restored"):
        assert isinstance(metrics[name], float), name
    assert metrics["baseline_method"] == "harmonic"
    run_id = payload["run_id"]
    image = np.random.default_rng(1).integers(0, 256, (8, 8), dtype=np.uint8)
    source = tmp_path / "digit.png"
    Image.fromarray(image).save(source)
    out = tmp_path / "filled.png"
    code, result, err = run_cli(capsys, home, "restore", run_id, str(source), "--out", str(out), "--mask", "center",
                                "--json")
    assert code == 0, err
    filled = np.asarray(Image.open(out))
    assert filled.shape == (8, 8) and result["hole_pixels"] == 16
    known = np.ones((8, 8), bool)
    known[2:6, 2:6] = False
    assert np.array_equal(filled[known], image[known])
    for mask_pixels, message in ((np.zeros((9, 8), np.uint8), "the mask is 8x9 but the image is 8x8"),
                                 (np.zeros((8, 8), np.uint8), "the mask has no hole")):
        mask = tmp_path / "mask.png"
        Image.fromarray(mask_pixels).save(mask)
        out.unlink(missing_ok=True)
        code, _, err = run_cli(capsys, home, "restore", run_id, str(source), "--out", str(out), "--mask", str(mask))
        assert code == 2 and message in err and not out.exists()
    code, _, err = run_cli(capsys, home, "restore", run_id, str(source), "--out", str(out))
    assert code == 2 and "needs a mask" in err


def test_gan_prior_inpainting_matches_the_known_pixels(home, tmp_path, capsys):
    store = RunStore(home)
    keras.utils.set_random_seed(0)
    gan = build_gan(config_for("dcgan", latent_dim=8), (8, 8, 1))
    run_id = store.create_run(family="gan", model="dcgan", dataset="digits", config={"model": "dcgan"},
                              status="completed")
    (store.run_dir(run_id) / "checkpoints").mkdir()
    gan.save(store.run_dir(run_id) / "checkpoints" / "epoch_001.keras")
    # An image the generator can make: its own output for some latent.
    target = np.asarray(Image.fromarray(((np.asarray(gan.generate(np.ones((1, 8)) * 0.5))[0, :, :, 0] + 1) * 127.5)
                                        .round().astype(np.uint8)))
    source = tmp_path / "gan.png"
    Image.fromarray(target).save(source)
    out = tmp_path / "gan_filled.png"
    code, result, err = run_cli(capsys, home, "restore", run_id, str(source), "--out", str(out), "--mask", "center",
                                "--json")
    assert code == 0, err
    assert result["method"] == "gan-prior"
    assert result["known_mse_after"] < 0.5 * result["known_mse_before"]
    filled = np.asarray(Image.open(out))
    assert np.array_equal(filled[:2], target[:2])  # known rows kept
