"""Comparing runs: metrics side by side with the best marked, the trivial baseline, what settings differ,
whether the runs were scored on the same test rows, and the data behind the comparison charts.

Pure functions over `Run` dataclasses; the pages draw what these return.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workbench.store import Run
from workbench.tasks import Task, baseline_name, higher_is_better, primary_metric

MISSING = "—"
# Where a finished run keeps its test-set curves (written by workbench.metrics).
CONFUSION, ROC, PR = "confusion_matrix", "roc", "pr"


def run_names(runs: Sequence[Run]) -> dict[str, str]:
    """Short names for charts and tables: 'mlp · 3f2a1b'; the full id only when the short one clashes."""
    short = {r.id: f"{r.model} · {r.id[:6]}" for r in runs}
    if len(set(short.values())) < len(short):
        return {r.id: f"{r.model} · {r.id}" for r in runs}
    return short


@dataclass
class MetricsComparison:
    table: pd.DataFrame  # one row per run, then baseline rows; one column per metric
    best: dict[str, list[str]]  # metric -> the row labels of the best run(s); baselines never count
    higher_is_better: dict[str, bool]
    baseline_rows: list[str]
    unscored: list[str]  # runs left out: cancelled or failed before they were scored, as 'mlp · 3f2a1b (cancelled)'
    # row label -> metric -> (low, high): each run's stored 95% interval (test split; none for older runs)
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)


def compare_metrics(runs: Sequence[Run], split: str = "test") -> MetricsComparison:
    """Metrics of `split` side by side, the best run per metric (respecting its direction), and the
    trivial baseline (majority class or mean) once per distinct test set."""
    names = run_names(runs)
    metrics: list[str] = []
    for run in runs:  # the primary metric first, then the rest in the order the engine wrote them
        for name in [run.primary_metric, *run.metrics.get(split, {})]:
            if name and name not in metrics and _is_number(run.metrics.get(split, {}).get(name)):
                metrics.append(name)
    # A run that was cancelled or failed before scoring has no row: a row of blanks says nothing.
    rows = {names[r.id]: {m: _number(r.metrics.get(split, {}).get(m)) for m in metrics} for r in runs
            if r.metrics.get(split)}
    best: dict[str, list[str]] = {}
    for metric in metrics:
        scored = {label: values[metric] for label, values in rows.items() if values[metric] is not None}
        if scored:
            target = max(scored.values()) if higher_is_better(metric) else min(scored.values())
            best[metric] = [label for label, value in scored.items() if math.isclose(value, target, rel_tol=1e-12)]
    baseline_rows = []
    if split == "test":
        for label, values in _baselines(runs, metrics).items():
            rows[label] = values
            baseline_rows.append(label)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=metrics)
    unscored = [f"{names[r.id]} ({r.status})" for r in runs if not r.metrics.get(split)]
    intervals = {names[r.id]: {m: (float(b[0]), float(b[1])) for m, b in (r.intervals or {}).get(split, {}).items()
                               if m in metrics and len(b) == 2} for r in runs if r.metrics.get(split)}
    return MetricsComparison(table, best, {m: higher_is_better(m) for m in metrics}, baseline_rows, unscored,
                             intervals)


def run_scores(run: Run) -> pd.DataFrame:
    """One run's scores: one row per metric, the test and validation figures, the trivial baseline's test figure
    (see `baseline_name`), the metric's direction, and the test figure's 95% interval (test_low, test_high; None
    for a run trained before intervals were kept). Empty when the run was never scored."""
    test, val = run.metrics.get("test") or {}, run.metrics.get("val") or {}
    bounds = (run.intervals or {}).get("test") or {}
    baseline = (run.baseline or {}).get("test") or {}
    metrics = [m for m in dict.fromkeys([run.primary_metric, *test, *val]) if m and (
        _is_number(test.get(m)) or _is_number(val.get(m)))]
    return pd.DataFrame({"test": [_number(test.get(m)) for m in metrics],
                         "validation": [_number(val.get(m)) for m in metrics],
                         "baseline": [_number(baseline.get(m)) for m in metrics],
                         "higher_is_better": [higher_is_better(m) for m in metrics],
                         "test_low": [_bound(bounds, m, 0) for m in metrics],
                         "test_high": [_bound(bounds, m, 1) for m in metrics]},
                        index=pd.Index(metrics, name="metric"))


def _bound(bounds: Mapping[str, Any], metric: str, end: int) -> float | None:
    pair = bounds.get(metric)
    return _number(pair[end]) if isinstance(pair, (list, tuple)) and len(pair) == 2 else None


def _baselines(runs: Sequence[Run], metrics: list[str]) -> dict[str, dict[str, float | None]]:
    groups = groups_by_test_rows(runs)
    out = {}
    for fingerprint, members in groups.items():
        # Any member that finished has the baseline of these test rows; a cancelled or failed one has none.
        run = next((r for r in runs if r.id in members and r.baseline.get("test")), None)
        if run is None:
            continue
        values = run.baseline["test"]
        label = f"Baseline ({baseline_name(run.task)})"
        if len(groups) > 1:
            label += f" · test set {fingerprint[:6]}"
        out[label] = {m: _number(values.get(m)) for m in metrics}
    return out


def groups_by_test_rows(runs: Iterable[Run]) -> dict[str, list[str]]:
    """Run ids grouped by the test rows they were scored on (runs never scored are left out)."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        if run.split_fingerprint:
            groups.setdefault(run.split_fingerprint, []).append(run.id)
    return groups


