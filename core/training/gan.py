"""The GAN family: train a dcgan, cgan or wgan-gp run with ``fit()``, and score a generator.

``fit_gan`` builds (or, to resume, loads) the model, trains it on shuffled full batches with
the run's callbacks plus :class:`SampleGrid`, then scores the EMA generator with
``core.evaluation.gan_metrics`` when a reference classifier run is there to score with (fid_cls, kid_cls,
precision, recall, and label_accuracy for cgan), plus ``fid_cls_no_ema`` for the raw
generator, and records which classifier run scored it (``reference_run``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core.common import images
from core.common.config import GANConfig
from core.common.errors import ConfigError
from core.data.batches import ShuffledBatches
from core.evaluation import gan_metrics, sampling
from core.models.gan_base import GAN
from core.models.gans import GAN_CLASSES, build_gan
from core.store.store import RunStore
from core.training import validation
from core.training.callbacks import EpochGrids

# Makes sure of a GAN's reference classifier run and returns its record (``core.runs.training``'s).
ReferenceRun = Callable[[], dict[str, Any]]

log = logging.getLogger(__name__)


def fit_gan(config: GANConfig, data, ctx, *, reference_run: ReferenceRun | None = None) -> dict[str, Any]:
    """Train the GAN of ``config`` on ``data`` for the run ``ctx``.

    Args:
        config: the run's ``GANConfig``.
        data: a ``core.data.datasets.Dataset`` (uint8 images; labels needed for cgan).
        ctx: the run's ``core.training.runctx.RunContext`` (run folder, resume checkpoint, callbacks).
        reference_run: called before scoring, makes sure of the reference classifier run
            (``core.runs.training`` passes one that trains it if missing); None: the best one
            already in the store, if any.

    Returns:
        The last epoch's training logs (``d_loss``, ``g_loss``, ...) and, when the run
        finished and ``core.evaluation.gan_metrics`` is usable, the generator's scores, with
        ``fid_cls_untrained`` (the same seed's generator before training) as the baseline.

    Raises:
        ConfigError: cgan on unlabeled data, a batch larger than the data, an image shape the
            models cannot make, or a resume checkpoint of another kind of model.
    """
    validation.check_data(config, data)
    keras.utils.set_random_seed(config.seed)
    if ctx.resume_checkpoint is not None:
        model = sampling.load_gan(ctx.resume_checkpoint)
        if not _matches(model, config):
            raise ConfigError(
                f"checkpoint {Path(ctx.resume_checkpoint).name} holds a {type(model).__name__}, not {config.model}"
            )
    else:
        model = build_gan(config, data.image_shape, data.num_classes)

    labels = data.y_train if model.conditional else None
    batches = ShuffledBatches(data.x_train, labels, config.batch_size, seed=config.seed, epoch=ctx.initial_epoch)
    callbacks = list(ctx.callbacks(len(batches), batch_size=config.batch_size))

    def is_partial(epoch: int) -> bool:
        stopper = getattr(ctx, "stopper", None)
        return stopper is not None and stopper.stopped_at_epoch == epoch

    grid = SampleGrid(Path(ctx.run_dir) / "samples", num_images=config.sample_grid_size, seed=config.seed,
                      initial_epoch=ctx.initial_epoch, is_partial=is_partial)
    # Batches are shuffled by ShuffledBatches (seeded per epoch), not by fit (global RNG).
    history = model.fit(batches, epochs=config.epochs, initial_epoch=ctx.initial_epoch, shuffle=False,
                        callbacks=[batches.epoch_callback(), grid, *callbacks], verbose=0)
    final = {name: float(values[-1]) for name, values in history.history.items() if values}
    if getattr(ctx, "failure", None) or getattr(ctx, "stopped", False):
        return final

    def stopping() -> bool:  # a stop while scoring keeps the scores computed so far
        return bool(getattr(ctx, "stopping", False))

    if hasattr(ctx, "set_phase"):
        ctx.set_phase("scoring")
    store = getattr(ctx, "store", None)
    final.update(evaluate_gan(model, data, config, store=store, reference_run=reference_run, should_stop=stopping))
    if "fid_cls" in final and not stopping():
        # The same seed builds the same untrained generator: the baseline the trained
        # generator's fid_cls is read against.
        keras.utils.set_random_seed(config.seed)
        untrained = build_gan(config, data.image_shape, data.num_classes)
        final["fid_cls_untrained"] = evaluate_gan(untrained, data, config, store=store,
                                                  reference_run=reference_run).get("fid_cls")
    if stopping():
        ctx.skipped = [name for name in SCORES if name not in final]
    return final


# The scores fit_gan computes after training, in order (a stop skips those not reached yet).
SCORES = ("fid_cls", "fid_cls_no_ema", "fid_cls_untrained")


def evaluate_gan(model: GAN, data, config: GANConfig, *, store: RunStore | None = None,
                 reference_run: ReferenceRun | None = None, should_stop=lambda: False) -> dict[str, Any]:
    """Score a GAN's EMA generator (and its raw generator, for ``fid_cls_no_ema``).

    Uses ``core.evaluation.gan_metrics.evaluate_generator`` with the dataset's reference classifier:
    the run ``reference_run()`` returns, else the best one in ``store``. Metrics are a bonus
    to training: if they cannot be computed (no reference classifier among them), the reason
    goes to stderr and the result is empty. When ``should_stop()`` turns true, the scores
    computed so far are returned.

    Returns:
        ``fid_cls``, ``kid_cls``, ``precision``, ``recall``, ``label_accuracy`` (cgan),
        ``fid_cls_no_ema``, and ``reference_run`` (the classifier run whose features define
        them); or {} when metrics are unavailable.
    """
    try:
        store = store if store is not None else RunStore()
        if reference_run is not None:
            reference = reference_run()
        else:
            reference = gan_metrics.reference_run(data.info.name, store, image_size=config.image_size)
        classifier = gan_metrics.load_classifier(store, reference["run_id"])
        results: dict[str, Any] = {"reference_run": reference["run_id"]}
        for ema in (True, False):
            if should_stop():
                break

            def sample_fn(n, seed, labels, ema=ema):
                z = sampling.latents(model.latent_dim, n, seed)
                return images.to_uint8(model.generate(z, labels if model.conditional else None, ema=ema))

            scores = gan_metrics.evaluate_generator(
                sample_fn, data, classifier=classifier, num_samples=config.metric_samples, seed=config.seed,
                conditional=model.conditional, num_classes=model.num_classes or None,
            )
            if ema:
                for note in scores.get("notes", []):
                    log.warning("note: %s", note)
                results.update({k: v for k, v in scores.items() if isinstance(v, (int, float))})
            else:
                results["fid_cls_no_ema"] = float(scores["fid_cls"])
        return results
    except Exception as err:  # noqa: BLE001 - a run's training result stands without its scores
        log.warning("note: GAN metrics skipped: %s: %s", type(err).__name__, err)
        return {}


def _matches(model, config: GANConfig) -> bool:
    return type(model) is GAN_CLASSES.get(config.model)


class SampleGrid(EpochGrids):
    """Saves a PNG grid of the EMA generator's images for fixed latents after every epoch.

    ``<directory>/epoch_NNN.png`` after NNN completed epochs, and ``epoch_000.png`` (the
    untrained generator) before training when not resuming; written atomically. Latents are
    ``sampling.latents(latent_dim, num_images, seed)``; a conditional model gets one class per
    row (``num_images // num_classes`` columns).

    Args:
        directory: where the PNGs go (the run's ``samples/``).
        num_images: images per grid.
        seed: seed of the fixed latents.
        initial_epoch: epochs done before this ``fit`` (no epoch-0 grid when > 0).
        is_partial: returns True for an epoch a stop request cut short (no grid then).
    """

    def __init__(self, directory, num_images: int = 64, seed: int = 0, initial_epoch: int = 0,
                 is_partial=lambda epoch: False):
        super().__init__(directory, initial_epoch=initial_epoch, is_partial=is_partial)
        self.num_images = num_images
        self.seed = seed

    def on_train_begin(self, logs=None):
        model = self.model
        if model.conditional:
            self.columns = max(1, self.num_images // model.num_classes)
            count = self.columns * model.num_classes
            self.labels = np.repeat(np.arange(model.num_classes), self.columns)
        else:
            self.columns = math.ceil(math.sqrt(self.num_images))
            count = self.num_images
            self.labels = None
        self.latents = sampling.latents(model.latent_dim, count, self.seed)
        super().on_train_begin(logs)

    def grid(self) -> np.ndarray:
        batch = images.to_uint8(self.model.generate(self.latents, self.labels))
        return images.make_grid(batch, ncols=self.columns)
