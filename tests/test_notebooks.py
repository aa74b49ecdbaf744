"""The notebooks in notebooks/: each runs top to bottom (nbclient, a kernel on this interpreter)
against one temporary run store, with CI-sized parameters injected after its ``parameters``
cell, and what it produces is checked: runs with metrics in the store, plotly figures, share
links that open the same view in the dashboard. The committed files carry no outputs.

The three notebooks share the store and run in order, as a reader would run them: notebook 2's
GAN scores use notebook 1's classifier, notebook 3 lists and samples both notebooks' runs.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest

from core.store.store import RunStore
from tests.test_backend_choice import user_environment

pytestmark = pytest.mark.xdist_group("notebooks")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PLOTLY_MIME = "application/vnd.plotly.v1+json"
CELL_TIMEOUT_S = 600  # generous: the machine running the suite may be busy
KERNEL_NAME = "convgan-notebook-tests"

# Injected after each notebook's `parameters` cell (papermill's convention): runs of seconds.
CI_PARAMETERS: dict[str, dict[str, Any]] = {
    "01_datasets_and_convnet": {"dataset": "digits", "epochs": 1, "batch_size": 64, "seed": 0, "grid_images": 32},
    "02_gans": {
        "dataset": "digits",
        "epochs": 1,
        "batch_size": 64,
        "metric_samples": 200,
        "sample_grid_size": 20,
        "seed": 0,
        "n_samples": 10,
        "interpolation_steps": 5,
    },
    "03_runs_from_the_dashboard": {"seed": 3, "n_samples": 8, "fallback_epochs": 1},
    "04_restoration": {"dataset": "digits", "epochs": 1, "width": 4, "train_images": 256, "seed": 0, "latent_steps": 50},
}


@dataclasses.dataclass
class Executed:
    notebook: nbformat.NotebookNode
    new_runs: list[dict[str, Any]]  # the runs this notebook added to the store, newest first


# ---- helpers -----------------------------------------------------------------------------------


def _parameters_index(nb: nbformat.NotebookNode) -> int:
    """Index of the first code cell, which must be tagged ``parameters``."""
    first = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")
    tags = nb.cells[first].get("metadata", {}).get("tags", [])
    assert "parameters" in tags, f"the first code cell is not tagged 'parameters' (tags: {tags})"
    return first


def _assigned_names(source: str) -> set[str]:
    return {
        target.id
        for node in ast.parse(source).body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }


def inject_parameters(nb: nbformat.NotebookNode, values: dict[str, Any]) -> None:
    """Insert a cell setting ``values`` after the ``parameters`` cell (as papermill does)."""
    index = _parameters_index(nb)
    unknown = set(values) - _assigned_names(nb.cells[index].source)
    assert not unknown, f"not parameters of this notebook: {sorted(unknown)}"
    source = "# Parameters injected by tests/test_notebooks.py\n" + "".join(
        f"{name} = {value!r}\n" for name, value in values.items()
    )
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))


def _kernel_manager(folder: Path):
    """A kernel on this interpreter, whatever the machine's ``python3`` kernelspec points at."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (notebook tests)",
        "language": "python",
    }
    kernels = folder / "kernels"
    (kernels / KERNEL_NAME).mkdir(parents=True, exist_ok=True)
    (kernels / KERNEL_NAME / "kernel.json").write_text(json.dumps(spec))
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))


def execute_notebook(path: Path, home: Path, parameters: dict[str, Any], work: Path) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in notebooks/ with ``CONVGAN_HOME=home``, as on a user's
    machine whose ``~/.keras/keras.json`` names another backend.

    The executed copy is written to ``work`` (also when a cell fails) for inspection.
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, parameters)
    # A user's machine: no KERAS_BACKEND, and a ~/.keras/keras.json naming tensorflow (not installed).
    env = user_environment(work / "user-home")
    env.pop("CONVGAN_DEMO", None)
    env["CONVGAN_HOME"] = str(home)
    client = NotebookClient(
        nb,
        km=_kernel_manager(work),
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # the kernel's working folder, as in Jupyter
    )
    try:
        client.execute(env=env)
    finally:
        nbformat.write(nb, work / path.name)
    return nb


def _outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]


def _mime_count(nb: nbformat.NotebookNode, mime: str) -> int:
    return sum(mime in output.get("data", {}) for output in _outputs(nb))


def _stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "")
        for output in _outputs(nb)
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


