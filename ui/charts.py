"""Plotly figures built from engine results. Streamlit-free, so they can be checked in tests.

Every text that comes from a file or a run (column names, class labels, category values, run names) goes through
`chart_text`: plotly reads `<a href>` and other tags in titles, ticks, legends and hover labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ui.tables import format_interval, metric_label
from ui.text import chart_text
from workbench import compare
from workbench.compare import MetricsComparison
from workbench.store import EpochMetrics, Run

PALETTE = qualitative.Plotly
BEST_STYLE = "background-color: #dcfce7; font-weight: 600"
BASELINE_STYLE = "color: #6b7280; font-style: italic"
LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "legend": {"orientation": "h", "y": -0.2}}


def histogram(column: Mapping[str, Any]) -> go.Figure:
    """A profile column's histogram: numeric/datetime bins by edges, categories by label."""
    hist, name = column["histogram"], chart_text(column["name"])
    if "edges" in hist:
        edges = hist["edges"]
        if isinstance(edges[0], str):  # datetime bins: labelled by their start
            fig = go.Figure(go.Bar(x=edges[:-1], y=hist["counts"], marker_color="#2563eb"))
        else:
            centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
            widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
            fig = go.Figure(go.Bar(x=centres, y=hist["counts"], width=widths, marker_color="#2563eb"))
    else:
        fig = go.Figure(go.Bar(x=[chart_text(label) for label in hist["labels"]], y=hist["counts"],
                               marker_color="#2563eb"))
        fig.update_xaxes(type="category")
        if column.get("distinct", 0) > len(hist["labels"]):
            fig.update_layout(title=f"{name}: the {len(hist['labels'])} most common of {column['distinct']:,} values")
    fig.update_layout(**LAYOUT, xaxis_title=name, yaxis_title="rows", bargap=0.05)
    if not fig.layout.title.text:
        fig.update_layout(title=name)
    return fig


def axis_title(metric: str, unit: str, higher_is_better: bool) -> str:
    """'RMSE of price, lower is better': the metric, what it is measured in, and which way is better."""
    measured = f" of {unit}" if unit else ""
    return f"{metric_label(metric)}{measured}, {'higher' if higher_is_better else 'lower'} is better"


