"""``folder:PATH`` and ``zip:PATH``: images in one sub-folder per class (labeled), all in one
folder (unlabeled), or either layout under ``train/`` and ``test/``.

A zip is read member by member in memory, never extracted, after checking every member's path
and size, so a hostile archive can neither write outside a folder nor fill the disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.common.errors import DatasetError
from core.data.loaders import image_files
from core.data.loaders.common import RawData

_JUNK_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}  # written by file managers, never data
MAX_ZIP_BYTES = 8 * 1024**3  # total uncompressed size of the members we would read
MAX_ZIP_RATIO = 200  # uncompressed/compressed for one member; images compress far less
_RATIO_CHECK_MIN_BYTES = 1024**2  # tiny members may compress well without being bombs


@dataclasses.dataclass(frozen=True)
class _Entry:
    parts: tuple[str, ...]  # path components below the root
    display: str  # the path shown in messages
    open: Callable[[], image_files.ImageSource]


def folder_fingerprint(root: Path) -> tuple:
    """A digest of every file's relative path, mtime and size below ``root``."""
    digest = hashlib.sha256()
    for directory, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            try:
                stat = os.stat(path)
            except OSError:  # a broken symlink: it is reported when the folder is read
                continue
            digest.update(f"{os.path.relpath(path, root)}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
    return (str(root.resolve()), digest.hexdigest())


def load_folder(root: Path, display: str, image_size: int | None) -> RawData:
    """Read a folder of images; see the module docstring for the layouts.

    Args:
        root: an existing folder.
        display: the path as the user wrote it, for messages.
        image_size: resize every image to this square size; None keeps the most common size.

    Raises:
        DatasetError: no images, an unreadable image, or an ambiguous layout.
    """
    entries = []
    for directory, folders, files in os.walk(root):
        folders[:] = sorted(name for name in folders if not _ignored(name))
        relative = Path(directory).relative_to(root).parts
        for name in files:
            path = os.path.join(directory, name)
            entries.append(
                _Entry(relative + (name,), os.path.join(display, *relative, name), lambda p=path: p)
            )
    return _load_entries(entries, display, image_size, f"{root} (folder)")


def load_zip(path: Path, display: str, image_size: int | None) -> RawData:
    """Read a zip of images, in the same layouts as a folder.

    Raises:
        DatasetError: not a zip, encrypted, a member path outside the archive, a zip bomb, or
            anything :func:`load_folder` refuses.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DatasetError(f"'{display}' is not a readable zip file ({error})") from error
    with archive:
        entries = [
            _Entry(parts, f"{display}:{member.filename}", lambda m=member: _read_member(archive, m, display))
            for parts, member in safe_members(archive, display)
        ]
        return _load_entries(entries, display, image_size, f"{path} (zip)")


def safe_members(archive: zipfile.ZipFile, display: str) -> list[tuple[tuple[str, ...], zipfile.ZipInfo]]:
    """The file members of a zip with their path parts, after refusing what is unsafe to read.

    Raises:
        DatasetError: a member path outside the archive, an encrypted member, or a zip bomb
            (too much data in total, or a member that expands too much).
    """
    members = []
    total_bytes = 0
    for member in archive.infolist():
        name = member.filename.replace("\\", "/")
        parts = tuple(part for part in name.split("/") if part not in ("", "."))
        if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in parts:
            raise DatasetError(
                f"'{display}' contains the unsafe member path {member.filename!r}: refusing to read "
                "an archive whose paths point outside it"
            )
        if member.is_dir() or not parts:
            continue
        if member.flag_bits & 0x1:
            raise DatasetError(f"'{display}' is password-protected: unzip it and use folder:PATH")
        total_bytes += member.file_size
        ratio_too_high = member.file_size > MAX_ZIP_RATIO * max(member.compress_size, 1)
        if total_bytes > MAX_ZIP_BYTES or (member.file_size > _RATIO_CHECK_MIN_BYTES and ratio_too_high):
            raise DatasetError(
                f"'{display}' would expand to too much data at {member.filename!r} (possible zip bomb): "
                f"unzip it yourself and use folder:PATH"
            )
        members.append((parts, member))
    return members


def read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, display: str) -> io.BytesIO:
    """A member's bytes; a corrupt member (bad CRC, broken stream, odd method) is a DatasetError."""
    return _read_member(archive, member, display)


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, display: str) -> io.BytesIO:
    """A member's bytes; a corrupt member (bad CRC, broken stream, odd method) is a DatasetError."""
    try:
        return io.BytesIO(archive.read(member))
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError) as error:
        raise DatasetError(
            f"'{display}' has a corrupt member {member.filename!r} ({error}): re-create the zip"
        ) from error


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in _JUNK_NAMES


