"""Fixtures for the hardening tests: a store holding runs in every status (records and metrics
only, for the pages), and one store of tiny real runs trained once per session."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from core.store.store import RunStore, this_host

STATUSES = ("running", "queued", "completed", "failed", "interrupted", "stopped", "cancelled")


@pytest.fixture
def runs_home(tmp_path, monkeypatch):
    """CONVGAN_HOME holding one run per status (no checkpoints), demo mode off.

    The running run's trainer is a real, idle child process (``sleep``) with a fresh heartbeat, so
    nothing marks it interrupted while a page renders, and a stop that should have been refused
    signals that child, never the test process.

    Returns:
        ``(home, {status: run_id})``.
    """
    from core.common.config import config_for, config_to_dict

    home = tmp_path / "home"
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    store = RunStore(home)
    trainer = subprocess.Popen(["sleep", "600"])
    ids = {}
    for index, status in enumerate(STATUSES):
        model = ("convnet", "dcgan")[index % 2]
        config = {**config_to_dict(config_for(model, dataset="digits", epochs=3)), "data": {
            "class_names": [str(digit) for digit in range(10)], "image_shape": [8, 8, 1]}}
        run_id = store.create_run(family=config["family"], model=model, dataset="digits", config=config,
                                  status=status)
        store.update_run(run_id, heartbeat=time.time(), host=this_host(), started=time.time() - 60,
                         pid=trainer.pid if status == "running" else None,
                         error="loss became nan at step 3" if status == "failed" else None)
        for epoch in (1, 2):
            store.log_metrics(run_id, {"loss": 1.0 / epoch, "accuracy": 0.4 * epoch}, step=12 * epoch,
                              epoch=epoch, scope="epoch")
        ids[status] = run_id
    yield home, ids
    trainer.kill()
    trainer.wait()


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory):
    """A store with one tiny real convnet run on digits (2 epochs), trained once per session.

    Tests using it carry ``@pytest.mark.xdist_group("hardening_runs")`` so that, under
    ``pytest -n 2 --dist loadgroup``, it trains once.

    Returns:
        ``(home, run_id)``; treat the store as read-only.
    """
    from core.common.config import config_for
    from core.runs import training

    home = tmp_path_factory.mktemp("trained-classifier")
    run = training.train(config_for("convnet", dataset="digits", epochs=2, batch_size=64), store=RunStore(home))
    assert run["status"] == "completed", run["error"]
    return home, run["run_id"]


@pytest.fixture(scope="session")
def gan_checkpoint(tmp_path_factory) -> Path:
    """A real (untrained) DCGAN ``.keras`` file for 8x8x1 images, built once per session."""
    from core.common.config import config_for
    from core.models.gans import build_gan

    path = tmp_path_factory.mktemp("gan-file") / "dcgan.keras"
    build_gan(config_for("dcgan", dataset="digits"), (8, 8, 1)).save(path)
    return path


@pytest.fixture
def checkpoint_home(tmp_path, monkeypatch, trained_classifier, gan_checkpoint):
    """CONVGAN_HOME with a trained convnet run and a dcgan run that has a real checkpoint."""
    from core.store import checkpoints
    from tests.hardening import craft

    home = tmp_path / "home"
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    store = RunStore(home)
    source_home, source_run = trained_classifier
    classifier_file = checkpoints.checkpoint_path(RunStore(source_home), source_run)
    ids = {"classifier": craft.add_run(store, "classifier", "convnet", classifier_file),
           "gan": craft.add_run(store, "gan", "dcgan", gan_checkpoint)}
    return home, ids
