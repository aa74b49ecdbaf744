"""Screenshots of the dashboard's main pages for the README: ``python scripts/screenshots.py``.

Trains small real runs on the embedded digits into a fresh store (or into ``--home``, reusing
the completed runs already there), serves
``app.py`` with ``streamlit run`` on localhost, and saves one PNG per page, taken by headless
Chromium, to ``docs/screenshots/``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401 - selects the JAX backend before keras
from tests.app.browser import chromium, settle, streamlit_server  # noqa: E402

# Epochs of the runs trained for the pictures (a few minutes on 2 CPU cores).
RUNS = (
    ("convnet", {"epochs": 4}),
    ("dcgan", {"epochs": 15, "metric_samples": 500}),
    ("cgan", {"epochs": 15, "metric_samples": 500}),
)


def runs_for_pictures(home: Path) -> dict[str, str]:
    """A completed run of each model in RUNS: those already in the store, and new ones trained
    for the models that have none."""
    from core import training
    from core.config import config_for
    from core.store import RunStore

    store = RunStore(home)
    run_ids = {}
    for run in store.list_runs(status="completed"):
        run_ids.setdefault(run["model"], run["run_id"])
    for model, overrides in RUNS:
        if model not in run_ids:
            run = training.train(config_for(model, dataset="digits", **overrides), store=store)
            print(f"{model}: {run['run_id']} {run['status']}", file=sys.stderr)
            run_ids[model] = run["run_id"]
    return run_ids


def shots(run_ids: dict[str, str]) -> list[tuple[str, str, str | None]]:
    """(file name, URL path with query, tab to click or None)."""
    convnet, gan, cgan = (
        run_ids.get("convnet"),
        run_ids.get("dcgan"),
        run_ids.get("cgan") or run_ids.get("dcgan"),
    )
    return [
        ("home", "/home", None),
        ("datasets", "/datasets?dataset=digits&shuffle=3", None),
        ("train", "/train?task=classifier&model=convnet&dataset=digits", None),
        ("runs", f"/runs?run={convnet}&compare={gan},{cgan}&x=epoch", "Results"),
        ("runs-gan", f"/runs?run={cgan}", "Results"),
        ("sample", f"/sample?run={cgan}&seed=7&n=64&label=3", None),
        ("classify", f"/classify?run={convnet}&source=test&image=11", None),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home",
        type=Path,
        help="a store to take the runs from (missing ones are trained "
        "into it); default: a fresh temporary store",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--log", type=Path, help="keep the streamlit server log here")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="convgan-shots-") as tmp:
        home = args.home or Path(tmp) / "home"
        run_ids = runs_for_pictures(home)
        with (
            streamlit_server(home, log_path=args.log or Path(tmp) / "streamlit.log") as base,
            chromium(width=args.width, height=1000) as context,
        ):
            page = context.new_page()
            for name, path, tab in shots(run_ids):
                page.goto(base + path)
                settle(page)
                if tab:
                    page.get_by_role("tab", name=tab).click()
                    settle(page)
                page.wait_for_timeout(800)  # plotly draws after the script run ends
                # Streamlit scrolls inside its main block, so grow the window to the content instead.
                height = page.evaluate(
                    "() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight"
                )
                page.set_viewport_size({"width": args.width, "height": min(max(1000, height + 80), 6000)})
                page.wait_for_timeout(500)
                target = args.out / f"{name}.png"
                page.screenshot(path=str(target))
                page.set_viewport_size({"width": args.width, "height": 1000})
                print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