def same_test_rows(runs: Sequence[Run]) -> bool:
    """True when every scored run was scored on the same test rows, so their metrics compare fairly."""
    return len(groups_by_test_rows(runs)) <= 1


def flat_settings(run: Run) -> dict[str, Any]:
    """Everything that defines a run, one level deep: 'model', 'split.seed', 'learning_rate', ..."""
    config = run.config or {}
    flat: dict[str, Any] = {"model": run.model, "dataset": run.dataset_id, "target": run.target, "task": run.task,
                            "excluded columns": sorted(config.get("exclude") or [])}
    for group in ("split", "prep"):
        for key, value in (config.get(group) or {}).items():
            flat[f"{group}.{key}"] = value
    for key, value in (run.params or config.get("params") or {}).items():
        flat[key] = value
    return flat


def settings_table(run: Run, defaults: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Every hyperparameter of one run as it ran (an automatic batch size as the size it chose), its default, and
    whether the run was set up with something other than the default."""
    defaults = defaults or {}
    configured = (run.config or {}).get("params") or {}
    ran = run.params or configured
    return pd.DataFrame({
        "setting": list(ran),
        "value": [_display(v) for v in ran.values()],
        "default": [_display(defaults[k]) if k in defaults else MISSING for k in ran],
        "changed": [k in configured and (k not in defaults or configured[k] != defaults[k]) for k in ran],
    })


def params_diff(runs: Sequence[Run], only_differing: bool = True) -> pd.DataFrame:
    """The settings that differ between the runs (every setting when `only_differing` is False): one row per
    setting, one column per run."""
    names = run_names(runs)
    settings = [flat_settings(r) for r in runs]
    keys: list[str] = []
    for flat in settings:
        keys += [k for k in flat if k not in keys]
    differing = [k for k in keys if not only_differing or len({_display(flat.get(k, MISSING)) for flat in settings}) > 1]
    return pd.DataFrame(
        {names[r.id]: [_display(flat.get(k, MISSING)) for k in differing] for r, flat in zip(runs, settings, strict=True)},
        index=pd.Index(differing, name="setting"),
    )


def hyperparameter_frame(runs: Sequence[Run], metric: str) -> pd.DataFrame:
    """One row per run: the settings that vary (numbers as numbers, the rest as text) and the test metric.

    The data for a parallel-coordinates chart of hyperparameters against the metric.
    """
    names = run_names(runs)
    settings = [flat_settings(r) for r in runs]
    diff = params_diff(runs)
    frame = pd.DataFrame(index=[names[r.id] for r in runs])
    for key in diff.index:
        values = [flat.get(key) for flat in settings]
        if all(_is_number(v) for v in values):
            frame[key] = [float(v) for v in values]
        else:
            frame[key] = [_display(v) for v in values]
    frame[metric] = [_number(r.metrics.get("test", {}).get(metric)) for r in runs]
    return frame


CURVE_COLUMNS = ["run", "epoch", "split", "value", "metric", "unit", "higher_is_better"]


def learning_curves(runs: Sequence[Run], dataset_names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per-epoch history of every run in long form, in units that runs of one kind share.

    Columns: run, epoch, split ('training' or 'validation'), value, metric, unit, higher_is_better. Rows with the
    same metric and unit can share an axis. Classification: the log loss (the same nats for the networks'
    cross-entropy and a classical model's log loss) and the validation metric. Regression: the RMSE in the
    target's units (unit: the target, and its dataset when two regression targets share a name); a network learns
    a rescaled target and records its loss as MSE on that scale, a classical model records MSE in the target's
    units, so raw losses would differ by the square of the scale."""
    names = run_names(runs)
    units = _target_units(runs, dataset_names or {})
    rows: list[dict[str, Any]] = []
    for run in runs:
        if run.task == Task.REGRESSION:
            rows += _regression_curve(run, names[run.id], units[run.id])
            continue
        metric = run.primary_metric or primary_metric(run.task)
        for e in run.epochs:
            for split, value, name in (("training", e.train_loss, "log_loss"), ("validation", e.val_loss, "log_loss"),
                                       ("validation", e.val_metric, metric)):
                if _is_number(value):
                    rows.append({"run": names[run.id], "epoch": e.epoch, "split": split, "value": float(value),
                                 "metric": name, "unit": "", "higher_is_better": higher_is_better(name)})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def _regression_curve(run: Run, name: str, unit: str) -> list[dict[str, Any]]:
    """Training and validation RMSE in the target's units. Each epoch records the validation loss (MSE on the
    scale the model learned) and the validation RMSE in the target's units on the same predictions, so their
    ratio is the run's target scale, whatever scaling it used (1 for a classical model)."""
    scales = [e.val_metric / math.sqrt(e.val_loss) for e in run.epochs
              if _is_number(e.val_metric) and _is_number(e.val_loss) and e.val_loss > 0]
    scale = statistics.median(scales) if scales else None
    rows = []
    for e in run.epochs:
        values = {"validation": e.val_metric if _is_number(e.val_metric) else None, "training": None}
        if scale is not None:
            if values["validation"] is None and _is_number(e.val_loss) and e.val_loss >= 0:
                values["validation"] = math.sqrt(e.val_loss) * scale
            if _is_number(e.train_loss) and e.train_loss >= 0:
                values["training"] = math.sqrt(e.train_loss) * scale
        rows += [{"run": name, "epoch": e.epoch, "split": split, "value": float(value), "metric": "rmse",
                  "unit": unit, "higher_is_better": False}
                 for split, value in values.items() if value is not None]
    return rows


def _target_units(runs: Sequence[Run], dataset_names: Mapping[str, str]) -> dict[str, str]:
    """The unit of each regression run's RMSE: its target, with the dataset's name when two datasets have a
    target of that name (their units may differ)."""
    regression = [r for r in runs if r.task == Task.REGRESSION]
    datasets_of: dict[str, set[str]] = {}
    for run in regression:
        datasets_of.setdefault(run.target, set()).add(run.dataset_id)
    return {run.id: run.target if len(datasets_of[run.target]) == 1
            else f"{run.target} ({dataset_names.get(run.dataset_id, run.dataset_id)})" for run in regression}


def confusion_matrices(runs: Sequence[Run]) -> list[tuple[str, list[str], list[list[int]]]]:
    """(run name, class labels, counts with actual classes as rows) for each run that has one."""
    names = run_names(runs)
    return [(names[run.id], [str(label) for label in run.curves["labels"]], run.curves[CONFUSION])
            for run in runs if run.curves.get(CONFUSION) and run.curves.get("labels")]


def roc_curves(runs: Sequence[Run]) -> pd.DataFrame:
    """False/true positive rates per run (per class, one-vs-rest, for multiclass), long form."""
    return _class_curves(runs, ROC, "fpr", "tpr")


def pr_curves(runs: Sequence[Run]) -> pd.DataFrame:
    """Recall/precision per run (per class, one-vs-rest, for multiclass), long form."""
    return _class_curves(runs, PR, "recall", "precision")


def regression_points(runs: Sequence[Run]) -> pd.DataFrame:
    """Actual and predicted test values per run, with the residual (actual - predicted)."""
    names = run_names(runs)
    parts = [pd.DataFrame({"run": names[run.id], "actual": run.curves["actual"], "predicted": run.curves["predicted"]})
             for run in runs if run.curves.get("actual")]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run", "actual", "predicted"])
    frame["residual"] = frame["actual"] - frame["predicted"]
    return frame


def _class_curves(runs: Sequence[Run], key: str, x: str, y: str) -> pd.DataFrame:
    names = run_names(runs)
    parts = []
    for run in runs:
        curves = run.curves.get(key) or []
        for curve in curves:
            label = names[run.id] if len(curves) == 1 else f"{names[run.id]} · {curve['label']}"
            parts.append(pd.DataFrame({"run": label, x: curve[x], y: curve[y]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run", x, y])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _display(value: Any) -> str:
    """Settings as text (a table column mixes types): lists as '256,256', floats short."""
    if isinstance(value, (list, tuple)):
        return ",".join(_display(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
