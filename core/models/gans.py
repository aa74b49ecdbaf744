"""GAN registry: ``build_gan(config, image_shape, num_classes)`` returns a compiled model."""

from __future__ import annotations

import keras

from core.common.config import GAN_MODELS, GANConfig
from core.common.errors import ConfigError
from core.models.cgan import CGAN
from core.models.dcgan import DCGAN, generator_plan
from core.models.gan_base import GAN
from core.models.wgan_gp import WGANGP

GAN_CLASSES: dict[str, type[GAN]] = {"dcgan": DCGAN, "cgan": CGAN, "wgan-gp": WGANGP}

# Adam's beta_2: the default for the non-saturating GANs; 0.9 for WGAN-GP (Gulrajani et al.).
BETA_2 = {"dcgan": 0.999, "cgan": 0.999, "wgan-gp": 0.9}


def optimizers_for(config: GANConfig) -> tuple[keras.optimizers.Optimizer, keras.optimizers.Optimizer]:
    """The generator's and the discriminator's Adam optimizers for ``config``."""

    def adam():
        return keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1, beta_2=BETA_2[config.model])

    return adam(), adam()


def build_gan(config: GANConfig, image_shape, num_classes: int = 0) -> GAN:
    """Build and compile the GAN ``config.model`` for images of ``image_shape``.

    Args:
        config: the run's ``GANConfig`` (model, latent_dim, ema_decay, seed, optimizers,
            n_critic and gp_weight for wgan-gp).
        image_shape: (height, width, channels) of the dataset's images.
        num_classes: classes of the dataset (cgan needs at least 2; others ignore it).

    Returns:
        A compiled ``GAN`` ready for ``fit(x_uint8, y)``.

    Raises:
        ConfigError: unknown model, unsupported image shape, or cgan without classes.
    """
    if config.model not in GAN_CLASSES:
        raise ConfigError(f"unknown GAN model {config.model!r}: choose one of {', '.join(GAN_MODELS)}")
    image_shape = tuple(int(size) for size in image_shape)
    if len(image_shape) != 3 or image_shape[-1] not in (1, 3):
        raise ConfigError(f"GANs need (height, width, 1 or 3 channels) images, got shape {image_shape}")
    generator_plan(image_shape)  # raises ConfigError for sizes the generator cannot make
    kwargs = {"latent_dim": config.latent_dim, "ema_decay": config.ema_decay, "seed": config.seed}
    if config.model == "cgan":
        if num_classes < 2:
            raise ConfigError(f"cgan needs a labeled dataset with at least 2 classes, got {num_classes}")
        kwargs["num_classes"] = num_classes
    if config.model == "wgan-gp":
        kwargs.update(n_critic=config.n_critic, gp_weight=config.gp_weight)
    model = GAN_CLASSES[config.model](image_shape, name=config.model.replace("-", "_"), **kwargs)
    generator_optimizer, discriminator_optimizer = optimizers_for(config)
    model.compile(generator_optimizer=generator_optimizer, discriminator_optimizer=discriminator_optimizer)
    return model
