"""The Runs page's Resume offers the run's own target when it stopped short, not 'last epoch + 5'."""

from core.common.config import config_for, config_to_dict
from core.store.store import RunStore
from tests.app.harness import assert_clean, open_page


def _run(home, status: str, epochs: int, extensions=()) -> str:
    config = {**config_to_dict(config_for("convnet", dataset="digits", epochs=epochs))}
    if extensions:
        config["extensions"] = [{"epochs": e, "at": "2026-01-01T00:00:00Z"} for e in extensions]
    store = RunStore(home)
    run_id = store.create_run(family="classifier", model="convnet", dataset="digits", config=config, status=status)
    checkpoints = store.run_dir(run_id) / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "epoch_002.keras").write_bytes(b"")  # two epochs done when it stopped
    return run_id


def test_resume_offers_the_target_of_a_run_stopped_short(empty_home):
    at = open_page("runs", {"run": _run(empty_home, "stopped", epochs=12)})
    assert_clean(at)
    assert at.number_input(key="runs.resume_epochs").value == 12


def test_resume_offers_the_last_extension_then_five_more_for_a_completed_run(empty_home):
    at = open_page("runs", {"run": _run(empty_home, "interrupted", epochs=12, extensions=(20,))})
    assert at.number_input(key="runs.resume_epochs").value == 20
    at = open_page("runs", {"run": _run(empty_home, "completed", epochs=2)})
    assert_clean(at)
    assert at.number_input(key="runs.resume_epochs").value == 7
