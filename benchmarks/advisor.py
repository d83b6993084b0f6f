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
- big_net: a 3x1024 MLP on 500 rows -> "overfitting" (named second: 500 rows is a tiny table too, and tiny_data's
  suggestion, TabM, comes first).
- imbalance: a 95/5 target -> "imbalance"; scored by validation balanced accuracy (accuracy would reward always
  answering the majority class).
- healthy: a decent table (5,000 rows), defaults -> "ok" and nothing else.
Each case is trained on SPLIT_SEEDS splits of its table; on each, the first suggestion is followed on the same
validation rows (same split seed). Except for the leak, "improves" means a strictly higher mean validation score
(accuracy; balanced accuracy for the imbalance) of the suggested runs than of the planted ones; the splits where
it rose are counted too. The test
rows' figures are reported beside them: a neural run's validation score is the best of its epochs on those rows
(early stopping keeps the best epoch), which flatters it against a classical suggestion on a few dozen rows (the
200-row table's default MLP: 0.818 on its 31 validation rows, 0.702 on its test rows, over 20 splits; gradient
boosting 0.748 and 0.745). So a classical suggestion can win on the test rows and still "not improve" here; the
advisor's tiny-table suggestion, TabM, picks its epoch the same way and wins on both (workbench/advisor.py).

One process with its own WORKBENCH_HOME:
    python -m benchmarks.advisor [--quick] [--case NAME ...] [--importance-rows N] [--splits N]
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
# Each case is trained on this many splits of its table (split seeds 0..N-1), and the suggestion judged on the mean of
# its validation scores: a 200-row table validates on 30 rows, where one row is 3 points and one split decides nothing.
SPLIT_SEEDS = 5


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


def child(quick: bool, names: list[str] | None = None, importance_rows: int | None = None,
          n_seeds: int = SPLIT_SEEDS) -> dict:
    from workbench import datasets, jobs
    from workbench.advisor import advise, queue_suggestion, suggestion_command
    from workbench.runconfig import RunConfig, SplitConfig
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
        seeds = []
        for split_seed in range(n_seeds):
            run = train(RunConfig(dataset_id, "churned", case.model, params=params,
                                  split=SplitConfig(seed=split_seed)))
            advice = advise(store, run.id)
            seed = {"split_seed": split_seed, "status": str(run.status), "codes": [a.code for a in advice],
                    "advice": [a.to_dict() for a in advice]}
            first = advice[0].suggestion if advice else None
            if case.planted != "ok" and first is not None:
                after = jobs.run_in_foreground(store, queue_suggestion(store, run.id, first))
                seed.update({"suggestion": {"model": first.model, "params": first.params, "exclude": first.exclude},
                             "command": suggestion_command(store, run.id, first), "after_status": str(after.status),
                             "val_before": score(run, "val", case.metric), "val_after": score(after, "val", case.metric),
                             "test_before": score(run, "test", case.metric),
                             "test_after": score(after, "test", case.metric)})
                if case.planted == "leak":
                    trivial = (after.baseline.get("test") or {}).get(case.metric)  # the trivial model's, as kept
                    honest = (after.metrics.get("test") or {}).get(case.metric)
                    left_out = bool(first.exclude) and set(first.exclude) <= set(after.config.get("exclude") or [])
                    seed["leak_removed"] = left_out and honest is not None and trivial is not None and honest > trivial
            seeds.append(seed)
        out.append(judge(case, seeds))

    problems = [r for r in out if r["planted"] != "ok"]
    result = {"cases": out, "named_all": all(r["named"] for r in problems),
              "first_all": all(r["first"] for r in problems),
              "healthy_ok_only": all(r["only"] for r in out if r["planted"] == "ok"),
              "improved": sum(bool(r.get("improved")) for r in problems), "problem_cases": len(problems),
              "improved_on_test": sum(bool(r.get("improved_on_test")) for r in problems),
              "target_improved": IMPROVED_AT_LEAST,
              "importance": importance_cost(store, importance_rows or (1_000 if quick else IMPORTANCE_ROWS), epochs)}
    assert all(s["status"] in (RunStatus.SUCCEEDED, RunStatus.DIVERGED) for r in out for s in r["seeds"]), out
    return result


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def judge(case: Case, seeds: list[dict]) -> dict:
    """One case over its splits: the advice on the first split (and on how many splits the planted problem was
    named), the mean validation and test scores before and after following the first suggestion, and the verdict:
    improved when the mean validation score rose (the leak: the named column was left out on every split and the
    honest run still beat the trivial model)."""
    codes = seeds[0]["codes"]
    row = {"case": case.name, "planted": case.planted, "rows": case.rows, "model": case.model, "params": case.params,
           "metric": case.metric, "splits": len(seeds), "codes": codes, "named": case.planted in codes,
           "first": bool(codes) and codes[0] == case.planted, "only": codes == [case.planted],
           "named_on_splits": sum(case.planted in s["codes"] for s in seeds),
           "first_on_splits": sum(bool(s["codes"]) and s["codes"][0] == case.planted for s in seeds),
           "advice": seeds[0]["advice"], "seeds": seeds}
    followed = [s for s in seeds if "suggestion" in s]
    if case.planted == "ok" or not followed:
        return row
    before, after = _mean([s["val_before"] for s in followed]), _mean([s["val_after"] for s in followed])
    test_before, test_after = _mean([s["test_before"] for s in followed]), _mean([s["test_after"] for s in followed])
    if case.planted == "leak":
        improved = improved_on_test = all(s["leak_removed"] for s in followed)
        outcome = "leak removed" if improved else "leak kept"
    else:
        improved = after is not None and (before is None or after > before)
        improved_on_test = test_after is not None and (test_before is None or test_after > test_before)
        outcome = "improved" if improved else "not improved"
    row.update({"suggestion": followed[0]["suggestion"], "command": followed[0]["command"],
                "val_before": before, "val_after": after, "test_before": test_before, "test_after": test_after,
                "improved_splits": sum(s["val_after"] is not None and s["val_before"] is not None
                                       and s["val_after"] > s["val_before"] for s in followed),
                "improved": improved, "improved_on_test": improved_on_test, "outcome": outcome})
    return row


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


def measure(quick: bool = False, names: list[str] | None = None, importance_rows: int | None = None,
            splits: int | None = None) -> dict:
    """`names`: only these cases; `importance_rows`: the importance task's size (default: 50,000; quick 1,000);
    `splits`: the split seeds per case (default SPLIT_SEEDS; quick 1)."""
    from benchmarks.common import run_in_child

    args = (["--quick"] if quick else []) + [f"--case={name}" for name in names or ()]
    args += [f"--importance-rows={importance_rows}"] if importance_rows else []
    args += [f"--splits={splits}"] if splits else []
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
        scores = (f"{r['metric']} {r['val_before']} -> {r['val_after']} ({r['outcome']}; rose on {r['improved_splits']} "
                  f"of {r['splits']} splits); test {r['test_before']} -> {r['test_after']}" if "outcome" in r else "")
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
    parser.add_argument("--splits", type=int, help=f"split seeds per case (default {SPLIT_SEEDS}; --quick: 1)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.quick, args.case, args.importance_rows, args.splits or (1 if args.quick else SPLIT_SEEDS))
    else:
        result = measure(args.quick, args.case, args.importance_rows, args.splits)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
