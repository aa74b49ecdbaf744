"""Finding and loading a run's checkpoints."""

from __future__ import annotations

import re
from pathlib import Path

import keras

import core.models  # noqa: F401 - registers our layers and models for deserialisation
from core.common.errors import ModelFileError
from core.models.gan_base import GAN
from core.models.pix2pix import Pix2Pix
from core.store.store import RunStore

_EPOCH_FILE = re.compile(r"epoch_(\d+)\.keras$")


def list_checkpoints(run_dir: Path) -> dict[int, Path]:
    """Epoch checkpoints of a run folder: ``{epochs_done: path}``, oldest first."""
    directory = Path(run_dir) / "checkpoints"
    found = {}
    if directory.is_dir():
        for path in directory.iterdir():
            match = _EPOCH_FILE.fullmatch(path.name)
            if match:
                found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def checkpoint_path(store: RunStore, run_id: str, epoch: int | None = None) -> Path:
    """The checkpoint of ``run_id`` after ``epoch`` epochs (default: the latest one).

    Raises:
        ModelFileError: the run has no (such) checkpoint.
    """
    run_dir = store.run_dir(run_id)
    found = list_checkpoints(run_dir)
    if epoch is None:
        if found:
            return found[max(found)]
        stopped = run_dir / "checkpoints" / "stopped.keras"
        if stopped.exists():
            return stopped
        raise ModelFileError(f"run {run_id} has no checkpoint yet: it saves one after each epoch")
    if epoch not in found:
        have = ", ".join(map(str, found)) or "none"
        raise ModelFileError(f"run {run_id} has no checkpoint for epoch {epoch} (epochs with checkpoints: {have})")
    return found[epoch]


def load_model(path: str | Path, family: str | None = None):
    """Load a ``.keras`` file with Keras' safe mode (no Lambda layers or arbitrary code).

    Args:
        path: the ``.keras`` file.
        family: ``classifier`` or ``gan`` to refuse a model of the other kind; None: any.

    Raises:
        ModelFileError: missing, unreadable, or unsafe file, or a model of the wrong family.
    """

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}")
    if path.suffix != ".keras":
        raise ModelFileError(f"{path.name} is not a .keras model file")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - any failure to read the file is the file's fault
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"cannot load {path.name}: {first_line[:300]}") from err
    if family is not None and model_family(model) != family:
        raise ModelFileError(
            f"{path.name} holds a {_describe(model)}, not a {family}: use a checkpoint of a {family} run"
        )
    return model


def load_run_model(store: RunStore, run_id: str, epoch: int | None = None):
    """Load the model of a run (latest checkpoint, or after ``epoch`` epochs).

    Raises:
        ModelFileError: no such checkpoint, an unreadable or unsafe file, or a model of another
            family than the run's (a swapped or hand-copied file).
    """
    return load_model(checkpoint_path(store, run_id, epoch), family=store.get_run(run_id)["family"])


def model_family(model) -> str | None:
    """``gan`` for our GAN models, ``classifier`` for a one-input image-to-classes model,
    ``restoration`` for an image-to-image one, else None."""

    if isinstance(model, GAN):
        return "gan"
    if isinstance(model, Pix2Pix):
        return "restoration"
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    one_to_one = bool(inputs and outputs) and len(inputs) == 1 and len(outputs) == 1
    if one_to_one and len(inputs[0].shape) == 4 and len(outputs[0].shape) == 2:  # images -> classes
        return "classifier"
    if one_to_one and len(inputs[0].shape) == 4 and len(outputs[0].shape) == 4:  # images -> images
        return "restoration"
    return None


def _describe(model) -> str:
    family = model_family(model)
    if family == "gan":
        return f"GAN ({type(model).__name__})"
    if family == "restoration":
        return f"restoration model ({model.name})"
    return "classifier" if family == "classifier" else f"{type(model).__name__} model of another kind"
