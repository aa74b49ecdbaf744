"""Plotly figures shared by the dashboard pages and the notebooks.

Each builder takes plain Python/numpy data (what ``core`` returns) and returns a
``plotly.graph_objects.Figure``; none of them reads files or the run store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.store.compare import X_TITLES, run_colors

_MARGIN = {"l": 10, "r": 10, "t": 90, "b": 10}
# Legends sit above the plot area, under the title, so they never cover an axis title.
_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0}
_SPLIT_COLORS = {"train": "#4C78A8", "test": "#F58518"}
_CHANNEL_COLORS = {"gray": "#555555", "red": "#E45756", "green": "#54A24B", "blue": "#4C78A8"}


def smooth(values: Sequence[float | None], weight: float) -> list[float | None]:
    """Exponential moving average with bias correction (TensorBoard's smoothing).

    Args:
        values: a series; ``None`` or NaN entries stay ``None`` and do not move the average.
        weight: 0 (no smoothing) to <1 (heavy smoothing).

    Returns:
        The smoothed series, same length.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out: list[float | None] = []
    average, count = 0.0, 0
    for value in values:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            out.append(None)
            continue
        count += 1
        average = weight * average + (1.0 - weight) * float(value)
        out.append(average / (1.0 - weight**count))
    return out


def _epoch_axis(xs: Sequence[Any]) -> dict[str, Any]:
    """Whole-number ticks for an epoch axis (no "1.5 epochs")."""
    values = [x for x in xs if x is not None]
    span = (max(values) - min(values)) if values else 0
    return {"title": "epoch", "dtick": max(1, math.ceil(span / 10)), "tick0": 0}


def _layout(figure: go.Figure, title: str | None = None, height: int = 320, **layout: Any) -> go.Figure:
    figure.update_layout(
        title={"text": title, "y": 0.98, "yanchor": "top", "yref": "container"} if title else None,
        height=height,
        margin=_MARGIN,
        legend=_LEGEND,
        **layout,
    )
    return figure


def class_distribution(counts: Mapping[str, Sequence[int]], class_names: Sequence[str]) -> go.Figure:
    """Grouped bars: images per class in each split.

    Args:
        counts: ``{"train": [n_class0, ...], "test": [...]}``.
        class_names: the class names, in class-index order.
    """
    figure = go.Figure()
    for split, values in counts.items():
        figure.add_bar(x=list(class_names), y=list(values), name=split, marker_color=_SPLIT_COLORS.get(split))
    return _layout(
        figure, "Images per class", barmode="group", xaxis={"type": "category"}, yaxis_title="images"
    )


def pixel_histogram(histograms: Mapping[str, Sequence[float]]) -> go.Figure:
    """Pixel-intensity histogram, one line per channel.

    Args:
        histograms: ``{"gray": counts}`` or ``{"red": ..., "green": ..., "blue": ...}``, each
            256 counts (or fractions) for the values 0..255.
    """
    figure = go.Figure()
    for channel, values in histograms.items():
        figure.add_scatter(
            x=list(range(len(values))),
            y=list(values),
            mode="lines",
            name=channel,
            line={"color": _CHANNEL_COLORS.get(channel)},
            fill="tozeroy",
        )
    return _layout(figure, "Pixel intensities", xaxis_title="value (0-255)", yaxis_title="fraction of pixels")


def curves(
    table: Mapping[str, Sequence[Any]],
    names: Sequence[str],
    *,
    x: str = "step",
    smoothing: float = 0.0,
    title: str | None = None,
    height: int = 300,
    y_title: str | None = None,
) -> go.Figure:
    """Metric curves of one run (a ``RunStore.metric_table``), one line per metric.

    Args:
        table: columns ``step``, ``epoch`` and one per metric.
        names: the metrics to draw (missing ones are skipped).
        x: the x column, ``step`` or ``epoch``.
        smoothing: EMA weight in [0, 1).
        title: figure title.
        height: pixels.
        y_title: the y axis title (default: the title).
    """
    figure = go.Figure()
    xs = list(table.get(x) or [])
    for name in names:
        if name not in table:
            continue
        figure.add_scatter(
            x=xs,
            y=smooth(list(table[name]), smoothing),
            mode="lines+markers" if len(xs) < 30 else "lines",
            name=name,
            connectgaps=True,
        )
    return _layout(
        figure,
        title,
        height=height,
        xaxis=_epoch_axis(xs) if x == "epoch" else {"title": x},
        yaxis_title=y_title or title,
    )


def overlay(
    tables: Mapping[str, Mapping[str, Sequence[Any]]],
    name: str,
    *,
    x: str = "step",
    smoothing: float = 0.0,
    height: int = 360,
) -> go.Figure:
    """One metric of several runs, one line per run (see :func:`compare_runs`).

    Args:
        tables: ``{run_id: metric_table}``.
        name: the metric.
        x: ``step``, ``epoch`` or ``time``.
        smoothing: EMA weight in [0, 1).
        height: pixels.
    """
    return compare_runs(tables, [name], x=x, smoothing=smoothing, height=height)


def compare_runs(
    tables: Mapping[str, Mapping[str, Sequence[Any]]],
    names: Sequence[str],
    *,
    x: str = "step",
    smoothing: float = 0.0,
    log_y: bool = False,
    colors: Mapping[str, str] | None = None,
    height: int | None = None,
) -> go.Figure:
    """Several metrics of several runs: one subplot per metric, one colour per run.

    With smoothing, each run's smoothed curve is drawn over its raw curve, which stays faint
    behind it (as TensorBoard does). Runs lacking a metric are simply absent from its subplot;
    ``core.store.compare.missing`` names them for a caption.

    Args:
        tables: ``{run_id: metric_table}`` with columns ``step``, ``epoch`` (and ``time``).
        names: the metrics, one subplot each.
        x: ``step``, ``epoch`` or ``time`` (seconds since the run started).
        smoothing: EMA weight in [0, 1).
        log_y: logarithmic y axes.
        colors: ``{run_id: colour}``; ``core.store.compare.run_colors`` when None.
        height: pixels (default: 320 per row of two subplots).
    """

    colors = colors or run_colors(tables)
    names = list(names) or ["(no metric)"]
    ncols = 1 if len(names) == 1 else 2
    nrows = math.ceil(len(names) / ncols)
    figure = make_subplots(
        rows=nrows, cols=ncols, subplot_titles=names if len(names) > 1 else None, vertical_spacing=min(0.3, 0.5 / nrows), horizontal_spacing=0.08
    )
    shown_in_legend: set[str] = set()
    for index, name in enumerate(names):
        row, col = index // ncols + 1, index % ncols + 1
        every_x: list[Any] = []
        for run_id, table in tables.items():
            if name not in table:
                continue
            xs = list(table.get(x) or [])
            every_x += xs
            raw = list(table[name])
            mode = "lines+markers" if len(xs) < 30 else "lines"
            color = colors.get(run_id)
            if smoothing > 0:
                figure.add_scatter(
                    x=xs, y=raw, mode="lines", line={"color": color, "width": 1}, opacity=0.25,
                    name=f"{run_id} (raw)", legendgroup=run_id, showlegend=False, connectgaps=True,
                    hoverinfo="skip", row=row, col=col,
                )
            figure.add_scatter(
                x=xs, y=smooth(raw, smoothing), mode=mode, line={"color": color}, marker={"color": color},
                name=run_id, legendgroup=run_id, showlegend=run_id not in shown_in_legend, connectgaps=True,
                row=row, col=col,
            )
            shown_in_legend.add(run_id)
        xaxis = _epoch_axis(every_x) if x == "epoch" else {"title": X_TITLES.get(x, x)}
        figure.update_xaxes(row=row, col=col, **xaxis)
        figure.update_yaxes(row=row, col=col, title=name, type="log" if log_y else "linear")
    title = names[0] if len(names) == 1 else f"{len(names)} metrics"
    if smoothing > 0:
        title += f" (smoothed {smoothing:g}, raw faint)"
    # Title, then the legend (about three run ids a row), then the subplot titles: each gets its
    # own band above the plots so none covers another.
    legend_rows = math.ceil(max(1, len(shown_in_legend)) / 3)
    top = 40 + 24 * legend_rows + 30
    height = height or 320 * nrows + top
    figure = _layout(figure, title, height=height)
    figure.update_layout(
        margin={**_MARGIN, "t": top},
        legend={**_LEGEND, "yref": "container", "y": 1 - 40 / height, "yanchor": "top"},
    )
    return figure


def parallel_coordinates(dimensions: Sequence[Mapping[str, Any]], metric: str, *, height: int = 420) -> go.Figure:
    """Parallel coordinates of run config fields against a final metric, lines coloured by it.

    Args:
        dimensions: from ``core.store.compare.parallel_dimensions`` (the metric's axis last).
        metric: the metric's name (the colour bar's title).
        height: pixels.
    """
    values = list(dimensions[-1]["values"]) if dimensions else []
    figure = go.Figure(
        go.Parcoords(
            dimensions=[dict(dimension) for dimension in dimensions],
            line={"color": values, "colorscale": "Viridis", "showscale": True, "colorbar": {"title": metric}},
            labelside="bottom",
        )
    )
    figure = _layout(figure, f"Config against final {metric} ({len(values)} runs)", height=height)
    figure.update_layout(margin={"l": 60, "r": 40, "t": 90, "b": 70})
    return figure


def confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> go.Figure:
    """Heatmap of a confusion matrix (rows: true class, columns: predicted class), with counts."""
    values = np.asarray(matrix, dtype=np.int64)
    names = [str(name) for name in class_names]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=names,
            y=names,
            colorscale="Blues",
            text=values,
            texttemplate="%{text}",
            hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
            showscale=False,
        )
    )
    side = max(320, 30 * len(names) + 120)
    return _layout(
        figure,
        "Confusion matrix (test)",
        height=side,
        xaxis={"title": "predicted", "type": "category"},
        yaxis={"title": "true", "type": "category", "autorange": "reversed"},
    )