def _link(nb: nbformat.NotebookNode, page: str) -> tuple[str, dict[str, str]]:
    """The dashboard link to ``page`` the notebook printed, and its query."""
    links = re.findall(rf"https?://\S+/{page}\?\S+", _stdout(nb))
    assert links, f"no link to the {page} page printed"
    query = parse_qs(urlsplit(links[-1]).query)
    return links[-1], {name: values[-1] for name, values in query.items()}


# ---- committed files ---------------------------------------------------------------------------


def test_the_notebooks_are_there_and_each_has_ci_parameters():
    assert [path.stem for path in NOTEBOOKS] == sorted(CI_PARAMETERS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_notebook_has_no_outputs_and_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    with_outputs = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None]
    assert not with_outputs, f"{path.name}: code cells {with_outputs} carry outputs; strip them before committing"
    index = _parameters_index(nb)
    assert set(CI_PARAMETERS[path.stem]) <= _assigned_names(nb.cells[index].source)
    source = "\n".join(cell.source for cell in code)
    assert re.findall(r"RunStore\(([^)]*)\)", source) == [""], "open the store of $CONVGAN_HOME: RunStore()"
    assert "environ" not in source, "the store comes from the environment the notebook is started in"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_paired_script_matches_the_notebook(path):
    """The jupytext ``py:percent`` twin (for reviews and diffs) holds the same cells."""
    import jupytext

    script = path.with_suffix(".py")
    if not script.exists():
        pytest.skip("no paired script")

    def cells(nb):
        return [(cell.cell_type, cell.source.strip(), cell.get("metadata", {}).get("tags", [])) for cell in nb.cells]

    assert cells(jupytext.read(script)) == cells(nbformat.read(path, as_version=4)), (
        f"{script.name} and {path.name} differ: run `jupytext --sync {path}`"
    )


# ---- executed notebooks ------------------------------------------------------------------------


