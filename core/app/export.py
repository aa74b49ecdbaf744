"""Export a run's model for use outside the project: a stock Keras file or ONNX.

A classifier run exports its classifier (raw pixel values 0..255 -> class probabilities); a
GAN run its EMA generator (latents, and labels for ``cgan`` -> images in [-1, 1]), the network
``sample`` draws with. The exported model holds stock Keras layers only
(``core.models.fast.stock_model``), so ``keras.saving.load_model`` reads it in a process that
never imports this project, and ONNX goes through Keras' own exporter (``jax2onnx`` on JAX).
Every file is checked before it replaces ``out``: reloaded (Keras) or run with onnxruntime
(ONNX) on a fixed batch, its outputs must match the checkpoint's to ``TOLERANCE``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import onnxruntime

from core.common.errors import ModelFileError, UserError
from core.models.fast import stock_model
from core.models.layers import MaxPool2x2
from core.store import checkpoints
from core.store.store import RunStore

FORMATS = {"keras": ".keras", "onnx": ".onnx"}
TOLERANCE = 1e-4  # largest absolute difference from the checkpoint's outputs on the check batch
CHECK_BATCH = 4  # images (or latents) in the check batch


def export_run(store: RunStore, run_id: str, out: str | Path, *, format: str | None = None,
               epoch: int | None = None) -> dict[str, Any]:
    """Write the model of ``run_id`` to ``out`` with stock Keras layers only.

    Args:
        store: the run store.
        run_id: a run id (resolved).
        out: file to write; its suffix must fit the format (``.keras`` or ``.onnx``).
        format: ``keras`` or ``onnx``; None: ``onnx`` for an ``.onnx`` file, else ``keras``.
        epoch: the checkpoint after this many epochs (default: the latest).

    Returns:
        ``run_id``, ``out`` (the path written), ``format``, ``model`` (``classifier`` or
        ``generator``), ``checkpoint`` (file name), ``inputs`` (name -> shape, batch as None),
        ``max_difference`` (from the checkpoint's outputs on the check batch).

    Raises:
        UserError: unknown format, a suffix that does not fit it, or an unwritable ``out``.
        RunNotFound, ModelFileError: no such run or checkpoint, or a model the converter
            cannot write.
    """
    out = Path(out)
    format = format or ("onnx" if out.suffix == ".onnx" else "keras")
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    if out.suffix != FORMATS[format]:
        raise UserError(f"a {format} export needs a file ending in {FORMATS[format]}, got {out.name!r}")
    if out.is_dir():
        raise UserError(f"{out} is a folder: give the file to write, e.g. {out / ('model' + FORMATS[format])}")
    run = store.get_run(run_id)
    path = checkpoints.checkpoint_path(store, run_id, epoch)
    model = checkpoints.load_model(path, family=run["family"])
    reference, kind = (model.ema_generator, "generator") if run["family"] == "gan" else (model, "classifier")
    stock = stock_model(reference, name=kind)
    inputs = _check_inputs(stock)
    expected = _outputs(reference, inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror or err}") from err
    temporary = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")  # same folder: an atomic rename
    try:
        if format == "keras":
            written = _write_keras(stock, temporary, inputs)
        else:
            written = _write_onnx(stock, temporary, inputs)
        difference = float(np.max(np.abs(written - expected)))
        if not difference <= TOLERANCE:
            raise ModelFileError(f"the exported {kind} differs from the checkpoint by {difference:.2g} "
                                 f"(more than {TOLERANCE:g}): nothing written")
        os.replace(temporary, out)
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror or err}") from err
    finally:
        temporary.unlink(missing_ok=True)
    return {
        "run_id": run_id,
        "out": str(out),
        "format": format,
        "model": kind,
        "checkpoint": path.name,
        "inputs": {tensor.name: [None, *tensor.shape[1:]] for tensor in stock.inputs},
        "max_difference": difference,
    }


def _check_inputs(model) -> list[np.ndarray]:
    """A fixed batch for ``model``'s inputs: pixel values 0..255, normal latents, or labels."""
    rng = np.random.default_rng(0)
    batch = []
    for tensor in model.inputs:
        shape = (CHECK_BATCH, *tensor.shape[1:])
        if "int" in str(tensor.dtype):  # class labels: the first classes in turn
            classes = int(model.get_layer("label_embedding").input_dim)
            batch.append((np.arange(CHECK_BATCH) % classes).astype(tensor.dtype).reshape(shape))
        elif len(shape) == 4:  # images
            batch.append(rng.uniform(0, 255, shape).astype(tensor.dtype))
        else:  # latents
            batch.append(rng.standard_normal(shape).astype(tensor.dtype))
    return batch


def _outputs(model, inputs: list[np.ndarray]) -> np.ndarray:
    structured = inputs if isinstance(model.input, (list, tuple)) else inputs[0]  # as the model was built
    return np.asarray(model(structured, training=False), dtype=np.float32)


def _write_keras(stock, path: Path, inputs: list[np.ndarray]) -> np.ndarray:
    """Save ``stock`` to ``path``; the outputs of the file, reloaded, on ``inputs``."""
    stock.save(path)
    return _outputs(keras.saving.load_model(path, safe_mode=True, compile=False), inputs)


def _write_onnx(stock, path: Path, inputs: list[np.ndarray]) -> np.ndarray:
    """Convert ``stock`` to ONNX at ``path``; the outputs of the file under onnxruntime on ``inputs``."""

    traceable = _onnx_traceable(stock)
    _outputs(traceable, inputs)  # Keras' exporter needs a model that has been called once
    logging.getLogger("onnx_ir").setLevel(logging.ERROR)  # one warning per constant otherwise
    try:
        traceable.export(str(path), format="onnx", verbose=False)
    except Exception as err:  # noqa: BLE001 - any converter failure means this model cannot be exported
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"cannot convert the {stock.name} to ONNX: {first_line[:300]}") from err
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {spec.name: value for spec, value in zip(session.get_inputs(), inputs, strict=True)}
    return np.asarray(session.run(None, feed)[0], dtype=np.float32)


def _onnx_traceable(stock):
    """``stock`` with each 2x2 ``MaxPooling2D`` as ``MaxPool2x2``, the same function; other layers shared.

    jax2onnx writes Keras' channels-last pooling as an ONNX MaxPool over four axes, which
    onnxruntime refuses ("Unsupported pooling size"); the reshape form becomes a ReduceMax.
    """
    def clone(layer):
        pool = isinstance(layer, keras.layers.MaxPooling2D) and layer.pool_size == (2, 2)
        if pool and layer.strides == (2, 2) and layer.padding == "valid" and layer.data_format == "channels_last":
            return MaxPool2x2(name=layer.name)
        return layer

    return keras.models.clone_model(stock, clone_function=clone)
