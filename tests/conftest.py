"""Shared fixtures: every test gets its own run store; nothing touches ~/.convgan."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Two xdist workers share two cores: one BLAS thread each, or scipy linear algebra crawls.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

import core  # noqa: E402,F401 - selects the JAX backend before keras is imported
from core.store.store import RunStore  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("convgan-home")
    previous = os.environ.get("CONVGAN_HOME")
    os.environ["CONVGAN_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("CONVGAN_HOME", None)
    else:
        os.environ["CONVGAN_HOME"] = previous


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty run store in a temporary folder, also set as CONVGAN_HOME for subprocesses."""
    home = tmp_path / "home"
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    return RunStore(home)
