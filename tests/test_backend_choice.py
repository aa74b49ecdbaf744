"""Every entry point picks JAX itself, as on a user's machine: no ``KERAS_BACKEND`` in the
environment and a ``~/.keras/keras.json`` that names tensorflow (which is not installed)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def user_environment(home: Path, keras_backend: str = "tensorflow") -> dict[str, str]:
    """The environment of a user whose ``~/.keras/keras.json`` names ``keras_backend``."""
    (home / ".keras").mkdir(parents=True, exist_ok=True)
    (home / ".keras" / "keras.json").write_text(
        json.dumps({"floatx": "float32", "epsilon": 1e-07, "backend": keras_backend, "image_data_format": "channels_last"})
    )
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env["HOME"] = str(home)
    return env


@pytest.fixture
def user_env(tmp_path):
    return user_environment(tmp_path / "user")


def _python(code: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_import_core_then_keras_picks_jax(user_env):
    done = _python("import core, keras; print(keras.backend.backend())", user_env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["jax"]


def test_the_cli_runs_on_jax(user_env):
    done = subprocess.run(
        [sys.executable, "-m", "core", "devices", "--json"],
        cwd=ROOT, env=user_env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tensorflow" not in done.stderr
    json.loads(done.stdout.strip().splitlines()[-1])


def test_keras_imported_first_with_another_backend_gets_one_clear_line(tmp_path):
    pytest.importorskip("torch")
    env = user_environment(tmp_path / "user", keras_backend="torch")
    done = _python("import keras\ntry:\n    import core\nexcept Exception as err:\n    print(err)\n", env)
    assert done.returncode == 0, done.stderr[-2000:]
    message = done.stdout.strip()
    assert "\n" not in message and "'torch'" in message and "import core before keras" in message


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_each_notebooks_import_cell_picks_jax(path, user_env):
    """The first cell that imports anything runs in notebooks/ (as Jupyter starts the kernel)."""
    nb = nbformat.read(path, as_version=4)
    cell = next(cell.source for cell in nb.cells if cell.cell_type == "code" and re.search(r"^import ", cell.source, re.M))
    imports = re.findall(r"^(?:import|from) (\w+)", cell, re.M)
    assert "core" in imports, f"{path.name}: the first import cell does not import core"
    assert "keras" not in imports[: imports.index("core")], f"{path.name}: imports keras before core"
    # The cell up to its last import: what follows (opening the store, loading data) is for the full run.
    body = ast.parse(cell).body
    last = max(i for i, node in enumerate(body) if isinstance(node, (ast.Import, ast.ImportFrom)))
    code = ast.unparse(ast.Module(body=body[: last + 1], type_ignores=[]))
    done = _python(code + "\nimport keras\nprint(keras.backend.backend())", user_env, cwd=ROOT / "notebooks")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "jax"
