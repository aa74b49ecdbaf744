"""pix2pix (Isola et al. 2017): a U-Net generator and a PatchGAN discriminator, L1 + adversarial.

The discriminator sees the degraded input (upsampled nearest for super-resolution) beside a
restored or clean image and gives one logit per patch: 4x4 stride-2 convolutions with
LeakyReLU(0.2), no batch norm, then a 3x3 conv to one channel. The generator's loss is
``l1_weight * mean|G(x) - y| / 255 + softplus(-D(x, G(x)))`` (the paper's lambda 100 on images
in [0, 1] scale), the discriminator's the non-saturating GAN loss on real and restored pairs.

The training step is stateless JAX, as ``gan_base.GAN``'s, with both Adam optimizers inside one
``GANOptimizer`` so checkpoints hold both and ``fit`` resumes them.
"""

from __future__ import annotations

import jax
import keras
from keras import layers, ops, saving

from core.models.fast import for_device
from core.models.gan_base import GANOptimizer, _StateView
from core.models.unet import build_unet


def build_patch_discriminator(input_shape, image_shape, task: str, scale: int, width: int,
                              name: str = "discriminator") -> keras.Model:
    """PatchGAN on (degraded input, image 0..255) pairs -> logits ``(batch, h, w, 1)``."""
    degraded = keras.Input(tuple(input_shape), name="degraded")
    image = keras.Input(tuple(image_shape), name="image")
    condition = layers.Rescaling(1.0 / 255.0, name="condition_to_unit")(degraded)
    if task == "super-resolution":
        condition = layers.UpSampling2D(scale, name="condition_up")(condition)
    x = layers.Concatenate(name="pair")([condition, layers.Rescaling(1.0 / 255.0, name="image_to_unit")(image)])
    for level in range(2):
        x = layers.Conv2D(width * 2**level, 4, strides=2, padding="same", name=f"down{level}")(x)
        x = layers.LeakyReLU(0.2)(x)
    logits = layers.Conv2D(1, 3, padding="same", name="patch_logits")(x)
    return keras.Model([degraded, image], logits, name=name)


