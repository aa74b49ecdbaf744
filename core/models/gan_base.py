"""What every GAN here shares: two optimizers in one ``fit()``, the stateless JAX training step,
the EMA generator, seeded noise, and sampling through a compiled function.

How both optimizers travel in Keras' JAX ``state``
--------------------------------------------------
Keras' JAX trainer (``keras/src/backend/jax/trainer.py``) builds the ``state`` tuple that
``train_step(self, state, data)`` receives from ``self.optimizer.variables`` (in
``_get_jax_state``, ``jax_state_sync`` and the sharding spec), and saving walks
``model.optimizer``. So the model is compiled with ONE optimizer object, :class:`GANOptimizer`,
whose ``variables`` are its own step counter followed by the generator's and the
discriminator's Adam variables. Nothing of the trainer is overridden: the step looks each
value up by its variable (``_StateView``) and hands ``stateless_apply`` of each sub-optimizer
its own slice. ``GAN.compile`` builds the two sub-optimizers on the generator's and the
discriminator's trainable variables; ``get_compile_config``/``compile_from_config`` make
``keras.saving.load_model`` rebuild them, and the ``.keras`` file holds both optimizers'
state under ``optimizer/generator`` and ``optimizer/discriminator``.

``model.optimizer.iterations`` counts training steps (batches); each sub-optimizer's
``iterations`` counts its own updates (they differ for wgan-gp, where the generator steps
once every ``n_critic`` batches).
"""

from __future__ import annotations

import jax
import keras
import numpy as np
from keras import ops, saving

from core.models.fast import for_device

# Rows per call of the compiled sampling function: every request is padded to a multiple of
# this, so the function compiles once and a latent gives the same pixels in any batch.
GENERATE_BATCH = 64


@saving.register_keras_serializable(package="convgan")
class GANOptimizer(keras.optimizers.Optimizer):
    """The generator's and the discriminator's optimizers, seen by Keras as one optimizer.

    Build it with :meth:`build_pair` (``GAN.compile`` does). It cannot ``apply`` gradients
    itself: a GAN's ``train_step`` calls ``stateless_apply`` of ``generator`` and
    ``discriminator`` with their slices of the state.

    Args:
        generator: optimizer (or its config/name) for the generator's weights.
        discriminator: optimizer (or its config/name) for the discriminator's weights.
    """

    def __init__(self, generator="adam", discriminator="adam", name="gan_optimizer", **kwargs):
        # The learning rate of the pair is a placeholder; each sub-optimizer has its own.
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.generator = keras.optimizers.get(generator)
        self.discriminator = keras.optimizers.get(discriminator)

    def build_pair(self, generator_variables, discriminator_variables) -> None:
        """Create the sub-optimizers' state for the generator's and the discriminator's weights."""
        self.generator.build(list(generator_variables))
        self.discriminator.build(list(discriminator_variables))
        self.built = True

    def build(self, variables):
        if not self.built:
            raise ValueError(
                "GANOptimizer cannot tell generator from discriminator weights: "
                "compile the GAN model (GAN.compile builds it with build_pair)"
            )

    @property
    def variables(self):
        return self._variables[:] + self.generator.variables + self.discriminator.variables

    # Saving walks ``generator`` and ``discriminator`` as children, so this object stores only
    # its own variables (step counter, placeholder learning rate).
    def save_own_variables(self, store):
        for index, variable in enumerate(self._variables):
            store[str(index)] = variable.numpy()

    def load_own_variables(self, store):
        for index, variable in enumerate(self._variables):
            variable.assign(store[str(index)])

    def apply(self, grads, trainable_variables=None):
        raise NotImplementedError(
            "GANOptimizer holds two optimizers: apply gradients with optimizer.generator or optimizer.discriminator"
        )

    def get_config(self):
        return {
            "name": self.name,
            "generator": keras.optimizers.serialize(self.generator),
            "discriminator": keras.optimizers.serialize(self.discriminator),
        }


class _StateView:
    """The values of a model's variables inside one stateless step, read and replaced by variable."""

    def __init__(self, *pairs):
        self._values = {}
        for variables, values in pairs:
            self._values.update(zip(map(id, variables), values, strict=True))

    def get(self, variables):
        return [self._values[id(variable)] for variable in variables]

    def set(self, variables, values):
        self._values.update(zip(map(id, variables), values, strict=True))


