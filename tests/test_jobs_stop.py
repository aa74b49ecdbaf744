"""A stop at any moment ends ``stopped`` with a true message: here while a GAN is scored
after its last epoch (a real worker, Stop pressed twice as an impatient user does), and
resuming that run computes only what the stop skipped."""

import contextlib
import os
import signal
import time

import pytest

from core.common.config import config_for, config_to_dict
from core.runs import jobs
from core.training.callbacks import read_train_state
from tests.polling import wait_for

pytestmark = pytest.mark.xdist_group("jobs")

TINY_GAN = {"batch_size": 32, "latent_dim": 8, "sample_grid_size": 16, "metric_samples": 40}


@pytest.fixture
def one_slot(store, monkeypatch):
    monkeypatch.setenv("CONVGAN_MAX_JOBS", "1")
    yield
    for run in store.list_runs(status="running"):  # no trainer outlives a failed test
        if run["pid"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(run["pid"], signal.SIGKILL)


def test_stop_while_a_gan_is_scored_ends_stopped_and_resume_computes_the_scores(store, one_slot, tmp_path):
    gan = jobs.launch(config_for("dcgan", dataset="digits", epochs=1, **TINY_GAN), store)
    # Queued behind it: a run whose image folder was deleted fails at once when its turn comes.
    behind_config = config_to_dict(config_for("convnet", dataset=str(tmp_path / "deleted-folder")))
    behind = store.create_run(family="classifier", model="convnet", dataset=behind_config["dataset"],
                              config=behind_config, status="queued")
    # The store has no reference classifier yet, so scoring starts by training one in the GAN's worker.
    wait_for(lambda: (read_train_state(store.run_dir(gan)) or {}).get("epochs_done") == 1, 240, "the last epoch")
    time.sleep(1.0)  # into the scoring
    jobs.stop(store, gan, wait=False)  # the dashboard's Stop...
    time.sleep(1.5)
    jobs.stop(store, gan, wait=False)  # ...pressed again when nothing seems to happen
    run = jobs.stop(store, gan)  # and the CLI's, which waits
    assert run["status"] == "stopped", (run["status"], run["error"])
    assert "while scoring, after all 1 epochs trained" in run["error"]
    assert "fid_cls" in run["error"] and "resume" in run["error"]
    assert {"d_loss", "g_loss"} <= set(run["metrics"]), "the trained epoch's numbers are kept"
    reference = [r for r in store.list_runs(family="classifier") if r["run_id"] != behind]
    assert [r["status"] for r in reference] == ["stopped"], "the reference classifier stopped with it"
    assert all(r["pid"] is None for r in [run, *reference])
    wait_for(lambda: store.get_run(behind)["status"] != "queued", 5, "the run queued behind the GAN to start")
    wait_for(lambda: store.get_run(behind)["status"] == "failed", 120, "the run behind to end")  # before resuming

    # Resume with no epochs: nothing left to train, so it only computes the skipped scores.
    resumed = jobs.resume(store, gan, background=False)
    assert resumed["status"] == "completed", resumed["error"]
    assert {"fid_cls", "fid_cls_no_ema", "fid_cls_untrained", "reference_run"} <= set(resumed["metrics"])
    assert store.metric_table(gan, "epoch")["epoch"] == [1], "no epoch trained twice"
    assert resumed["config"]["epochs"] == 1 and "extensions" not in resumed["config"]
