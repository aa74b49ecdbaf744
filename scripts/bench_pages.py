"""Render time of every dashboard page with 100 runs in the store, and memory over 100 reruns
of the Sample page.

    python scripts/bench_pages.py [--runs 100] [--reruns 100]

Trains one tiny real classifier run and one tiny real DCGAN run on digits in a temporary store,
copies them (records, metrics and files) until the store holds ``--runs`` runs, then renders
each page with Streamlit's AppTest (the same script runner the server uses) and times it:
``first`` includes loading models and datasets into Streamlit's caches, ``warm`` is a rerun.
Memory is this process's resident set size (the server's, under AppTest) after N reruns of
Sample with a new seed each time. Prints a table, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fill_store(home: Path, count: int) -> dict[str, str]:
    from core.common.config import config_for
    from core.runs import training
    from core.store.store import RunStore

    store = RunStore(home)
    seeds = {
        "convnet": config_for("convnet", dataset="digits", epochs=1),
        "dcgan": config_for("dcgan", dataset="digits", epochs=1, metric_samples=200),
    }
    originals = {name: training.train(config, store=store)["run_id"] for name, config in seeds.items()}
    names = list(originals)
    while len(store.list_runs()) < count:
        source = store.get_run(originals[names[len(store.list_runs()) % 2]])
        copy = store.create_run(family=source["family"], model=source["model"], dataset=source["dataset"],
                                config=source["config"], seed=source["seed"], status="completed")
        shutil.copytree(store.run_dir(source["run_id"]), store.run_dir(copy), dirs_exist_ok=True)
        for row in store.metrics(source["run_id"]):
            store.log_metrics(copy, {row["name"]: row["value"]}, step=row["step"], epoch=row["epoch"], scope=row["scope"])
        store.update_run(copy, metrics=source["metrics"], progress=source["progress"], device=source["device"],
                         started=source["started_ts"], finished=source["finished_ts"])
    return originals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--reruns", type=int, default=100)
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        os.environ["CONVGAN_HOME"] = str(home)
        os.environ.pop("CONVGAN_DEMO", None)
        originals = fill_store(home, args.runs)
        timings = {}
        for page in ("home", "datasets", "train", "runs", "sample", "classify"):
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
            if page == "sample":
                at.query_params["run"] = originals["dcgan"]
            at.switch_page(f"pages/{page}.py")
            start = time.perf_counter()
            at.run()
            first = time.perf_counter() - start
            start = time.perf_counter()
            at.run()
            warm = time.perf_counter() - start
            errors = [e.value for e in at.exception]
            timings[page] = {"first_s": round(first, 3), "warm_s": round(warm, 3), "exceptions": len(errors)}

        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.query_params["run"] = originals["dcgan"]
        at.switch_page("pages/sample.py")
        at.run()
        memory = {"after_1": round(rss_mib(), 1)}
        for rerun in range(1, args.reruns + 1):
            at.query_params["seed"] = str(rerun)
            at.run()
            if rerun in (10, args.reruns // 2, args.reruns):
                memory[f"after_{rerun + 1}"] = round(rss_mib(), 1)

    print(f"{'page':10} {'first s':>8} {'warm s':>7}   ({args.runs} runs in the store)")
    for page, row in timings.items():
        print(f"{page:10} {row['first_s']:8.2f} {row['warm_s']:7.2f}" + (" EXCEPTION" if row["exceptions"] else ""))
    print("Sample page RSS (MiB) by reruns:", memory)
    print(json.dumps({"runs": args.runs, "pages": timings, "sample_rss_mib": memory}))


if __name__ == "__main__":
    main()
