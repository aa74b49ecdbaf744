"""What the classifier tests share: expected parameter counts and unbuilt models."""

import keras
from keras.src.backend.common import global_state

from core.models.classifiers import build_classifier

# (model, input shape, classes) -> parameters. A change here changes every saved checkpoint.
PARAMETERS = {
    ("convnet", (8, 8, 1), 10): 29_354,
    ("convnet", (28, 28, 1), 10): 55_002,
    ("convnet", (32, 32, 3), 10): 118_650,
    ("resnet", (8, 8, 1), 10): 20_058,
    ("resnet", (28, 28, 1), 10): 104_410,
    ("resnet", (32, 32, 3), 10): 1_251_562,
}


def unbuilt_models(name):
    """One model per tested input shape of ``name``, with its weights' shapes but not their values.

    Initialising a weight compiles a JAX random kernel per shape (seconds per model on 2
    cores); the structure tests need none of it.
    """
    with keras.StatelessScope(initialize_variables=False):
        built = {(shape, classes): build_classifier(name, shape, classes)
                 for model, shape, classes in PARAMETERS if model == name}
    # Drop the deferred initialisers, or the next stateless scope to close would run them all.
    global_state.set_global_attribute("uninitialized_variables", [])
    return built
