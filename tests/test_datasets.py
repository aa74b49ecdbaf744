"""Dataset registry and loaders, on small files in every real format that the tests write.

Every test runs with empty CONVGAN_HOME and KERAS_HOME folders and without the dataset
environment variables, so nothing on the developer's machine changes the outcome, and an
accidental Keras download fails the test instead of touching the network.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import socket
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.common.errors import DatasetError, DatasetUnavailable
from core.data import datasets
from core.data.loaders import celeba, cifar, image_files, keras_download, mnist
from core.data.loaders.common import split_indices

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASET_ENV_VARS = (
    "CONVGAN_MNIST_DIR",
    "CONVGAN_FASHION_MNIST_DIR",
    "CONVGAN_CIFAR10_DIR",
    "CONVGAN_CELEBA_DIR",
)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    for variable in DATASET_ENV_VARS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CONVGAN_HOME", str(tmp_path / "convgan_home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    def no_download(name, how_to_get):
        pytest.fail(f"the test tried to download {name}")

    monkeypatch.setattr(keras_download, "download", no_download)
    datasets.clear_cache()
    yield
    datasets.clear_cache()


@pytest.fixture
def no_debian_fashion(tmp_path, monkeypatch):
    """Hide /usr/share/datasets/fashion-mnist, which would otherwise win over a Keras cache."""
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian-package")


# ---------------------------------------------------------------- writers of real file formats


def make_digits_like(num_images: int, height: int = 28, width: int = 28, seed: int = 0):
    """Random uint8 images and labels that cycle through all 10 classes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num_images, height, width), dtype=np.uint8)
    labels = (np.arange(num_images) % 10).astype(np.uint8)
    return images, labels


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    """Write an IDX file: 0x0000, type 0x08 (uint8), rank, big-endian dimensions, then the data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, np.uint8).tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload, compresslevel=1))
    else:
        path.write_bytes(payload)


def write_idx_dataset(
    folder: Path, num_train: int = 30, num_test: int = 20, compress: bool = True, seed: int = 0
):
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = make_digits_like(num_train, seed=seed)
    x_test, y_test = make_digits_like(num_test, seed=seed + 1)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for key, stem in mnist.IDX_FILES.items():
        write_idx(folder / stem, arrays[key], compress)
    return arrays


def write_image(path: Path, pixels: np.ndarray, mode: str | None = None, **save_options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels, mode) if mode else Image.fromarray(pixels)
    image.save(path, **save_options)


def solid(height: int, width: int, colour) -> np.ndarray:
    """An image of one colour: (H, W) for a grey level, (H, W, 3) for an RGB triple."""
    if np.isscalar(colour):
        return np.full((height, width), colour, np.uint8)
    return np.broadcast_to(np.asarray(colour, np.uint8), (height, width, 3)).copy()


def write_class_folders(root: Path, classes=("cats", "dogs"), per_class: int = 4, size=(12, 10)) -> None:
    for class_index, name in enumerate(classes):
        for index in range(per_class):
            write_image(root / name / f"{index:02d}.png", solid(size[1], size[0], 40 * class_index + index))


def write_cifar_batches(folder: Path, per_batch: int = 4, protocol: int = 4) -> dict[str, np.ndarray]:
    """Keras' cifar-10-batches-py layout: dicts with b'data' (N, 3072) and b'labels'."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in (*cifar.TRAIN_BATCHES, cifar.TEST_BATCH):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(label) for label in rng.integers(0, 10, size=per_batch)]
        with open(folder / name, "wb") as file:
            pickle.dump({b"batch_label": b"test", b"data": data, b"labels": labels}, file, protocol=protocol)
        written[name] = data
    return written


def save_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


# ------------------------------------------------------------------------ registry and specs


def test_list_datasets_reports_builtins_and_availability_without_loading(monkeypatch, no_debian_fashion):
    infos = {info.name: info for info in datasets.list_datasets()}
    assert list(infos) == ["digits", "mnist", "fashion_mnist", "cifar10", "celeba"]
    assert infos["digits"].available
    # KERAS_HOME is empty, the Debian folder hidden and no variable set: nothing else is here.
    for name in ("mnist", "fashion_mnist", "cifar10", "celeba"):
        assert not infos[name].available, name
        assert infos[name].how_to_get
    assert "apt-get install dataset-fashion-mnist" in infos["fashion_mnist"].how_to_get
    assert "CONVGAN_CELEBA_DIR" in infos["celeba"].how_to_get
    assert infos["cifar10"].image_shape == (32, 32, 3) and infos["cifar10"].num_classes == 10
    assert infos["celeba"].splits is None and not infos["celeba"].labeled
    assert infos["fashion_mnist"].class_names[0] == "T-shirt/top"
    assert all(info.license and info.citation for info in infos.values())


