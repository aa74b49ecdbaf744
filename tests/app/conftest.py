"""Fixtures for the dashboard tests: empty stores, and one store of tiny real runs per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """An empty run store as CONVGAN_HOME, demo mode off."""
    home = tmp_path / "home"
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    RunStore(home)
    return home


def _tiny_configs():
    from core.config import config_for

    return {
        "convnet": config_for("convnet", dataset="digits", epochs=1, batch_size=64, seed=0),
        "dcgan": config_for(
            "dcgan",
            dataset="digits",
            epochs=1,
            batch_size=64,
            seed=0,
            metric_samples=200,
            sample_grid_size=16,
        ),
        "cgan": config_for(
            "cgan", dataset="digits", epochs=1, batch_size=64, seed=0, metric_samples=200, sample_grid_size=16
        ),
    }


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory):
    """A store holding one tiny real run of each kind, trained once per session.

    Tests using it carry ``@pytest.mark.xdist_group("real_runs")`` so that, under
    ``pytest -n 2 --dist loadgroup``, they all run in one worker and the runs train once.

    Returns:
        ``(home, {"convnet": run_id, "dcgan": run_id, "cgan": run_id})``.
    """
    from core import training

    home = tmp_path_factory.mktemp("real-runs")
    store = RunStore(home)
    run_ids = {}
    for name, config in _tiny_configs().items():
        run = training.train(config, store=store)
        assert run["status"] == "completed", f"{name}: {run['status']} {run['error']}"
        run_ids[name] = run["run_id"]
    return home, run_ids


@pytest.fixture
def real_home(real_runs, monkeypatch):
    """CONVGAN_HOME pointing at the session's store of real runs, demo mode off."""
    home, run_ids = real_runs
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    return home, run_ids


def open_page(page: str, query: dict[str, str] | None = None, timeout: float = 180):
    """Run the app on ``page`` (``home``, ``datasets``, ...) with ``query`` in the URL."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.switch_page(f"pages/{page}.py")
    return at.run()


def assert_clean(at) -> None:
    """No exception element and no unexpected-error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    unexpected = [e.value for e in at.error if "unexpected error" in e.value]
    assert not unexpected, unexpected