def learning_curves(curves: pd.DataFrame) -> go.Figure:
    """One panel per shared axis (see compare.learning_curves: a metric in one unit), one colour per run; dotted
    training, solid validation. Runs whose numbers cannot share an axis (RMSE of different targets) get their own
    panels; every y axis names its metric, its unit and its direction."""
    panels = list(curves.groupby(["metric", "unit", "higher_is_better"], sort=False).groups)
    panels.sort(key=lambda panel: panel[0] not in ("log_loss", "rmse"))  # losses first, then the other metrics
    columns = min(len(panels), 2)
    rows = -(-len(panels) // columns)
    titles = [chart_text(f"{'Validation ' if panel[0] not in ('log_loss', 'rmse') else ''}"
                         f"{metric_label(panel[0])}{f' · {panel[1]}' if panel[1] else ''}") for panel in panels]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.1,
                        vertical_spacing=0.25 / rows)
    colours = {run: PALETTE[i % len(PALETTE)] for i, run in enumerate(curves["run"].unique())}
    shown_in_legend: set[tuple[str, str]] = set()
    for index, (metric, unit, higher) in enumerate(panels):
        row, col = index // columns + 1, index % columns + 1
        part = curves[(curves["metric"] == metric) & (curves["unit"] == unit)]
        for (run, split), line in part.groupby(["run", "split"], sort=False):
            fig.add_trace(
                go.Scatter(x=line["epoch"], y=line["value"], mode="lines+markers" if len(line) < 30 else "lines",
                           name=chart_text(f"{run} · {split}"), legendgroup=run,
                           showlegend=(run, split) not in shown_in_legend,
                           line={"color": colours[run], "dash": "dot" if split == "training" else "solid"}),
                row=row, col=col,
            )
            shown_in_legend.add((run, split))
        fig.update_yaxes(title_text=chart_text(axis_title(metric, unit, higher)), row=row, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(**LAYOUT, height=180 + 320 * rows)
    fig.update_layout(legend={"y": -0.1 - 0.15 / rows})
    return fig


def metric_bars(table: pd.DataFrame, metric: str, baseline_rows: list[str],
                intervals: Mapping[str, Mapping[str, tuple[float, float]]] | None = None) -> go.Figure:
    """One bar per run for a test metric, with its 95% interval as an error bar where it has one; baselines in grey."""
    values = table[metric].dropna()
    colours = ["#9ca3af" if label in baseline_rows else PALETTE[i % len(PALETTE)]
               for i, label in enumerate(values.index)]
    bounds = [(intervals or {}).get(label, {}).get(metric) for label in values.index]
    error_y = None
    if any(bounds):
        # A bar without an interval (a baseline, an older run) gets no whisker: zero on both sides.
        error_y = {"type": "data", "symmetric": False, "color": "#374151", "thickness": 1.5, "width": 6,
                   "array": [b[1] - v if b else 0 for v, b in zip(values, bounds, strict=True)],
                   "arrayminus": [v - b[0] if b else 0 for v, b in zip(values, bounds, strict=True)]}
    fig = go.Figure(go.Bar(x=[chart_text(label) for label in values.index], y=values.to_numpy(), marker_color=colours,
                           text=[f"{v:.4f}" for v in values],
                           # inside the bar when whiskers stand on top of it: outside, the two overlap
                           textposition="inside" if error_y else "outside", error_y=error_y))
    fig.update_layout(**LAYOUT, title=f"Test {metric_label(metric)}", yaxis_title=metric_label(metric), height=380)
    return fig


def parallel_coordinates(frame: pd.DataFrame, metric: str, higher_is_better: bool) -> go.Figure:
    """Hyperparameters (one axis each) against the test metric (the last axis and the colour)."""
    dimensions = []
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column):
            dimensions.append({"label": chart_text(name), "values": column.to_numpy()})
        else:  # text settings become evenly spaced positions with their labels as ticks
            labels = sorted(column.unique())
            codes = {label: i for i, label in enumerate(labels)}
            dimensions.append({"label": chart_text(name), "values": column.map(codes).to_numpy(),
                               "tickvals": list(range(len(labels))), "ticktext": [chart_text(t) for t in labels]})
    scale = "Viridis" if higher_is_better else "Viridis_r"
    fig = go.Figure(go.Parcoords(line={"color": frame[metric].to_numpy(), "colorscale": scale, "showscale": True},
                                 dimensions=dimensions))
    fig.update_layout(margin={"l": 60, "r": 60, "t": 60, "b": 20}, height=420)
    return fig


