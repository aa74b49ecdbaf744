"""The installed project, as a user gets it from `make run` / `make test` (`pip install -e .`): a
`convgan` command that works from any folder, and notebooks that import `core` without help."""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import core
from core.store.store import RunStore

pytestmark = pytest.mark.xdist_group("cli")

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the environment's scripts folder; not resolved: a venv's python is a link
CONVGAN = BIN / "convgan"
INSTALL_HINT = "install this checkout into the environment: `pip install -e .` (make run and make test do)"


def user_environment(home: Path) -> dict[str, str]:
    """What a user's shell has: no PYTHONPATH pointing into the checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["CONVGAN_HOME"] = str(home)
    return env


def test_this_checkout_is_what_the_environment_imports(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import core; print(core.__file__)"], cwd=tmp_path,
                          env=user_environment(tmp_path / "home"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{INSTALL_HINT}\n{done.stderr[-1000:]}"
    assert Path(done.stdout.strip()) == REPO / "core" / "__init__.py", INSTALL_HINT
    assert importlib.metadata.version("convgan-studio") == core.__version__


def test_convgan_version_from_another_folder(tmp_path):
    assert CONVGAN.exists(), f"no {CONVGAN}: {INSTALL_HINT}"
    done = subprocess.run([str(CONVGAN), "--version"], cwd=tmp_path, env=user_environment(tmp_path / "home"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"convgan {core.__version__}\n"


def test_convgan_runs_json_from_another_folder(tmp_path):
    assert CONVGAN.exists(), f"no {CONVGAN}: {INSTALL_HINT}"
    home = tmp_path / "home"
    run_id = RunStore(home).create_run(family="classifier", model="convnet", dataset="digits",
                                       config={"epochs": 1}, status="completed")
    work = tmp_path / "elsewhere"
    work.mkdir()
    done = subprocess.run([str(CONVGAN), "runs", "--json"], cwd=work, env=user_environment(home),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)  # the whole of stdout: one object
    assert [run["run_id"] for run in payload["runs"]] == [run_id]


def test_convgan_usage_errors_name_the_command(tmp_path):
    assert CONVGAN.exists(), f"no {CONVGAN}: {INSTALL_HINT}"
    done = subprocess.run([str(CONVGAN), "train"], cwd=tmp_path, env=user_environment(tmp_path / "home"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: the following arguments are required: --model (see `convgan train --help`)"]


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda path: path.stem)
def test_notebooks_leave_sys_path_alone(path):
    source = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
    assert "sys.path" not in source and "PYTHONPATH" not in source


def test_declared_dependencies_include_what_the_core_imports():
    """Every third-party package core/ imports at its top level is a declared dependency."""
    import ast
    import tomllib

    declared = {
        requirement.split("==")[0].split("[")[0].strip().lower().replace("-", "_")
        for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    import_names = {"pil": "pillow", "sklearn": "scikit_learn", "skimage": "scikit_image", "streamlit_drawable_canvas": "streamlit_drawable_canvas"}
    imported = set()
    for source in (REPO / "core").rglob("*.py"):
        for node in ast.parse(source.read_text()).body:  # module level: what importing core needs
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            imported |= {name.split(".")[0].lower() for name in names}
    third_party = {name for name in imported - set(sys.stdlib_module_names) if name != "core"}
    missing = {import_names.get(name, name) for name in third_party} - declared
    assert not missing, f"imported by core/ but not in pyproject.toml's dependencies: {sorted(missing)}"
