"""GAN-prior inpainting: fill a hole with a trained generator by searching its latent space.

No new training: Adam (in JAX) moves several latents so that the EMA generator's image
matches the known pixels, ``mean over known pixels of (G(z) - x)^2 + prior_weight * |z|^2 / d``
(the prior keeps z where the generator was trained); the latent that matches best fills the
hole, and the known pixels are kept as they are.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from core import images, sampling
from core.errors import ModelFileError, UserError

STEPS = 300  # Adam steps of the latent search
STARTS = 16  # latents searched at once; the best match wins
LEARNING_RATE = 0.05
PRIOR_WEIGHT = 1e-3


def latent_inpaint(model, image: np.ndarray, mask: np.ndarray, *, steps: int = STEPS, starts: int = STARTS,
                   seed: int = 0, learning_rate: float = LEARNING_RATE,
                   prior_weight: float = PRIOR_WEIGHT) -> tuple[np.ndarray, dict]:
    """Inpaint one image with an unconditional GAN's EMA generator.

    Args:
        model: a dcgan or wgan-gp model (``core.models.gan_base.GAN``).
        image: uint8 ``(H, W, C)`` of the generator's shape; hole pixels are ignored.
        mask: bool ``(H, W)``, True = hole.
        steps: Adam steps.
        starts: latents searched in parallel (seeded by ``seed``).
        seed: seed of the starting latents.
        learning_rate: Adam's step size on z.
        prior_weight: weight of the Gaussian prior on z.

    Returns:
        ``(filled uint8 (H, W, C), info)``; info holds ``known_mse_before``/``known_mse_after``
        (mean squared error on the known pixels, in [-1, 1] units, of the best start).

    Raises:
        ModelFileError: a conditional GAN.
        UserError: an image or mask of another shape than the generator's.
    """
    if model.conditional:
        raise ModelFileError(f"{model.name} is class-conditional: GAN-prior inpainting needs a dcgan or wgan-gp run")
    image = np.asarray(image)
    if tuple(image.shape) != tuple(model.image_shape):
        height, width, _ = model.image_shape
        raise UserError(f"this GAN makes {width}x{height} images: the image to inpaint is "
                        f"{image.shape[1]}x{image.shape[0]}")
    generator = model.ema_generator
    trainable = [variable.value for variable in generator.trainable_variables]
    non_trainable = [variable.value for variable in generator.non_trainable_variables]
    target = jnp.asarray(image, jnp.float32) / 127.5 - 1.0  # (H, W, C) in [-1, 1]
    known = jnp.asarray(~np.asarray(mask, bool), jnp.float32)[..., None]  # (H, W, 1)
    known_count = jnp.maximum(known.sum() * image.shape[-1], 1.0)

    def errors(z):  # (starts,) known-pixel MSE of each latent's image
        fake, _ = generator.stateless_call(trainable, non_trainable, z, training=False)
        return ((fake - target) ** 2 * known).sum(axis=(1, 2, 3)) / known_count

    def objective(z):
        return jnp.sum(errors(z) + prior_weight * jnp.mean(z**2, axis=1))

    gradient = jax.grad(objective)

    @jax.jit
    def search(z):
        def step(t, carry):  # Adam (beta 0.9, 0.999) on the latents
            z, m, v = carry
            g = gradient(z)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g**2
            m_hat = m / (1.0 - 0.9 ** (t + 1.0))
            v_hat = v / (1.0 - 0.999 ** (t + 1.0))
            return z - learning_rate * m_hat / (jnp.sqrt(v_hat) + 1e-8), m, v

        zeros = jnp.zeros_like(z)
        z, _, _ = jax.lax.fori_loop(0, steps, step, (z, zeros, zeros))
        return z, errors(z)

    start = jnp.asarray(sampling.latents(model.latent_dim, starts, seed))
    before = np.asarray(jax.jit(errors)(start))
    found, after = search(start)
    after = np.asarray(after)
    best = int(np.argmin(after))
    generated = images.to_uint8(model.generate(np.asarray(found)[best : best + 1])[0])
    filled = np.where(np.asarray(mask, bool)[..., None], generated, image).astype(np.uint8)
    return filled, {"known_mse_before": float(before.min()), "known_mse_after": float(after[best]),
                    "steps": int(steps), "starts": int(starts)}
