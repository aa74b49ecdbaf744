"""Checks of a training config against the data and devices it will train on, each rule once.

``core.common.config`` checks a config on its own (``validate()``); the rules here need the loaded
data set or the devices. ``core.runs.training.prepare`` calls :func:`check_trainable` before a run
exists, and the family trainers call :func:`check_data` on the data they are handed.
"""

from __future__ import annotations

from core.common import devices, parallel
from core.common.config import Config
from core.common.errors import ConfigError
from core.data import degradations


def needs_labels(config: Config) -> bool:
    """True for the models that train on labels: every classifier, and cgan."""
    return config.family == "classifier" or config.model == "cgan"


def require_labels(config: Config, data) -> None:
    """Refuse unlabeled data for a model that trains on labels.

    Raises:
        ConfigError: a classifier without labels in its train or test split, or cgan without
            labels in its train split.
    """
    if not needs_labels(config):
        return
    missing = data.y_train is None or (config.family == "classifier" and data.y_test is None)
    if not missing:
        return
    if config.family == "classifier":
        raise ConfigError(f"{config.dataset} has no labels: a classifier needs one sub-folder per class")
    raise ConfigError(f"{config.dataset} has no labels: {config.model} needs one sub-folder per class (use dcgan)")


def require_batch_fits(config: Config, data) -> None:
    """Refuse a batch larger than the training split (an epoch would have no full batch).

    Raises:
        ConfigError: ``config.batch_size`` exceeds the training images.
    """
    train_count = len(data.x_train)
    if getattr(config, "train_images", None):  # restoration may train on the first train_images only
        train_count = min(train_count, config.train_images)
    if config.batch_size > train_count:
        raise ConfigError(
            f"batch size {config.batch_size} is larger than the {train_count} training images of {config.dataset}"
        )


def require_precision_support(config: Config) -> None:
    """Mixed precision (bfloat16) trains classifiers, on a GPU.

    Raises:
        ConfigError: mixed precision for a GAN, or on a CPU.
    """
    if not config.mixed_precision:
        return
    if config.family != "classifier":
        raise ConfigError(f"mixed precision is available for classifiers only; train {config.model} in float32")
    if parallel.cpu_only():
        raise ConfigError("mixed precision (bfloat16) needs a GPU; JAX sees only the CPU here")


def require_gpus(config: Config) -> None:
    """A run asks for no more GPUs than ConvGAN may use on this host (``devices.gpu_ids``).

    Raises:
        ConfigError: ``config.devices`` is above the GPUs there are.
    """
    available = devices.gpu_ids()
    wanted = config.devices
    if wanted <= max(1, len(available)):  # 0 = all of them; 1 on a CPU-only host trains on the CPU
        return
    if not available:
        raise ConfigError(f"devices {wanted} asks for {wanted} GPUs, but ConvGAN sees no GPU here: "
                          "use devices 1 to train on the CPU")
    raise ConfigError(f"devices {wanted} asks for {wanted} GPUs, but ConvGAN may use {len(available)} here "
                      f"({', '.join(available)})")


def require_even_split(config: Config) -> None:
    """On several accelerators, a batch must split evenly over the ones the run trains on (a split
    CPU falls back to one device).

    Raises:
        ConfigError: the batch size is not a multiple of that device count.
    """
    gpus = devices.gpu_ids()
    if gpus:  # the run gets its own GPUs: ``devices`` of them, or all for 0
        count, what = config.devices or len(gpus), "GPUs it trains on"
    else:
        count, what = parallel.device_count(), "devices"
        if parallel.cpu_only():
            return
    if count > 1 and config.batch_size % count:
        raise ConfigError(f"batch size {config.batch_size} must be a multiple of the {count} {what}")


def require_restorable(config: Config, image_shape) -> None:
    """A restoration task must suit the images: a scale that divides them, 1 or 3 channels, and
    pix2pix's four halvings.

    Raises:
        ConfigError: the first rule broken.
    """
    if config.family != "restoration":
        return
    height, width, channels = (int(size) for size in image_shape)
    if config.task == "super-resolution":
        degradations.check_scale(image_shape, config.scale)
    if channels not in (1, 3):
        raise ConfigError(f"restoration needs grayscale or RGB images, got {channels} channels")
    if config.model == "pix2pix" and min(height, width) < 8:
        raise ConfigError(f"pix2pix needs images of at least 8x8 pixels, got {height}x{width}")


def check_data(config: Config, data) -> None:
    """The rules that tie ``config`` to a loaded data set: labels, a batch that fits, and a
    restoration task the images can take.

    Raises:
        ConfigError: the first rule broken.
    """
    require_labels(config, data)
    require_batch_fits(config, data)
    require_restorable(config, data.image_shape)


def check_trainable(config: Config, data) -> None:
    """Every rule a run must pass before it is created: :func:`check_data` and the device rules.

    Raises:
        ConfigError: the first rule broken.
    """
    check_data(config, data)
    require_precision_support(config)
    require_gpus(config)
    require_even_split(config)
