"""The AppTest harness: run the dashboard under ``streamlit.testing`` and read what it rendered."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
PAGES = ("home", "datasets", "train", "runs", "sample", "classify", "restore")

# A link a stranger could craft: traversal, injection, overflow, NaN, bidi and write requests.
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

# Element kinds that hold text a page wrote, and kinds of widget a user can touch.
TEXT_KINDS = ("markdown", "caption", "info", "warning", "error", "success", "title", "subheader", "code")
WIDGET_KINDS = ("button", "form_submit_button", "download_button", "file_uploader", "checkbox", "toggle",
                "selectbox", "multiselect", "number_input", "text_input", "slider", "segmented_control", "radio")


def open_page(page: str, query: dict[str, str] | None = None, timeout: float = 180):
    """Run ``app.py`` routed to ``pages/<page>.py`` with ``query`` in the URL.

    Args:
        page: a name from ``PAGES``.
        query: the URL's query parameters.
        timeout: seconds one script run may take.

    Returns:
        The ``AppTest`` after its first run.
    """
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.switch_page(f"pages/{page}.py")
    return at.run()


def assert_clean(at) -> None:
    """No exception element and no 'unexpected error' box on the page."""
    assert not at.exception, [element.value for element in at.exception]
    unexpected = [element.value for element in at.error if "unexpected error" in element.value]
    assert not unexpected, unexpected


def _elements(at, kinds: tuple[str, ...]) -> list:
    found = []
    for kind in kinds:
        try:
            found += list(at.get(kind))
        except (KeyError, AttributeError):  # a kind this Streamlit version does not have
            continue
    return found


def texts(at) -> list[str]:
    """Each text the page wrote (markdown, captions, alerts, titles, code), one string per element."""
    return [str(element.value) for element in _elements(at, TEXT_KINDS)]


def page_text(at) -> str:
    """Everything the page wrote, as one string, for content checks."""
    return "\n".join(texts(at))


def widgets(at) -> list[tuple[str, str | None, str]]:
    """``(kind, key, label)`` of every widget on the page."""
    found = []
    for kind in WIDGET_KINDS:
        for element in _elements(at, (kind,)):
            found.append((kind, getattr(element, "key", None), str(getattr(element, "label", "") or "")))
    return found
