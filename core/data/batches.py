"""The batch iterator every model family trains on: full batches in a seeded order per epoch."""

from __future__ import annotations

import keras
import numpy as np


class ShuffledBatches(keras.utils.PyDataset):
    """Full batches of images (and labels) in an order drawn from ``(seed, epoch)``.

    The order of epoch ``e`` depends only on ``(seed, e)``, so a resumed run sees the same
    batches as an uninterrupted one. The remainder that does not fill a batch is left out of
    that epoch (other images each epoch): every step has the same shape, so XLA compiles the
    training step once. Each batch's indices are sorted, so the gather reads the arrays in order.
    The epoch is set by :meth:`epoch_callback` at the start of every epoch; Keras' own
    ``on_epoch_end`` calls of a PyDataset do not count epochs (``fit`` makes one before the first).

    Args:
        images: uint8 images ``(N, H, W, C)``.
        labels: labels ``(N,)``, or None (batches are then 1-tuples of images).
        batch_size: images per batch, at most ``N`` (``core.training.validation.check_data`` says so).
        seed: with the epoch number, fixes each epoch's order.
        epoch: the epoch of the batches until the first :meth:`set_epoch` call.
    """

    def __init__(self, images, labels, batch_size: int, *, seed: int = 0, epoch: int = 0):
        super().__init__()
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = epoch
        self._order_epoch: int | None = None
        self._order: np.ndarray | None = None

    def set_epoch(self, epoch: int) -> None:
        """Serve the batches of ``epoch`` from now on."""
        self.epoch = epoch

    def epoch_callback(self) -> keras.callbacks.Callback:
        """A callback for ``fit`` that calls :meth:`set_epoch` as each epoch begins."""
        return keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: self.set_epoch(epoch))

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def indices(self, index: int) -> np.ndarray:
        """The sorted image indices of batch ``index`` of the current epoch."""
        if self._order_epoch != self.epoch:  # one permutation per epoch, drawn at its first batch
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))
            self._order_epoch = self.epoch
        return np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])

    def __getitem__(self, index: int):
        picked = self.indices(index)
        if self.labels is None:
            return (self.images[picked],)
        return self.images[picked], self.labels[picked]
