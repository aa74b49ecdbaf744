"""Hostile zip archives (``zip:PATH``): path traversal, bombs, nesting, corruption, sheer size.

The loader reads members in memory and never extracts, so besides the refusal each traversal
test checks that nothing appeared on disk.
"""

from __future__ import annotations

import os
import stat
import struct
import time
import zipfile

import numpy as np
import pytest

from core.common.errors import DatasetError, UserError
from core.data import datasets
from tests.hardening import craft


@pytest.fixture(autouse=True)
def _fresh_dataset_cache():
    datasets.clear_cache()
    yield
    datasets.clear_cache()


def _tree(root) -> set[str]:
    return {os.path.relpath(os.path.join(folder, name), root)
            for folder, folders, files in os.walk(root) for name in folders + files}


def _refused(spec: str, *words: str) -> str:
    with pytest.raises(DatasetError) as caught:
        datasets.load_dataset(spec)
    message = str(caught.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("member", [
    "../escape.png", "../../escape.png", "a/../../escape.png", "/tmp/escape.png", "C:/escape.png",
    "..\\escape.png",
])
def test_member_paths_outside_the_archive_are_refused_and_nothing_is_written(tmp_path, monkeypatch, member):
    work = tmp_path / "work" / "deeper"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)  # where a naive extractor would resolve the relative paths
    path = craft.zip_file(tmp_path / "evil.zip", {**craft.labeled_members(), member: craft.gray_png(1)})
    before = _tree(tmp_path)
    _refused(f"zip:{path}", "unsafe member path", repr(member))
    assert _tree(tmp_path) == before
    assert not os.path.exists("/tmp/escape.png") or os.path.getmtime("/tmp/escape.png") < time.time() - 60


