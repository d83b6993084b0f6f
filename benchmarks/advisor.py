"""13. The advisor on planted problems (issue 18, "Measured"): six runs trained for real through the worker path, each
with one problem planted, and what `workbench.advisor.advise` says about them; for the five problem runs, its first
suggestion queued (`advisor.queue_suggestion`) and trained, with the validation score before and after. Then the
cost of importance (computed by the worker after each run) on the 50,000-row benchmark task, for the MLP and
gradient boosting.

The cases (the default model, gradient boosting, unless the problem names one):
- leak: a column that copies the target with noise -> "leak". Its honest outcome is a LOWER score: what the other
  columns support. It counts as followed well ("leak removed") when the suggested run left the named column out and
  still beats the trivial model (the test rows' majority class: runs keep no trivial score on validation).
- tiny: a 200-row table, the default MLP (the rule is about neural networks on few rows) -> "tiny_data".
- lr: the MLP at a learning rate of 1.0 -> "lr_too_high".
- big_net: a 3x1024 MLP on 500 rows -> "overfitting".
- imbalance: a 95/5 target -> "imbalance"; scored by validation balanced accuracy (accuracy would reward always
  answering the majority class).
- healthy: a decent table (5,000 rows), defaults -> "ok" and nothing else.
Except for the leak, "improves" means a strictly higher validation score (accuracy; balanced accuracy for the
imbalance) of the suggested run than of the planted one, on the same validation rows (same split seed). The test
rows' figures are reported beside them: a neural run's validation score is the best of its epochs on those rows
(early stopping keeps the best epoch), which flatters it against a classical suggestion on a few dozen rows.

One process with its own WORKBENCH_HOME:
    python -m benchmarks.advisor [--quick] [--case NAME ...] [--importance-rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

IMPROVED_AT_LEAST = 4  # of the 5 problem cases, following the first suggestion improves validation
IMPORTANCE_ROWS = 50_000


@dataclass(frozen=True)
class Case:
    name: str
    planted: str  # the advice code the case plants
    rows: int
    model: str = "gradient_boosting"
    params: dict = field(default_factory=dict)
    minority: float | None = None  # the positive class's share, for an imbalanced target
    leak: bool = False
    metric: str = "accuracy"  # the validation metric that judges the suggestion


def cases(quick: bool) -> list[Case]:
    large = 600 if quick else 5_000
    return [
        Case("leak", "leak", large, leak=True),
        Case("tiny", "tiny_data", 200, "mlp"),
        Case("lr", "lr_too_high", large, "mlp", {"lr": 1.0}),
        Case("big_net", "overfitting", 500, "mlp", {"hidden_sizes": [1024, 1024, 1024]}),
        Case("imbalance", "imbalance", 2 * large, minority=0.05, metric="balanced_accuracy"),
        Case("healthy", "ok", large),
    ]


def table(rows: int, seed: int = 0, minority: float | None = None, leak: bool = False) -> bytes:
    """Numeric, categorical and missing values with a non-linear binary target ("yes" for the top `minority` share
    of the score, else half); with `leak`, a column `settled_amount` that is the target plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    region = rng.choice(["north", "south", "east", "west"], size=rows)
    score = (x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2]) + 0.8 * x[:, 3] + np.where(region == "north", 0.8, 0)
             + rng.normal(0, 0.5, rows))
    label = score > np.quantile(score, 1 - (minority or 0.5))
    frame = pd.DataFrame(x, columns=["age", "income", "tenure", "visits", "spend", "distance"]).assign(region=region)
    frame.loc[rng.random(rows) < 0.05, "income"] = np.nan
    if leak:  # e.g. an amount recorded once the outcome was known
        frame["settled_amount"] = label * 100.0 + rng.normal(0, 20, rows)
    return frame.assign(churned=np.where(label, "yes", "no")).to_csv(index=False).encode()