def live_curves(epochs: Sequence[EpochMetrics], metric_name: str = "metric") -> go.Figure:
    """One run's training and validation loss, and its validation metric, as the epochs come in."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", chart_text(f"Validation {metric_name}")))
    x = [e.epoch for e in epochs]
    for name, values, col, colour in (
        ("training loss", [e.train_loss for e in epochs], 1, PALETTE[0]),
        ("validation loss", [e.val_loss for e in epochs], 1, PALETTE[1]),
        (f"validation {metric_name}", [e.val_metric for e in epochs], 2, PALETTE[2]),
    ):
        if any(v is not None for v in values):
            fig.add_trace(go.Scatter(x=x, y=values, name=name, mode="lines+markers", line={"color": colour}),
                          row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(**LAYOUT, height=320)
    fig.update_layout(legend={"y": -0.35})
    return fig


def highlight_best(scores: MetricsComparison) -> Styler:
    """The metrics table, each score with its 95% interval ('0.8420 (0.81-0.87)', the point alone where a run has
    none), the best run per metric in green and baseline rows in grey."""
    def style_column(column: pd.Series) -> list[str]:
        best = set(scores.best.get(column.name, []))
        return [BEST_STYLE if label in best else BASELINE_STYLE if label in scores.baseline_rows else ""
                for label in column.index]

    shown = pd.DataFrame({metric: [format_interval(value, *scores.intervals.get(label, {}).get(metric, (None, None)))
                                   for label, value in scores.table[metric].items()]
                          for metric in scores.table.columns}, index=scores.table.index)
    return (shown.style.apply(style_column)
            .relabel_index([metric_label(m) for m in scores.table.columns], axis="columns"))


def class_probabilities(probabilities: Mapping[str, float]) -> go.Figure:
    """How sure the model is about each class for one row."""
    labels = sorted(probabilities, key=probabilities.get, reverse=True)
    fig = go.Figure(go.Bar(x=[probabilities[k] for k in labels], y=[chart_text(k) for k in labels], orientation="h",
                           marker_color=PALETTE[0],
                           text=[f"{probabilities[k]:.1%}" for k in labels], textposition="auto"))
    fig.update_layout(**LAYOUT, title="Probability of each class", xaxis={"range": [0, 1], "tickformat": ".0%"},
                      yaxis={"autorange": "reversed", "type": "category"}, height=120 + 30 * len(labels))
    return fig


def confusion_matrices(matrices: Sequence[tuple[str, list[str], list[list[int]]]]) -> go.Figure:
    """Confusion matrices side by side, as shares of each actual class so runs compare at a glance."""
    fig = make_subplots(rows=1, cols=len(matrices), subplot_titles=[chart_text(name) for name, _, _ in matrices],
                        horizontal_spacing=0.08)
    for i, (_, classes, counts) in enumerate(matrices, start=1):
        labels = [chart_text(label) for label in classes]
        totals = [max(sum(row), 1) for row in counts]
        shares = [[c / total for c in row] for row, total in zip(counts, totals, strict=True)]
        text = [[f"{c:,}<br>{s:.0%}" for c, s in zip(row, srow, strict=True)] for row, srow in zip(counts, shares, strict=True)]
        fig.add_trace(go.Heatmap(z=shares, x=labels, y=labels, text=text, texttemplate="%{text}", zmin=0, zmax=1,
                                 colorscale="Blues", showscale=False,
                                 hovertemplate="actual %{y}<br>predicted %{x}<br>%{text}<extra></extra>"),
                      row=1, col=i)
        # Category axes: class labels like 0/1 must not become a numeric scale.
        fig.update_xaxes(title_text="predicted", type="category", row=1, col=i)
        fig.update_yaxes(title_text="actual" if i == 1 else None, type="category", autorange="reversed", row=1, col=i)
    fig.update_layout(**LAYOUT, height=360 + 12 * max(len(m[1]) for m in matrices), title="Confusion matrices (test)")
    return fig


def overlaid_curves(points: pd.DataFrame, x: str, y: str, title: str, diagonal: bool) -> go.Figure:
    """ROC (with the chance diagonal) or precision-recall curves, one line per run."""
    fig = go.Figure()
    for i, (run, part) in enumerate(points.groupby("run", sort=False)):
        fig.add_trace(go.Scatter(x=part[x], y=part[y], mode="lines", name=chart_text(run),
                                 line={"color": PALETTE[i % len(PALETTE)]}))
    if diagonal:
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                 line={"color": "#9ca3af", "dash": "dash"}))
    labels = {"fpr": "false positive rate", "tpr": "true positive rate"}
    fig.update_layout(**LAYOUT, title=title, xaxis_title=labels.get(x, x), yaxis_title=labels.get(y, y),
                      xaxis={"range": [0, 1]}, yaxis={"range": [0, 1.02]}, height=420)
    return fig


def predicted_vs_actual(points: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for i, (run, part) in enumerate(points.groupby("run", sort=False)):
        fig.add_trace(go.Scattergl(x=part["actual"], y=part["predicted"], mode="markers", name=chart_text(run), opacity=0.6,
                                   marker={"color": PALETTE[i % len(PALETTE)], "size": 5}))
    low, high = points[["actual", "predicted"]].min().min(), points[["actual", "predicted"]].max().max()
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="perfect",
                             line={"color": "#9ca3af", "dash": "dash"}))
    fig.update_layout(**LAYOUT, title="Predicted vs actual (test)", xaxis_title="actual", yaxis_title="predicted",
                      height=420)
    return fig


def residuals(points: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for i, (run, part) in enumerate(points.groupby("run", sort=False)):
        fig.add_trace(go.Scattergl(x=part["predicted"], y=part["residual"], mode="markers", name=chart_text(run), opacity=0.6,
                                   marker={"color": PALETTE[i % len(PALETTE)], "size": 5}))
    fig.add_hline(y=0, line={"color": "#9ca3af", "dash": "dash"})
    fig.update_layout(**LAYOUT, title="Residuals (actual − predicted, test)", xaxis_title="predicted",
                      yaxis_title="residual", height=420)
    return fig


def diagnostics(runs: Sequence[Run], matrices_per_row: int = 3) -> list[go.Figure]:
    """What each run's test predictions look like: confusion matrices and ROC/PR curves for classifiers,
    predicted-vs-actual and residuals for regressors. Empty when no run has test predictions."""
    figures = []
    matrices = compare.confusion_matrices(runs)
    for start in range(0, len(matrices), matrices_per_row):
        figures.append(confusion_matrices(matrices[start:start + matrices_per_row]))
    roc, pr = compare.roc_curves(runs), compare.pr_curves(runs)
    if not roc.empty:
        figures.append(overlaid_curves(roc, "fpr", "tpr", "ROC curves (test)", diagonal=True))
    if not pr.empty:
        figures.append(overlaid_curves(pr, "recall", "precision", "Precision-recall curves (test)", diagonal=False))
    points = compare.regression_points(runs)
    if not points.empty:
        figures += [predicted_vs_actual(points), residuals(points)]
    return figures


TRIAL_COLOURS = {"complete": "#2563eb", "pruned": "#9ca3af", "fail": "#dc2626", "running": "#f59e0b"}


def sweep_history(trials: pd.DataFrame, best_so_far: Sequence[tuple[int, float]], metric: str) -> go.Figure:
    """Every trial as a point (its validation score, coloured by how it ended) and the best score so far as a step
    line. `trials`: columns number, state, value (NaN for a trial with no score yet)."""
    fig = go.Figure()
    for state, colour in TRIAL_COLOURS.items():
        shown = trials[(trials["state"] == state) & trials["value"].notna()]
        if not shown.empty:
            fig.add_trace(go.Scatter(x=shown["number"], y=shown["value"], mode="markers", name=state,
                                     marker={"color": colour, "size": 9}))
    if best_so_far:
        numbers, values = zip(*best_so_far, strict=True)
        fig.add_trace(go.Scatter(x=list(numbers), y=list(values), mode="lines", line={"shape": "hv", "color": "#111827"},
                                 name="best so far"))
    fig.update_layout(**LAYOUT, title=f"Validation {metric_label(metric)} of each trial", height=360,
                      xaxis_title="trial", yaxis_title=metric_label(metric))
    return fig


def importances(values: Mapping[str, float], labels: Mapping[str, str]) -> go.Figure:
    """How much each searched setting mattered to the score (Optuna's fANOVA importance; they add up to 1)."""
    ordered = sorted(values.items(), key=lambda item: item[1])
    fig = go.Figure(go.Bar(x=[v for _, v in ordered], y=[chart_text(labels.get(n, n)) for n, _ in ordered],
                           orientation="h", marker_color=PALETTE[0]))
    fig.update_layout(**LAYOUT, title="Which settings mattered", xaxis_title="importance",
                      height=120 + 28 * len(ordered))
    return fig


def importance_bars(explanation: Any, top: int = 20) -> go.Figure:
    """Permutation importance of each original column, largest at the top, with error bars: ± the spread over
    shuffles for a run, the 95% interval of the mean for a group."""
    rows = explanation.importance[:top][::-1]
    grouped = any(r.low is not None and r.high is not None for r in rows)
    error_x = ({"type": "data", "symmetric": False, "array": [(r.high or r.importance) - r.importance for r in rows],
                "arrayminus": [r.importance - (r.low or r.importance) for r in rows]} if grouped else
               {"type": "data", "array": [r.std for r in rows]})
    fig = go.Figure(go.Bar(x=[r.importance for r in rows], y=[chart_text(r.column) for r in rows], orientation="h",
                           marker_color=PALETTE[0], error_x={**error_x, "color": "#374151", "thickness": 1.5}))
    loss = "accuracy points lost" if explanation.metric != "rmse" else "RMSE added"
    fig.update_layout(**LAYOUT, title="What the model relies on: its score when a column is shuffled",
                      xaxis_title=f"{loss} when the column is shuffled", height=140 + 26 * len(rows))
    if explanation.metric != "rmse":
        fig.update_xaxes(tickformat=".1%")
    return fig


def partial_dependence(column: str, curve: Mapping[str, Any], target: str) -> go.Figure:
    """How the prediction moves as one column changes, every other column as it is in the test rows."""
    categorical = curve.get("kind") == "categorical"
    grid = [chart_text(str(g)) for g in curve["grid"]] if categorical else curve["grid"]
    fig = go.Figure()
    for i, (name, values) in enumerate(curve["curves"].items()):
        label = chart_text(str(name)) if name != "prediction" else chart_text(target)
        if categorical:
            fig.add_trace(go.Bar(x=grid, y=values, name=label, marker_color=PALETTE[i % len(PALETTE)]))
        else:
            fig.add_trace(go.Scatter(x=grid, y=values, mode="lines+markers", name=label,
                                     line={"color": PALETTE[i % len(PALETTE)]}))
    fig.update_layout(**LAYOUT, title=chart_text(column), xaxis_title=chart_text(column), height=320,
                      yaxis_title="predicted " + ("value" if list(curve["curves"]) == ["prediction"]
                                                  else "probability"), showlegend=len(curve["curves"]) > 1)
    return fig


def contributions(values: pd.Series, output: str) -> go.Figure:
    """One row's contribution of each column (largest in size at the top): green pushes the prediction up, red
    down, from the baseline to the prediction."""
    ordered = values.reindex(values.abs().sort_values().index)
    fig = go.Figure(go.Bar(x=ordered.to_numpy(), y=[chart_text(c) for c in ordered.index], orientation="h",
                           marker_color=["#16a34a" if v >= 0 else "#dc2626" for v in ordered],
                           text=[f"{v:+.3g}" for v in ordered], textposition="outside"))
    fig.update_layout(**LAYOUT, title="What moved this prediction", xaxis_title=f"change in {chart_text(output)}",
                      height=120 + 26 * len(ordered))
    return fig


def prediction_requests(table: pd.DataFrame, period: str) -> go.Figure:
    """Rows predicted per hour or day, stacked by where they came from (Predict, the CLI, the API)."""
    step = pd.Timedelta(hours=1) if period == "hour" else pd.Timedelta(days=1)
    step_ms = step.total_seconds() * 1000
    fig = go.Figure()
    for i, (source, part) in enumerate(table.groupby("source", sort=True)):
        fig.add_trace(go.Bar(x=part["period"], y=part["rows"], name=chart_text(source), width=0.8 * step_ms,
                             marker_color=PALETTE[i % len(PALETTE)], customdata=part["batches"],
                             hovertemplate="%{x}<br>%{y:,} rows in %{customdata:,} batches<extra></extra>"))
    # Whole hours or days on the axis, one period either side: left to itself, plotly zooms a single bar down to
    # milliseconds.
    xaxis: dict = {"type": "date", "tickformat": "%b %d, %H:00" if period == "hour" else "%b %d",
                   "hoverformat": "%b %d, %H:00" if period == "hour" else "%b %d, %Y"}
    if not table.empty:
        first, last = table["period"].min(), table["period"].max()
        xaxis["range"] = [first - step, last + step]
        if (last - first) / step <= 12:
            xaxis["dtick"] = step_ms
    fig.update_layout(**LAYOUT, barmode="stack", title=f"Rows predicted per {period}", yaxis_title="rows",
                      height=300, legend_title_text="from", xaxis=xaxis)
    return fig


def shares(labels: Sequence[str], reference: Sequence[float], current: Sequence[float], title: str,
           reference_name: str, current_name: str) -> go.Figure:
    """Two distributions on the same bins, side by side as shares of their rows."""
    names = [chart_text(label) for label in labels]
    fig = go.Figure([go.Bar(x=names, y=list(reference), name=chart_text(reference_name), marker_color="#9ca3af"),
                     go.Bar(x=names, y=list(current), name=chart_text(current_name), marker_color=PALETTE[0])])
    fig.update_layout(**LAYOUT, barmode="group", title=chart_text(title), yaxis={"tickformat": ".0%"}, height=320,
                      xaxis={"type": "category"})
    return fig