def test_a_symlink_member_is_not_followed(tmp_path):
    # A zip can store a symlink (its target as the data, S_IFLNK in the mode bits). Read in
    # memory it is only a short text, so it can never expose the file it points at.
    link = zipfile.ZipInfo("b/secret.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = tmp_path / "links.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in craft.labeled_members().items():
            archive.writestr(name, data)
        archive.writestr(link, "/etc/passwd")
    message = _refused(f"zip:{path}", "secret.png", "not an image")
    assert "root:" not in message


def _bomb(path, megabytes: int, name: str = "a/bomb.png"):
    """A member of ``megabytes`` MB of zeros (about 1000:1), written in 1 MB chunks."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in craft.labeled_members().items():
            archive.writestr(member, data)
        with archive.open(name, "w") as handle:
            chunk = bytes(1024 * 1024)
            for _ in range(megabytes):
                handle.write(chunk)
    return path


def test_zip_bomb_member_is_refused_quickly_without_reading_it(tmp_path):
    path = _bomb(tmp_path / "bomb.zip", 256)
    assert path.stat().st_size < 2 * 1024 * 1024  # 256 MB inside, under 2 MB on disk
    started = time.monotonic()
    _refused(f"zip:{path}", "zip bomb", "a/bomb.png")
    assert time.monotonic() - started < 2.0


def test_member_that_lies_about_its_size_is_refused(tmp_path):
    # The central directory says 100 bytes; the stream inflates to 64 MB. zipfile stops at the
    # declared size and the CRC check fails: a clear refusal, never 64 MB in memory.
    path = _bomb(tmp_path / "liar.zip", 64, name="a/liar.png")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("a/liar.png")
    local = info.header_offset
    data[local + 22: local + 26] = struct.pack("<I", 100)  # local header: uncompressed size
    central = data.find(b"a/liar.png", data.find(b"PK\x01\x02")) - 46  # its central directory entry
    data[central + 24: central + 28] = struct.pack("<I", 100)  # central directory: uncompressed size
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("a/liar.png").file_size == 100
    started = time.monotonic()
    _refused(f"zip:{path}", "a/liar.png")
    assert time.monotonic() - started < 2.0


def test_member_with_a_bad_crc_is_refused(tmp_path):
    path = craft.zip_file(tmp_path / "crc.zip", craft.labeled_members(), compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("a/a1.png")
    start = info.header_offset + 30 + len(info.filename)  # first byte of the stored data
    data[start + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    _refused(f"zip:{path}", "corrupt member", "a/a1.png")


def test_member_with_an_unsupported_compression_method_is_refused(tmp_path):
    path = craft.zip_file(tmp_path / "method.zip", craft.labeled_members(), compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local and central headers
        position = data.find(signature)
        data[position + offset: position + offset + 2] = struct.pack("<H", 97)  # WavPack: unsupported
    path.write_bytes(bytes(data))
    _refused(f"zip:{path}", "a/a0.png")


def test_password_protected_zip_is_refused(tmp_path):
    path = craft.zip_file(tmp_path / "locked.zip", craft.labeled_members(), compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    position = data.find(b"PK\x01\x02")
    data[position + 8] |= 0x01  # "encrypted" flag of the first member
    path.write_bytes(bytes(data))
    _refused(f"zip:{path}", "password-protected")


def test_nested_zip_is_skipped_with_a_note(tmp_path):
    inner = craft.zip_file(tmp_path / "inner.zip", {f"c/{i}.png": craft.gray_png(99) for i in range(5)})
    members = {**craft.labeled_members(), "a/inner.zip": inner.read_bytes()}
    path = craft.zip_file(tmp_path / "outer.zip", members)
    data = datasets.load_dataset(f"zip:{path}")
    assert data.class_names == ("a", "b")  # no class "c" from inside the nested zip
    images = np.concatenate([data.x_train, data.x_test])
    assert len(images) == 6 and not (images == 99).all(axis=(1, 2, 3)).any()
    assert any("inner.zip" in note and "not an image" in note for note in data.notes), data.notes


def test_zip_holding_only_a_nested_zip_is_refused(tmp_path):
    inner = craft.zip_file(tmp_path / "inner.zip", craft.labeled_members())
    path = craft.zip_file(tmp_path / "outer.zip", {"inner.zip": inner.read_bytes()})
    _refused(f"zip:{path}", "no images found")


def test_empty_zip_is_refused(tmp_path):
    path = craft.zip_file(tmp_path / "empty.zip", {})
    _refused(f"zip:{path}", "no images found")


def test_zero_byte_zip_is_refused(tmp_path):
    path = craft.write(tmp_path / "nothing.zip", b"")
    _refused(f"zip:{path}", "not a readable zip file")


def test_thousands_of_tiny_images_load_in_reasonable_time(tmp_path):
    count = 3000
    members = {f"{'ab'[i % 2]}/{i:05d}.png": craft.gray_png(i % 2 * 200 + i % 50) for i in range(count)}
    path = craft.zip_file(tmp_path / "many.zip", members)
    started = time.monotonic()
    data = datasets.load_dataset(f"zip:{path}")
    seconds = time.monotonic() - started
    assert seconds < 60, f"{count} tiny images took {seconds:.1f} s"
    assert len(data.x_train) + len(data.x_test) == count
    assert data.image_shape == (8, 8, 1) and data.class_names == ("a", "b")
    assert np.bincount(np.concatenate([data.y_train, data.y_test])).tolist() == [1500, 1500]
    # Labels follow the folders: class a images are dark (< 50), class b light (>= 200).
    assert (data.x_train[data.y_train == 0] < 50).all() and (data.x_train[data.y_train == 1] >= 200).all()


# ---- a zip of images to classify (Classify page, outside the demo) -----------------------------------


def test_classify_zip_bomb_is_refused_without_inflating_it(tmp_path):
    # core.app.classify_view.zip_image_entries reads the members of an uploaded zip for batch
    # classification; it must apply the dataset loader's size/ratio limits.
    from core.app import classify_view
    from core.common.errors import UserError

    data = _bomb(tmp_path / "bomb.zip", 64).read_bytes()
    with pytest.raises(UserError, match="zip bomb"):
        classify_view.zip_image_entries(data)


def test_classify_zip_with_traversal_names_reads_nothing_outside(tmp_path):
    from core.app import classify_view

    data = craft.zip_file(tmp_path / "evil.zip", {"../../x.png": craft.gray_png(1), "ok.png": craft.gray_png(2)})
    before = _tree(tmp_path)
    # Refused whole, as the dataset loader refuses it: an archive with such paths is hostile.
    with pytest.raises(UserError, match="unsafe member path"):
        classify_view.zip_image_entries(data.read_bytes())
    assert _tree(tmp_path) == before
