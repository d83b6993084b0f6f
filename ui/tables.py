"""Runs and profiles as display tables (plain-language column names). Data only, except the column settings
that Streamlit needs to show a table's run ids as links to their pages."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from streamlit import column_config

from workbench.groups import format_interval
from workbench.samples import SAMPLES
from workbench.store import Dataset, Run, RunStatus

# Material icons (shipped with Streamlit, so they render without an emoji font) for markdown.
STATUS_ICONS = {RunStatus.QUEUED: ":material/schedule:", RunStatus.RUNNING: ":material/directions_run:",
                RunStatus.SUCCEEDED: ":material/check_circle:", RunStatus.FAILED: ":material/error:",
                RunStatus.DIVERGED: ":material/trending_up:", RunStatus.CANCELLED: ":material/cancel:",
                RunStatus.INTERRUPTED: ":material/warning:", RunStatus.PRUNED: ":material/content_cut:"}
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def settings_summary(params: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> str:
    """The hyperparameters that differ from the model's defaults, e.g. 'epochs=5, lr=0.01'."""
    defaults = defaults or {}
    changed = {k: v for k, v in params.items() if k not in defaults or defaults[k] != v}
    if defaults and not changed:
        return "defaults"
    return ", ".join(f"{k}={format_value(v)}" for k, v in changed.items())


def run_interval_text(run: Run) -> str:
    """The main test score's 95% interval as 'low-high'; empty for a run trained before intervals were kept."""
    bounds = (run.intervals or {}).get("test", {}).get(run.primary_metric or "")
    if not bounds or run.primary_value is None:
        return ""
    return format_interval(run.primary_value, *bounds).partition("(")[2].rstrip(")")


def run_label(run: Run, dataset_names: Mapping[str, str] | None = None) -> str:
    """How a run is named in pickers: id, model, dataset and its main test score."""
    parts = [run.id, run.model]
    if dataset_names and run.dataset_id in dataset_names:
        parts.append(dataset_names[run.dataset_id])
    if run.primary_metric and run.primary_value is not None:
        parts.append(f"{metric_label(run.primary_metric)} {run.primary_value:.4f}")
    elif run.status != RunStatus.SUCCEEDED:
        parts.append(run.status)
    return " · ".join(parts)


def metric_label(name: str) -> str:
    """'roc_auc' -> 'ROC AUC', 'balanced_accuracy' -> 'balanced accuracy'."""
    upper = {"auc", "roc", "pr", "rmse", "mae", "mse", "r2", "f1", "mape"}
    words = [w.upper() if w in upper else w for w in name.split("_")]
    return " ".join(words).replace("R2", "R²")


def run_page_url(run_id: str) -> str:
    """The address of a run's own page, relative to the app's base address (so it works under a path prefix)."""
    return f"run?run={run_id}"


def runs_column_config() -> dict[str, Any]:
    """Column settings for a `runs_frame` table: a link to each run's page."""
    return {"Page": column_config.LinkColumn("Run page", help="The run's own page: its settings, scores, curves "
                                             "and actions", display_text="Open")}


