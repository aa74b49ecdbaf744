"""The restoration family: train espcn, unet or pix2pix to undo a degradation, and score them.

``fit_restoration`` trains on pairs made on the fly from the dataset's training images
(:class:`PairBatches`, seeded by epoch), with the run's callbacks plus
:class:`EpochRestorationMetrics` (``psnr``, ``ssim``, ``hole_psnr`` on the test split beside
the classical baseline's ``baseline_*`` every epoch) and :class:`BeforeAfterGrid` (a PNG per
epoch for a time-lapse). When a completed classifier run exists for the dataset, the final
metrics add its accuracy on clean, degraded and restored test images, and pix2pix its
``fid_cls`` (classifier-feature Frechet distance of restored to clean images).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core.common import images
from core.common.config import RestorationConfig
from core.common.errors import ConfigError
from core.common.parallel import single_device
from core.data import degradations
from core.data.batches import ShuffledBatches
from core.data.datasets import dataset_info
from core.evaluation import gan_metrics
from core.models.restorers import build_restorer, degradation_of
from core.store import checkpoints
from core.store.store import RunStore
from core.training import validation
from core.training.callbacks import EpochGrids
from core.training.classifier import predict_proba

log = logging.getLogger(__name__)

PREDICT_BATCH_SIZE = 500  # images per inference call; divides 10,000 test images
DENOISE_SELECTION_IMAGES = 500  # training images the denoising baseline's filter is chosen on
# Image-index offsets of the random streams: test images use their own index, training image
# i in epoch e uses TRAIN_STREAM * (e + 1) + i, the baseline's filter choice SELECTION_STREAM + i.
TRAIN_STREAM = 10**8
SELECTION_STREAM = 10**12


def fit_restoration(config: RestorationConfig, data, ctx) -> dict[str, Any]:
    """Train (or resume) the restoration model of ``config`` on ``data`` for the run ``ctx``.

    Args:
        config: the run's ``RestorationConfig``.
        data: a ``core.data.datasets.Dataset`` (labels optional).
        ctx: the run's ``core.training.runctx.RunContext``.

    Returns:
        The last epoch's logs (loss, psnr, ssim, hole_psnr and their ``baseline_*``) and, for a
        run that finished, :func:`extra_metrics` (classifier accuracies, fid_cls, num_params).

    Raises:
        ConfigError: a task the images cannot take, or a resume checkpoint of another model.
    """
    config.validate()
    validation.check_data(config, data)
    keras.utils.set_random_seed(config.seed)
    degradation = degradation_of(config)
    train_images = data.x_train[: config.train_images] if config.train_images else data.x_train
    batches = PairBatches(train_images, degradation, config.batch_size, seed=config.seed, epoch=ctx.initial_epoch)
    if ctx.resume_checkpoint is not None:
        model = checkpoints.load_model(ctx.resume_checkpoint)
        if model.name != config.model:
            raise ConfigError(f"checkpoint {Path(ctx.resume_checkpoint).name} holds a {model.name}, not {config.model}")
    else:
        model = build_restorer(config, data.image_shape)
    run_callbacks = list(ctx.callbacks(len(batches), batch_size=batches.batch_size))

    def is_partial(epoch: int) -> bool:
        stopper = getattr(ctx, "stopper", None)
        return stopper is not None and stopper.stopped_at_epoch == epoch

    evaluator = EpochRestorationMetrics(data, degradation, seed=config.seed, is_partial=is_partial)
    grid = BeforeAfterGrid(Path(ctx.run_dir) / "samples", evaluator, num_images=config.sample_grid_size,
                           initial_epoch=ctx.initial_epoch, is_partial=is_partial)
    final: dict[str, Any] = {}
    if ctx.initial_epoch < config.epochs:
        history = model.fit(batches, epochs=config.epochs, initial_epoch=ctx.initial_epoch, shuffle=False,
                            callbacks=[batches.epoch_callback(), evaluator, grid, *run_callbacks], verbose=0)
        final = {name: float(values[-1]) for name, values in history.history.items() if values}
    if getattr(ctx, "failure", None) or getattr(ctx, "stopped", False):
        return final
    final.update(evaluate_restoration(model, data, config, store=getattr(ctx, "store", None), evaluator=evaluator))
    return final


class PairBatches(ShuffledBatches):
    """Whole batches of ``(degraded model input, clean image)`` pairs, in ``ShuffledBatches``' order.

    Degradations are drawn from ``(seed, epoch, image index)``, so a resumed run sees the same
    pairs as an uninterrupted one.
    """

    def __init__(self, clean, degradation: degradations.Degradation, batch_size: int, *, seed: int = 0,
                 epoch: int = 0):
        super().__init__(clean, None, batch_size, seed=seed, epoch=epoch)
        self.degradation = degradation
        # Super-resolution inputs never change: made once.
        self.low_res = degradations.downsample(clean, degradation.scale) if degradation.task == "super-resolution" else None

    def __getitem__(self, index: int):
        picked = self.indices(index)
        clean = self.images[picked]
        if self.low_res is not None:
            return self.low_res[picked].astype(np.float32), clean.astype(np.float32)
        inputs = np.empty((len(picked), *self.degradation.input_shape(clean.shape[1:])), np.float32)
        for row, image_index in enumerate(picked):  # each image's own stream: batch-independent
            degraded, masks = self.degradation.apply(
                clean[row : row + 1], seed=self.seed, first_index=TRAIN_STREAM * (self.epoch + 1) + int(image_index)
            )
            inputs[row] = degradations.model_inputs(degraded, masks)[0]
        return inputs, clean.astype(np.float32)


def restore_batch(model: keras.Model, inputs: np.ndarray) -> np.ndarray:
    """uint8 restorations of model inputs (degraded pixels, plus the mask channel for inpaint)."""
    with single_device():
        outputs = model.predict(np.asarray(inputs, np.float32), batch_size=PREDICT_BATCH_SIZE, verbose=0)
    return np.clip(np.rint(outputs), 0, 255).astype(np.uint8)


class EpochRestorationMetrics(keras.callbacks.Callback):
    """Adds ``psnr``, ``ssim`` (and ``hole_psnr``) on the test split, and the baseline's, to each epoch's logs.

    The test images are degraded once (seed = the run's, stream = the image index) and the
    classical baseline restores them once. Put it before the callbacks that read the logs.

    Args:
        data: the dataset (its test split is scored).
        degradation: the task.
        seed: the run's seed.
        is_partial: returns True for an epoch a stop request cut short (not scored).
    """

    def __init__(self, data, degradation: degradations.Degradation, *, seed: int = 0,
                 is_partial=lambda epoch: False):
        super().__init__()
        self.degradation, self.is_partial = degradation, is_partial
        self.clean = data.x_test
        self.degraded, self.masks = degradation.apply(self.clean, seed=seed)
        self.inputs = degradations.model_inputs(self.degraded, self.masks)
        self.method = None
        if degradation.task == "denoise":
            chosen = data.x_train[:DENOISE_SELECTION_IMAGES]
            noisy, _ = degradation.apply(chosen, seed=seed, first_index=SELECTION_STREAM)
            self.method = degradations.best_denoise_method(chosen, noisy)
        self.baseline = degradations.baseline(degradation, self.degraded, self.masks, denoise_method=self.method)
        self.baseline_scores = degradations.quality(self.clean, self.baseline, self.masks, prefix="baseline_")
        self.restored: np.ndarray | None = None
        self.scores: dict[str, float] = {}

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or self.is_partial(epoch):
            return
        logs.update(self.score(self.model))

    def score(self, model: keras.Model) -> dict[str, float]:
        """The model's and the baseline's scores on the test split (keeps the restorations)."""
        self.restored = restore_batch(model, self.inputs)
        self.scores = {**degradations.quality(self.clean, self.restored, self.masks), **self.baseline_scores}
        return dict(self.scores)

    def shown_degraded(self, indices) -> np.ndarray:
        """Degraded test images at the clean size (pixel-replicated for super-resolution)."""
        shown = self.degraded[indices]
        if self.degradation.task == "super-resolution":
            scale = self.degradation.scale
            shown = np.repeat(np.repeat(shown, scale, axis=1), scale, axis=2)
        return shown


class BeforeAfterGrid(EpochGrids):
    """Saves ``samples/epoch_NNN.png`` after every epoch: rows of degraded | baseline | model | original.

    The same test images every epoch (the first ``num_images``), so the files make a
    time-lapse; ``epoch_000.png`` shows the untrained model (not when resuming).
    """

    def __init__(self, directory, evaluator: EpochRestorationMetrics, *, num_images: int = 8,
                 initial_epoch: int = 0, is_partial=lambda epoch: False):
        super().__init__(directory, initial_epoch=initial_epoch, is_partial=is_partial)
        self.evaluator, self.num_images = evaluator, num_images

    def grid(self) -> np.ndarray:
        evaluator = self.evaluator
        indices = np.arange(min(self.num_images, len(evaluator.clean)))
        restored = restore_batch(self.model, evaluator.inputs[indices])
        columns = [evaluator.shown_degraded(indices), evaluator.baseline[indices], restored, evaluator.clean[indices]]
        tiles = np.stack(columns, axis=1).reshape(-1, *evaluator.clean.shape[1:])  # row by row
        return images.make_grid(tiles, ncols=len(columns))


def evaluate_restoration(model: keras.Model, data, config: RestorationConfig, *, store=None,
                         evaluator: EpochRestorationMetrics | None = None) -> dict[str, Any]:
    """Test-split scores of a restoration model, beside the classical baseline's.

    Returns:
        ``psnr``, ``ssim``, ``hole_psnr`` (inpaint), their ``baseline_*``, ``baseline_method``,
        ``num_params``; with a completed classifier run for the dataset,
        ``classifier_accuracy_clean``/``_degraded``/``_restored`` and ``classifier_run``, and for
        pix2pix ``fid_cls`` (with ``baseline_fid_cls``).
    """
    if evaluator is None:
        evaluator = EpochRestorationMetrics(data, degradation_of(config), seed=config.seed)
    # The last epoch's scores are the trained model's: no second pass over the test split.
    results: dict[str, Any] = dict(evaluator.scores) if evaluator.restored is not None else evaluator.score(model)
    results["baseline_method"] = {"super-resolution": "bicubic", "inpaint": "harmonic"}.get(
        config.task, evaluator.method
    )
    results["num_params"] = int(model.count_params())
    results.update(_classifier_metrics(evaluator, data, config, store, fid=config.model == "pix2pix"))
    return results


def find_classifier_run(store, dataset: str, image_size: int | None) -> dict[str, Any] | None:
    """The completed classifier run of ``dataset`` (at ``image_size``) with the best test accuracy."""

    names = {dataset, dataset_info(dataset).name}
    runs = [
        run for run in store.list_runs(status="completed", family="classifier")
        if run["dataset"] in names and run["config"].get("image_size") == image_size
        and isinstance((run.get("metrics") or {}).get("test_accuracy"), (int, float))
    ]
    return max(runs, key=lambda run: run["metrics"]["test_accuracy"], default=None)


def _classifier_metrics(evaluator: EpochRestorationMetrics, data, config, store, *, fid: bool) -> dict[str, Any]:
    """Classifier accuracies (and fid_cls) when a classifier run exists; {} otherwise or on failure."""
    if data.y_test is None:
        return {}
    try:
        store = store if store is not None else RunStore()
        run = find_classifier_run(store, config.dataset, config.image_size)
        if run is None:
            return {}
        classifier = gan_metrics.load_classifier(store, run["run_id"])
        labels = np.asarray(data.y_test)
        sets = {"clean": evaluator.clean, "degraded": evaluator.shown_degraded(np.arange(len(evaluator.clean))),
                "restored": evaluator.restored}
        results: dict[str, Any] = {"classifier_run": run["run_id"]}
        for name, batch in sets.items():
            results[f"classifier_accuracy_{name}"] = float(np.mean(predict_proba(classifier, batch).argmax(1) == labels))
        if fid:
            extract = gan_metrics.feature_extractor(classifier)
            clean_features = extract(evaluator.clean).reshape(len(labels), -1)
            results["fid_cls"] = gan_metrics.frechet_distance(
                clean_features, extract(evaluator.restored).reshape(len(labels), -1))
            results["baseline_fid_cls"] = gan_metrics.frechet_distance(
                clean_features, extract(evaluator.baseline).reshape(len(labels), -1))
        return results
    except Exception as err:  # noqa: BLE001 - a run's restoration scores stand without the classifier's
        log.warning("classifier metrics skipped: %s: %s", type(err).__name__, err)
        return {}
