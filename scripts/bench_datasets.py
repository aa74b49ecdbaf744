"""Time dataset loading in three states: cold, warm from the parsed copy on disk, warm in-process.

    python scripts/bench_datasets.py                     # digits and fashion_mnist
    python scripts/bench_datasets.py mnist cifar10 --repeat 5

"Cold" means nothing is cached: the parsed copies are written to a fresh temporary CONVGAN_HOME,
so your own cache is neither used nor changed. Each state is measured ``--repeat`` times and the
fastest is shown. A dataset that is not on this machine is reported and skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from core.common.errors import DatasetError  # noqa: E402
from core.data import datasets  # noqa: E402 - needs the path above


def time_load(spec: str) -> float:
    start = time.perf_counter()
    datasets.load_dataset(spec)
    return time.perf_counter() - start


def bench(spec: str, repeat: int) -> dict[str, float]:
    """Fastest of ``repeat`` loads in each state, in seconds."""
    cold, warm_disk, warm_memory = [], [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="convgan-bench-") as home:
            os.environ["CONVGAN_HOME"] = home
            datasets.clear_cache()
            cold.append(time_load(spec))
            datasets.clear_cache()
            warm_disk.append(time_load(spec))
            warm_memory.append(time_load(spec))
            datasets.clear_cache()  # the arrays may be memory-mapped from the folder about to go
    return {"cold": min(cold), "warm (disk copy)": min(warm_disk), "warm (in-process)": min(warm_memory)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=["digits", "fashion_mnist"], help="dataset specs to time")
    parser.add_argument("--repeat", type=int, default=3, help="loads per state; the fastest is shown")
    args = parser.parse_args()
    print(f"{'dataset':<16}{'cold':>10}{'warm (disk copy)':>20}{'warm (in-process)':>20}")
    for spec in args.specs:
        try:
            timings = bench(spec, max(1, args.repeat))
        except DatasetError as error:
            print(f"{spec:<16}skipped: {error}")
            continue
        cells = "".join(
            f"{seconds * 1000:>{width}.1f}"
            for seconds, width in zip(timings.values(), (8, 18, 18), strict=True)
        )
        print(f"{spec:<16}{cells}   (ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
