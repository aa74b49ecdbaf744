"""With the dashboard open in a browser, a run queued behind a trainer killed with kill -9 starts
within 5 s: the Streamlit server's Dispatcher notices the dead trainer (nothing else here does)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from core.common.config import config_for, config_to_dict
from core.runs import jobs
from core.store.store import RunStore
from tests.app.browser import CHROMIUM, chromium, settle, streamlit_server

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.xdist_group("browser"),
]


def test_dashboard_starts_the_run_queued_behind_a_killed_trainer(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("CONVGAN_HOME", str(home))
    monkeypatch.setenv("CONVGAN_MAX_JOBS", "1")
    store = RunStore(home)
    trainer = jobs.launch(config_for("convnet", dataset="digits", epochs=50), store)
    # Queued behind it: a run whose image folder was deleted (its worker fails at once).
    config = config_to_dict(config_for("convnet", dataset=str(tmp_path / "deleted-folder")))
    queued = store.create_run(family="classifier", model="convnet", dataset=config["dataset"], config=config,
                              status="queued")
    try:
        with streamlit_server(home) as base, chromium() as browser:
            page = browser.new_page()
            page.goto(f"{base}/runs")
            settle(page)
            deadline = time.monotonic() + 240
            while not store.metrics(trainer, scope="step"):
                assert time.monotonic() < deadline, "the trainer never stepped"
                time.sleep(0.2)
            killed_at = time.time()
            os.kill(store.get_run(trainer)["pid"], signal.SIGKILL)
            while store.get_run(queued)["status"] == "queued":
                assert time.time() - killed_at < 5.0, "still queued 5 s after its slot freed, dashboard open"
                time.sleep(0.05)
    finally:
        for run in store.list_runs(status="running"):
            if run["pid"]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(run["pid"], signal.SIGKILL)
    assert store.get_run(trainer)["status"] == "interrupted"
