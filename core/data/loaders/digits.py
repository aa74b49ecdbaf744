"""The 8x8 handwritten digits bundled with scikit-learn: always available, loads in milliseconds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from core.data.loaders.common import RawData, split_indices

TEST_FRACTION = 0.2  # 1437 train / 360 test, the split scikit-learn's examples use
_MAX_VALUE = 16  # pixels are counts of set bits in 4x4 blocks: 0..16


def sklearn_digits_file() -> Path | None:
    """The bundled ``digits.csv.gz``, found without importing scikit-learn (2 s on a cold start)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def load(class_names: tuple[str, ...]) -> RawData:
    """All 1797 digits, scaled to 0..255 and split 80/20, stratified, with the fixed seed.

    Raises:
        ModuleNotFoundError: scikit-learn is not installed (the caller checks first).
    """
    path = sklearn_digits_file()
    if path is not None:
        # The same file and parsing as sklearn.datasets.load_digits: 64 pixels then the label.
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        pixels, labels = table[:, :-1], table[:, -1]
    else:  # a future scikit-learn may move the file: its public API still works
        from sklearn import datasets as sklearn_datasets  # fallback only: sklearn imports in ~1.3 s

        bunch = sklearn_datasets.load_digits()
        pixels, labels = bunch.data, bunch.target
    images = np.rint(pixels.reshape(-1, 8, 8, 1) * (255.0 / _MAX_VALUE)).astype(np.uint8)
    labels = labels.astype(np.int64)
    train_index, test_index = split_indices(labels, len(labels), TEST_FRACTION)
    source = f"{path} (scikit-learn)" if path else "sklearn.datasets.load_digits"
    return RawData(
        images[train_index], labels[train_index], images[test_index], labels[test_index], class_names, source
    )
