"""Demo mode (``CONVGAN_DEMO=1``): what a public demo turns off, and the one guard every write calls.

Every write the dashboard can make (``core.app.run_actions``, uploads in ``core.app.datasets_view``)
first calls :func:`require_writable`, so demo mode refuses it in one place whatever a widget or a URL asks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from core.common.errors import UserError

# Sampling from a public demo is capped at this many images per request.
DEMO_MAX_SAMPLES = 64

MAX_SAMPLES = 256


class ReadOnlyError(UserError):
    """A write was asked for in demo mode."""


def demo_mode() -> bool:
    """Whether the dashboard is a read-only public demo (``CONVGAN_DEMO=1``)."""
    return _truthy("CONVGAN_DEMO")


# A public demo takes single images up to this size on Classify (and no zips).
DEMO_MAX_UPLOAD_MB = 2

# Operator setting: let a demo's visitors download checkpoints (off unless set to 1/true/yes/on).
DEMO_DOWNLOADS_ENV = "CONVGAN_DEMO_DOWNLOADS"

# What a read-only demo allows and what it turns off: every demo notice is built from these.
DEMO_ALLOWED = {
    "browse": "browsing runs and datasets",
    "sample": f"sampling (at most {DEMO_MAX_SAMPLES} images)",
    "classify": f"classifying one image at a time (up to {DEMO_MAX_UPLOAD_MB} MB)",
}

DEMO_OFF = {
    "train": "training",
    "runs": "run controls (stop, resume, delete)",
    "upload": "uploading datasets or zips",
    "download": "checkpoint downloads",
}


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def checkpoint_downloads_allowed() -> bool:
    """Whether pages offer checkpoint files for download: always outside demo mode, and in demo
    mode only when the operator sets ``CONVGAN_DEMO_DOWNLOADS=1``."""
    return not demo_mode() or _truthy(DEMO_DOWNLOADS_ENV)


def _listing(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def demo_notice(feature: str | None = None) -> str:
    """What the read-only demo allows and turns off, in the same words on every page.

    Args:
        feature: a key of ``DEMO_ALLOWED`` or ``DEMO_OFF`` for the line about that feature
            alone (where a page leaves it out or limits it); None for the whole notice (the
            banner).

    Returns:
        One sentence.

    Raises:
        KeyError: an unknown feature.
    """
    off = {key: text for key, text in DEMO_OFF.items() if key != "download" or not checkpoint_downloads_allowed()}
    if feature is None:
        return f"Read-only demo: {_listing(list(DEMO_ALLOWED.values()))} work; {_listing(list(off.values()))} are turned off."
    if feature in DEMO_ALLOWED:
        return f"Read-only demo: {DEMO_ALLOWED[feature]}."
    return f"Turned off in this read-only demo: {DEMO_OFF[feature]}."


def max_samples() -> int:
    """Most images one sampling request may generate (lower in demo mode)."""
    return DEMO_MAX_SAMPLES if demo_mode() else MAX_SAMPLES


def require_writable(action: str) -> None:
    """Refuse ``action`` in demo mode. Every dashboard write calls this first.

    Raises:
        ReadOnlyError: demo mode is on.
    """
    if demo_mode():
        raise ReadOnlyError(f"this is a read-only demo: {action} is turned off")