def test_list_datasets_reports_a_misconfigured_variable_instead_of_raising(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVGAN_CIFAR10_DIR", str(tmp_path / "empty"))
    info = {info.name: info for info in datasets.list_datasets()}["cifar10"]
    assert not info.available
    assert "CONVGAN_CIFAR10_DIR" in info.how_to_get


def test_unknown_spec_message_lists_every_choice():
    with pytest.raises(DatasetError) as error:
        datasets.load_dataset("foo")
    assert str(error.value) == (
        "unknown dataset 'foo': use digits, mnist, fashion_mnist, cifar10, celeba, "
        "folder:PATH, zip:PATH or npz:PATH"
    )


def test_bare_folder_path_gets_a_hint(tmp_path):
    with pytest.raises(DatasetError, match=r"for this folder: folder:"):
        datasets.load_dataset(str(tmp_path))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no dataset given"),
        ("folder:", "folder: needs a path"),
        ("folder:/no/such/place", "folder '/no/such/place' does not exist"),
        ("zip:/no/such.zip", "zip file '/no/such.zip' does not exist"),
        ("npz:/no/such.npz", ".npz file '/no/such.npz' does not exist"),
    ],
)
def test_bad_specs_raise_clear_errors(spec, message):
    with pytest.raises(DatasetError, match=message):
        datasets.load_dataset(spec)


def test_file_and_folder_mix_ups_are_explained(tmp_path):
    archive = save_npz(tmp_path / "data.npz", x=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        datasets.load_dataset(f"folder:{archive}")
    with pytest.raises(DatasetError, match="is a folder, not a npz file"):
        datasets.load_dataset(f"npz:{tmp_path}")


@pytest.mark.parametrize("image_size", [0, -3, 2000, 8.5, True])
def test_bad_image_size_is_refused(image_size):
    with pytest.raises(DatasetError, match="image size"):
        datasets.load_dataset("digits", image_size)


def test_dataset_info_for_builtins_is_cheap_and_honours_image_size():
    info = datasets.dataset_info("Fashion-MNIST", image_size=32)  # alias and case are accepted
    assert info.name == "fashion_mnist"
    assert info.image_shape == (32, 32, 1)
    assert info.splits == {"train": 60000, "test": 10000}


# --------------------------------------------------------------------------------- digits


def test_digits_shapes_values_and_stratified_split():
    dataset = datasets.load_dataset("digits")
    assert dataset.x_train.shape == (1437, 8, 8, 1) and dataset.x_test.shape == (360, 8, 8, 1)
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    assert dataset.x_train.max() == 255 and dataset.x_train.min() == 0  # 0..16 scaled to 0..255
    assert dataset.num_classes == 10 and dataset.labeled and dataset.image_shape == (8, 8, 1)
    assert dataset.info.splits == {"train": 1437, "test": 360}
    test_counts = np.bincount(dataset.y_test, minlength=10)
    assert test_counts.min() >= 34 and test_counts.max() <= 37  # 20% of each class of ~180
    assert repr(dataset) == "Dataset(digits: 1437 train, 360 test, 8x8x1, 10 classes)"


def test_digits_split_is_deterministic_across_loads():
    first = datasets.load_dataset("digits")
    datasets.clear_cache()
    second = datasets.load_dataset("digits")
    assert first.x_train is not second.x_train  # really loaded twice
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)


def test_arrays_are_read_only_and_repeated_loads_share_them():
    first = datasets.load_dataset("digits")
    with pytest.raises(ValueError, match="read-only"):
        first.x_train[0, 0, 0, 0] = 1
    first.notes.append("scribbled by a caller")
    second = datasets.load_dataset("digits")
    assert second.x_train is first.x_train  # from the in-process cache
    assert second.notes == []  # each caller gets its own notes list


def test_image_size_resizes_with_a_note():
    dataset = datasets.load_dataset("digits", image_size=16)
    assert dataset.x_train.shape[1:] == (16, 16, 1) and dataset.image_shape == (16, 16, 1)
    assert any("resized 1797 images from 8x8 to 16x16" in note for note in dataset.notes)


def test_split_indices_are_stratified_disjoint_and_complete():
    labels = np.repeat(np.arange(3), [10, 20, 7])
    train_index, test_index = split_indices(labels, len(labels), 0.15)
    assert sorted(np.concatenate([train_index, test_index]).tolist()) == list(range(len(labels)))
    assert len(test_index) == 6  # ceil(0.15 * 37)
    assert set(np.bincount(labels[test_index], minlength=3).tolist()) <= {1, 2, 3}
    again = split_indices(labels, len(labels), 0.15)
    np.testing.assert_array_equal(train_index, again[0])