def _launch_from_the_dashboard(store: RunStore) -> str:
    """Queue a run the way the dashboard's Train page does, without starting its trainer."""
    from core.app import run_actions
    from core.common.config import config_for
    from core.runs import jobs

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs, "dispatch", lambda store: [])  # queued only: no background trainer in a test
        return run_actions.launch(store, config_for("dcgan", dataset="digits", epochs=1))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Every notebook run in order against one fresh store: ``(home, {stem: Executed})``.

    The store also holds a run queued from the dashboard (``results["queued"]``), never started.
    """
    pytest.importorskip("nbclient")
    home = tmp_path_factory.mktemp("notebook-home")
    work = tmp_path_factory.mktemp("notebooks-executed")
    store = RunStore(home)
    results: dict[str, Any] = {"queued": _launch_from_the_dashboard(store)}
    for path in NOTEBOOKS:
        before = {run["run_id"] for run in store.list_runs()}
        nb = execute_notebook(path, home, CI_PARAMETERS[path.stem], work)
        results[path.stem] = Executed(nb, [run for run in store.list_runs() if run["run_id"] not in before])
    return home, results


def test_datasets_and_convnet_notebook_trains_a_classifier_and_plots_it(executed):
    home, results = executed
    result = results["01_datasets_and_convnet"]
    assert [(run["model"], run["status"]) for run in result.new_runs] == [("convnet", "completed")]
    run = RunStore(home).describe(result.new_runs[0]["run_id"])
    assert run["metrics"]["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert len(run["metrics"]["confusion_matrix"]) == 10
    table = RunStore(home).metric_table(run["run_id"], "epoch")
    assert table["epoch"] == [1] and "val_accuracy" in table
    # class counts, histogram, step curves, loss, accuracy, confusion, per class, top-k x2
    assert _mime_count(result.notebook, PLOTLY_MIME) >= 8
    assert _mime_count(result.notebook, "image/png") >= 5  # grids, misclassified, saliency
    output = _stdout(result.notebook)
    assert run["run_id"] in output
    # core.evaluation.novelty: a flat square and noise are flagged, whatever label they get.
    assert re.search(r"^a flat grey square: .*, unusual: a flat image", output, re.M), output[-2000:]
    assert re.search(r"^random noise: .*, unusual: ", output, re.M), output[-2000:]


def test_gans_notebook_trains_a_dcgan_and_a_cgan_and_scores_them(executed):
    home, results = executed
    result = results["02_gans"]
    store = RunStore(home)
    by_model = {run["model"]: store.describe(run["run_id"]) for run in result.new_runs}
    assert sorted(by_model) == ["cgan", "dcgan"], [run["run_id"] for run in result.new_runs]
    for model, run in by_model.items():
        assert run["status"] == "completed", (model, run["error"])
        for name in ("fid_cls", "kid_cls", "precision", "recall"):
            assert math.isfinite(run["metrics"][name]), (model, name)
        assert 0.0 <= run["metrics"]["precision"] <= 1.0
        grids = sorted(path.name for path in (store.run_dir(run["run_id"]) / "samples").glob("*.png"))
        assert grids == ["epoch_000.png", "epoch_001.png"]
    assert 0.0 <= by_model["cgan"]["metrics"]["label_accuracy"] <= 1.0
    output = _stdout(result.notebook)
    assert output.count("epoch 1: d_fake") == 2  # the losses printed while each run trained
    assert "same seed, same pixels: True" in output
    assert "first image alone equals the first of the batch: True" in output
    assert _mime_count(result.notebook, PLOTLY_MIME) >= 4
    assert _mime_count(result.notebook, "image/gif") >= 3  # two time-lapses, one interpolation


def test_runs_notebook_samples_a_checkpoint_and_prints_share_links(executed):
    home, results = executed
    result = results["03_runs_from_the_dashboard"]
    assert result.new_runs == [], "the store had GAN runs: notebook 3 should not train"
    output = _stdout(result.notebook)
    assert f"{results['queued']} - queued (position 1 in the queue)" in output  # the dashboard's run
    gan_ids = [run["run_id"] for run in results["02_gans"].new_runs]
    link, query = _link(result.notebook, "sample")
    assert query["run"] in gan_ids and query["run"] in link
    assert query["seed"] == "3" and query["n"] == "8" and query["epoch"] == "1"
    _, runs_query = _link(result.notebook, "runs")
    assert runs_query["run"] == query["run"]
    assert set(runs_query["compare"].split(",")) == set(gan_ids)
    assert _mime_count(result.notebook, PLOTLY_MIME) >= 4  # overlay and bars for each family
    assert _mime_count(result.notebook, "image/png") >= 1


def test_restoration_notebook_compares_three_models_and_inpaints_with_the_gan_prior(executed):
    home, results = executed
    result = results["04_restoration"]
    store = RunStore(home)
    models = sorted(run["model"] for run in result.new_runs)
    assert models == ["espcn", "pix2pix", "unet"], "notebook 2's dcgan serves the GAN prior: no new GAN"
    for run in result.new_runs:
        run = store.describe(run["run_id"])
        assert run["status"] == "completed" and run["config"]["task"] == "super-resolution"
        assert math.isfinite(run["metrics"]["psnr"]) and math.isfinite(run["metrics"]["baseline_psnr"])
    output = _stdout(result.notebook)
    assert output.count("baseline PSNR") == 4  # x2, centre, strokes, denoise
    assert re.search(r"hole PSNR [\d.]+ dB by latent search, [\d.]+ dB by harmonic fill", output), output[-2000:]
    _, query = _link(result.notebook, "restore")
    assert query["run"] in {run["run_id"] for run in result.new_runs} and query["image"] == "3"
    assert _mime_count(result.notebook, PLOTLY_MIME) >= 1
    assert _mime_count(result.notebook, "image/png") >= 6


# ---- the dashboard on the notebooks' store -----------------------------------------------------


@pytest.fixture
def dashboard_home(executed, monkeypatch):
    home, results = executed
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    return home, results


def test_the_notebook_convnet_run_is_on_the_runs_page(dashboard_home):
    from tests.app.harness import assert_clean, open_page

    _, results = dashboard_home
    run_id = results["01_datasets_and_convnet"].new_runs[0]["run_id"]
    at = open_page("runs")
    assert_clean(at)
    assert run_id in list(at.dataframe[0].value["run"])
    at = open_page("runs", {"run": run_id})
    assert_clean(at)
    assert any(f"**{run_id}**" in element.value for element in at.markdown)


def test_the_printed_links_open_the_same_views(dashboard_home):
    from tests.app.harness import assert_clean, open_page

    _, results = dashboard_home
    notebook = results["03_runs_from_the_dashboard"].notebook
    _, query = _link(notebook, "sample")
    at = open_page("sample", query)
    assert_clean(at)
    assert not at.warning, [w.value for w in at.warning]  # every value in the link was used
    captions = [caption for element in at.image for caption in element.captions]
    assert f"{query['run']}, epoch {query['epoch']}, seed {query['seed']}" in captions
    _, runs_query = _link(notebook, "runs")
    at = open_page("runs", runs_query)
    assert_clean(at)
    assert not at.warning, [w.value for w in at.warning]
    assert at.selectbox(key="runs.run").value == runs_query["run"]
    assert set(at.multiselect(key="runs.compare").value) == set(runs_query["compare"].split(","))
