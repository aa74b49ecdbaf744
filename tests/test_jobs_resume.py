"""Resume trains to the run's target by default and records each extension, keeping the
target the run was launched with."""

import os
import signal

import keras
import pytest

from core.common.config import config_for
from core.common.errors import UserError
from core.runs import jobs, training


class CtrlCAfterFirstEpoch(keras.callbacks.Callback):
    """Presses Ctrl-C once, as a user at the terminal does, when the first epoch ends."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)


def test_resume_defaults_to_the_target_and_records_each_extension(store):
    run = training.train(config_for("convnet", dataset="digits", epochs=3, batch_size=256), store=store,
                         extra_callbacks=[CtrlCAfterFirstEpoch()])
    run_id = run["run_id"]
    assert run["status"] == "stopped" and run["error"] is None
    assert jobs.resume_target(store, run_id) == 3

    resumed = jobs.resume(store, run_id, background=False)
    assert resumed["status"] == "completed", resumed["error"]
    assert store.metric_table(run_id, "epoch")["epoch"] == [1, 2, 3], "trained to the target, not past it"
    assert resumed["config"]["epochs"] == 3 and "extensions" not in resumed["config"]
    assert jobs.resume_target(store, run_id) is None
    with pytest.raises(UserError, match="completed: pass --epochs"):
        jobs.resume(store, run_id)

    extended = jobs.resume(store, run_id, epochs=4, background=False)
    assert extended["status"] == "completed", extended["error"]
    assert store.metric_table(run_id, "epoch")["epoch"] == [1, 2, 3, 4]
    assert extended["config"]["epochs"] == 3, "the launch target is kept"
    assert [e["epochs"] for e in extended["config"]["extensions"]] == [4]
    assert extended["config"]["extensions"][0]["at"].endswith("Z")
    assert (extended["progress"] or {}).get("epochs") == 4
    with pytest.raises(UserError, match="has done 4 epochs"):
        jobs.resume(store, run_id, epochs=4)
    assert store.get_run(run_id)["config"]["extensions"] == extended["config"]["extensions"], "refusal wrote nothing"


def test_a_second_ctrl_c_ends_the_run_stopped_with_a_true_message(store):
    class CtrlCTwice(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        training.train(config_for("convnet", dataset="digits", epochs=2, batch_size=256), store=store,
                       extra_callbacks=[CtrlCTwice()])
    (run,) = store.list_runs()
    assert run["status"] == "stopped" and run["pid"] is None
    assert "second Ctrl-C" in run["error"]
