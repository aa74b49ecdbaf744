"""Fixtures for the dashboard tests: empty stores, and one store of tiny real runs per session.

The helpers that open pages and read them are in ``tests/app/harness.py``."""

from __future__ import annotations

import pytest

from core.store.store import RunStore


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """An empty run store as CONVGAN_HOME, demo mode off."""
    home = tmp_path / "home"
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    RunStore(home)
    return home


def _tiny_configs():
    from core.common.config import config_for

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
    from core.runs import training

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