# ------------------------------------------------------------------- MNIST / Fashion-MNIST IDX


def test_fashion_mnist_from_idx_files_in_the_environment_variable_folder(tmp_path, monkeypatch):
    written = write_idx_dataset(tmp_path / "fashion")
    monkeypatch.setenv("CONVGAN_FASHION_MNIST_DIR", str(tmp_path / "fashion"))
    dataset = datasets.load_dataset("fashion_mnist")
    assert dataset.x_train.shape == (30, 28, 28, 1) and dataset.x_test.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(dataset.x_train[..., 0], written["x_train"])
    np.testing.assert_array_equal(dataset.y_test, written["y_test"])
    assert dataset.y_train.dtype == np.int64
    assert dataset.class_names[-1] == "Ankle boot"
    assert str(tmp_path / "fashion") in dataset.info.source


def test_mnist_from_uncompressed_idx_files(tmp_path, monkeypatch):
    written = write_idx_dataset(tmp_path / "mnist", compress=False)
    monkeypatch.setenv("CONVGAN_MNIST_DIR", str(tmp_path / "mnist"))
    dataset = datasets.load_dataset("mnist")
    np.testing.assert_array_equal(dataset.x_test[..., 0], written["x_test"])
    assert dataset.class_names == tuple("0123456789")


def test_fashion_mnist_from_a_keras_cache(tmp_path, no_debian_fashion):
    keras_folder = tmp_path / "keras_home" / "datasets" / "fashion-mnist"
    written = write_idx_dataset(keras_folder, seed=5)
    assert datasets.dataset_info("fashion_mnist").available
    dataset = datasets.load_dataset("fashion_mnist")
    np.testing.assert_array_equal(dataset.x_train[..., 0], written["x_train"])
    assert str(keras_folder) in dataset.info.source


def test_mnist_from_keras_mnist_npz(tmp_path):
    x_train, y_train = make_digits_like(20)
    x_test, y_test = make_digits_like(10, seed=1)
    keras_folder = tmp_path / "keras_home" / "datasets"
    keras_folder.mkdir(parents=True)
    save_npz(keras_folder / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    dataset = datasets.load_dataset("mnist")
    np.testing.assert_array_equal(dataset.x_train[..., 0], x_train)
    assert "Keras' cache" in dataset.info.source


def test_parsed_idx_copy_is_reused_and_refreshed_when_files_change(tmp_path, monkeypatch):
    folder = tmp_path / "fashion"
    write_idx_dataset(folder)
    monkeypatch.setenv("CONVGAN_FASHION_MNIST_DIR", str(folder))
    first = datasets.load_dataset("fashion_mnist")
    copies = list((tmp_path / "convgan_home" / "cache" / "datasets").glob("fashion_mnist-*"))
    assert len(copies) == 1

    datasets.clear_cache()
    real_read_idx = mnist.read_idx
    monkeypatch.setattr(mnist, "read_idx", lambda path: pytest.fail("parsed the gzip again"))
    second = datasets.load_dataset("fashion_mnist")
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert not second.x_train.flags.writeable

    monkeypatch.setattr(mnist, "read_idx", real_read_idx)
    rewritten = write_idx_dataset(folder, seed=9)  # new contents, new mtimes and sizes
    future = time.time() + 5
    for path in folder.iterdir():
        os.utime(path, (future, future))
    third = datasets.load_dataset("fashion_mnist")
    np.testing.assert_array_equal(third.x_train[..., 0], rewritten["x_train"])
    assert len(list(copies[0].parent.glob("fashion_mnist-*"))) == 1  # the stale copy was removed


def test_truncated_idx_file_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "fashion"
    write_idx_dataset(folder)
    images = folder / "train-images-idx3-ubyte.gz"
    payload = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(payload[:-100]))
    monkeypatch.setenv("CONVGAN_FASHION_MNIST_DIR", str(folder))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz' has .* truncated or corrupt"):
        datasets.load_dataset("fashion_mnist")


def test_environment_variable_pointing_at_the_wrong_folder_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVGAN_MNIST_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match="CONVGAN_MNIST_DIR is .* lacks the mnist files"):
        datasets.load_dataset("mnist")


