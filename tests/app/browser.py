"""Running the real app for browser tests and screenshots: ``streamlit run`` on a free local
port, and headless Chromium (Playwright) helpers that wait for Streamlit to settle."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CONVGAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Shown while a script run, a cached computation or an element is still on its way.
BUSY_TESTIDS = ("stStatusWidget", "stSpinner", "stSkeleton")
ERROR_SELECTORS = ('[data-testid="stException"]', '[data-testid="stAlertContentError"]')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(
    home: Path, *, demo: bool = False, log_path: Path | None = None, timeout: float = 90
) -> Iterator[str]:
    """Serve ``app.py`` with ``CONVGAN_HOME=home``; yields the base URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    env = {**os.environ, "CONVGAN_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("CONVGAN_DEMO", None)
    if demo:
        env["CONVGAN_DEMO"] = "1"
    log_path = log_path or Path(home) / f"streamlit-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with {process.returncode}: {log_path.read_text()[-2000:]}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response,
            ):
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"streamlit did not start in {timeout:.0f} s: {log_path.read_text()[-2000:]}"
                )
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium page (Playwright sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            yield context
        finally:
            browser.close()


def settle(page, timeout: float = 120, quiet: float = 1.5) -> None:
    """Wait until the app has rendered and no script run is in progress for ``quiet`` seconds."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    try:
        page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=timeout * 500)
    except PlaywrightTimeout:
        # On a loaded 2-core machine the very first session of a fresh server (JAX import, the
        # legacy-pages re-run in pages/ui.py) has dropped its websocket ("Connection error").
        # A user would reload; so does the test, once.
        page.reload()
        page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    calm_since = None
    while time.monotonic() < deadline:
        running = any(page.locator(f'[data-testid="{testid}"]').count() for testid in BUSY_TESTIDS)
        if running:
            calm_since = None
        elif calm_since is None:
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the app kept running for {timeout:.0f} s")


def errors_on(page) -> list[str]:
    """Texts of error boxes and exceptions shown on the page (and any traceback)."""
    found = []
    for selector in ERROR_SELECTORS:
        for element in page.locator(selector).all():
            found.append(element.inner_text()[:300])
    if "Traceback (most recent call last)" in page.content():
        found.append("a traceback is on the page")
    return found
