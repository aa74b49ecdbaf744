"""Evaluating a stored run's checkpoint again (``python -m core evaluate RUN``)."""

from __future__ import annotations

import functools
from typing import Any

from core.common.config import config_from_dict
from core.data.datasets import load_dataset
from core.runs import training
from core.store.checkpoints import load_run_model
from core.store.store import RunStore
from core.training import classifier, gan, restoration


def evaluate_run(store: RunStore, run_id: str, epoch: int | None = None) -> dict[str, Any]:
    """Evaluate a run's checkpoint on its dataset's test split.

    Classifiers: test accuracy and loss, per-class accuracy, confusion matrix. GANs: fid_cls,
    kid_cls, precision, recall (and label_accuracy for cgan), in the features of the data
    set's reference classifier run, trained first when the store has none.

    Args:
        store: the run store.
        run_id: the run.
        epoch: checkpoint after this many epochs (default: the latest).

    Returns:
        The metrics.

    Raises:
        UserError: no checkpoint, dataset unavailable.
    """
    run = store.get_run(run_id)
    config = config_from_dict(run["config"])
    data = load_dataset(config.dataset, image_size=config.image_size)
    model = load_run_model(store, run_id, epoch)
    if config.family == "classifier":
        return classifier.evaluate_classifier(model, data)
    if config.family == "restoration":
        return restoration.evaluate_restoration(model, data, config, store=store)
    reference_run = functools.partial(training.reference_run, config.dataset, store, image_size=config.image_size)
    return gan.evaluate_gan(model, data, config, store=store, reference_run=reference_run)
