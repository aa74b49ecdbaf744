"""DCGAN (Radford et al. 2016), sized for 8x8 to 64x64 images.

Generator: latent -> dense -> (start x start x C) -> [2x nearest upsample + 3x3 conv, batch norm,
ReLU] per doubling -> 3x3 conv -> tanh. The start size is 2x2 for 8x8 images, 7x7 for 28x28, 4x4
for 32x32 and 64x64 (:func:`generator_plan`). Upsample + conv rather than ``Conv2DTranspose``:
no checkerboard artifacts, and much faster on a CPU (``docs/performance.md``).

Discriminator: a 3x3 stride-1 "stem" conv at full resolution, then [4x4 conv stride 2,
LeakyReLU(0.2)] per halving, flatten, dense -> one logit. The stem makes the discriminator
strong enough to teach the generator in a short run. No batch norm (the training step needs a
stateless discriminator; see ``gan_base.GAN``).

Every layer here is a stock Keras layer; on the CPU ``core.models.fast`` substitutes the fast
forms when the GAN is built.

Loss: the non-saturating loss, ``d_loss = softplus(-D(x)) + softplus(D(G(z)))`` and
``g_loss = softplus(-D(G(z)))`` (means over the batch). Optimizers: Adam(2e-4, beta_1 0.5)
for both networks (``GANConfig``). The generator and discriminator builders here are shared by
``cgan`` and ``wgan-gp``.
"""

from __future__ import annotations

import keras
from keras import layers, ops, saving

from core.common.errors import ConfigError
from core.models.gan_base import GAN

MAX_CHANNEL_MULTIPLIER = 8  # channels never exceed 8 * width
# PyTorch's default (its momentum=0.1), as in the reference DCGAN; Keras' 0.99 lags ~10x
# longer, so short runs sampled in inference mode used stale statistics.
BN_MOMENTUM = 0.9


def generator_plan(image_shape) -> tuple[int, int]:
    """Start size and number of 2x upsamplings of the generator for ``image_shape``.

    Halves the size while it stays a whole number of at least 4 pixels (2 for images of at
    most 16 pixels): 8 -> (2, 2), 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4).

    Raises:
        ConfigError: non-square images, or a size that is not a multiple of 4.
    """
    height, width, _ = (int(size) for size in image_shape)
    if height != width:
        raise ConfigError(f"GANs need square images, got {height}x{width}: set image_size")
    if height < 8 or height % 4:
        raise ConfigError(f"GAN image size must be a multiple of 4 and at least 8 pixels, got {height}")
    smallest = 2 if height <= 16 else 4
    start, doublings = height, 0
    while start % 2 == 0 and start // 2 >= smallest:
        start //= 2
        doublings += 1
    return start, doublings


def _channels(width: int, level: int) -> int:
    """Channels ``level`` doublings away from full resolution."""
    return width * min(2**level, MAX_CHANNEL_MULTIPLIER)


def generator_trunk(inputs, image_shape, width: int):
    """Upsampling body of the generator: a (batch, features) vector -> images in [-1, 1]."""
    start, doublings = generator_plan(image_shape)
    channels = _channels(width, doublings)
    x = layers.Dense(start * start * channels, use_bias=False, name="project")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="project_bn")(x)
    x = layers.ReLU()(x)
    x = layers.Reshape((start, start, channels))(x)  # (batch, start, start, channels)
    for level in range(doublings - 1, -1, -1):
        x = layers.UpSampling2D(2, name=f"up{level}")(x)
        x = layers.Conv2D(_channels(width, level), 3, padding="same", use_bias=False, name=f"up{level}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"up{level}_bn")(x)
        x = layers.ReLU()(x)
    return layers.Conv2D(image_shape[-1], 3, padding="same", activation="tanh", name="to_image")(x)


def discriminator_features(images, image_shape, width: int):
    """Downsampling body of the discriminator: images -> flat features (no batch norm)."""
    _, doublings = generator_plan(image_shape)
    x = layers.Conv2D(width, 3, padding="same", name="stem")(images)
    x = layers.LeakyReLU(0.2)(x)
    for level in range(doublings):
        x = layers.Conv2D(_channels(width, level + 1), 4, strides=2, padding="same", name=f"down{level}")(x)
        x = layers.LeakyReLU(0.2)(x)
    return layers.Flatten()(x)


def build_generator(image_shape, latent_dim: int, width: int, name: str) -> keras.Model:
    z = keras.Input((latent_dim,), name="z")
    return keras.Model(z, generator_trunk(z, image_shape, width), name=name)


def build_discriminator(image_shape, width: int, name: str) -> keras.Model:
    images = keras.Input(tuple(image_shape), name="images")
    logits = layers.Dense(1, name="logit")(discriminator_features(images, image_shape, width))
    return keras.Model(images, logits, name=name)


@saving.register_keras_serializable(package="convgan")
class DCGAN(GAN):
    """Unconditional DCGAN with the non-saturating loss. Arguments: see ``gan_base.GAN``."""

    metric_names = ("d_loss", "g_loss", "d_real", "d_fake")

    def build_generator(self, name):
        return build_generator(self.image_shape, self.latent_dim, self.width, name)

    def build_discriminator(self, name):
        return build_discriminator(self.image_shape, self.width, name)

    def discriminator_loss(self, d_trainable, real, fake, labels, noise):
        real_logits, fake_logits = self.discriminate_pair(d_trainable, real, fake, labels)
        loss = ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))
        stats = {"d_real": ops.mean(ops.sigmoid(real_logits)), "d_fake": ops.mean(ops.sigmoid(fake_logits))}
        return loss, stats

    def generator_loss(self, fake_logits):
        return ops.mean(ops.softplus(-fake_logits))
