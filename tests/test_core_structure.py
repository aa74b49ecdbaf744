"""The core's structure: layers that import only downward, no import cycle, few deferred imports,
GAN metrics apart from training, each validation rule in one place, one batch iterator for every family."""

import ast
import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest

from core.common.config import ClassifierConfig, GANConfig
from core.common.errors import ConfigError
from core.data import batches
from core.data.datasets import load_dataset
from core.training import classifier, gan, validation

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
# The layers, bottom to top: a module imports only from its own layer and the layers below it.
# ``core`` itself (its ``__init__`` selects the backend) counts as the bottom layer.
LAYERS = (
    ("core", "core.common"),  # errors, configs, backend, devices, image files, parallelism
    ("core.data",),  # the data set catalogue, loaders, batches, degradations
    ("core.models",),  # Keras models, one family per file
    ("core.store",),  # runs on disk: the store, checkpoints, comparisons
    ("core.evaluation",),  # GAN metrics, sampling, GAN prior, novelty
    ("core.training",),  # family trainers, callbacks, validation
    ("core.runs",),  # training a run end to end, the job queue, evaluating and applying a run's model
    ("core.app", "core.__main__"),  # dashboard logic, figures, sharing, export, the CLI
    ("bench", "pages", "app"),  # outside the library: the benchmark and the Streamlit pages
)
MAX_DEFERRED_IMPORTS = 10


def _project_modules() -> dict[str, Path]:
    paths = [*CORE.rglob("*.py"), *(ROOT / "bench").glob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"]
    return {_module_name(path): path for path in paths}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        # "core" is the package's __init__ alone: a module directly in core/ belongs to no layer.
        if any(module == prefix or (prefix != "core" and module.startswith(prefix + ".")) for prefix in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer of LAYERS")


def _import_graph() -> dict[str, set[str]]:
    """Project module -> project modules it imports, at the top or inside functions alike."""
    paths = _project_modules()

    def resolve(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[module] = {found for found in map(resolve, targets) if found and found != module}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_no_import_cycle_among_the_project_modules():
    graph = _import_graph()
    # A package importing its own sub-modules (``__init__`` re-exports) is not a cycle.
    cycles = sorted(
        f"{module} <-> {target}"
        for module in graph
        for target in _reachable(graph, module)
        if module in _reachable(graph, target)
        and not (target.startswith(module + ".") or module.startswith(target + "."))
    )
    assert cycles == []


def test_each_layer_imports_only_from_itself_and_the_layers_below():
    upward = sorted(
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in _import_graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert upward == []


def test_the_library_never_imports_the_benchmark():
    graph = _import_graph()
    assert not any(target.startswith("bench") for module in graph if module.startswith("core")
                   for target in graph[module])


def test_gan_metrics_never_reach_the_training_code():
    assert "core.runs.training" not in _reachable(_import_graph(), "core.evaluation.gan_metrics")


def test_few_deferred_imports_each_with_its_reason():
    """An import inside a function only defers a heavy or optional module, and says why on its line."""
    deferred, unexplained = [], []
    for module, path in _project_modules().items():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    where = f"{module}:{node.lineno}"
                    deferred.append(where)
                    _, _, comment = lines[node.end_lineno - 1].partition("  # ")
                    if not comment or comment.startswith("noqa"):
                        unexplained.append(where)
    assert len(set(deferred)) <= MAX_DEFERRED_IMPORTS, sorted(set(deferred))
    assert unexplained == []


# ---- validation rules ----------------------------------------------------------------------------


def _raised_text(path: Path) -> str:
    """The string pieces of every ``raise`` statement in a module (messages, not comments)."""
    tree = ast.parse(path.read_text())
    return " ".join(
        node.value
        for statement in ast.walk(tree)
        if isinstance(statement, ast.Raise)
        for node in ast.walk(statement)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


@pytest.mark.parametrize("words", ["needs one sub-folder per class", "is larger than the",
                                   "must be a multiple of the", "mixed precision"])
def test_each_validation_rule_is_raised_from_one_module(words):
    holders = sorted(path.name for path in CORE.rglob("*.py") if words in _raised_text(path))
    assert holders == ["validation.py"]


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return dataclasses.replace(data, x_train=data.x_train[:96], y_train=data.y_train[:96])


class _Context:
    """What a family trainer reads of its ``RunContext`` before it trains."""

    initial_epoch, resume_checkpoint = 0, None


@pytest.mark.parametrize("config", [ClassifierConfig(epochs=1, batch_size=32), GANConfig(model="cgan", epochs=1)],
                         ids=["convnet", "cgan"])
def test_every_path_refuses_unlabeled_data_with_one_message(digits, config):
    unlabeled = dataclasses.replace(digits, y_train=None, y_test=None)
    fit = classifier.fit_classifier if config.family == "classifier" else gan.fit_gan
    with pytest.raises(ConfigError) as in_trainer:
        fit(config, unlabeled, _Context())
    with pytest.raises(ConfigError) as before_a_run:
        validation.check_trainable(config, unlabeled)
    assert str(in_trainer.value) == str(before_a_run.value)
    assert "digits has no labels" in str(in_trainer.value)


@pytest.mark.parametrize("config", [ClassifierConfig(epochs=1, batch_size=97), GANConfig(epochs=1, batch_size=97)],
                         ids=["convnet", "dcgan"])
def test_every_trainer_refuses_a_batch_larger_than_the_data(digits, config):
    fit = classifier.fit_classifier if config.family == "classifier" else gan.fit_gan
    with pytest.raises(ConfigError, match="batch size 97 is larger than the 96 training images of digits"):
        fit(config, digits, _Context())


# ---- one batch iterator --------------------------------------------------------------------------


def test_every_family_trains_on_the_one_batch_iterator():
    assert classifier.ShuffledBatches is batches.ShuffledBatches
    assert gan.ShuffledBatches is batches.ShuffledBatches


class _RecordingBatches(batches.ShuffledBatches):
    """Records the labels of each batch served, by the epoch it was served in."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.served: dict[int, list[list[int]]] = {}

    def __getitem__(self, index):
        images, labels = super().__getitem__(index)
        self.served.setdefault(self.epoch, []).append(labels.tolist())
        return images, labels


def test_fit_serves_epoch_e_the_batches_drawn_for_e():
    """Epoch ``e`` of a real ``fit`` gets ``(seed, e)``'s order, resumed or not: the epoch comes
    from the callback, not from Keras' ``on_epoch_end`` calls (one more than there are epochs)."""
    images = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1)
    labels = np.arange(12, dtype=np.int64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1, 1, 1)), keras.layers.Flatten(), keras.layers.Dense(12)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for first_epoch in (0, 1):
        data = _RecordingBatches(images, labels, 4, seed=5, epoch=first_epoch)
        model.fit(data, epochs=3, initial_epoch=first_epoch, shuffle=False, callbacks=[data.epoch_callback()],
                  verbose=0)
        for epoch in range(first_epoch, 3):
            expected = batches.ShuffledBatches(images, labels, 4, seed=5, epoch=epoch)
            assert data.served[epoch][-3:] == [expected[i][1].tolist() for i in range(3)], (first_epoch, epoch)

