"""Dataset registry and loading: one record per dataset, one call to load any of them.

A *spec* names a dataset: a built-in (``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``,
``celeba``) or custom data (``folder:PATH``, ``zip:PATH``, ``npz:PATH``). Every front end passes
specs to :func:`load_dataset` and gets the same :class:`Dataset`: uint8 images ``(N, H, W, C)``
and int64 labels ``(N,)`` (None when unlabeled), split into train and test.

Loading is cached in-process (keyed by spec, size and the files' mtimes and sizes), so the
dashboard can call :func:`load_dataset` on every rerun; the arrays are shared between callers and
therefore read-only. The file formats live in ``core/data/loaders/``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.common.errors import DatasetError
from core.data.loaders import arrays, celeba, cifar, digits, folders, image_files, mnist
from core.data.loaders.common import Location, RawData, file_fingerprint, split_indices

__all__ = [
    "Dataset",
    "DatasetInfo",
    "DatasetStats",
    "clear_cache",
    "dataset_info",
    "dataset_stats",
    "list_datasets",
    "load_dataset",
    "read_image",
]

CUSTOM_TEST_FRACTION = 0.15  # held out, stratified, when custom data has no test split
_SPEC_HELP = "use digits, mnist, fashion_mnist, cifar10, celeba, folder:PATH, zip:PATH or npz:PATH"
_CACHED_DATASETS = 4  # in-process LRU entries; Fashion-MNIST is 55 MB, CelebA at 64 px 2.5 GB


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the dashboard shows about a dataset, loaded or not.

    Before loading, ``image_shape`` and ``splits`` are the published values (``splits`` is None
    where unknown, e.g. CelebA); after loading, ``Dataset.info`` holds the exact ones.
    """

    name: str  # the canonical spec: "fashion_mnist", "folder:data/cats"
    description: str
    source: str  # where the data is (or would be) read from
    image_shape: tuple[int, int, int]  # (height, width, channels)
    class_names: tuple[str, ...]  # () for unlabeled data
    splits: dict[str, int] | None = dataclasses.field(default=None, hash=False)  # split -> images
    license: str = ""
    citation: str = ""
    available: bool = True  # on this machine now (a download may still get it)
    how_to_get: str = ""  # what to do when it is not

    @property
    def labeled(self) -> bool:
        return bool(self.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Images and labels, split into train and test. Treat the arrays as read-only: they are
    shared with every other caller that loaded the same spec."""

    info: DatasetInfo
    x_train: np.ndarray  # (N, H, W, C) uint8
    y_train: np.ndarray | None  # (N,) int64; None when unlabeled
    x_test: np.ndarray  # (M, H, W, C) uint8
    y_test: np.ndarray | None
    notes: list[str] = dataclasses.field(default_factory=list)  # what loading changed, one line each

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.info.image_shape

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def labeled(self) -> bool:
        return self.y_train is not None

    def __repr__(self) -> str:
        height, width, channels = self.image_shape
        classes = f"{self.num_classes} classes" if self.labeled else "unlabeled"
        return (
            f"Dataset({self.info.name}: {len(self.x_train)} train, {len(self.x_test)} test, "
            f"{height}x{width}x{channels}, {classes})"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetStats:
    """Summary numbers for a dashboard, computed on the training split unless said otherwise."""

    split_counts: dict[str, int]  # {"train": 60000, "test": 10000}
    class_counts: dict[str, dict[str, int]]  # split -> class name -> images; {} when unlabeled
    class_mean_images: np.ndarray  # (num_classes, H, W, C) float32 in 0..255; (1, H, W, C) unlabeled
    pixel_histogram: np.ndarray  # (C, 256) int64: how many pixels of each channel have each value
    pixel_mean: tuple[float, ...]  # per channel, 0..255
    pixel_std: tuple[float, ...]  # per channel, 0..255


@dataclasses.dataclass(frozen=True)
class _Builtin:
    info: DatasetInfo  # the published shape, splits and classes; available/source filled per call
    locate: Callable[[], Location | None]  # cheap: where it is on this machine; may raise DatasetError
    load: Callable[[Location | None, int | None], RawData]  # None location: download (or refuse)


@dataclasses.dataclass(frozen=True)
class _Spec:
    kind: str  # "builtin", "folder", "zip" or "npz"
    name: str  # canonical spec, e.g. "fashion_mnist" or "folder:data/cats"
    path: Path | None = None  # custom data only
    display: str = ""  # the path as the user wrote it, for messages


_DIGIT_NAMES = tuple(str(digit) for digit in range(10))
_FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_DOWNLOAD = "connect to the internet so Keras can download it"

_HOW_TO_GET = {
    "digits": "install scikit-learn (`pip install scikit-learn`): it bundles the digits",
    "mnist": f"set {mnist.ENV_VARS['mnist']} to a folder with the MNIST IDX .gz files (or Keras' mnist.npz), "
    f"or {_DOWNLOAD}",
    "fashion_mnist": "`apt-get install dataset-fashion-mnist`, or set "
    f"{mnist.ENV_VARS['fashion_mnist']} to a folder with the IDX .gz files, or {_DOWNLOAD}",
    "cifar10": f"set {cifar.ENV_VAR} to the extracted cifar-10-batches-py folder "
    f"(from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz), or {_DOWNLOAD}",
    "celeba": "download img_align_celeba.zip from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html "
    f"(non-commercial research use), unzip it and set {celeba.ENV_VAR} to the folder of .jpg faces",
}

_BUILTINS: dict[str, _Builtin] = {
    "digits": _Builtin(
        DatasetInfo(
            name="digits",
            description="1,797 handwritten digits, 8x8 grayscale, from scikit-learn: tiny and always "
            "available, the quickest way to try a model",
            source="scikit-learn",
            image_shape=(8, 8, 1),
            class_names=_DIGIT_NAMES,
            splits={"train": 1437, "test": 360},
            license="CC BY 4.0 (UCI Machine Learning Repository)",
            citation="E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI Machine "
            "Learning Repository, 1998.",
            how_to_get=_HOW_TO_GET["digits"],
        ),
        locate=lambda: _digits_location(),
        load=lambda location, image_size: digits.load(_DIGIT_NAMES),
    ),
    "mnist": _Builtin(
        DatasetInfo(
            name="mnist",
            description="70,000 handwritten digits, 28x28 grayscale",
            source="Keras download",
            image_shape=(28, 28, 1),
            class_names=_DIGIT_NAMES,
            splits={"train": 60000, "test": 10000},
            license="CC BY-SA 3.0",
            citation="Y. LeCun, C. Cortes, C. J. C. Burges. The MNIST database of handwritten digits, 1998.",
            how_to_get=_HOW_TO_GET["mnist"],
        ),
        locate=lambda: mnist.locate("mnist"),
        load=lambda location, image_size: mnist.load("mnist", location, _HOW_TO_GET["mnist"], _DIGIT_NAMES),
    ),
    "fashion_mnist": _Builtin(
        DatasetInfo(
            name="fashion_mnist",
            description="70,000 Zalando product photos in 10 clothing classes, 28x28 grayscale",
            source="Keras download",
            image_shape=(28, 28, 1),
            class_names=_FASHION_NAMES,
            splits={"train": 60000, "test": 10000},
            license="MIT (Zalando SE)",
            citation="H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for "
            "Benchmarking Machine Learning Algorithms. arXiv:1708.07747, 2017.",
            how_to_get=_HOW_TO_GET["fashion_mnist"],
        ),
        locate=lambda: mnist.locate("fashion_mnist"),
        load=lambda location, image_size: mnist.load(
            "fashion_mnist", location, _HOW_TO_GET["fashion_mnist"], _FASHION_NAMES
        ),
    ),
    "cifar10": _Builtin(
        DatasetInfo(
            name="cifar10",
            description="60,000 small colour photos in 10 classes (animals and vehicles), 32x32 RGB",
            source="Keras download",
            image_shape=(32, 32, 3),
            class_names=_CIFAR10_NAMES,
            splits={"train": 50000, "test": 10000},
            license="no explicit licence; free to use with the citation below",
            citation="A. Krizhevsky. Learning Multiple Layers of Features from Tiny Images. "
            "Technical report, University of Toronto, 2009.",
            how_to_get=_HOW_TO_GET["cifar10"],
        ),
        locate=cifar.locate,
        load=lambda location, image_size: cifar.load(location, _HOW_TO_GET["cifar10"], _CIFAR10_NAMES),
    ),
    "celeba": _Builtin(
        DatasetInfo(
            name="celeba",
            description="about 200,000 aligned celebrity face photos, center-cropped and resized "
            "(64x64 RGB unless image_size says otherwise), unlabeled: for GANs",
            source=f"the folder in {celeba.ENV_VAR}",
            image_shape=(celeba.DEFAULT_IMAGE_SIZE, celeba.DEFAULT_IMAGE_SIZE, 3),
            class_names=(),
            splits=None,
            license="non-commercial research purposes only (CelebA agreement)",
            citation="Z. Liu, P. Luo, X. Wang, X. Tang. Deep Learning Face Attributes in the Wild. ICCV 2015.",
            how_to_get=_HOW_TO_GET["celeba"],
        ),
        locate=celeba.locate,
        load=lambda location, image_size: celeba.load(location, image_size, _HOW_TO_GET["celeba"]),
    ),
}
_ALIASES = {"fashion": "fashion_mnist", "fashionmnist": "fashion_mnist", "cifar_10": "cifar10"}


def list_datasets() -> list[DatasetInfo]:
    """The built-in datasets, each with whether it is on this machine now.

    Availability is checked from file names and sizes only: nothing is read or downloaded.
    Custom data (``folder:``, ``zip:``, ``npz:``) is not listed: pass its spec to
    :func:`dataset_info` or :func:`load_dataset`.

    Returns:
        One :class:`DatasetInfo` per built-in dataset, ``digits`` first.
    """
    return [_builtin_info(name) for name in _BUILTINS]


def dataset_info(spec: str, image_size: int | None = None) -> DatasetInfo:
    """Describe the dataset ``spec`` names.

    For a built-in this is cheap (nothing is read). Custom data is loaded (and cached), because
    its shape and classes are only known from its files.

    Args:
        spec: a dataset spec, see the module docstring.
        image_size: the square size images would be resized to; None for their native size.

    Returns:
        The dataset's :class:`DatasetInfo`; for a built-in that is not on this machine,
        ``available`` is False and ``how_to_get`` says what to do.

    Raises:
        DatasetError: unknown spec, bad image size, or custom data that cannot be loaded.
    """
    parsed = _parse_spec(spec)
    image_size = _check_image_size(image_size)
    if parsed.kind != "builtin":
        return load_dataset(spec, image_size).info
    info = _builtin_info(parsed.name)
    if image_size is not None:
        info = dataclasses.replace(info, image_shape=(image_size, image_size, info.image_shape[2]))
    return info


def load_dataset(spec: str, image_size: int | None = None) -> Dataset:
    """Load the dataset ``spec`` names, split into train and test.

    Custom data without a test split gets a deterministic, stratified 15% test split. Repeated
    calls with unchanged files return the same arrays from an in-process cache.

    Args:
        spec: ``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``, ``celeba``, ``folder:PATH``,
            ``zip:PATH`` or ``npz:PATH``.
        image_size: resize every image to ``image_size x image_size``; None keeps the native size
            (CelebA: 64).

    Returns:
        A :class:`Dataset` whose arrays are read-only; ``notes`` lists what loading changed.

    Raises:
        DatasetUnavailable: a built-in that is not on this machine and cannot be downloaded; the
            message says how to get it.
        DatasetError: unknown spec, missing path, unreadable or invalid data.
    """
    parsed = _parse_spec(spec)
    image_size = _check_image_size(image_size)
    location = _locate(parsed)
    dataset = _load_cached(parsed, image_size, location)
    # The arrays are shared and read-only; the notes list is the one mutable part, so copy it.
    return dataclasses.replace(dataset, notes=list(dataset.notes))


def clear_cache() -> None:
    """Forget every dataset loaded in this process (the on-disk parsed copies stay)."""
    _load_cached.cache_clear()


def dataset_stats(dataset: Dataset, chunk_size: int = 4096) -> DatasetStats:
    """Counts per split and class, per-class mean images and pixel histograms, in pure NumPy.

    Works through the training images ``chunk_size`` at a time, so memory stays bounded for
    large datasets. Cache the result (``st.cache_data``) in the dashboard.

    Args:
        dataset: a loaded dataset.
        chunk_size: images processed at once.

    Returns:
        A :class:`DatasetStats`; mean images and histograms come from the training split.
    """
    images, labels = dataset.x_train, dataset.y_train
    height, width, channels = dataset.image_shape
    num_groups = dataset.num_classes if dataset.labeled else 1
    sums = np.zeros((num_groups, height, width, channels), np.float64)
    group_sizes = np.zeros(num_groups, np.int64)
    histogram = np.zeros((channels, 256), np.int64)
    for start in range(0, len(images), chunk_size):
        batch = images[start : start + chunk_size]
        batch_labels = (
            np.zeros(len(batch), np.int64) if labels is None else labels[start : start + chunk_size]
        )
        for group in np.unique(batch_labels):
            members = batch[batch_labels == group]
            sums[group] += members.sum(axis=0, dtype=np.float64)
            group_sizes[group] += len(members)
        for channel in range(channels):
            histogram[channel] += np.bincount(batch[..., channel].ravel(), minlength=256)
    means = sums / np.maximum(group_sizes, 1)[:, None, None, None]
    values = np.arange(256, dtype=np.float64)
    pixel_counts = np.maximum(histogram.sum(axis=1), 1)
    pixel_mean = (histogram * values).sum(axis=1) / pixel_counts
    pixel_var = (histogram * values**2).sum(axis=1) / pixel_counts - pixel_mean**2
    class_counts: dict[str, dict[str, int]] = {}
    if dataset.labeled:
        for split, split_labels in (("train", dataset.y_train), ("test", dataset.y_test)):
            counts = np.bincount(split_labels, minlength=dataset.num_classes)
            class_counts[split] = dict(zip(dataset.class_names, counts.tolist(), strict=True))
    return DatasetStats(
        split_counts={"train": len(dataset.x_train), "test": len(dataset.x_test)},
        class_counts=class_counts,
        class_mean_images=means.astype(np.float32),
        pixel_histogram=histogram,
        pixel_mean=tuple(pixel_mean.tolist()),
        pixel_std=tuple(np.sqrt(np.maximum(pixel_var, 0.0)).tolist()),
    )


def read_image(path: str | Path) -> np.ndarray:
    """Read one image file the way folder datasets are read, e.g. to classify it.

    Args:
        path: a .png/.jpg/.jpeg/.bmp/.gif/.webp file.

    Returns:
        uint8 pixels ``(H, W, 1)`` for grayscale or ``(H, W, 3)`` for colour; transparency is
        composited on white, 16-bit images scaled to 8 bits, EXIF rotation applied.

    Raises:
        DatasetError: missing file, not an image, corrupt, or over 40 megapixels.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"image file '{path}' does not exist")
    pixels, _ = image_files.decode_image(path, str(path))
    return pixels


