"""Finished runs written straight into a run store, for tests that need one to exist."""

import keras

from core.store.store import RunStore


def completed_classifier_run(store: RunStore, model: keras.Model, dataset: str, test_accuracy: float,
                             image_size: int | None = None) -> str:
    """A completed convnet run on ``dataset`` whose checkpoint is ``model``; returns its id."""
    run_id = store.create_run(
        family="classifier",
        model="convnet",
        dataset=dataset,
        config={"model": "convnet", "dataset": dataset, "image_size": image_size},
        status="completed",
    )
    (store.run_dir(run_id) / "checkpoints").mkdir()
    model.save(store.run_dir(run_id) / "checkpoints" / "epoch_003.keras")
    store.update_run(run_id, metrics={"test_accuracy": test_accuracy})
    return run_id
