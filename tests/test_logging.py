"""Diagnostics go through `logging` (a logger per core module); only the CLI prints, and its output
stays alone on stdout."""

import ast
import logging
import re
from pathlib import Path

import pytest

from core.app import cli
from core.training.callbacks import EpochLog

CORE = Path(__file__).resolve().parents[1] / "core"
# The CLI's own output; core/__init__.py's one-line error before the CLI exists (`python -m core`).
PRINTERS = {"app/cli.py", "app/cli_base.py", "app/commands.py", "__init__.py"}


def test_the_library_does_not_print():
    found = []
    for path in sorted(CORE.rglob("*.py")):
        if path.relative_to(CORE).as_posix() in PRINTERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{path.relative_to(CORE)}:{node.lineno}")
    assert not found, f"print() in the library (use the module's logger): {found}"


@pytest.fixture
def core_logger():
    """The ``core`` logger as the test found it, restored afterwards."""
    logger = logging.getLogger("core")
    saved = (list(logger.handlers), logger.level)
    yield logger
    logger.handlers[:], logger.level = saved


def test_a_workers_epoch_line_is_timed_on_stdout(core_logger, capsys):
    cli.log_to("stdout", "%(asctime)s %(message)s")  # what `worker` sets up for train.log
    callback = EpochLog()
    callback.set_params({"epochs": 3})
    callback.on_epoch_begin(0)
    callback.on_epoch_end(0, {"loss": 0.5, "accuracy": 0.75})
    out, err = capsys.readouterr()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d epoch 1/3: loss=0\.5 accuracy=0\.75 \(\d+\.\d s\)\n", out), out
    assert err == ""


def test_cli_diagnostics_go_to_stderr_as_one_line(core_logger, capsys):
    cli.log_to("stderr")
    logging.getLogger("core.runs.training").warning("note: %s", "3 images could not be read")
    out, err = capsys.readouterr()
    assert (out, err) == ("", "note: 3 images could not be read\n")