def test_real_fashion_mnist_from_the_debian_package(capsys):
    if not (mnist.DEBIAN_FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    timings = {}
    start = time.perf_counter()
    dataset = datasets.load_dataset("fashion_mnist")
    timings["cold (gzip parse + write copy)"] = time.perf_counter() - start
    datasets.clear_cache()
    start = time.perf_counter()
    datasets.load_dataset("fashion_mnist")
    timings["warm (parsed copy on disk)"] = time.perf_counter() - start
    start = time.perf_counter()
    datasets.load_dataset("fashion_mnist")
    timings["warm (in-process cache)"] = time.perf_counter() - start
    with capsys.disabled():
        print(
            "\nFashion-MNIST load times: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
        )
    assert dataset.x_train.shape == (60000, 28, 28, 1) and dataset.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(dataset.y_train).tolist() == [6000] * 10
    assert dataset.info.source.startswith(str(mnist.DEBIAN_FASHION_MNIST_DIR))


# ---------------------------------------------------------------------------------- npz


def test_npz_with_float_images_in_unit_range(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((20, 6, 5)).astype(np.float32)
    y = np.arange(20) % 2
    path = save_npz(tmp_path / "data.npz", x=x, y=y, class_names=np.array(["even", "odd"]))
    dataset = datasets.load_dataset(f"npz:{path}")
    assert dataset.image_shape == (6, 5, 1) and dataset.class_names == ("even", "odd")
    assert len(dataset.x_train) + len(dataset.x_test) == 20 and len(dataset.x_test) == 3  # ceil(15%)
    assert sorted(dataset.y_test.tolist()) in ([0, 1, 1], [0, 0, 1])  # both classes held out
    assert any("scaled float" in note for note in dataset.notes)
    assert any("held out 3 of 20" in note for note in dataset.notes)
    restored = np.rint(x * 255).astype(np.uint8)
    assert {bytes(image) for image in dataset.x_train} <= {bytes(image[..., None]) for image in restored}


def test_npz_with_train_and_test_arrays_keeps_the_given_split(tmp_path):
    x_train, y_train = make_digits_like(30)
    x_test, y_test = make_digits_like(10, seed=1)
    path = save_npz(
        tmp_path / "d.npz", x_train=x_train.astype(np.float64), y_train=y_train, x_test=x_test, y_test=y_test
    )
    dataset = datasets.load_dataset(f"npz:{path}")
    assert len(dataset.x_train) == 30 and len(dataset.x_test) == 10
    np.testing.assert_array_equal(dataset.x_train[..., 0], x_train)  # floats in [0, 255] rounded back
    assert dataset.num_classes == 10


def test_npz_without_labels_is_unlabeled(tmp_path):
    path = save_npz(tmp_path / "faces.npz", x=np.zeros((10, 8, 8, 3), np.uint8))
    dataset = datasets.load_dataset(f"npz:{path}")
    assert not dataset.labeled and dataset.y_train is None and dataset.y_test is None
    assert dataset.num_classes == 0 and dataset.image_shape == (8, 8, 3)


def test_npz_object_arrays_are_refused(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((4, 4)), np.zeros((5, 5))
    path = save_npz(tmp_path / "ragged.npz", x=ragged)
    with pytest.raises(DatasetError) as error:
        datasets.load_dataset(f"npz:{path}")
    assert str(error.value) == (
        f"'{path}' contains object arrays; save plain numeric arrays (allow_pickle=False)"
    )


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x": np.zeros((5, 4, 4), np.uint8), "y": np.zeros(4, np.int64)},
            "has 4 labels but there are 5 images",
        ),
        (
            {
                "x": np.zeros((4, 4, 4), np.uint8),
                "y": np.array([0, 1, 2, 1]),
                "class_names": np.array(["a", "b"]),
            },
            "has label 2 but there are only 2 classes",
        ),
        ({"x": np.zeros((4, 4, 4), np.uint8), "y": np.array([0, -1, 0, 1])}, "negative labels"),
        (
            {"x": np.zeros((4, 4, 4), np.uint8), "y": np.array([0, 0.5, 1, 1])},
            "non-integer labels such as 0.5",
        ),
        ({"x": np.zeros((4, 4, 4), np.uint8), "y": np.array([0, np.nan, 1, 1])}, "NaN"),
        ({"x": np.zeros((4, 4, 4), np.uint8), "y": np.eye(4)}, r"one-hot labels save y.argmax\(axis=1\)"),
        ({"x": np.zeros((4, 16), np.uint8)}, r"has shape \(4, 16\): expected \(N, H, W\)"),
        ({"x": np.zeros((4, 3, 8, 8), np.uint8)}, "looks channels-first"),
        ({"x": np.zeros((4, 8, 8, 2), np.uint8)}, "C = 1 or 3"),
        ({"x": np.full((4, 4, 4), np.nan, np.float32)}, "contains NaN or infinite values"),
        ({"x": np.full((4, 4, 4), -0.5, np.float32)}, r"save \(x \+ 1\) / 2"),
        ({"x": np.full((4, 4, 4), 300, np.int32)}, "integer values from 300 to 300"),
        ({"x": np.zeros((0, 8, 8), np.uint8)}, r"is empty \(0 images\)"),
        ({"images": np.zeros((4, 8, 8), np.uint8)}, r"has no array named 'x' \(found: images\)"),
        ({"x": np.zeros((6, 4, 4), np.uint8), "y": np.zeros(6, np.int64)}, "has only 1 class"),
        ({"x": np.zeros((6, 4, 4), np.uint8), "y": np.array([0, 0, 0, 0, 0, 1])}, "class '1' .* has 1 image"),
        (
            {"x": np.zeros((6, 4, 4), np.uint8), "y": np.array([0, 0, 0, 2, 2, 2])},
            "class '1' .* has 0 images",
        ),
    ],
    ids=[
        "count-mismatch",
        "label-out-of-range",
        "negative-label",
        "fractional-label",
        "nan-label",
        "one-hot",
        "wrong-rank",
        "channels-first",
        "two-channels",
        "nan-images",
        "minus-one-to-one",
        "integers-over-255",
        "empty",
        "no-x",
        "one-class",
        "class-with-one-image",
        "label-gap",
    ],
)
def test_invalid_npz_contents_are_refused(tmp_path, arrays, message):
    path = save_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        datasets.load_dataset(f"npz:{path}")