def runs_frame(runs: Sequence[Run], dataset_names: Mapping[str, str],
               defaults: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """One row per run, sortable: numbers stay numbers. Show it with `column_config=runs_column_config()`."""
    defaults = defaults or {}
    return pd.DataFrame(
        {
            "Run": [r.id for r in runs],
            "Page": [run_page_url(r.id) for r in runs],
            "Status": [r.status for r in runs],
            "Dataset": [dataset_names.get(r.dataset_id, r.dataset_id) for r in runs],
            "Target": [r.target for r in runs],
            "Model": [r.model for r in runs],
            # The score and any message come before the long settings text, so they show without scrolling.
            "Test metric": [metric_label(r.primary_metric) if r.primary_metric else "" for r in runs],
            "Test score": [r.primary_value for r in runs],
            "95% interval": [run_interval_text(r) for r in runs],
            "Group": [r.group_id or "" for r in runs],
            "Message": [r.error or "" for r in runs],  # why a run failed, diverged or stopped, in plain words
            # What the user asked for: the params as they ran also hold what was chosen automatically (batch size...).
            "Settings": [settings_summary((r.config or {}).get("params", r.params), defaults.get(r.model)) for r in runs],
            "Duration (s)": [None if r.duration_s is None else round(r.duration_s, 1) for r in runs],
            "Created": [r.created_at for r in runs],
        }
    )


def groups_frame(summaries: Sequence[Any], dataset_names: Mapping[str, str]) -> pd.DataFrame:
    """One row per run group (workbench.groups.GroupSummary): its main test score over the finished repeats."""
    rows = []
    for summary in summaries:
        group, figure = summary.group, summary.metrics.get(summary.primary_metric)
        rows.append({
            "Group": group.id,
            "Dataset": dataset_names.get(group.dataset_id, group.dataset_id),
            "Target": group.target,
            "Model": group.model,
            "Repeats": f"{len(summary.finished)} of {group.n_members}",
            "Test metric": metric_label(summary.primary_metric),
            "Score (95% interval)": format_interval(figure.mean, figure.ci_low, figure.ci_high) if figure else "",
            "Spread": None if figure is None or not math.isfinite(figure.sd) else round(figure.sd, 4),
            "Cost": format_duration(summary.cost_seconds),
            "Created": group.created_at,
        })
    return pd.DataFrame(rows)


def leaderboard_frame(rows: Sequence[Any], metric: str) -> pd.DataFrame:
    """The leaderboard (workbench.evaluation.LeaderboardRow) as a display table."""
    return pd.DataFrame({
        "Rank": [r.rank for r in rows],
        "Model": [r.model for r in rows],
        "Best of it": [f"{r.kind} {r.id}" for r in rows],
        f"Test {metric_label(metric)} (95% interval)": [format_interval(r.mean, r.ci_low, r.ci_high) for r in rows],
        "Tied with best": ["yes" if r.tied_with_best else "no" if r.tied_with_best is False else r.note
                           for r in rows],
        "Cost": [format_duration(r.cost_seconds) for r in rows],
    })


def columns_frame(profile: Mapping[str, Any]) -> pd.DataFrame:
    """The profile's columns: kind, missing, distinct and the main statistics."""
    rows = []
    for col in profile["columns"]:
        stats = col.get("stats") or {}
        top = col.get("top") or []
        rows.append({
            "Column": col["name"],
            "Kind": col["kind"],
            "Missing": col["missing"],
            "Missing %": round(100 * col["missing_share"], 1),
            "Distinct": col["distinct"],
            "Min": _short(stats.get("min")),
            "Median": _short(stats.get("median")),
            "Mean": _short(stats.get("mean")),
            "Max": _short(stats.get("max")),
            "Most common": f"{top[0][0]} ({top[0][1]:,})" if top else "",
        })
    return pd.DataFrame(rows)


def _short(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def likely_target(dataset: Dataset) -> str:
    """A sample's own target, else the last column: where most CSVs keep the outcome."""
    columns = [c["name"] for c in dataset.schema]
    for sample in SAMPLES.values():
        if dataset.name == f"{sample.name} (sample)" and sample.target in columns:
            return sample.target
    return columns[-1]


def progress_text(run: Run, progress: Mapping[str, Any]) -> str:
    """'Epoch 3 of 200 · about 12 s left, up to 6 min if it keeps improving': the likely end from early stopping,
    the longest from every planned epoch."""
    from workbench.timing import about

    text = f"Epoch {progress['epoch']} of {progress['epochs_planned'] or '?'}"
    if progress["eta_s"] is not None:
        likely, longest = progress.get("eta_likely_s") or progress["eta_s"], progress["eta_s"]
        text += f" · {about(likely)} left"
        if about(longest) != about(likely):
            text += f", up to {about(longest).removeprefix('about ')} if it keeps improving"
    if run.cancel_requested:
        text += " · stopping…"
    return text
