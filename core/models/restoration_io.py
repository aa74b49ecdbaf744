"""What every restoration model shares: reading its input and writing its output.

A restoration model takes degraded pixels 0..255 (``(H/scale, W/scale, C)`` for
super-resolution; ``(H, W, C + 1)`` for inpaint, whose last channel is 1 in the hole) and
returns restored pixels 0..255 ``(H, W, C)``. The network predicts a residual over a base
image (the bilinear upsampling for super-resolution, the input otherwise); inpaint models
keep the known pixels and only fill the hole.
"""

from __future__ import annotations

from keras import layers, ops, saving


@saving.register_keras_serializable(package="convgan")
class PixelShuffle(layers.Layer):
    """Sub-pixel convolution's rearrangement (Shi et al. 2016): ``(h, w, c * r * r) -> (h * r, w * r, c)``."""

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, inputs):
        r = self.factor
        _, height, width, depth = inputs.shape
        channels = depth // (r * r)
        x = ops.reshape(inputs, (-1, height, width, r, r, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (batch, height, r, width, r, channels)
        return ops.reshape(x, (-1, height * r, width * r, channels))

    def compute_output_shape(self, input_shape):
        batch, height, width, depth = input_shape
        r = self.factor
        return batch, height * r, width * r, depth // (r * r)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def split_inputs(inputs, task: str, channels: int):
    """``(pixels in [0, 1], hole mask or None)`` from a model input."""
    pixels = layers.Rescaling(1.0 / 255.0, name="to_unit")(inputs[..., :channels])
    mask = inputs[..., channels:] if task == "inpaint" else None
    return pixels, mask


def base_image(pixels, task: str, scale: int):
    """The image the network's residual is added to, at the output resolution."""
    if task == "super-resolution":
        return layers.UpSampling2D(scale, interpolation="bilinear", name="upsample_base")(pixels)
    return pixels


def finish(base, residual, pixels, mask):
    """Restored pixels 0..255: base + residual, with an inpaint model's known pixels kept."""
    restored = layers.Add(name="add_residual")([base, residual])
    if mask is not None:
        restored = restored * mask + pixels * (1.0 - mask)
    return layers.Rescaling(255.0, name="to_pixels")(restored)