@saving.register_keras_serializable(package="convgan")
class Pix2Pix(keras.Model):
    """U-Net generator + PatchGAN discriminator; ``call`` restores with the generator.

    Args:
        input_shape_: shape of one degraded input.
        image_shape: shape of one restored image ``(H, W, C)``.
        task: ``super-resolution``, ``inpaint`` or ``denoise``.
        scale: super-resolution factor.
        width: channels of the first U-Net level and of the discriminator's first conv.
        l1_weight: weight of the L1 term against the adversarial one.
    """

    metric_names = ("d_loss", "g_loss", "l1", "adversarial")

    def __init__(self, input_shape_, image_shape, task: str, scale: int = 1, width: int = 32,
                 l1_weight: float = 100.0, **kwargs):
        super().__init__(**kwargs)
        self.input_shape_ = tuple(int(size) for size in input_shape_)
        self.image_shape = tuple(int(size) for size in image_shape)
        self.task, self.scale, self.width = task, int(scale), int(width)
        self.l1_weight = float(l1_weight)
        self.generator = for_device(build_unet(self.input_shape_, self.image_shape[-1], task, scale, width,
                                               name="generator"))
        self.discriminator = for_device(build_patch_discriminator(self.input_shape_, self.image_shape, task, scale,
                                                                  width))
        self.trackers = [keras.metrics.Mean(name=name) for name in self.metric_names]
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers)

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def compile(self, generator_optimizer="adam", discriminator_optimizer="adam", **kwargs):
        optimizer = GANOptimizer(generator_optimizer, discriminator_optimizer)
        super().compile(optimizer=optimizer, **kwargs)
        optimizer.build_pair(self.generator.trainable_variables, self.discriminator.trainable_variables)

    def get_compile_config(self):
        if not self.compiled or not isinstance(self.optimizer, GANOptimizer):
            return {}
        return {
            "generator_optimizer": keras.optimizers.serialize(self.optimizer.generator),
            "discriminator_optimizer": keras.optimizers.serialize(self.optimizer.discriminator),
        }

    def compile_from_config(self, config):
        self.compile(
            generator_optimizer=keras.optimizers.deserialize(config["generator_optimizer"]),
            discriminator_optimizer=keras.optimizers.deserialize(config["discriminator_optimizer"]),
        )

    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable, "input_shape_": list(self.input_shape_),
            "image_shape": list(self.image_shape), "task": self.task, "scale": self.scale,
            "width": self.width, "l1_weight": self.l1_weight,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_values, metrics_values = state
        optimizer = self.optimizer
        view = _StateView(
            (self.trainable_variables, trainable),
            (self.non_trainable_variables, non_trainable),
            (optimizer.variables, optimizer_values),
        )
        degraded, clean, _ = keras.utils.unpack_x_y_sample_weight(data)
        degraded, clean = ops.cast(degraded, "float32"), ops.cast(clean, "float32")
        generator, discriminator = self.generator, self.discriminator
        g_trainable = view.get(generator.trainable_variables)
        g_non_trainable = view.get(generator.non_trainable_variables)

        def restore(g_trainable):
            outputs, _ = generator.stateless_call(g_trainable, g_non_trainable, degraded, training=True)
            return outputs

        def logits(d_trainable, images):
            outputs, _ = discriminator.stateless_call(d_trainable, [], [degraded, images], training=True)
            return outputs

        # 1. Discriminator: real pairs against the current generator's restorations.
        restored = jax.lax.stop_gradient(restore(g_trainable))

        def discriminator_loss(d_trainable):
            return ops.mean(ops.softplus(-logits(d_trainable, clean))) + ops.mean(
                ops.softplus(logits(d_trainable, restored))
            )

        d_optimizer = optimizer.discriminator
        d_loss, d_grads = jax.value_and_grad(discriminator_loss)(view.get(discriminator.trainable_variables))
        d_trainable, d_values = d_optimizer.stateless_apply(
            view.get(d_optimizer.variables), d_grads, view.get(discriminator.trainable_variables)
        )
        view.set(discriminator.trainable_variables, d_trainable)
        view.set(d_optimizer.variables, d_values)

        # 2. Generator: L1 to the clean image plus fooling the updated discriminator.
        def generator_loss(g_trainable):
            images = restore(g_trainable)
            l1 = ops.mean(ops.abs(images - clean))  # grey levels
            adversarial = ops.mean(ops.softplus(-logits(d_trainable, images)))
            return self.l1_weight * l1 / 255.0 + adversarial, (l1, adversarial)

        g_optimizer = optimizer.generator
        (g_loss, (l1, adversarial)), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(g_trainable)
        g_trainable, g_values = g_optimizer.stateless_apply(view.get(g_optimizer.variables), g_grads, g_trainable)
        view.set(generator.trainable_variables, g_trainable)
        view.set(g_optimizer.variables, g_values)
        iterations = optimizer.iterations
        view.set([iterations], [view.get([iterations])[0] + 1])

        values = {"d_loss": d_loss, "g_loss": g_loss, "l1": l1, "adversarial": adversarial}
        with keras.StatelessScope(state_mapping=list(zip(self.metrics_variables, metrics_values, strict=True))) as scope:
            for tracker in self.trackers:
                tracker.update_state(values[tracker.name])
            logs = {tracker.name: tracker.result() for tracker in self.trackers}
        metrics_values = [
            variable.value if scope.get_current_value(variable) is None else scope.get_current_value(variable)
            for variable in self.metrics_variables
        ]
        state = (
            view.get(self.trainable_variables),
            view.get(self.non_trainable_variables),
            view.get(optimizer.variables),
            metrics_values,
        )
        return logs, state
