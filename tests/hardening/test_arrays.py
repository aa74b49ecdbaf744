"""Hostile ``.npz`` files (``npz:PATH``): pickles, wrong ranks and dtypes, NaN, bad labels, empty
arrays, bombs. Each is refused with one line naming the file, before a run could start."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.common.errors import DatasetError
from core.data import datasets

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_dataset_cache():
    datasets.clear_cache()
    yield
    datasets.clear_cache()


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(DatasetError) as caught:
        datasets.load_dataset(f"npz:{path}")
    message = str(caught.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word in message, message
    return message


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


IMAGES = np.zeros((4, 4, 4), np.uint8)
LABELS = np.array([0, 1, 0, 1])


class _Payload:
    """Unpickling this makes a folder: proof that code from the file ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("array", ["x", "y", "class_names"])
def test_pickled_object_arrays_are_refused_without_running_their_code(tmp_path, array):
    marker = tmp_path / "code-ran"
    hostile = np.empty(4, dtype=object)
    hostile[:] = [_Payload(str(marker))] * 4
    arrays = {"x": IMAGES, "y": LABELS, array: hostile}
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=True, **arrays)
    path = tmp_path / "pickle.npz"
    path.write_bytes(buffer.getvalue())
    _refused(path, "object arrays", "allow_pickle=False")
    assert not marker.exists(), "unpickling ran code from the file"


@pytest.mark.parametrize(("x", "words"), [
    (np.zeros((4, 16), np.uint8), ["has shape (4, 16)"]),
    (np.zeros((2, 2, 4, 4, 1), np.uint8), ["has shape (2, 2, 4, 4, 1)"]),
    (np.array(7, np.uint8), ["has shape ()"]),
    (np.zeros((4, 3, 8, 8), np.uint8), ["channels-first"]),
    (np.zeros((4, 8, 8, 4), np.uint8), ["C = 1 or 3"]),
], ids=["rank-2", "rank-5", "scalar", "channels-first", "four-channels"])
def test_images_of_the_wrong_rank_are_refused(tmp_path, x, words):
    _refused(_npz(tmp_path / "rank.npz", x=x), *words)


@pytest.mark.parametrize("x", [
    np.zeros((4, 4, 4), np.complex64),
    np.full((4, 4, 4), "7"),
    np.full((4, 4, 4), b"7"),
    np.zeros((4, 4, 4), "datetime64[s]"),
    np.zeros((4, 4, 4), [("r", "u1"), ("g", "u1")]),
], ids=["complex", "unicode", "bytes", "datetime", "structured"])
def test_images_of_a_non_numeric_dtype_are_refused(tmp_path, x):
    _refused(_npz(tmp_path / "dtype.npz", x=x), f"has dtype {x.dtype}", "expected uint8")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_images_with_nan_or_infinity_are_refused(tmp_path, bad):
    x = np.full((4, 4, 4), 0.5, np.float32)
    x[2, 1, 1] = bad
    _refused(_npz(tmp_path / "nan.npz", x=x, y=LABELS), "NaN or infinite")


@pytest.mark.parametrize(("x", "words"), [
    (np.full((4, 4, 4), 256, np.int64), ["integer values from 256 to 256"]),
    (np.full((4, 4, 4), -3.0, np.float32), ["values from -3 to -3"]),
])
def test_images_out_of_pixel_range_are_refused(tmp_path, x, words):
    _refused(_npz(tmp_path / "range.npz", x=x), *words)


@pytest.mark.parametrize(("y", "words"), [
    (np.array([0, 1, 0]), ["has 3 labels but there are 4 images"]),
    (np.array([0, 1, 0, 1, 1]), ["has 5 labels but there are 4 images"]),
    (np.array([0, -1, 0, 1]), ["negative labels"]),
    (np.array([0, 1, 0, 2**63 + 5], np.uint64), ["has label 9223372036854775813"]),
    (np.array([0.0, 1.0, np.nan, 1.0]), ["NaN or infinite"]),
    (np.array([0, 1, 0, 1.5]), ["non-integer labels such as 1.5"]),
    (np.array([0, 1, 0, 1], np.complex64), ["has dtype complex64"]),
    (np.array(["cat", "dog", "cat", "dog"]), ["has dtype <U3"]),
    (np.eye(4, dtype=np.int64), ["one-hot"]),
    (np.array(1), ["has shape ()"]),
], ids=["too-few", "too-many", "negative", "uint64-wrap", "nan", "fraction", "complex", "strings", "one-hot",
        "scalar"])
