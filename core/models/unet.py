"""U-Net (Ronneberger et al. 2015) for image restoration, trained with an L1 loss.

Works at the output resolution: a super-resolution input is first upsampled bilinearly. Two
3x3 convs (ReLU) per level, max-pooling down, nearest upsampling + 3x3 conv up, skip
connections by concatenation; channels ``width * 2**level``. Levels: as many halvings (at
most ``depth``) as keep the sides whole and at least 4 pixels (28 -> 14 -> 7; 8 -> 4). No
batch norm, so the pix2pix discriminator step stays stateless and inference equals training.
"""

from __future__ import annotations

import keras
from keras import layers

from core.models.restoration_io import base_image, finish, split_inputs


def levels_for(height: int, width: int, depth: int) -> int:
    """Halvings a U-Net can do on ``height x width`` images, at most ``depth``."""
    levels = 0
    while levels < depth and height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= 4:
        height, width, levels = height // 2, width // 2, levels + 1
    return levels


def _block(x, channels: int, name: str):
    x = layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"{name}_a")(x)
    return layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"{name}_b")(x)


def build_unet(input_shape, channels: int, task: str, scale: int = 1, width: int = 32, depth: int = 2,
               name: str = "unet") -> keras.Model:
    """Build a U-Net for inputs of ``input_shape`` (see ``restoration_io`` for the contract)."""
    inputs = keras.Input(tuple(input_shape), name="degraded")
    pixels, mask = split_inputs(inputs, task, channels)
    base = base_image(pixels, task, scale if task == "super-resolution" else 1)
    x = base if mask is None else layers.Concatenate(name="with_mask")([base, mask])
    levels = levels_for(int(x.shape[1]), int(x.shape[2]), depth)
    skips = []
    for level in range(levels):
        x = _block(x, width * 2**level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _block(x, width * 2**levels, "bottom")
    for level in reversed(range(levels)):
        x = layers.UpSampling2D(2, name=f"up{level}")(x)
        x = layers.Conv2D(width * 2**level, 3, padding="same", name=f"up{level}_conv")(x)
        x = layers.ReLU(name=f"up{level}_relu")(x)  # apart from the conv: the CPU seam fuses upsample + conv
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _block(x, width * 2**level, f"up{level}_block")
    residual = layers.Conv2D(channels, 1, name="to_residual")(x)
    return keras.Model(inputs, finish(base, residual, pixels, mask), name=name)
