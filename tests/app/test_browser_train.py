"""Train in headless Chromium: Enter in a field commits that field and never launches a run;
only the Launch button does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.store.store import RunStore
from tests.app.browser import CHROMIUM, chromium, errors_on, settle, streamlit_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]


def test_enter_in_train_fields_never_launches_only_the_button_does(tmp_path):
    home = tmp_path / "home"
    store = RunStore(home)
    with streamlit_server(home) as base, chromium() as context:
        page = context.new_page()
        page.goto(f"{base}/train?task=classifier&model=convnet&dataset=digits")
        settle(page)
        try:
            # A whole-number field and a decimal one: Enter commits the value (it reaches the link).
            for label, value in (("Epochs", "1"), ("Learning rate", "0.002")):
                field = page.get_by_label(label, exact=True)
                field.fill(value)
                field.press("Enter")
                settle(page)
                assert store.list_runs() == [], f"Enter in {label} launched a run"
            assert "epochs=1" in page.url and "learning_rate=0.002" in page.url, page.url
            # The one text entry on the page: the dataset picker's search box.
            search = page.get_by_test_id("stSelectbox").filter(has_text="Dataset").locator("input")
            search.click()
            search.press_sequentially("dig")
            search.press("Enter")
            settle(page)
            assert store.list_runs() == [], "Enter in the dataset search launched a run"
            assert page.get_by_text(re.compile(r"^Launched ")).count() == 0

            page.get_by_role("button", name="Launch").click()
            page.get_by_text(re.compile(r"Launched convnet-digits-")).wait_for(timeout=60_000)
            runs = store.list_runs()
            assert len(runs) == 1, runs
            assert runs[0]["config"]["epochs"] == 1 and runs[0]["config"]["learning_rate"] == 0.002
            assert not errors_on(page)
        except BaseException:
            page.screenshot(path=str(tmp_path / "train-enter.png"), full_page=True)
            raise
