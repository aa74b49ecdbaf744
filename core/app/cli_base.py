"""What the CLI's parser and its commands share: exit statuses, where diagnostics go, the JSON line,
and the config that ``train``'s options describe."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from core.common.config import ClassifierConfig, GANConfig, RestorationConfig, config_for

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool killed by SIGPIPE


class _CurrentStream(logging.StreamHandler):
    """Writes to whatever ``sys.stdout``/``sys.stderr`` is when a record comes (redirected or captured)."""

    def __init__(self, name: str):
        self.name_of_stream = name
        super().__init__()

    @property
    def stream(self):
        return getattr(sys, self.name_of_stream)

    @stream.setter
    def stream(self, value):  # the stream is looked up at each record instead
        pass


def log_to(stream: str, fmt: str = "%(message)s") -> None:
    """Show the library's diagnostics (the ``core`` loggers, INFO and up) on ``sys.<stream>``, one line each.

    Args:
        stream: ``"stderr"`` (commands: their output stays alone on stdout) or ``"stdout"``.
        fmt: a ``logging.Formatter`` format; ``%(asctime)s`` is shown as ``2026-01-31 12:00:00``.
    """
    logger = logging.getLogger("core")
    for old in [handler for handler in logger.handlers if isinstance(handler, _CurrentStream)]:
        logger.removeHandler(old)  # main() may run more than once in a process
    handler = _CurrentStream(stream)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


CONFIG_CLASSES = {"classifiers": ClassifierConfig, "GANs": GANConfig, "restoration": RestorationConfig}  # each family's config: train's options


def config_from_args(args: argparse.Namespace):
    """The validated config that ``train``'s options describe.

    Raises:
        ConfigError: unknown model, a setting of the other family, or an invalid value.
    """
    names = {field.name for cls in CONFIG_CLASSES.values() for field in dataclasses.fields(cls)} - {"model"}
    return config_for(args.model, **{name: getattr(args, name) for name in names})


def emit_json(payload: dict[str, Any]) -> None:
    """Print ``payload`` as one line: the one JSON object every ``--json`` command ends with."""
    if not isinstance(payload, dict):
        raise TypeError(f"--json prints one object, not a {type(payload).__name__}")
    print(json.dumps(payload, default=_json_default))


def _json_default(value: Any):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