def test_bad_labels_are_refused(tmp_path, y, words):
    _refused(_npz(tmp_path / "labels.npz", x=IMAGES, y=y), *words)


def test_labels_beyond_the_class_names_are_refused(tmp_path):
    path = _npz(tmp_path / "names.npz", x=IMAGES, y=np.array([0, 1, 2, 1]), class_names=np.array(["cat", "dog"]))
    _refused(path, "has label 2 but there are only 2 classes")


def test_a_huge_label_is_refused_at_once_without_building_class_names(tmp_path):
    # Without class_names, labels 0..max name the classes: a label of 2**40 must not make the
    # loader build 2**40 names. Run in a child with 2 GB of address space and a deadline, so a
    # regression fails this test instead of exhausting the machine.
    path = _npz(tmp_path / "huge-label.npz", x=IMAGES, y=np.array([0, 1, 0, 2**40]))
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))\n"
        "from core.data import datasets\n"
        "from core.common.errors import DatasetError\n"
        "try:\n    datasets.load_dataset(sys.argv[1])\n"
        "except DatasetError as error:\n    print('refused:', error)\n"
    )
    started = time.monotonic()
    child = subprocess.run([sys.executable, "-c", code, f"npz:{path}"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, env={**os.environ, "CONVGAN_HOME": str(tmp_path / "home")})
    assert child.returncode == 0, child.stderr[-2000:]
    assert "refused:" in child.stdout and "has label 1099511627776 but only 4 images" in child.stdout, child.stdout
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(("arrays", "words"), [
    ({"x": np.zeros((0, 8, 8), np.uint8)}, ["is empty (0 images)"]),
    ({"x": np.zeros((0, 8, 8), np.uint8), "y": np.zeros(0, np.int64)}, ["is empty (0 images)"]),
    ({"x": np.zeros((4, 0, 8), np.uint8)}, ["expected non-empty images"]),
    ({"x": IMAGES, "y": np.zeros(0, np.int64)}, ["has 0 labels but there are 4 images"]),
    ({"x_train": IMAGES, "y_train": LABELS, "x_test": np.zeros((0, 4, 4), np.uint8),
      "y_test": np.zeros(0, np.int64)}, ["x_test", "is empty (0 images)"]),
    ({}, ["has no array named 'x'"]),
], ids=["no-images", "no-images-no-labels", "zero-height", "no-labels", "empty-test-split", "no-arrays"])
def test_empty_arrays_are_refused(tmp_path, arrays, words):
    _refused(_npz(tmp_path / "empty.npz", **arrays), *words)


def test_a_header_claiming_a_gigantic_array_is_refused(tmp_path):
    # A 100-byte .npy whose header claims 10**15 bytes of pixels.
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 1000, 1000)})
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", buffer.getvalue() + bytes(100))
    _refused(path, "'x'")


def test_an_npz_bomb_is_refused_from_the_directory(tmp_path):
    # Three compressed arrays whose directory entries claim 3.75 GB each: refused from the
    # declared sizes before a byte is inflated (zipfile never inflates past a declared size, see
    # test_archives.py::test_member_that_lies_about_its_size_is_refused).
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((64, 64, 64), np.uint8), y=np.zeros(64, np.int64), z=np.zeros(64))
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    while central != -1:
        data[central + 24: central + 28] = struct.pack("<I", 0xF000_0000)
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))
    started = time.monotonic()
    _refused(path, "possible zip bomb", "GB")
    assert time.monotonic() - started < 2.0
