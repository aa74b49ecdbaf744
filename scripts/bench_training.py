"""Training throughput of a preset, and what JAX's persistent compilation cache saves.

    python scripts/bench_training.py                                  # convnet on fashion_mnist
    python scripts/bench_training.py --model dcgan --dataset digits --epochs 3

Each measurement trains in a fresh process against a temporary run store (your own store is
not touched). The first process compiles from scratch; the second finds the compiled
programs in the store's cache (``<CONVGAN_HOME>/cache/jax``). Prints a table and, last, one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_once(home: str, model: str, dataset: str, epochs: int) -> dict:
    command = [sys.executable, "-m", "core", "train", "--model", model, "--dataset", dataset,
               "--epochs", str(epochs), "--json"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "CONVGAN_HOME": home})
    if result.returncode != 0:
        sys.exit(f"training failed: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="convnet")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        cold = train_once(home, args.model, args.dataset, args.epochs)
        warm = train_once(home, args.model, args.dataset, args.epochs)
    rows = {"cold cache": cold, "warm cache": warm}
    print(f"{args.model} on {args.dataset}, {args.epochs} epoch(s)")
    print(f"{'':12} {'img/s':>9} {'first step s':>13} {'total s':>8}")
    for name, run in rows.items():
        metrics = run["metrics"]
        print(f"{name:12} {run['images_per_second']:9.0f} {metrics.get('compile_seconds', float('nan')):13.2f} "
              f"{run['seconds']:8.1f}")
    print(json.dumps({
        "model": args.model, "dataset": args.dataset, "epochs": args.epochs,
        "images_per_second": warm["images_per_second"],
        "first_step_seconds_cold": cold["metrics"].get("compile_seconds"),
        "first_step_seconds_warm": warm["metrics"].get("compile_seconds"),
        "seconds_cold": cold["seconds"], "seconds_warm": warm["seconds"],
    }))


if __name__ == "__main__":
    main()
