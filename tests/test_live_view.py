"""A run that is training shows the same numbers from the CLI and from a notebook cell."""

import json
import os
import subprocess
import sys
import time

import nbformat
import pytest

from core.common.config import config_for
from core.runs import jobs
from tests.test_notebooks import NOTEBOOK_DIR, _kernel_manager

pytestmark = pytest.mark.xdist_group("jobs")

CELL = """
import json
from core.store.store import RunStore
store = RunStore()
print("STATUS", store.describe({run_id!r})["status"])
print("HISTORY", json.dumps(store.metric_table({run_id!r}, "step")))
"""


def test_cli_and_notebook_see_the_same_training_run(store, monkeypatch, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("CONVGAN_MAX_JOBS", "1")
    run_id = jobs.launch(config_for("convnet", dataset="digits", epochs=300, log_every_steps=5), store)
    try:
        deadline = time.monotonic() + 120
        while len(store.metrics(run_id, scope="step")) < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        shown = subprocess.run([sys.executable, "-m", "core", "show", run_id, "--json", "--history"],
                               capture_output=True, text=True, timeout=120,
                               env={**os.environ, "CONVGAN_HOME": str(store.home)})
        assert shown.returncode == 0, shown.stderr
        record = json.loads(shown.stdout.strip().splitlines()[-1])
        assert record["status"] == "running"
        cli_history = record["history"]["step"]
        assert cli_history["step"], "the CLI sees step metrics while the run trains"

        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL.format(run_id=run_id))])
        env = {**os.environ, "CONVGAN_HOME": str(store.home)}
        NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=120,
                       resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute(env=env)
        text = "".join(output.get("text", "") for output in nb.cells[0].outputs)
        assert "STATUS running" in text, text
        notebook_history = json.loads(text.split("HISTORY", 1)[1].strip().splitlines()[0])
        # The notebook reads later, so it may see more steps; the ones the CLI saw are identical.
        seen = len(cli_history["step"])
        assert notebook_history["step"][:seen] == cli_history["step"]
        assert notebook_history["loss"][:seen] == cli_history["loss"]
    finally:
        jobs.stop(store, run_id)
