"""Class-conditional GAN: the DCGAN networks, told which class to make or judge.

Generator: a learned label embedding (``LABEL_EMBEDDING_DIM`` numbers) is concatenated to the
latent vector before the DCGAN generator body (Mirza & Osindero 2014).

Discriminator: a projection discriminator (Miyato & Koyama 2018): with features ``h`` of the
DCGAN discriminator body, ``D(x, y) = w . h + embed(y) . h + b``. It conditions more strongly
than concatenating the label to the input and costs one embedding lookup.

Loss and optimizers as DCGAN (non-saturating loss, Adam 2e-4, beta_1 0.5). ``fit(x, y)`` needs
the labels; samples need a label per image.
"""

from __future__ import annotations

import keras
from keras import layers, saving

from core.models.dcgan import DCGAN, discriminator_features, generator_trunk

LABEL_EMBEDDING_DIM = 32


def build_conditional_generator(image_shape, latent_dim: int, num_classes: int, width: int,
                                name: str) -> keras.Model:
    z = keras.Input((latent_dim,), name="z")
    label = keras.Input((), dtype="int32", name="label")
    embedding = layers.Embedding(num_classes, LABEL_EMBEDDING_DIM, name="label_embedding")(label)
    features = layers.Concatenate()([z, embedding])  # (batch, latent_dim + LABEL_EMBEDDING_DIM)
    return keras.Model([z, label], generator_trunk(features, image_shape, width), name=name)


def build_projection_discriminator(image_shape, num_classes: int, width: int, name: str) -> keras.Model:
    images = keras.Input(tuple(image_shape), name="images")
    label = keras.Input((), dtype="int32", name="label")
    features = discriminator_features(images, image_shape, width)  # (batch, feature_dim)
    unconditional = layers.Dense(1, name="logit")(features)
    class_vectors = layers.Embedding(num_classes, features.shape[-1], name="projection")(label)
    projection = layers.Dot(axes=1)([class_vectors, features])  # (batch, 1)
    return keras.Model([images, label], layers.Add()([unconditional, projection]), name=name)


@saving.register_keras_serializable(package="convgan")
class CGAN(DCGAN):
    """Class-conditional DCGAN. Arguments: see ``gan_base.GAN`` (``num_classes`` >= 2)."""

    conditional = True

    def build_generator(self, name):
        return build_conditional_generator(self.image_shape, self.latent_dim, self.num_classes, self.width, name)

    def build_discriminator(self, name):
        return build_projection_discriminator(self.image_shape, self.num_classes, self.width, name)