def child(quick: bool, names: list[str] | None = None, importance_rows: int | None = None) -> dict:
    from workbench import datasets, jobs
    from workbench.advisor import advise, queue_suggestion, suggestion_command
    from workbench.runconfig import RunConfig
    from workbench.store import RunStatus, Store

    store = Store.from_settings()
    epochs = {"epochs": 8} if quick else {}  # quick: a smoke check of the path, not of the advice

    def train(config: RunConfig):
        return jobs.run_in_foreground(store, jobs.submit_run(store, config))

    def score(run, split: str, metric: str):
        value = (run.metrics.get(split) or {}).get(metric)
        return round(value, 4) if value is not None else None

    out = []
    for case in [c for c in cases(quick) if names is None or c.name in names]:
        data = table(case.rows, minority=case.minority, leak=case.leak)
        dataset_id = datasets.add_dataset(store, data, f"{case.name}.csv").dataset.id
        params = {**(epochs if case.model != "gradient_boosting" else {}), **case.params}
        run = train(RunConfig(dataset_id, "churned", case.model, params=params))
        advice = advise(store, run.id)
        codes = [a.code for a in advice]
        row = {"case": case.name, "planted": case.planted, "rows": case.rows, "model": case.model,
               "params": case.params, "status": str(run.status), "codes": codes,
               "named": case.planted in codes, "first": bool(codes) and codes[0] == case.planted,
               "only": codes == [case.planted], "metric": case.metric,
               "advice": [a.to_dict() for a in advice]}
        first = advice[0].suggestion if advice else None
        if case.planted != "ok" and first is not None:
            command = suggestion_command(store, run.id, first)
            after = jobs.run_in_foreground(store, queue_suggestion(store, run.id, first))
            before_v, after_v = score(run, "val", case.metric), score(after, "val", case.metric)
            test_before, test_after = score(run, "test", case.metric), score(after, "test", case.metric)
            if case.planted == "leak":
                trivial = (after.baseline.get("test") or {}).get(case.metric)  # the trivial model's, as runs keep it
                honest = (after.metrics.get("test") or {}).get(case.metric)
                left_out = bool(first.exclude) and set(first.exclude) <= set(after.config.get("exclude") or [])
                improved = left_out and honest is not None and trivial is not None and honest > trivial
                outcome = "leak removed" if improved else "leak kept"
            else:
                improved = after_v is not None and (before_v is None or after_v > before_v)
                outcome = "improved" if improved else "not improved"
            # The test rows too: a neural run's validation score is the best of its epochs on those very rows
            # (early stopping keeps the best), so it flatters the planted run against a classical suggestion.
            improved_on_test = (improved if case.planted == "leak" else
                                test_after is not None and (test_before is None or test_after > test_before))
            row.update({"suggestion": {"model": first.model, "params": first.params, "exclude": first.exclude},
                        "command": command, "after_status": str(after.status), "val_before": before_v,
                        "val_after": after_v, "test_before": test_before, "test_after": test_after,
                        "improved": improved, "improved_on_test": improved_on_test, "outcome": outcome})
        out.append(row)

    problems = [r for r in out if r["planted"] != "ok"]
    result = {"cases": out, "named_all": all(r["named"] for r in problems),
              "first_all": all(r["first"] for r in problems),
              "healthy_ok_only": all(r["only"] for r in out if r["planted"] == "ok"),
              "improved": sum(bool(r.get("improved")) for r in problems), "problem_cases": len(problems),
              "improved_on_test": sum(bool(r.get("improved_on_test")) for r in problems),
              "target_improved": IMPROVED_AT_LEAST,
              "importance": importance_cost(store, importance_rows or (1_000 if quick else IMPORTANCE_ROWS), epochs)}
    assert all(r["status"] in (RunStatus.SUCCEEDED, RunStatus.DIVERGED) for r in out), out
    return result


def importance_cost(store, rows: int, params: dict) -> dict:
    """Seconds the worker spent on importance after training, against the training time, on the benchmark task."""
    from benchmarks.sweeps import table as task_table
    from workbench import datasets, jobs
    from workbench.runconfig import RunConfig

    dataset_id = datasets.add_dataset(store, task_table(rows), "importance.csv").dataset.id
    out = {"rows": rows}
    for model in ("mlp", "gradient_boosting"):
        run = jobs.run_in_foreground(store, jobs.submit_run(store, RunConfig(
            dataset_id, "label", model, params=params if model == "mlp" else {})))
        explanation = run.explanation or {}
        seconds = explanation.get("seconds")
        out[model] = {"train_s": round(run.duration_s or 0, 2), "explain_s": seconds,
                      "budget_s": explanation.get("budget_s"), "rows_used": explanation.get("n_rows"),
                      "repeats": explanation.get("n_repeats"),
                      "share": round(seconds / run.duration_s, 3) if seconds and run.duration_s else None,
                      "top_columns": [i["column"] for i in explanation.get("importance", [])[:3]]}
    return out


def measure(quick: bool = False, names: list[str] | None = None, importance_rows: int | None = None) -> dict:
    """`names`: only these cases; `importance_rows`: the importance task's size (default: 50,000; quick 1,000)."""
    from benchmarks.common import run_in_child

    args = (["--quick"] if quick else []) + [f"--case={name}" for name in names or ()]
    args += [f"--importance-rows={importance_rows}"] if importance_rows else []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WORKBENCH_HOME=str(Path(tmp) / "home"), WORKBENCH_WORKERS="1")
        env.pop("WORKBENCH_DATABASE_URL", None)
        return run_in_child("benchmarks.advisor", args, env)


def lines(result: dict) -> list[str]:
    """The planted-problem table and the importance cost, for the suite's table."""
    out = [f"advisor on planted problems: {'case':<10} {'planted':<12} {'advice (first first)':<34} "
           f"{'first suggestion':<44} val before -> after"]
    for r in result["cases"]:
        mark = "first" if r["first"] else ("named" if r["named"] else "MISSED")
        suggestion = r.get("suggestion")
        shown = "-" if suggestion is None else (
            f"{suggestion['model']} {json.dumps(suggestion['params'], separators=(',', ':'))}"
            + (f" without {','.join(suggestion['exclude'])}" if suggestion["exclude"] else ""))
        scores = (f"{r['metric']} {r['val_before']} -> {r['val_after']} ({r['outcome']}); test {r['test_before']} -> "
                  f"{r['test_after']}" if "outcome" in r else "")
        out.append(f"  {r['case']:<10} {r['planted']:<12} {','.join(r['codes']) + ' (' + mark + ')':<34} "
                   f"{shown[:44]:<44} {scores}")
    cost = result["importance"]
    for model in ("mlp", "gradient_boosting"):
        c = cost[model]
        out.append(f"  importance on {cost['rows']:,} rows, {model}: {c['explain_s']} s for {c['rows_used']} test rows x "
                   f"{c['repeats']} shuffles, training {c['train_s']} s -> {c['share']} of training (budget "
                   f"{c['budget_s']} s)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", action="append", choices=[c.name for c in cases(False)], help="only this case")
    parser.add_argument("--importance-rows", type=int)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    result = (child if args.child else measure)(args.quick, args.case, args.importance_rows)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