def _digits_location() -> Location | None:
    path = digits.sklearn_digits_file()
    if path is not None:
        return Location(path, file_fingerprint([path]))
    # No bundled file found: fall back on scikit-learn's API if it is importable at all.

    return Location(Path("sklearn"), ("sklearn",)) if importlib.util.find_spec("sklearn") else None


def _builtin_info(name: str) -> DatasetInfo:
    builtin = _BUILTINS[name]
    try:
        location = builtin.locate()
    except DatasetError as error:  # a misconfigured environment variable: say so in how_to_get
        return dataclasses.replace(builtin.info, available=False, how_to_get=str(error))
    if location is None:
        return dataclasses.replace(builtin.info, available=False)
    return dataclasses.replace(builtin.info, available=True, source=str(location.path))


def _parse_spec(spec: str) -> _Spec:
    if not isinstance(spec, str) or not spec.strip():
        raise DatasetError(f"no dataset given: {_SPEC_HELP}")
    text = spec.strip()
    prefix, colon, rest = text.partition(":")
    if colon and prefix.lower() in ("folder", "zip", "npz"):
        kind, display = prefix.lower(), rest.strip()
        if not display:
            raise DatasetError(f"{kind}: needs a path, e.g. {kind}:data/cats")
        return _Spec(kind, f"{kind}:{display}", Path(display).expanduser(), display)
    name = text.lower().replace("-", "_")
    name = _ALIASES.get(name, name)
    if name in _BUILTINS:
        return _Spec("builtin", name)
    hint = ""
    if os.path.isdir(text):
        hint = f" (for this folder: folder:{text})"
    elif text.lower().endswith((".zip", ".npz")) and os.path.isfile(text):
        hint = f" (for this file: {text.lower()[-3:]}:{text})"
    raise DatasetError(f"unknown dataset {spec!r}: {_SPEC_HELP}{hint}")