class GAN(keras.Model):
    """Base class: a generator, a discriminator (or critic), an EMA copy of the generator, and
    a stateless JAX ``train_step`` with two optimizers.

    One training step (one batch of real images):

    1. draw latents (and any other noise) from the model's ``SeedGenerator``;
    2. run the generator once, keeping its VJP (``jax.vjp``);
    3. update the discriminator on real vs. generated images (``discriminator_loss``);
    4. when ``train_generator_now`` says so, update the generator through the *updated*
       discriminator on the same generated images (PyTorch DCGAN's reuse of ``fake``, which
       saves a second generator forward pass), then move the EMA generator towards it.

    Real images come in as pixel values 0..255 (uint8 from the datasets) and are scaled to
    [-1, 1] here, so ``fit`` takes dataset arrays directly. Labels are used by conditional
    models and ignored otherwise. Discriminators must be stateless (no batch norm): the
    gradient penalty needs per-image independence, and the step relies on it.

    Subclasses set ``metric_names`` and implement ``build_generator``, ``build_discriminator``,
    ``discriminator_loss`` and ``generator_loss``.

    Args:
        image_shape: (height, width, channels) of the images.
        latent_dim: size of the Gaussian latent vector.
        num_classes: classes of a conditional model (0 for unconditional ones).
        width: channels of the generator's last and the discriminator's first block; they
            double towards the low-resolution end (capped at ``8 * width``). 32 by default:
            cgan and wgan-gp need it (``docs/performance.md``).
        ema_decay: decay of the EMA of the generator's weights (see ``_ema_update``).
        seed: seed of the noise drawn during training.
    """

    conditional = False
    n_critic = 1
    metric_names: tuple[str, ...] = ()

    def __init__(self, image_shape, latent_dim: int = 64, num_classes: int = 0, width: int = 32,
                 ema_decay: float = 0.999, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(size) for size in image_shape)
        self.latent_dim = int(latent_dim)
        self.num_classes = int(num_classes)
        self.width = int(width)
        self.ema_decay = float(ema_decay)
        self.seed = int(seed)
        if self.conditional and self.num_classes < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes, got num_classes={self.num_classes}")
        self.generator = for_device(self.build_generator("generator"))
        self.discriminator = for_device(self.build_discriminator("discriminator"))
        if self.discriminator.non_trainable_variables:
            raise ValueError("the discriminator must be stateless (no batch norm or other non-trainable state)")
        self.ema_generator = for_device(self.build_generator("ema_generator"))
        self.ema_generator.trainable = False
        for ema_variable, variable in zip(self.ema_generator.variables, self.generator.variables, strict=True):
            # A copy: two variables sharing one buffer break the trainer's buffer donation.
            ema_variable.assign(np.array(variable.numpy()))
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="seed_generator")
        self.trackers = [keras.metrics.Mean(name=name) for name in self.metric_names]
        self._generate_function = None
        self.built = True

    # ---- what subclasses provide -----------------------------------------------------------

    def build_generator(self, name: str) -> keras.Model:
        raise NotImplementedError

    def build_discriminator(self, name: str) -> keras.Model:
        raise NotImplementedError

    def discriminator_loss(self, d_trainable, real, fake, labels, noise):
        """Return ``(loss, stats)``: the discriminator's loss and a dict of scalars to log."""
        raise NotImplementedError

    def generator_loss(self, fake_logits):
        """The generator's loss from the discriminator's outputs on generated images."""
        raise NotImplementedError

    def draw_noise(self, batch_size: int) -> dict:
        """Noise for one step, drawn from ``self.seed_generator`` (inside a stateless scope)."""
        return {"z": keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)}

    def train_generator_now(self, discriminator_steps):
        """Whether this step also updates the generator (every step unless ``n_critic > 1``)."""
        return discriminator_steps % self.n_critic == 0

    # ---- helpers ---------------------------------------------------------------------------

    def generator_inputs(self, z, labels):
        return [z, labels] if self.conditional else z

    def discriminate(self, d_trainable, images, labels=None):
        """Discriminator logits (batch, 1) for ``images`` under weights ``d_trainable``."""
        inputs = [images, labels] if self.conditional else images
        logits, _ = self.discriminator.stateless_call(d_trainable, [], inputs, training=True)
        return logits

    def discriminate_pair(self, d_trainable, real, fake, labels=None):
        """Discriminator logits ``(real_logits, fake_logits)``, both from one pass.

        The pass sees real and fake images interleaved (real ``i`` then fake ``i``), not
        concatenated: with the batch split over devices each device then keeps its own rows,
        with no all-to-all between them. The discriminators have no batch norm, so every
        image's logit depends on that image alone and the order changes nothing.
        """
        images = _interleave(real, fake)
        both_labels = None if labels is None else _interleave(labels, labels)
        logits = ops.reshape(self.discriminate(d_trainable, images, both_labels), (-1, 2))
        return logits[:, :1], logits[:, 1:]

    @property
    def metrics(self):
        return list(self.trackers)

    def call(self, inputs, training=False):
        """The EMA generator: latents (and labels for conditional models) -> images in [-1, 1]."""
        return self.ema_generator(inputs, training=False)

    # ---- compile, two optimizers -----------------------------------------------------------

    def compile(self, generator_optimizer="adam", discriminator_optimizer="adam", **kwargs):
        """Compile with one optimizer per network.

        Args:
            generator_optimizer: optimizer (instance, name or config) of the generator.
            discriminator_optimizer: optimizer of the discriminator (critic).
            **kwargs: passed to ``keras.Model.compile`` (e.g. ``jit_compile``); no loss.
        """
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
            "name": self.name,
            "trainable": self.trainable,
            "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim,
            "num_classes": self.num_classes,
            "width": self.width,
            "ema_decay": self.ema_decay,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # Keras saves a layer's own weights but not its SeedGenerator's state; the GAN has no
    # weights of its own, so its entry in the .keras file holds the noise state instead and
    # a resumed run draws the same noise as an uninterrupted one.
    def save_own_variables(self, store):
        store["seed_generator_state"] = self.seed_generator.state.numpy()

    def load_own_variables(self, store):
        self.seed_generator.state.assign(store["seed_generator_state"])

    # ---- training --------------------------------------------------------------------------

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_values, metrics_values = state
        optimizer = self.optimizer
        view = _StateView(
            (self.trainable_variables, trainable),
            (self.non_trainable_variables, non_trainable),
            (optimizer.variables, optimizer_values),
        )
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        real = ops.cast(x, "float32") / 127.5 - 1.0  # pixels 0..255 -> [-1, 1]
        labels = self._labels(y)
        batch_size = real.shape[0]

        # 1. Noise: the SeedGenerator's state is part of `non_trainable`.
        seed_state = self.seed_generator.state
        with keras.StatelessScope(state_mapping=[(seed_state, view.get([seed_state])[0])]) as scope:
            noise = self.draw_noise(batch_size)
        view.set([seed_state], [scope.get_current_value(seed_state)])

        # 2. One generator forward pass; its VJP serves the generator update in step 4.
        generator = self.generator
        g_trainable = view.get(generator.trainable_variables)
        g_non_trainable = view.get(generator.non_trainable_variables)

        def generate(g_trainable):
            return generator.stateless_call(
                g_trainable, g_non_trainable, self.generator_inputs(noise["z"], labels), training=True
            )

        fake, fake_vjp, g_non_trainable = jax.vjp(generate, g_trainable, has_aux=True)
        view.set(generator.non_trainable_variables, g_non_trainable)

        # 3. Discriminator update.
        d_optimizer = optimizer.discriminator
        d_trainable = view.get(self.discriminator.trainable_variables)
        loss_and_grads = jax.value_and_grad(self.discriminator_loss, has_aux=True)
        (d_loss, stats), d_grads = loss_and_grads(
            d_trainable, real, jax.lax.stop_gradient(fake), labels, noise
        )
        d_trainable, d_optimizer_values = d_optimizer.stateless_apply(
            view.get(d_optimizer.variables), d_grads, d_trainable
        )
        view.set(self.discriminator.trainable_variables, d_trainable)
        view.set(d_optimizer.variables, d_optimizer_values)

        # 4. Generator update through the updated discriminator, then the EMA.
        g_optimizer = optimizer.generator
        g_optimizer_values = view.get(g_optimizer.variables)
        ema_values = view.get(self.ema_generator.variables)

        def generator_step():
            def loss_of_fake(images):
                return self.generator_loss(self.discriminate(d_trainable, images, labels))

            g_loss, fake_grads = jax.value_and_grad(loss_of_fake)(fake)
            (g_grads,) = fake_vjp(fake_grads)
            new_trainable, new_optimizer_values = g_optimizer.stateless_apply(
                g_optimizer_values, g_grads, g_trainable
            )
            step_view = _StateView(
                (generator.trainable_variables, new_trainable),
                (generator.non_trainable_variables, g_non_trainable),
                (g_optimizer.variables, new_optimizer_values),
            )
            new_ema = self._ema_update(
                ema_values, step_view.get(generator.variables), step_view.get([g_optimizer.iterations])[0]
            )
            return new_trainable, new_optimizer_values, new_ema, g_loss, ops.ones(())

        def skip_generator():
            return g_trainable, g_optimizer_values, ema_values, ops.zeros(()), ops.zeros(())

        if self.n_critic == 1:
            outputs = generator_step()
        else:
            discriminator_steps = view.get([d_optimizer.iterations])[0]
            outputs = jax.lax.cond(
                self.train_generator_now(discriminator_steps), generator_step, skip_generator
            )
        g_trainable, g_optimizer_values, ema_values, g_loss, g_stepped = outputs
        view.set(generator.trainable_variables, g_trainable)
        view.set(g_optimizer.variables, g_optimizer_values)
        view.set(self.ema_generator.variables, ema_values)
        iterations = optimizer.iterations
        view.set([iterations], [view.get([iterations])[0] + 1])

        # Epoch means of the step's numbers (g_loss only over steps that updated the generator).
        values = {"d_loss": (d_loss, None), "g_loss": (g_loss, g_stepped)}
        values.update({name: (value, None) for name, value in stats.items()})
        logs, metrics_values = self._update_trackers(metrics_values, values)

        state = (
            view.get(self.trainable_variables),
            view.get(self.non_trainable_variables),
            view.get(optimizer.variables),
            metrics_values,
        )
        return logs, state

    def _labels(self, y):
        if not self.conditional:
            return None
        if y is None:
            raise ValueError(f"{type(self).__name__} is class-conditional: pass the labels, fit(x, y)")
        return ops.cast(ops.reshape(y, (-1,)), "int32")

    def _ema_update(self, ema_values, generator_values, generator_steps):
        """Move the EMA generator towards the generator.

        The decay warms up as ``min(ema_decay, (1 + t) / (10 + t))`` after ``t`` generator
        steps (TensorFlow's ``ExponentialMovingAverage(num_updates=t)``), so a short run's EMA
        is not stuck near the random initial weights: with ``ema_decay`` 0.999 it averages over
        ~10 steps at first and the last ~1000 steps only after ~9000 steps. Batch-norm
        statistics (non-trainable) are copied, as StyleGAN does.
        """
        step = ops.cast(generator_steps, "float32")
        decay = ops.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        updated = []
        for variable, ema_value, value in zip(self.generator.variables, ema_values, generator_values, strict=True):
            if variable.trainable:
                updated.append(decay * ema_value + (1.0 - decay) * value)
            else:
                updated.append(value)
        return updated

    def _update_trackers(self, metrics_values, values):
        with keras.StatelessScope(state_mapping=list(zip(self.metrics_variables, metrics_values, strict=True))) as scope:
            for tracker in self.trackers:
                value, weight = values[tracker.name]
                tracker.update_state(value, sample_weight=weight)
            logs = {tracker.name: tracker.result() for tracker in self.trackers}
        new_values = []
        for variable in self.metrics_variables:
            value = scope.get_current_value(variable)
            new_values.append(variable.value if value is None else value)
        return logs, new_values

    # ---- sampling --------------------------------------------------------------------------

    def generate(self, latents, labels=None, *, ema: bool = True) -> np.ndarray:
        """Images in [-1, 1] for latents (and labels), computed in fixed-size compiled batches.

        Args:
            latents: float array (n, latent_dim).
            labels: int array (n,) for conditional models, else None.
            ema: use the EMA generator (default) or the raw trained one.

        Returns:
            float32 array (n, height, width, channels).
        """
        latents = np.asarray(latents, dtype=np.float32)
        count = len(latents)
        if self.conditional:
            if labels is None:
                raise ValueError(f"{type(self).__name__} is class-conditional: pass labels")
            labels = np.asarray(labels, dtype=np.int32).reshape(-1)
        model = self.ema_generator if ema else self.generator
        if self._generate_function is None:
            def forward(model, trainable, non_trainable, inputs):
                outputs, _ = model.stateless_call(trainable, non_trainable, inputs, training=False)
                return outputs

            self._generate_function = jax.jit(forward, static_argnums=0)
        trainable = [variable.value for variable in model.trainable_variables]
        non_trainable = [variable.value for variable in model.non_trainable_variables]
        padded = -(-count // GENERATE_BATCH) * GENERATE_BATCH
        z = np.zeros((padded, self.latent_dim), np.float32)
        z[:count] = latents
        y = np.zeros((padded,), np.int32)
        if labels is not None:
            y[:count] = labels
        chunks = []
        for start in range(0, padded, GENERATE_BATCH):
            stop = start + GENERATE_BATCH
            inputs = self.generator_inputs(z[start:stop], y[start:stop])
            chunks.append(np.asarray(self._generate_function(model, trainable, non_trainable, inputs)))
        return np.concatenate(chunks)[:count]


def _interleave(first, second):
    """Rows ``first[0], second[0], first[1], second[1], ...`` of two equal-shaped arrays."""
    return ops.reshape(ops.stack([first, second], axis=1), (-1, *first.shape[1:]))