def per_class_accuracy(accuracies: Sequence[float], class_names: Sequence[str]) -> go.Figure:
    """Bars: test accuracy of each class."""
    figure = go.Figure(
        go.Bar(
            x=[str(name) for name in class_names],
            y=list(accuracies),
            marker_color="#4C78A8",
            hovertemplate="%{x}: %{y:.1%}<extra></extra>",
        )
    )
    return _layout(
        figure,
        "Accuracy per class (test)",
        yaxis={"range": [0, 1], "tickformat": ".0%"},
        xaxis={"type": "category"},
    )


def metric_bars(metrics_by_run: Mapping[str, Mapping[str, Any]], name: str) -> go.Figure:
    """Bars: one final metric (e.g. ``fid_cls``) of several runs, runs without it left out."""
    runs = [run for run, metrics in metrics_by_run.items() if isinstance((metrics or {}).get(name), (int, float))]
    figure = go.Figure(
        go.Bar(
            x=runs,
            y=[metrics_by_run[run][name] for run in runs],
            marker_color="#4C78A8",
            hovertemplate="%{x}: %{y:.4g}<extra></extra>",
        )
    )
    return _layout(figure, name, xaxis={"type": "category"})


def top_k(classes: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Horizontal bars of a classifier's top-k classes for one image.

    Args:
        classes: ``[{"class_name": ..., "probability": ...}, ...]``, best first.
    """
    names = [str(entry["class_name"]) for entry in classes][::-1]
    probabilities = [float(entry["probability"]) for entry in classes][::-1]
    figure = go.Figure(
        go.Bar(
            x=probabilities,
            y=names,
            orientation="h",
            marker_color="#54A24B",
            text=[f"{p:.1%}" for p in probabilities],
            textposition="auto",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    return _layout(
        figure,
        "Top classes",
        height=max(200, 40 * len(names) + 80),
        xaxis={"range": [0, 1], "tickformat": ".0%"},
        yaxis={"type": "category"},
    )