def _check_image_size(image_size: int | None) -> int | None:
    if image_size is None:
        return None
    valid_type = isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool)
    if not valid_type or not 1 <= image_size <= 1024:
        raise DatasetError(f"image size must be a whole number of pixels from 1 to 1024, got {image_size!r}")
    return int(image_size)  # a plain int: NumPy integers would split the in-process cache


def _locate(spec: _Spec) -> Location | None:
    """Find the data and fingerprint it, without reading it. None: a built-in to download."""
    if spec.kind == "builtin":
        return _BUILTINS[spec.name].locate()
    path, display = spec.path, spec.display
    if not path.exists():
        noun = {"folder": "folder", "zip": "zip file", "npz": ".npz file"}[spec.kind]
        raise DatasetError(f"{noun} '{display}' does not exist")
    if spec.kind == "folder":
        if not path.is_dir():
            raise DatasetError(
                f"'{display}' is a file, not a folder: use zip:{display} or npz:{display} for archives"
            )
        return Location(path, folders.folder_fingerprint(path))
    if not path.is_file():
        raise DatasetError(f"'{display}' is a folder, not a {spec.kind} file: use folder:{display}")
    return Location(path, file_fingerprint([path]))


@functools.lru_cache(maxsize=_CACHED_DATASETS)
def _load_cached(spec: _Spec, image_size: int | None, location: Location | None) -> Dataset:
    # `location` carries the files' fingerprint, so edited files miss this cache.
    if spec.kind == "builtin":
        raw = _BUILTINS[spec.name].load(location, image_size)
        base = _BUILTINS[spec.name].info
    else:
        if spec.kind == "npz":
            raw = arrays.load_npz(location.path, spec.display)
        elif spec.kind == "zip":
            raw = folders.load_zip(location.path, spec.display, image_size)
        else:
            raw = folders.load_folder(location.path, spec.display, image_size)
        base = DatasetInfo(
            name=spec.name,
            description=f"custom images from {spec.kind} '{spec.display}'",
            source="",
            image_shape=(0, 0, 0),
            class_names=(),
            license="set by the data's owner",
        )
    return _finish(spec, raw, base, image_size)