def _load_entries(entries: list[_Entry], display: str, image_size: int | None, source: str) -> RawData:
    images, notes = _image_entries(entries)
    images, prefix = _strip_wrapper_folders(images)
    if prefix:
        notes.append(f"using the images inside '{'/'.join(prefix)}'")
    if not images:
        raise DatasetError(
            f"no images found in '{display}': expected .png/.jpg files or one sub-folder per class"
        )
    splits, class_names, layout_notes = _layout(images, display)
    notes += layout_notes

    # One flat list, train first, classes in label order; labels -1 while unlabeled.
    ordered: list[_Entry] = []
    labels: list[int] = []
    for split in ("train", "test"):
        for class_name, members in sorted(splits[split].items(), key=lambda item: item[0] or ""):
            ordered += members
            labels += [class_names.index(class_name) if class_names else -1] * len(members)
    num_train = sum(len(members) for members in splits["train"].values())

    size = None if image_size is None else (image_size, image_size)
    decoded = image_files.map_images(
        lambda entry: image_files.decode_image(entry.open(), entry.display, size), ordered
    )
    resized = sum(native != size for _, native in decoded) if size else 0
    if resized:
        notes.append(f"resized {resized} images to {image_size}x{image_size} (image_size={image_size})")
    batch, stack_notes = image_files.stack_images([pixels for pixels, _ in decoded])
    notes += stack_notes
    label_array = np.asarray(labels, np.int64) if class_names else None
    return RawData(
        x_train=batch[:num_train],
        y_train=None if label_array is None else label_array[:num_train],
        x_test=batch[num_train:],
        y_test=None if label_array is None else label_array[num_train:],
        class_names=class_names,
        source=source,
        notes=notes,
    )


def _image_entries(entries: list[_Entry]) -> tuple[list[_Entry], list[str]]:
    """Image files sorted by path, with a note naming the other files that were skipped."""
    images, others = [], []
    for entry in entries:
        if any(_ignored(part) for part in entry.parts):
            continue
        is_image = entry.parts[-1].lower().endswith(image_files.IMAGE_EXTENSIONS)
        (images if is_image else others).append(entry)
    images.sort(key=lambda entry: entry.parts)
    if not others:
        return images, []
    names = sorted(entry.display for entry in others)
    shown = ", ".join(f"'{name}'" for name in names[:3]) + (
        f" and {len(names) - 3} more" if len(names) > 3 else ""
    )
    what = "1 file that is not an image" if len(names) == 1 else f"{len(names)} files that are not images"
    return images, [f"skipped {what}: {shown}"]


def _layout(
    images: list[_Entry], display: str
) -> tuple[dict[str, dict[str | None, list[_Entry]]], tuple[str, ...], list[str]]:
    """Split and class of every image: ``({split: {class or None: images}}, class_names, notes)``."""
    top_level = {entry.parts[0].lower() for entry in images if len(entry.parts) > 1}
    has_top_images = any(len(entry.parts) == 1 for entry in images)
    notes = []
    if top_level == {"train", "test"} and not has_top_images:
        members = {
            split: [dataclasses.replace(e, parts=e.parts[1:]) for e in images if e.parts[0].lower() == split]
            for split in ("train", "test")
        }
        notes.append("using the train/ and test/ sub-folders as the splits")
    else:
        members = {"train": images, "test": []}
    splits = {split: _classes(split_members, display) for split, split_members in members.items()}
    labeled = any(name is not None for group in splits.values() for name in group)
    if labeled and None in splits["test"]:
        raise DatasetError(
            f"'{display}' has class sub-folders in train/ but not in test/: use the same layout in both"
        )
    class_names = tuple(sorted(name for name in splits["train"] if name is not None))
    unknown = sorted(map(str, set(splits["test"]) - set(splits["train"])))
    if unknown:
        raise DatasetError(f"'{display}' has test classes with no training images: {', '.join(unknown)}")
    return splits, class_names, notes


def _strip_wrapper_folders(images: list[_Entry]) -> tuple[list[_Entry], tuple[str, ...]]:
    """Descend while every image sits under one single folder (``cats.zip`` -> ``cats/*.jpg``)."""
    prefix: tuple[str, ...] = ()
    while images and all(len(entry.parts) > 1 for entry in images):
        first = images[0].parts[0]
        if first.lower() in ("train", "test") or any(entry.parts[0] != first for entry in images):
            break
        prefix += (first,)
        images = [dataclasses.replace(entry, parts=entry.parts[1:]) for entry in images]
    return images, prefix


def _classes(images: list[_Entry], display: str) -> dict[str | None, list[_Entry]]:
    """Group by class sub-folder; ``{None: images}`` when all images are at the top level."""
    nested = sorted({entry.parts[0] for entry in images if len(entry.parts) > 1})
    if not nested:
        return {None: images} if images else {}
    if any(len(entry.parts) == 1 for entry in images):
        shown = ", ".join(nested[:3]) + (", ..." if len(nested) > 3 else "")
        raise DatasetError(
            f"'{display}' has images both at its top level and in sub-folders ({shown}): put every image "
            "in a class sub-folder (labeled) or all of them at the top level (unlabeled)"
        )
    groups: dict[str | None, list[_Entry]] = {name: [] for name in nested}
    for entry in images:
        groups[entry.parts[0]].append(entry)
    return groups
