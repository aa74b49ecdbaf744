"""Timing one training step of ours against one of PyTorch, shared by every benchmark section."""

from __future__ import annotations

import time
from typing import Any

import jax
import keras
import numpy as np

from core.training.callbacks import WaitForEachStep

# Idle time before each timed round: both runtimes keep their worker threads spinning for a
# moment after work (OpenMP's spin-wait, XLA's thread pool), which would slow the other side.
SETTLE_SECONDS = 0.5


def side_by_side(*, ours_fit, torch_step, batches, steps: int, settings) -> dict[str, Any]:
    """Both sides' img/s over ``settings.rounds`` paired rounds after warm-up (``bench.harness``'s fields)."""
    batch_size = batches.batch_size
    compile_seconds = ours_fit(settings.warmup_steps)
    warm = ours_fit(settings.warmup_steps)
    compile_seconds -= warm  # the first fit's extra time: tracing and XLA compilation
    torch_seconds(torch_step, batches, settings.warmup_steps)
    timed = {
        "ours": lambda: steps * batch_size / ours_fit(steps),
        "torch": lambda: steps * batch_size / torch_seconds(torch_step, batches, steps),
    }
    ours_rounds, torch_rounds = [], []
    for pair in range(settings.rounds):
        img_s = {}
        for side in ("ours", "torch") if pair % 2 == 0 else ("torch", "ours"):
            time.sleep(SETTLE_SECONDS)
            img_s[side] = timed[side]()
        ours_rounds.append(img_s["ours"])
        torch_rounds.append(img_s["torch"])
    ours, peer = max(ours_rounds), max(torch_rounds)
    ratio = float(np.median(np.array(ours_rounds) / np.array(torch_rounds)))
    return {
        "ours_img_s": round(ours, 1), "torch_img_s": round(peer, 1), "ratio": round(ratio, 3),
        "best_ratio": round(ours / peer, 3),
        "ours_rounds_img_s": [round(value, 1) for value in ours_rounds],
        "torch_rounds_img_s": [round(value, 1) for value in torch_rounds],
        "steps_per_round": steps, "compile_seconds": round(compile_seconds, 2),
    }


def step_cost(model, batch, result) -> dict[str, float]:
    """XLA's count of floating-point operations and bytes accessed by one training step, and
    the rates our measured throughput implies (how close the step gets to the device's limits)."""

    state = tuple([np.asarray(variable.value) for variable in variables] for variables in (
        model.trainable_variables, model.non_trainable_variables, model.optimizer.variables,
        model.metrics_variables))
    cost = jax.jit(model.train_step).lower(state, tuple(batch)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    steps_per_second = result["ours_img_s"] / len(batch[0])
    flops, moved = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
    return {"step_gflop": round(flops / 1e9, 3), "step_mbytes": round(moved / 1e6, 1),
            "ours_gflop_s": round(flops * steps_per_second / 1e9, 1),
            "ours_gbyte_s": round(moved * steps_per_second / 1e9, 1)}


def first_batches(batches, count: int):
    """The first ``count`` batches of a ``ShuffledBatches`` (cycling), as a PyDataset for ``fit``."""

    class FirstBatches(keras.utils.PyDataset):
        def __len__(self):
            return count

        def __getitem__(self, index):
            return batches[index % len(batches)]

    return FirstBatches()


def fit_seconds(model, dataset) -> float:
    """Seconds of one ``fit`` epoch over ``dataset``, measured from its first step's start.

    One step at a time, as in a training run (``WaitForEachStep``: on CPU devices a ``fit``
    that runs ahead can deadlock).
    """
    times = {}

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            times["start"] = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # after WaitForEachStep waited for the last step
            times["end"] = time.perf_counter()

    model.fit(dataset, epochs=1, shuffle=False, verbose=0, callbacks=[Clock(), WaitForEachStep()])
    return times["end"] - times["start"]


def torch_seconds(step, batches, count: int) -> float:
    start = time.perf_counter()
    for index in range(count):
        images, *rest = batches[index % len(batches)]
        step(images, rest[0] if rest else None)
    return time.perf_counter() - start
