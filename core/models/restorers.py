"""Restoration registry: ``build_restorer(config, image_shape)`` returns a compiled model."""

from __future__ import annotations

import keras

from core.common.config import RESTORATION_MODELS, RestorationConfig
from core.common.errors import ConfigError
from core.data.degradations import Degradation
from core.models.espcn import build_espcn
from core.models.fast import for_device
from core.models.pix2pix import Pix2Pix
from core.models.unet import build_unet


def degradation_of(config: RestorationConfig) -> Degradation:
    return Degradation(config.task, scale=config.scale, mask=config.mask, noise=config.noise)


def build_restorer(config: RestorationConfig, image_shape) -> keras.Model:
    """Build and compile ``config.model`` for clean images of ``image_shape``.

    espcn and unet minimise the L1 loss (mean absolute error in grey levels) with Adam;
    pix2pix compiles its two Adam optimizers (beta_1 0.5, as in the paper).

    Raises:
        ConfigError: unknown model.
    """
    image_shape = tuple(int(size) for size in image_shape)
    input_shape = degradation_of(config).input_shape(image_shape)
    channels = image_shape[-1]
    if config.model == "espcn":
        model = for_device(build_espcn(input_shape, channels, config.task, config.scale, config.width))
    elif config.model == "unet":
        model = for_device(build_unet(input_shape, channels, config.task, config.scale, config.width))
    elif config.model == "pix2pix":
        model = Pix2Pix(input_shape, image_shape, config.task, config.scale, config.width,
                        l1_weight=config.l1_weight, name="pix2pix")
        model.compile(
            generator_optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=0.5),
            discriminator_optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=0.5),
        )
        return model
    else:
        raise ConfigError(f"unknown restoration model {config.model!r}: choose one of {', '.join(RESTORATION_MODELS)}")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mean_absolute_error")
    return model
