"""Screenshots of the dashboard's main pages for the README: ``python scripts/screenshots.py``.

Trains small real runs on the embedded digits into a fresh store (or into ``--home``, reusing
the completed runs already there), serves
``app.py`` with ``streamlit run`` on localhost, and saves one PNG per page, taken by headless
Chromium, to ``docs/screenshots/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401 - selects the JAX backend before keras
from tests.app.browser import chromium, settle, streamlit_server  # noqa: E402

# The runs trained for the pictures (a few minutes on 2 CPU cores): a name, the model, its
# settings; three convnets that differ in learning rate and batch size give the compare and
# parallel-coordinates views something to show.
RUNS = (
    ("convnet", "convnet", {"epochs": 4}),
    ("convnet-lr", "convnet", {"epochs": 4, "learning_rate": 1e-3}),
    ("convnet-batch", "convnet", {"epochs": 4, "batch_size": 64, "learning_rate": 6e-3}),
    ("dcgan", "dcgan", {"epochs": 15, "metric_samples": 500}),
    ("cgan", "cgan", {"epochs": 15, "metric_samples": 500}),
)
# Tags and notes put on the runs, as a user would with ``python -m core tag`` / ``note``.
TAGS = {"convnet": ["baseline"], "convnet-lr": ["lr-sweep"], "convnet-batch": ["lr-sweep", "batch"],
        "dcgan": ["gan"], "cgan": ["gan", "conditional"]}
NOTES = {"convnet-lr": "Peak learning rate 1e-3 instead of 3e-3: slower start, same end."}


def runs_for_pictures(home: Path) -> dict[str, str]:
    """A completed run for each entry of RUNS: one already in the store with the same model and
    settings, else a new one trained now; each gets its TAGS and NOTES."""
    from core.common.config import config_for
    from core.runs import training
    from core.store.store import RunStore

    store = RunStore(home)
    completed = store.list_runs(status="completed")
    run_ids = {}
    for name, model, overrides in RUNS:
        config = config_for(model, dataset="digits", **overrides)
        wanted = dataclasses.asdict(config)
        found = next(
            (run for run in completed if run["model"] == model and run["run_id"] not in run_ids.values()
             and all(run["config"].get(key) == wanted[key] for key in ("epochs", "learning_rate", "batch_size"))),
            None,
        )
        if found is None:
            found = training.train(config, store=store)
            print(f"{name}: {found['run_id']} {found['status']}", file=sys.stderr)
        run_ids[name] = found["run_id"]
        store.set_tags(found["run_id"], TAGS.get(name, []))
        store.set_note(found["run_id"], NOTES.get(name, ""))
    return run_ids


def shots(run_ids: dict[str, str]) -> list[tuple[str, str, str | None, tuple[str, str] | None]]:
    """(file name, URL path with query, tab to click or None, section to keep or None: the
    headings it starts at and stops before)."""
    convnet, gan, cgan = run_ids.get("convnet"), run_ids.get("dcgan"), run_ids.get("cgan") or run_ids.get("dcgan")
    convnets = ",".join(run_ids[name] for name in ("convnet", "convnet-lr", "convnet-batch") if name in run_ids)
    return [
        ("home", "/home", None, None),
        ("datasets", "/datasets?dataset=digits&shuffle=3", None, None),
        ("train", "/train?task=classifier&model=convnet&dataset=digits", None, None),
        ("runs", f"/runs?run={convnet}&compare={gan},{cgan}&x=epoch", "Results", None),
        ("runs-gan", f"/runs?run={cgan}", "Results", None),
        ("runs-compare", f"/runs?compare={convnets}&metric=val_accuracy,loss&smooth=0.6&run={convnet}",
         None, ("Compare runs", "Config against a final metric")),
        ("runs-tags", f"/runs?tag=lr-sweep&run={run_ids.get('convnet-lr', convnet)}", None, None),
        ("runs-parallel", "/runs?family=classifier&final=test_accuracy", None,
         ("Config against a final metric", "Run details")),
        ("sample", f"/sample?run={cgan}&seed=7&n=64&label=3", None, None),
        ("classify", f"/classify?run={convnet}&source=test&image=11", None, None),
    ]


def section_clip(page, start: str, end: str | None, width: int) -> dict[str, float]:
    """The part of the page from heading ``start`` to just above heading ``end`` (the end of the
    content when None)."""
    top = page.get_by_role("heading", name=start, exact=True).first.bounding_box()["y"] - 10
    if end is None:
        box = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
        bottom = box["y"] + box["height"]
    else:
        bottom = page.get_by_role("heading", name=end, exact=True).first.bounding_box()["y"] - 10
    return {"x": 0, "y": max(0, top), "width": width, "height": max(100, bottom - max(0, top))}


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
    parser.add_argument("--only", nargs="*", help="take only these pictures (names as in docs/screenshots)")
    parser.add_argument("--log", type=Path, help="keep the streamlit server log here")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="convgan-shots-") as tmp:
        home = args.home or Path(tmp) / "home"
        run_ids = runs_for_pictures(home)
        wanted = set(args.only or [])
        with (
            streamlit_server(home, log_path=args.log or Path(tmp) / "streamlit.log") as base,
            chromium(width=args.width, height=1000) as context,
        ):
            page = context.new_page()
            for name, path, tab, section in shots(run_ids):
                if wanted and name not in wanted:
                    continue
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
                clip = section_clip(page, *section, args.width) if section else None
                page.screenshot(path=str(target), clip=clip)
                page.set_viewport_size({"width": args.width, "height": 1000})
                print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
