"""Classifying image files with a stored classifier run (CLI ``classify``, pages, notebooks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.common.errors import ModelFileError, UserError
from core.data.datasets import read_image
from core.evaluation import novelty
from core.store.checkpoints import load_run_model
from core.store.store import RunStore
from core.training.classifier import classify_images, prepare_images


def class_names_of(run: dict[str, Any], num_classes: int) -> list[str]:
    """The class names recorded with a run, or ``0..K-1`` when none were."""
    names = (run["config"].get("data") or {}).get("class_names")
    if names and len(names) == num_classes:
        return list(names)
    return [str(index) for index in range(num_classes)]


def classify_files(store: RunStore, run_id: str, paths: Sequence[str | Path], *, top_k: int = 3,
                   epoch: int | None = None) -> list[dict[str, Any]]:
    """Classify image files with a classifier run's checkpoint.

    Args:
        store: the run store.
        run_id: a classifier run.
        paths: image files (png, jpg, ...).
        top_k: classes to report per image.
        epoch: checkpoint after this many epochs (default: the latest).

    Returns:
        One dict per image: ``image``, ``top`` (list of ``class_index``, ``class_name``,
        ``probability``, best first), ``notes`` (how the image was adapted) and whether it is
        unlike the training images (``core.evaluation.novelty.assess``: ``unusual``, ``ood_score``,
        ``ood_threshold``, ``ood_method``, ``unusual_reason``; ``unusual`` is None, with a
        note, when the run's dataset is not on this machine to fit the check on).

    Raises:
        UserError: not a classifier run, unreadable image, bad top_k.
    """

    run = store.get_run(run_id)
    if run["family"] != "classifier":
        raise ModelFileError(f"run {run_id} is a {run['model']} GAN, not a classifier: use `sample` instead")
    if top_k < 1:
        raise UserError(f"top-k must be at least 1, got {top_k}")
    model = load_run_model(store, run_id, epoch)
    input_shape = tuple(model.input_shape[1:])
    try:
        check, unchecked = novelty.for_run(store, run_id, epoch, model=model), None
    except UserError as err:  # e.g. the run's dataset is not on this machine
        check, unchecked = None, f"not checked against the training images: {err}"
    results = []
    for path in paths:
        image = read_image(path)
        prepared, notes = prepare_images(image[None], input_shape)
        names = class_names_of(run, int(model.output_shape[-1]))
        top = classify_images(model, prepared, names, top_k=min(top_k, len(names)))[0]
        if check is None:
            verdict = {"unusual": None, "ood_score": None, "ood_threshold": None, "ood_method": novelty.METHOD,
                       "unusual_reason": None}
            notes = [*notes, unchecked]
        else:
            verdict = novelty.assess(model, check, [image], prepared)[0]
        results.append({"image": str(path), **top, "notes": list(notes), **verdict})
    return results

