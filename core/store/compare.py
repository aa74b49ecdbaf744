"""Comparing runs as experiment trackers do, without Streamlit: metric tables with a relative-time
column, one colour per run, the hyperparameters that differ, the runs that lack a metric, final
metrics for a parallel-coordinates view, and training time apart from wall time.

Example::

    tables = {run_id: compare.metric_table(store, run_id) for run_id in run_ids}
    compare.missing(tables, ["val_accuracy"])        # {"val_accuracy": ["0102-dcgan"]}
    compare.differing_params([store.get_run(r) for r in run_ids])
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.store.store import RunStore

# Distinct colours (Tableau 10, then Plotly's D3 extras) for up to 16 compared runs.
PALETTE = (
    "#4E79A7",
    "#F28E2B",
    "#E15759",
    "#76B7B2",
    "#59A14F",
    "#EDC948",
    "#B07AA1",
    "#FF9DA7",
    "#9C755F",
    "#BAB0AC",
    "#17BECF",
    "#BCBD22",
    "#8C564B",
    "#E377C2",
    "#7F7F7F",
    "#1F77B4",
)
# What the x axis of a compare chart can be: global step, epoch, or seconds since the run started.
X_AXES = ("step", "epoch", "time")
X_TITLES = {"step": "step", "epoch": "epoch", "time": "seconds since the run started"}
# Side-by-side GAN samples wrap after this many columns (each stays large enough to read).
SAMPLE_COLUMNS = 3
# Metrics drawn first when a comparison opens: an accuracy or score, then a loss.
_PREFERRED = (
    ("val_accuracy", "accuracy", "test_accuracy", "fid_cls", "kid_cls"),
    ("val_loss", "loss", "g_loss", "d_loss", "test_loss"),
)
# Config fields that identify a run rather than set how it trains.
_NOT_HYPERPARAMETERS = {"run_id", "data", "extensions"}  # bookkeeping: data summary, resume history


def run_colors(run_ids: Iterable[str]) -> dict[str, str]:
    """One distinct colour per run, by position (the same run keeps its colour on every chart)."""
    return {run_id: PALETTE[index % len(PALETTE)] for index, run_id in enumerate(run_ids)}


def metric_table(
    store: RunStore, run_id: str, scope: str | None = "epoch", started: float | None = None
) -> dict[str, list[Any]]:
    """A run's metrics pivoted into columns, with ``time`` in seconds since the run started.

    Args:
        store: the run store.
        run_id: the run.
        scope: ``epoch``, ``step``, or None for both (per-step training metrics and per-epoch
            validation metrics on one step axis; an epoch's value wins at the step it ends).
        started: when the run started (``started_ts``); the first metric's time when None.

    Returns:
        ``{"step": [...], "epoch": [...], "time": [...], name: [...]}`` (a metric missing at a
        step is None), ordered by step.
    """
    by_step: dict[int, dict[str, Any]] = {}
    names: list[str] = []
    rows = sorted(store.metrics(run_id, scope=scope), key=lambda row: (row["step"], row["scope"] == "epoch"))
    for row in rows:
        entry = by_step.setdefault(row["step"], {"epoch": row["epoch"], "time": row["time"]})
        entry[row["name"]] = row["value"]
        entry["time"] = max(entry["time"], row["time"])
        if row["name"] not in names:
            names.append(row["name"])
    steps = sorted(by_step)
    times = [by_step[step]["time"] for step in steps]
    origin = started if started is not None else (min(times) if times else 0.0)
    table: dict[str, list[Any]] = {
        "step": steps,
        "epoch": [by_step[step]["epoch"] for step in steps],
        "time": relative_times(times, origin),
    }
    for name in names:
        table[name] = [by_step[step].get(name) for step in steps]
    return table


def relative_times(times: Sequence[float], origin: float) -> list[float]:
    """Wall-clock timestamps as seconds since ``origin`` (never negative), rounded to 0.01 s."""
    return [round(max(0.0, float(moment) - origin), 2) for moment in times]


def metric_names(tables: Mapping[str, Mapping[str, Sequence[Any]]]) -> list[str]:
    """Every metric any of the tables has, sorted (not the step/epoch/time columns)."""
    return sorted({name for table in tables.values() for name in table if name not in X_AXES})


def default_metrics(names: Sequence[str]) -> list[str]:
    """The metrics a comparison opens with: an accuracy or score and a loss, when present."""
    chosen = [next((name for name in group if name in names), None) for group in _PREFERRED]
    chosen = [name for name in chosen if name is not None]
    return chosen or list(names[:1])


def default_final(names: Sequence[str]) -> str:
    """The final metric a parallel-coordinates view opens with: a test score before a validation one."""
    preferred = ("test_accuracy", "fid_cls", "val_accuracy", "kid_cls", "test_loss", "val_loss", "loss")
    return next((name for name in preferred if name in names), names[0])


def chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    """``items`` in rows of at most ``size`` (a grid that wraps)."""
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def sample_caption(run: Mapping[str, Any], epoch: int) -> str:
    """Markdown naming a GAN sample grid: run id in bold, then model, dataset and epoch."""
    return f"**{run['run_id']}**  \n{run['model']} on {run['dataset']} · epoch {epoch}"


def missing(
    tables: Mapping[str, Mapping[str, Sequence[Any]]], metrics: Sequence[str]
) -> dict[str, list[str]]:
    """The compared runs that lack each metric (no column, or only empty values).

    Returns:
        ``{metric: [run_id, ...]}`` for the metrics some run lacks; ``{}`` when every run has all.
    """
    found = {}
    for metric in metrics:
        lacking = [
            run_id
            for run_id, table in tables.items()
            if not any(_number(value) is not None for value in table.get(metric) or [])
        ]
        if lacking:
            found[metric] = lacking
    return found


def missing_caption(lacking: Mapping[str, Sequence[str]]) -> str | None:
    """One sentence naming the runs each chart leaves out, or None when none is left out."""
    if not lacking:
        return None
    parts = [
        f"{', '.join(run_ids)} {'has' if len(run_ids) == 1 else 'have'} no {metric}"
        for metric, run_ids in lacking.items()
    ]
    return "Not drawn: " + "; ".join(parts) + "."


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"optimizer.lr": 0.001, ...}`` (lists kept as text)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ", ".join(str(item) for item in value)
        else:
            flat[name] = value
    return flat


def differing_params(runs: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The hyperparameters whose values differ among runs, as a table.

    Args:
        runs: run records (with ``run_id``, ``model``, ``dataset`` and ``config``).

    Returns:
        ``(names, rows)``: the differing config fields (sorted; a field one run lacks counts as
        differing), and one row per run: ``{"run": run_id, name: value or None, ...}``.
    """
    flats = [
        {
            key: value
            for key, value in flatten_config(run.get("config") or {}).items()
            if key.split(".")[0] not in _NOT_HYPERPARAMETERS
        }
        for run in runs
    ]
    keys = sorted({key for flat in flats for key in flat})
    names = [key for key in keys if len({repr(flat.get(key)) for flat in flats}) > 1]
    rows = [
        {"run": run["run_id"], **{name: flat.get(name) for name in names}}
        for run, flat in zip(runs, flats, strict=True)
    ]
    return names, rows


def final_metrics(run: Mapping[str, Any], latest: Mapping[str, Any] | None = None) -> dict[str, float]:
    """A run's final numbers: its recorded final metrics (test accuracy, GAN scores, ...) over the
    last value of each epoch metric (``latest``, from ``RunStore.latest_metrics``)."""
    values = {}
    for source in (latest or {}, run.get("metrics") or {}):
        values.update({name: _number(value) for name, value in source.items() if _number(value) is not None})
    return values


def parallel_dimensions(
    runs: Sequence[Mapping[str, Any]], finals: Mapping[str, Mapping[str, float]], metric: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Axes for a parallel-coordinates view of config fields against one final metric.

    Args:
        runs: run records (the runs the table currently shows).
        finals: ``{run_id: final_metrics(...)}``.
        metric: the metric of the last axis.

    Returns:
        ``(dimensions, left_out)``: plotly ``Parcoords`` dimensions (one per config field that
        differs among the runs with the metric, text fields as ticks, then the metric), and the
        runs left out because they lack the metric. No dimensions when no run has it.
    """
    kept = [run for run in runs if metric in finals.get(run["run_id"], {})]
    left_out = [run["run_id"] for run in runs if run not in kept]
    if not kept:
        return [], left_out
    names, rows = differing_params(kept)
    dimensions = []
    for name in names:
        values = [row[name] for row in rows]
        if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
            dimensions.append({"label": name, "values": [float(value) for value in values]})
        else:
            texts = sorted({str(value) for value in values})
            dimensions.append(
                {
                    "label": name,
                    "values": [texts.index(str(value)) for value in values],
                    "tickvals": list(range(len(texts))),
                    "ticktext": texts,
                }
            )
    dimensions.append({"label": metric, "values": [finals[run["run_id"]][metric] for run in kept]})
    return dimensions, left_out


# ---- durations -------------------------------------------------------------------------------------


def training_seconds(store: RunStore, run_id: str) -> float | None:
    """Seconds a run spent training: the sum of its recorded epochs' ``epoch_seconds``.

    Epochs are timed by the trainer's callback from the start to the end of each epoch, so
    queueing, loading, compiling, final scoring and the gaps between a stop and a resume do not
    count, and a resumed run adds its new epochs to the old ones. None before the first epoch ends.
    """
    seconds = [
        row["value"]
        for row in store.metrics(run_id, scope="epoch")
        if row["name"] == "epoch_seconds" and _number(row["value"]) is not None
    ]
    return float(sum(seconds)) if seconds else None


def wall_seconds(run: Mapping[str, Any], now: float | None = None) -> float | None:
    """Seconds from a run's creation to its end (to now for a run not finished): queue time,
    loading, training, scoring and any pause before a resume."""
    created = run.get("created_ts")
    if created is None:
        return None
    end = run.get("finished_ts") or (now if now is not None else time.time())
    return max(0.0, end - created)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
