"""WGAN-GP (Gulrajani et al. 2017): a Wasserstein critic with a gradient penalty.

Networks: the DCGAN generator and the DCGAN discriminator body as the critic (no batch norm,
which the per-image gradient penalty requires; the output is an unbounded score).

Losses: ``d_loss = mean(C(G(z))) - mean(C(x)) + gp_weight * gp`` with
``gp = mean((||grad_x C(x_hat)||_2 - 1)^2)`` at random interpolates ``x_hat`` of real and
generated images, and ``g_loss = -mean(C(G(z)))``. Logged: ``critic_real``, ``critic_fake``,
``wasserstein`` (their difference, the critic's estimate of the Wasserstein distance) and ``gp``.

``n_critic``: every batch updates the critic; the generator is updated on every ``n_critic``-th
batch (``jax.lax.cond`` in ``GAN.train_step``), so each critic step sees a fresh real batch as
in the paper's Algorithm 1 and an epoch costs about as much as a DCGAN epoch.

Optimizers (chosen here): Adam with the config's learning rate and beta_1 (2e-4, 0.5 by
default) and beta_2 = 0.9, the settings of the Keras WGAN-GP example; the paper's Algorithm 1
uses 1e-4, (0.0, 0.9). See ``core.models.gans.optimizers_for``.
"""

from __future__ import annotations

import jax
import keras
from keras import ops, saving

from core.models.dcgan import DCGAN


@saving.register_keras_serializable(package="convgan")
class WGANGP(DCGAN):
    """WGAN with gradient penalty.

    Args:
        n_critic: critic updates per generator update.
        gp_weight: lambda, the weight of the gradient penalty.
        **kwargs: see ``gan_base.GAN``.
    """

    metric_names = ("d_loss", "g_loss", "critic_real", "critic_fake", "wasserstein", "gp")

    def __init__(self, *args, n_critic: int = 5, gp_weight: float = 10.0, **kwargs):
        if int(n_critic) < 1:
            raise ValueError(f"n_critic must be at least 1, got {n_critic}")
        super().__init__(*args, **kwargs)
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)

    def draw_noise(self, batch_size):
        noise = super().draw_noise(batch_size)
        # Where each interpolate lies between its real and its generated image.
        noise["epsilon"] = keras.random.uniform((batch_size, 1, 1, 1), seed=self.seed_generator)
        return noise

    def discriminator_loss(self, d_trainable, real, fake, labels, noise):
        real_scores, fake_scores = self.discriminate_pair(d_trainable, real, fake)
        critic_real = ops.mean(real_scores)
        critic_fake = ops.mean(fake_scores)

        epsilon = noise["epsilon"]
        mixed = epsilon * real + (1.0 - epsilon) * fake

        def total_score(images):
            return ops.sum(self.discriminate(d_trainable, images))

        # Each image's score depends on that image only, so this is the per-image gradient.
        grads = jax.grad(total_score)(mixed)  # (batch, height, width, channels)
        norms = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + 1e-12)
        gp = ops.mean(ops.square(norms - 1.0))

        loss = critic_fake - critic_real + self.gp_weight * gp
        stats = {
            "critic_real": critic_real,
            "critic_fake": critic_fake,
            "wasserstein": critic_real - critic_fake,
            "gp": gp,
        }
        return loss, stats

    def generator_loss(self, fake_logits):
        return -ops.mean(fake_logits)

    def get_config(self):
        return {**super().get_config(), "n_critic": self.n_critic, "gp_weight": self.gp_weight}
