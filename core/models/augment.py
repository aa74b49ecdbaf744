"""Data augmentation inside the model, active only in training.

Shifts, zooms and horizontal flips are axis-aligned, so each one is *separable*: the
augmented image is ``A_y @ image @ A_x.T`` per channel, with one small ``(H, H)`` and one
``(W, W)`` bilinear resampling matrix per image. Two batched matrix products are far cheaper
on XLA:CPU than the gather that ``keras.layers.RandomTranslation``/``RandomZoom`` lower to
(``map_coordinates``), which cost more than the whole ConvNet's training step on 28x28 data.
With zoom 1 and whole-pixel shifts the matrices are permutations, so shifted pixels stay
crisp, as in the classic pad-and-crop augmentation. Pixels from outside the image are 0.

Presets (``AUGMENTATIONS``; ``augmentation_for`` picks one from the data set's name or, for
unknown data, from the channel count):
- ``handwriting`` (digits, MNIST, other grayscale data by default): shift up to 10% and zoom
  +-10%, never a flip: a mirrored 2, 3 or 7 is not a digit, and grayscale folders may hold
  letters or symbols.
- ``centered`` (Fashion-MNIST): shift up to 7% (2 pixels of 28) and a horizontal flip. The items
  are centred and fill the frame, so larger shifts and zooms make images unlike any test image;
  a mirrored shirt or shoe is still the same class.
- ``natural`` (CIFAR-10 and other colour photos, the default for 3 channels): shift up to 12.5%
  (4 pixels of 32, the standard pad-and-crop) and a horizontal flip, no zoom.
"""

from __future__ import annotations

from keras import layers, ops, random, saving

from core.models.layers import SeedStateMixin


@saving.register_keras_serializable(package="convgan")
class RandomShiftZoomFlip(SeedStateMixin, layers.Layer):
    """Randomly shift, zoom and (optionally) mirror each image, in training only.

    Args:
        shift: largest shift as a fraction of the height and width; shifts are whole pixels.
        zoom: largest relative zoom in or out (0.1 = scale between 0.9 and 1.1).
        flip: mirror half of the images left to right.
        seed: seed of the layer's own ``keras.random.SeedGenerator``, whose state is saved
            with the model.
    """

    def __init__(self, shift=0.1, zoom=0.0, flip=False, seed=0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= shift < 0.5 or not 0.0 <= zoom < 0.5:
            raise ValueError(f"shift and zoom must be in [0, 0.5), got shift={shift}, zoom={zoom}")
        self.shift = float(shift)
        self.zoom = float(zoom)
        self.flip = bool(flip)
        self.seed = int(seed)
        self.seed_generator = random.SeedGenerator(self.seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        images = ops.cast(inputs, self.compute_dtype)  # (batch, height, width, channels)
        batch = ops.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        uniform = random.uniform((5, batch), seed=self.seed_generator)
        scale = 1.0 + self.zoom * (2.0 * uniform[0] - 1.0)
        shift_y = ops.round(self.shift * height * (2.0 * uniform[1] - 1.0))
        shift_x = ops.round(self.shift * width * (2.0 * uniform[2] - 1.0))
        mirror = ops.where(uniform[3] < 0.5, -1.0, 1.0) if self.flip else ops.ones_like(scale)
        rows = _resampling_matrix(height, scale, shift_y, ops.ones_like(scale))  # (batch, H, H)
        cols = _resampling_matrix(width, scale, shift_x, mirror)  # (batch, W, W)
        images = ops.einsum("bip,bpqc->biqc", rows, images)
        return ops.einsum("bjq,biqc->bijc", cols, images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"shift": self.shift, "zoom": self.zoom, "flip": self.flip, "seed": self.seed})
        return config


def _resampling_matrix(size, scale, shift, mirror):
    """Bilinear resampling matrices ``(batch, size, size)``: row i holds the weights of output
    pixel i over the input pixels, a triangle kernel around its source coordinate."""
    center = (size - 1) / 2.0
    out = ops.arange(size, dtype="float32")[None, :]  # (1, size)
    source = center + mirror[:, None] * (out - center) / scale[:, None] - shift[:, None]  # (batch, size)
    pixels = ops.arange(size, dtype="float32")[None, None, :]
    return ops.relu(1.0 - ops.abs(source[:, :, None] - pixels))


AUGMENTATIONS = {
    "handwriting": {"shift": 0.1, "zoom": 0.1, "flip": False},
    "centered": {"shift": 0.07, "zoom": 0.0, "flip": True},
    "natural": {"shift": 0.125, "zoom": 0.0, "flip": True},
}


def augmentation_preset(dataset, channels):
    """Name of the ``AUGMENTATIONS`` preset for ``dataset`` (a data set spec or ``None``)."""
    name = (dataset or "").lower()
    if "fashion" in name:
        return "centered"
    if "digit" in name or "mnist" in name:
        return "handwriting"
    return "natural" if channels == 3 else "handwriting"


def augmentation_for(input_shape, seed=0, preset=None):
    """The augmentation layer for images of ``input_shape``: ``preset`` from ``AUGMENTATIONS``,
    or by default the one suited to the channel count (see the module docstring).

    Raises:
        ValueError: unknown preset.
    """
    preset = preset or augmentation_preset(None, input_shape[-1])
    if preset not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {preset!r}: choose one of {', '.join(AUGMENTATIONS)}")
    return RandomShiftZoomFlip(**AUGMENTATIONS[preset], seed=seed, name="augment")