def test_file_that_is_not_an_npz(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("not a zip")
    with pytest.raises(DatasetError, match="is not a readable .npz file"):
        datasets.load_dataset(f"npz:{path}")


# ------------------------------------------------------------------------------- folders


def test_class_subfolders_become_sorted_labels(tmp_path):
    write_class_folders(tmp_path / "pets", classes=("dogs", "cats"), per_class=10)
    write_image(tmp_path / "pets" / ".DS_Store", solid(2, 2, 0), format="PNG")  # hidden: ignored
    dataset = datasets.load_dataset(f"folder:{tmp_path / 'pets'}")
    assert dataset.class_names == ("cats", "dogs")
    assert dataset.image_shape == (10, 12, 1)  # grey PNGs stay one channel
    assert len(dataset.x_train) == 17 and len(dataset.x_test) == 3
    # Written in the order dogs (grey 0..9), cats (grey 40..49); labels follow sorted names.
    for images, labels in ((dataset.x_train, dataset.y_train), (dataset.x_test, dataset.y_test)):
        np.testing.assert_array_equal(images[:, 0, 0, 0] >= 40, labels == dataset.class_names.index("cats"))
    assert not any("skipped" in note for note in dataset.notes)


def test_flat_folder_is_unlabeled(tmp_path):
    for index in range(5):
        write_image(tmp_path / "faces" / f"{index}.jpg", solid(16, 16, (200, 30 * index, 10)), quality=95)
    dataset = datasets.load_dataset(f"folder:{tmp_path / 'faces'}")
    assert not dataset.labeled and dataset.y_train is None
    assert dataset.image_shape == (16, 16, 3)
    assert len(dataset.x_train) == 4 and len(dataset.x_test) == 1


def test_non_image_files_are_skipped_with_a_note(tmp_path):
    write_class_folders(tmp_path / "pets")
    (tmp_path / "pets" / "README.txt").write_text("about my pets")
    dataset = datasets.load_dataset(f"folder:{tmp_path / 'pets'}")
    assert any(
        "skipped 1 file that is not an image" in note and "README.txt" in note for note in dataset.notes
    )


def test_a_file_named_like_an_image_that_is_not_one_is_named(tmp_path):
    write_class_folders(tmp_path / "pets")
    (tmp_path / "pets" / "cats" / "broken.png").write_text("this is text")
    with pytest.raises(DatasetError, match=r"'.*cats/broken\.png' is not an image Pillow can read"):
        datasets.load_dataset(f"folder:{tmp_path / 'pets'}")


def test_mixed_sizes_are_resized_to_the_most_common_size(tmp_path):
    write_class_folders(tmp_path / "pets", per_class=4, size=(28, 28))
    write_image(tmp_path / "pets" / "cats" / "odd.png", solid(28, 30, 7))  # 30 wide, 28 high
    dataset = datasets.load_dataset(f"folder:{tmp_path / 'pets'}")
    assert dataset.image_shape == (28, 28, 1)
    assert "resized 1 images from 30x28 to 28x28, the most common size" in dataset.notes


def test_mixed_grayscale_and_colour_become_rgb(tmp_path):
    write_class_folders(tmp_path / "pets", per_class=3)
    write_image(tmp_path / "pets" / "dogs" / "red.png", solid(10, 12, (255, 0, 0)))
    dataset = datasets.load_dataset(f"folder:{tmp_path / 'pets'}")
    assert dataset.image_shape == (10, 12, 3)
    assert "converted 6 grayscale images to RGB because the others are in colour" in dataset.notes


def test_image_modes_are_converted(tmp_path):
    folder = tmp_path / "modes"
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black: shows as white
    rgba[:4, :, :] = (0, 0, 255, 255)  # top half opaque blue
    write_image(folder / "a_rgba.png", rgba)
    write_image(folder / "b_16bit.png", np.full((8, 8), 65535, np.uint16))
    palette = Image.fromarray(np.full((8, 8, 3), (0, 200, 0), np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE
    )
    palette.save(folder / "c_palette.gif")
    write_image(folder / "d_grey_as_rgb.bmp", solid(8, 8, (90, 90, 90)))
    write_image(folder / "e_webp.webp", solid(8, 8, (10, 20, 30)), lossless=True)
    pixels = {}
    for path in sorted(folder.iterdir()):
        pixels[path.stem], _ = image_files.decode_image(path, path.name)
    assert pixels["a_rgba"][0, 0].tolist() == [0, 0, 255] and pixels["a_rgba"][7, 7].tolist() == [
        255,
        255,
        255,
    ]
    assert pixels["b_16bit"].shape == (8, 8, 1) and pixels["b_16bit"].max() == 255
    assert pixels["c_palette"][0, 0].tolist() == [0, 200, 0]
    assert pixels["d_grey_as_rgb"].shape == (8, 8, 1) and pixels["d_grey_as_rgb"][0, 0, 0] == 90
    assert pixels["e_webp"][0, 0].tolist() == [10, 20, 30]


def test_read_image_for_classification(tmp_path):
    write_image(tmp_path / "seven.png", solid(5, 7, (1, 2, 3)))
    assert datasets.read_image(tmp_path / "seven.png").shape == (5, 7, 3)
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.read_image(tmp_path / "missing.png")


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(image_files, "MAX_IMAGE_PIXELS", 100)
    write_image(tmp_path / "big.png", solid(20, 20, 0))
    with pytest.raises(DatasetError, match=r"'big\.png' is 20x20 pixels, over the .* limit"):
        image_files.decode_image(tmp_path / "big.png", "big.png")


def test_train_and_test_subfolders_are_used_as_splits(tmp_path):
    write_class_folders(tmp_path / "data" / "train", per_class=5)
    write_class_folders(tmp_path / "data" / "test", per_class=2)
    dataset = datasets.load_dataset(f"folder:{tmp_path / 'data'}")
    assert (len(dataset.x_train), len(dataset.x_test)) == (10, 4)
    assert dataset.class_names == ("cats", "dogs")
    assert np.bincount(dataset.y_test).tolist() == [2, 2]


def test_images_beside_class_folders_are_ambiguous(tmp_path):
    write_class_folders(tmp_path / "pets")
    write_image(tmp_path / "pets" / "stray.png", solid(10, 12, 0))
    with pytest.raises(DatasetError, match="has images both at its top level and in sub-folders"):
        datasets.load_dataset(f"folder:{tmp_path / 'pets'}")


def test_class_with_one_image_is_refused(tmp_path):
    write_class_folders(tmp_path / "pets")
    write_image(tmp_path / "pets" / "fish" / "nemo.png", solid(10, 12, 0))
    with pytest.raises(DatasetError, match="class 'fish' .* has 1 image: every class needs at least 2"):
        datasets.load_dataset(f"folder:{tmp_path / 'pets'}")


def test_folder_without_images(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "list.csv").write_text("a,b")
    with pytest.raises(DatasetError) as error:
        datasets.load_dataset(f"folder:{tmp_path / 'cats'}")
    assert str(error.value) == (
        f"no images found in '{tmp_path / 'cats'}': expected .png/.jpg files or one sub-folder per class"
    )


def test_edited_folder_is_reloaded(tmp_path):
    write_class_folders(tmp_path / "pets")
    spec = f"folder:{tmp_path / 'pets'}"
    first = datasets.load_dataset(spec)
    assert datasets.load_dataset(spec).x_train is first.x_train
    write_image(tmp_path / "pets" / "cats" / "new.png", solid(10, 12, 3))
    assert len(datasets.load_dataset(spec).x_train) + len(datasets.load_dataset(spec).x_test) == 9


def test_dataset_info_for_a_folder_loads_it(tmp_path):
    write_class_folders(tmp_path / "pets")
    info = datasets.dataset_info(f"folder:{tmp_path / 'pets'}", image_size=16)
    assert info.image_shape == (16, 16, 1) and info.splits == {"train": 6, "test": 2}
    assert info.available and info.num_classes == 2


# ----------------------------------------------------------------------------------- zips


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_zip_with_class_folders_inside_a_wrapper_folder(tmp_path):
    members = {f"pets/{name}/{index}.png": png_bytes(solid(9, 9, 100 * c + index)) for c, name in
               enumerate(("cats", "dogs")) for index in range(3)}  # fmt: skip
    members["__MACOSX/pets/._0.png"] = b"resource fork junk"
    path = zip_of(tmp_path / "pets.zip", members)
    dataset = datasets.load_dataset(f"zip:{path}", image_size=12)
    assert dataset.class_names == ("cats", "dogs") and dataset.image_shape == (12, 12, 1)
    assert "using the images inside 'pets'" in dataset.notes
    assert len(dataset.x_train) + len(dataset.x_test) == 6


@pytest.mark.parametrize("member", ["../evil.png", "/etc/evil.png", "a/../../evil.png", "C:/evil.png"])
def test_zip_member_paths_outside_the_archive_are_refused(tmp_path, member):
    path = zip_of(
        tmp_path / "evil.zip", {"ok/1.png": png_bytes(solid(4, 4, 0)), member: png_bytes(solid(4, 4, 0))}
    )
    with pytest.raises(DatasetError, match="unsafe member path"):
        datasets.load_dataset(f"zip:{path}")
    assert not (tmp_path / "evil.png").exists()


def test_empty_zip(tmp_path):
    path = zip_of(tmp_path / "empty.zip", {})
    with pytest.raises(DatasetError, match="no images found in '.*empty.zip'"):
        datasets.load_dataset(f"zip:{path}")


def test_zip_bomb_is_refused_before_reading(tmp_path):
    path = zip_of(tmp_path / "bomb.zip", {"a.bmp": bytes(4 * 1024**2)})  # 4 MiB of zeros: ratio ~1000
    with pytest.raises(DatasetError, match="possible zip bomb"):
        datasets.load_dataset(f"zip:{path}")


def test_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "fake.zip"
    path.write_text("hello")
    with pytest.raises(DatasetError, match="is not a readable zip file"):
        datasets.load_dataset(f"zip:{path}")


# --------------------------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_batches_from_the_environment_variable(tmp_path, monkeypatch, protocol):
    written = write_cifar_batches(tmp_path / "cifar" / cifar.BATCH_FOLDER, protocol=protocol)
    monkeypatch.setenv("CONVGAN_CIFAR10_DIR", str(tmp_path / "cifar"))  # the parent folder works too
    dataset = datasets.load_dataset("cifar10")
    assert dataset.x_train.shape == (20, 32, 32, 3) and dataset.x_test.shape == (4, 32, 32, 3)
    first = written["data_batch_1"][0]
    # Row layout: 1024 red values, then green, then blue, each 32x32 row-major.
    assert dataset.x_train[0, 0, 1].tolist() == [first[1], first[1024 + 1], first[2048 + 1]]
    assert dataset.class_names[0] == "airplane" and dataset.y_train.dtype == np.int64


def test_cifar10_from_a_keras_cache(tmp_path):
    folder = tmp_path / "keras_home" / "datasets" / "cifar-10-batches-py-target" / cifar.BATCH_FOLDER
    write_cifar_batches(folder)
    dataset = datasets.load_dataset("cifar10")
    assert str(folder) in dataset.info.source and len(dataset.x_train) == 20


class _RunsCode:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cifar_batch_that_would_run_code_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "cifar"
    write_cifar_batches(folder)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": []}))
    monkeypatch.setenv("CONVGAN_CIFAR10_DIR", str(folder))
    with pytest.raises(
        DatasetError, match=r"test_batch' is not a safe CIFAR-10 batch \(refusing to load posix.getcwd"
    ):
        datasets.load_dataset("cifar10")


# ----------------------------------------------------------------------------------- CelebA


def write_faces(folder: Path, count: int = 8) -> None:
    """Portrait photos 30 wide, 50 high: red top band, green centre square, blue bottom band."""
    for index in range(count):
        pixels = np.zeros((50, 30, 3), np.uint8)
        pixels[:10] = (255, 0, 0)
        pixels[10:40] = (0, 255, 0)
        pixels[40:] = (0, 0, 255)
        write_image(folder / f"{index:06d}.jpg", pixels, quality=95)


def test_celeba_is_center_cropped_resized_and_unlabeled(tmp_path, monkeypatch):
    write_faces(tmp_path / "celeba" / "img_align_celeba")
    monkeypatch.setenv("CONVGAN_CELEBA_DIR", str(tmp_path / "celeba"))
    dataset = datasets.load_dataset("celeba")
    assert dataset.image_shape == (64, 64, 3) and not dataset.labeled
    assert len(dataset.x_train) == 6 and len(dataset.x_test) == 2
    mean_colour = dataset.x_train.reshape(-1, 3).mean(axis=0)
    assert mean_colour[1] > 230 and mean_colour[0] < 25 and mean_colour[2] < 25  # only the green square
    smaller = datasets.load_dataset("celeba", image_size=32)
    assert smaller.image_shape == (32, 32, 3)


def test_celeba_without_a_folder_says_how_to_get_it():
    with pytest.raises(
        DatasetUnavailable, match="celeba is not on this machine: download img_align_celeba.zip"
    ):
        datasets.load_dataset("celeba")


def test_celeba_decoding_is_cached_on_disk(tmp_path, monkeypatch):
    write_faces(tmp_path / "faces", count=4)
    monkeypatch.setenv("CONVGAN_CELEBA_DIR", str(tmp_path / "faces"))
    first = datasets.load_dataset("celeba", image_size=16)
    datasets.clear_cache()
    monkeypatch.setattr(
        celeba.image_files, "decode_image", lambda *args, **kwargs: pytest.fail("decoded again")
    )
    second = datasets.load_dataset("celeba", image_size=16)
    np.testing.assert_array_equal(first.x_train, second.x_train)


# ------------------------------------------------------------------ unavailable and downloads


def test_missing_mnist_without_network_fails_fast_with_instructions(tmp_path):
    """A real Keras download attempt in a fresh interpreter, with name resolution cut off."""
    script = textwrap.dedent(
        """
        import socket, sys, time

        def offline(*args, **kwargs):
            raise socket.gaierror(-2, "Name or service not known")

        socket.getaddrinfo = offline  # the same failure as a machine without network
        from core.data import datasets
        from core.common.errors import DatasetUnavailable

        start = time.perf_counter()
        try:
            datasets.load_dataset("mnist")
        except DatasetUnavailable as error:
            print(f"UNAVAILABLE {time.perf_counter() - start:.1f}s: {error}")
        """
    )
    environment = {
        **{key: value for key, value in os.environ.items() if key not in DATASET_ENV_VARS},
        "KERAS_HOME": str(tmp_path / "keras_home"),
        "CONVGAN_HOME": str(tmp_path / "convgan_home"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        cwd=tmp_path,
    )
    elapsed = time.perf_counter() - start
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert elapsed < 30, f"took {elapsed:.0f} s"
    assert "Traceback" not in output
    message = result.stdout.split("UNAVAILABLE", 1)[1]
    assert "mnist is not on this machine: set CONVGAN_MNIST_DIR" in message
    assert "connect to the internet so Keras can download it" in message
    assert "download failed" in message


def test_a_stalled_download_times_out_and_restores_the_socket_timeout(monkeypatch):
    monkeypatch.setattr(keras_download, "DOWNLOAD_SOCKET_TIMEOUT_S", 0.3)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts the connection into the backlog, then never answers

    def stalled_download():
        with socket.create_connection(server.getsockname()) as connection:
            connection.recv(1)  # blocks until the default timeout fires

    previous = socket.getdefaulttimeout()
    start = time.perf_counter()
    try:
        with pytest.raises(
            DatasetUnavailable, match=r"mnist is not on this machine: get it \(download failed: timed out\)"
        ):
            keras_download.call_with_timeout(stalled_download, "mnist", "get it")
    finally:
        server.close()
    assert time.perf_counter() - start < 5
    assert socket.getdefaulttimeout() == previous


# ----------------------------------------------------------------------------------- stats


def test_dataset_stats_counts_means_and_histogram(tmp_path):
    x = np.zeros((8, 2, 2, 1), np.uint8)
    x[4:] = 200  # class 1 images are all 200, class 0 all 0
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    path = save_npz(tmp_path / "tiny.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    dataset = datasets.load_dataset(f"npz:{path}")
    stats = datasets.dataset_stats(dataset, chunk_size=3)  # several chunks
    assert stats.split_counts == {"train": 8, "test": 2}
    assert stats.class_counts == {"train": {"0": 4, "1": 4}, "test": {"0": 2, "1": 0}}
    assert stats.class_mean_images.shape == (2, 2, 2, 1)
    np.testing.assert_allclose(stats.class_mean_images[:, 0, 0, 0], [0.0, 200.0])
    assert stats.pixel_histogram.shape == (1, 256)
    assert stats.pixel_histogram[0, 0] == 16 and stats.pixel_histogram[0, 200] == 16
    assert stats.pixel_mean == pytest.approx((100.0,)) and stats.pixel_std == pytest.approx((100.0,))


def test_dataset_stats_of_unlabeled_data_has_one_mean_image(tmp_path):
    path = save_npz(tmp_path / "u.npz", x=np.full((10, 3, 3, 3), 50, np.uint8))
    stats = datasets.dataset_stats(datasets.load_dataset(f"npz:{path}"))
    assert stats.class_counts == {} and stats.class_mean_images.shape == (1, 3, 3, 3)
    assert stats.pixel_histogram.shape == (3, 256) and stats.pixel_mean == pytest.approx((50.0,) * 3)
