"""Model presets, one per file.

Importing this package registers every custom layer, model and loss with Keras' serialisation,
so plain ``keras.saving.load_model`` reads our checkpoints.
"""

from core.models.classifiers import build_classifier
from core.models.gans import build_gan
from core.models.restorers import build_restorer

__all__ = ["build_classifier", "build_gan", "build_restorer"]
