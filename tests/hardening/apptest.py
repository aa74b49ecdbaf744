"""Running the dashboard under ``streamlit.testing`` (AppTest), and reading what it rendered."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
PAGES = ("home", "datasets", "train", "runs", "sample", "classify")

# A widget whose key or label names one of these can change the store or start work.
WRITE_WORDS = re.compile(r"launch|starter|train models|stop|cancel|resume|delete|upload|save", re.IGNORECASE)
# The one upload a read-only demo keeps: a single small image to classify (nothing is stored).
READ_ONLY_UPLOADS = {"classify.upload"}

HOSTILE_QUERY = {
    "run": "../../../etc/passwd",
    "dataset": "npz:/etc/passwd",
    "epoch": "NaN",
    "seed": "1e309",
    "n": "99999999999999999999999",
    "page": "-7",
    "label": "<script>alert(1)</script>",
    "q": "' OR 1=1; DROP TABLE runs; --",
    "status": "running,../../x,completed",
    "compare": ",".join(["zzz"] * 300),
    "truncation": "inf",
    "smooth": "-0.5",
    "image": "١٢",
    "cls": "\u202e",
    "source": "upload",
    "task": "gan",
    "model": "vgg19",
    "delete": "1",
    "launch": "true",
    "upload": "1",
}


def open_page(page: str, query: dict[str, str] | None = None, timeout: float = 180):
    """Run ``app.py`` routed to ``pages/<page>.py`` with ``query`` in the URL."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.switch_page(f"pages/{page}.py")
    return at.run()


def widgets(at) -> list[tuple[str, str | None, str]]:
    """``(kind, key, label)`` of every widget on the page."""
    found = []
    for kind in ("button", "form_submit_button", "download_button", "file_uploader", "checkbox", "toggle",
                 "selectbox", "multiselect", "number_input", "text_input", "slider", "segmented_control", "radio"):
        try:
            elements = at.get(kind)
        except (KeyError, AttributeError):
            continue
        for element in elements:
            found.append((kind, getattr(element, "key", None), str(getattr(element, "label", "") or "")))
    return found


def write_widgets(at) -> list[tuple[str, str | None, str]]:
    """Widgets that can write: buttons, forms and uploads whose key or label says so."""
    writes = []
    for kind, key, label in widgets(at):
        if kind == "form_submit_button" or kind == "file_uploader" and key not in READ_ONLY_UPLOADS or kind in ("button", "checkbox", "toggle") and WRITE_WORDS.search(f"{key} {label}"):
            writes.append((kind, key, label))
    return writes


def assert_clean(at) -> None:
    """No exception element, no 'unexpected error' box."""
    assert not at.exception, [element.value for element in at.exception]
    unexpected = [element.value for element in at.error if "unexpected error" in element.value]
    assert not unexpected, unexpected


def page_text(at) -> str:
    """Everything the page wrote (markdown, captions, alerts), for content checks."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "subheader", "code"):
        try:
            parts += [str(element.value) for element in at.get(kind)]
        except (KeyError, AttributeError):
            continue
    return "\n".join(parts)