def _finish(spec: _Spec, raw: RawData, base: DatasetInfo, image_size: int | None) -> Dataset:
    """Check classes, split when there is no test split, resize, and freeze the arrays."""
    notes = list(raw.notes)
    x_train, y_train, x_test, y_test = raw.x_train, raw.y_train, raw.x_test, raw.y_test
    where = f"'{spec.display}'" if spec.display else spec.name
    if y_train is not None and spec.kind != "builtin":  # built-ins are known to be complete
        _check_classes(np.concatenate([y_train, y_test]), y_train, raw.class_names, where)
    if len(x_test) == 0:
        if len(x_train) < 2:
            raise DatasetError(
                f"{where} has only {len(x_train)} image: need at least 2 (one to train, one to test)"
            )
        train_index, test_index = split_indices(y_train, len(x_train), CUSTOM_TEST_FRACTION)
        x_train, x_test = x_train[train_index], x_train[test_index]
        if y_train is not None:
            y_train, y_test = y_train[train_index], y_train[test_index]
        how = "stratified by class, " if y_train is not None else ""
        notes.append(
            f"no test split in the data: held out {len(test_index)} of {len(train_index) + len(test_index)} "
            f"images ({CUSTOM_TEST_FRACTION:.0%}, {how}fixed seed)"
        )
    height, width = x_train.shape[1:3]
    if image_size is not None and (height, width) != (image_size, image_size):
        size = (image_size, image_size)
        x_train, x_test = image_files.resize_images(x_train, size), image_files.resize_images(x_test, size)
        notes.append(
            f"resized {len(x_train) + len(x_test)} images from {width}x{height} to {image_size}x{image_size} "
            f"(image_size={image_size})"
        )
    for array in (x_train, y_train, x_test, y_test):
        if array is not None:
            array.flags.writeable = False
    info = dataclasses.replace(
        base,
        source=raw.source,
        image_shape=tuple(int(side) for side in x_train.shape[1:]),
        class_names=raw.class_names if y_train is not None else (),
        splits={"train": len(x_train), "test": len(x_test)},
        available=True,
    )
    return Dataset(info, x_train, y_train, x_test, y_test, notes)


def _check_classes(
    labels: np.ndarray, train_labels: np.ndarray, class_names: tuple[str, ...], where: str
) -> None:
    if len(class_names) < 2:
        shown = f" ({class_names[0]!r})" if class_names else ""
        raise DatasetError(
            f"{where} has only {len(class_names)} class{shown}: labeled data needs at least 2; to train a "
            "GAN on it, drop the labels (put all images directly in one folder, or save no y)"
        )
    counts = np.bincount(labels, minlength=len(class_names))
    train_counts = np.bincount(train_labels, minlength=len(class_names))
    for name, count, train_count in zip(class_names, counts.tolist(), train_counts.tolist(), strict=True):
        if count < 2:
            raise DatasetError(
                f"class {name!r} in {where} has {count} image{'s' * (count != 1)}: every class needs at least 2 "
                "(one to train, one to test)"
            )
        if train_count == 0:
            raise DatasetError(f"class {name!r} in {where} has no training images")
