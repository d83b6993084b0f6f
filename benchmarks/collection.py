"""11. The collection: every catalog model with its defaults on real tables that ship in pip packages
(benchmarks/tables.py), through the real path, with intervals; and the time to quality against the tutorial loop.

Per table: the table is ingested into a fresh store (CSV bytes, as an upload), and each model is a repeated run
(`jobs.submit_group`; every model's group is tested on the same folds) trained by one in-process worker. The figures
come from workbench.groups: each model's test-score mean with its 95% interval, its rank and whether it is tied with
the best (Holm), and default MLP against gradient boosting as a pair. Wall time is the worker's, all members.

Time to quality: the tutorial loop (benchmarks.common.Tutorial: one-hot and standard scaling, batch 32, Adam 1e-3,
stopped after `TUTORIAL_PATIENCE` epochs without a better validation score) trains on the first MLP member's
training rows and is validated on its validation rows. The ratio is the tutorial loop's time to reach that member's
final validation score (its whole time when it never does) over the member's whole run time (`runner.execute`:
preparation, training, scoring, saving). The tutorial's time includes its preprocessing. A second ratio has the same
numerator over the member's time to that final score: its whole run less the epochs after its best one (which early
stopping waits through), as the suite's synthetic comparison times both sides to a score.

    python -m benchmarks.collection [--tables iris,wine] [--models mlp,ridge] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from benchmarks.common import Split, better, reached
from benchmarks.tables import TABLES, Table
from benchmarks.time_to_quality import tutorial_until_plateau
from workbench import datasets, groups, jobs
from workbench.config import Settings
from workbench.errors import UserError
from workbench.evaluation import FoldAssignments, NotComparable
from workbench.models.registry import MODELS
from workbench.runconfig import RunConfig
from workbench.runner import Member, member_split
from workbench.store import RunStatus, Store
from workbench.tasks import Task, higher_is_better, primary_metric

# The catalog's default contenders; `tabm` and `ensemble` take part once they are in the registry.
DEFAULT_MODELS = ("mlp", "tabm", "gradient_boosting", "random_forest", "logistic_regression", "ridge", "ensemble")
REPEATS = 5
TUTORIAL_PATIENCE = 5  # the tutorial loop of issue 21's measurements
TUTORIAL_MAX_EPOCHS = 100
BIG_TABLE_ROWS = 10_000  # issue 21: time to quality >= 5x on every table at least this big
AGAINST_GRADIENT_BOOSTING = ("mlp", "tabm", "ensemble")  # each tested against gradient boosting as a pair


def models_for(task: Task, models: Sequence[str]) -> list[str]:
    """The models of `models` that are in the registry and do `task`."""
    return [m for m in models if m in MODELS and task in MODELS[m].tasks]


def measure(tables: Sequence[str] | None = None, models: Sequence[str] = DEFAULT_MODELS, repeats: int = REPEATS,
            params: dict[str, dict] | None = None, tutorial_max_epochs: int = TUTORIAL_MAX_EPOCHS,
            device: str = "cpu", out_path: Path | None = None) -> dict:
    """Every table of `tables` (all by default) with every model that does its task; `params`: per-model
    hyperparameter overrides (for tiny test runs; the benchmark itself uses the defaults). `out_path`: where to write
    the JSON after each table, so that a long run that is stopped keeps what it measured."""
    names = list(tables or TABLES)
    out: dict = {"repeats": repeats, "models": list(models), "params": params or {}, "tables": {}}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            store = Store.from_settings(Settings(home=home, database_url=f"sqlite:///{home / 'workbench.db'}"))
            try:
                out["tables"][name] = measure_table(store, TABLES[name], models, repeats, params or {},
                                                    tutorial_max_epochs, device)
            finally:
                store.close()
        out["summary"] = summary(out["tables"])
        if out_path:
            out_path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return out


def merged(results: Sequence[dict]) -> dict:
    """Several results (of the same models and repeats, on different tables) as one, summarised again."""
    out = {**results[0], "tables": {name: t for r in results for name, t in r["tables"].items()}}
    out["summary"] = summary(out["tables"])
    return out


def measure_table(store: Store, table: Table, models: Sequence[str], repeats: int, params: dict[str, dict],
                  tutorial_max_epochs: int, device: str) -> dict:
    frame = table.load()
    dataset = datasets.add_dataset(store, frame.to_csv(index=False).encode("utf-8"), f"{table.name}.csv").dataset
    metric = primary_metric(table.task)
    result: dict = {"rows": len(frame), "task": str(table.task), "target": table.target, "metric": metric,
                    "higher_is_better": higher_is_better(metric), "source": table.source, "models": {}}
    group_of: dict[str, str] = {}
    for model in models_for(table.task, models):
        config = RunConfig(dataset.id, table.target, model, task=str(table.task), repeats=repeats,
                           params=dict(params.get(model, {})))
        started = time.perf_counter()
        try:
            group, _ = jobs.submit_group(store, config)
        except UserError as exc:  # e.g. a model that needs other runs first
            result["models"][model] = {"error": str(exc)}
            continue
        jobs.run_worker(store, once=True)
        wall = time.perf_counter() - started
        summary_ = groups.summarize(store.get_group(group.id), store.group_runs(group.id))
        figure = summary_.metrics.get(metric)
        finished = summary_.finished
        if figure is None:
            errors = {r.error for r in summary_.members if r.error}
            result["models"][model] = {"error": f"no member finished: {'; '.join(sorted(errors)) or 'unknown'}"}
            continue
        group_of[model] = group.id
        result["members"] = group.n_members
        result["models"][model] = {
            "mean": figure.mean, "ci_low": _finite(figure.ci_low), "ci_high": _finite(figure.ci_high), "n": figure.n,
            "wall_s": round(wall, 2), "run_s": round(float(np.mean([r.duration_s or 0 for r in finished])), 2),
            "epochs": round(float(np.mean([r.epochs_done for r in finished])), 1), "group_id": group.id}
    if len(group_of) >= 2:
        ranking = groups.compare_items(groups.load_items(store, list(group_of.values())), metric)
        by_id = {item.id: item for item in ranking.items}
        for model, group_id in group_of.items():
            item = by_id.get(group_id)
            result["models"][model].update(rank=item.rank if item else None,
                                           tied_with_best=bool(item and item.tied_with_best))
        result["ranking"] = ranking.sentence
    if "gradient_boosting" in group_of:
        result["vs_gradient_boosting"] = {model: against_gradient_boosting(store, result, group_of, model, metric)
                                          for model in AGAINST_GRADIENT_BOOSTING if model in group_of}
    if "mlp" in group_of:
        result["time_to_quality"] = time_to_quality(store, dataset.id, group_of["mlp"], table.task,
                                                    tutorial_max_epochs, device)
    return result


def against_gradient_boosting(store: Store, result: dict, group_of: dict[str, str], model: str, metric: str) -> dict:
    """`model` against gradient boosting as a pair (the corrected t-test): tied or better, and the wall-time ratio."""
    ours, gb = result["models"][model], result["models"]["gradient_boosting"]
    try:
        pair = groups.compare_items(groups.load_items(store, [group_of[model], group_of["gradient_boosting"]]), metric)
        tied_or_better = next(i for i in pair.items if i.id == group_of[model]).tied_with_best
    except NotComparable:
        tied_or_better = None
    return {"tied_or_better": tied_or_better,
            "wall_ratio": round(ours["wall_s"] / gb["wall_s"], 2) if gb["wall_s"] else None}


def time_to_quality(store: Store, dataset_id: str, group_id: str, task: Task, max_epochs: int, device: str) -> dict:
    group = store.get_group(group_id, with_scheme=True)
    member = next(r for r in store.group_runs(group_id) if r.status == RunStatus.SUCCEEDED)
    ours_score = float(member.metrics["val"][primary_metric(task)])
    ours_seconds = float(member.duration_s or 0)
    epochs = store.epochs(member.id)
    best = (max if higher_is_better(primary_metric(task)) else min)(
        (e for e in epochs if e.val_metric is not None), key=lambda e: e.val_metric)
    ours_to_final = ours_seconds - sum(e.seconds or 0.0 for e in epochs if e.epoch > best.epoch)
    table = datasets.load_table(store, dataset_id)
    config = RunConfig.from_dict(member.config)
    rows = member_split(table, config, task, Member(FoldAssignments.from_dict(group.scheme), member.member))
    started = time.perf_counter()
    data = tutorial_data(table, config.target, task, rows.train, rows.val)
    prepare_s = time.perf_counter() - started
    tutorial = tutorial_until_plateau(data, device, patience=TUTORIAL_PATIENCE, max_epochs=max_epochs)
    reached_at = next((seconds for _, seconds, score in tutorial["epochs"] if reached(score, ours_score, task)), None)
    tutorial_s = prepare_s + (reached_at if reached_at is not None else tutorial["seconds_total"])
    return {"member": member.member, "ours_val": round(ours_score, 5), "ours_s": round(ours_seconds, 2),
            "ours_epochs": member.epochs_done, "tutorial_best_val": round(tutorial["best_score"], 5),
            "tutorial_epochs": len(tutorial["epochs"]), "tutorial_total_s": round(prepare_s + tutorial["seconds_total"], 2),
            "tutorial_reached_ours": reached_at is not None, "tutorial_s_to_ours": round(tutorial_s, 2),
            "ratio": float(f"{tutorial_s / ours_seconds:.3g}") if ours_seconds else None,
            "ours_best_epoch": best.epoch, "ours_s_to_final": round(ours_to_final, 2),
            "ratio_to_final": float(f"{tutorial_s / ours_to_final:.3g}") if ours_to_final > 0 else None,
            "ours_val_at_least_tutorial_best": not better(tutorial["best_score"], ours_score, task)}


def tutorial_data(table: pd.DataFrame, target: str, task: Task, train: np.ndarray, val: np.ndarray) -> Split:
    """The tutorials' preprocessing, fitted on the training rows: numbers median-imputed and standard-scaled, every
    other column one-hot encoded (its missing values as the most frequent one); class labels as codes 0..k-1.
    Date columns are left out."""
    features = table.drop(columns=[target])
    numeric = [c for c in features if ptypes.is_numeric_dtype(features[c]) and not ptypes.is_bool_dtype(features[c])]
    other = [c for c in features if c not in numeric and not ptypes.is_datetime64_any_dtype(features[c])]
    features = features.assign(**{c: features[c].astype("object").where(features[c].notna(), np.nan) for c in other})
    encode = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("categories", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                     OneHotEncoder(handle_unknown="ignore", sparse_output=False)), other)])
    x_train = encode.fit_transform(features.loc[train]).astype("float32")
    x_val = encode.transform(features.loc[val]).astype("float32")
    y = table[target]
    if task == Task.REGRESSION:
        y_train, y_val = y.loc[train].to_numpy("float32"), y.loc[val].to_numpy("float32")
    else:
        labels = y.loc[np.concatenate([train, val])].astype(str)
        codes = pd.Categorical(labels, categories=sorted(labels.unique())).codes.astype("int64")
        y_train, y_val = codes[:len(train)], codes[len(train):]
    return Split(x_train, y_train, x_val, y_val, str(task))


def summary(tables: dict[str, dict]) -> dict:
    """Across tables: each model's mean rank, how often it is tied with the best, and the per-table ratios."""
    ranks: dict[str, list[int]] = {}
    tied: dict[str, list[bool]] = {}
    for result in tables.values():
        for model, row in result["models"].items():
            if row.get("rank") is not None:
                ranks.setdefault(model, []).append(row["rank"])
                tied.setdefault(model, []).append(row["tied_with_best"])
    return {
        "mean_rank": {m: round(float(np.mean(r)), 2) for m, r in sorted(ranks.items(), key=lambda kv: np.mean(kv[1]))},
        "tables_ranked": {m: len(r) for m, r in ranks.items()},
        "tied_with_best": {m: sum(t) for m, t in tied.items()},
        "tied_or_better_than_gradient_boosting": {
            m: sum(bool(r.get("vs_gradient_boosting", {}).get(m, {}).get("tied_or_better")) for r in tables.values())
            for m in AGAINST_GRADIENT_BOOSTING if any(m in r.get("vs_gradient_boosting", {}) for r in tables.values())},
        "mlp_gb_wall_ratio_regression": {name: r["vs_gradient_boosting"]["mlp"]["wall_ratio"]
                                         for name, r in tables.items() if r["task"] == Task.REGRESSION
                                         and "mlp" in r.get("vs_gradient_boosting", {})},
        "time_to_quality_ratio": {name: r["time_to_quality"]["ratio"] for name, r in tables.items()
                                  if "time_to_quality" in r},
        "time_to_quality_ratio_to_final": {name: r["time_to_quality"]["ratio_to_final"] for name, r in tables.items()
                                           if "time_to_quality" in r},
    }


def lines(result: dict) -> list[str]:
    """The collection as a readable table: one block per table, then the summary."""
    out = [f"collection: {len(result['tables'])} tables, {result['repeats']} repeats each (mean test score with its "
           "95% interval; * tied with the best; wall time of all members, one worker)"]
    for name, table in result["tables"].items():
        members = table.get("members", "?")
        out.append(f"  {name} ({table['rows']:,} rows, {table['task']}, {table['metric']}, {members} members)")
        ordered = sorted(table["models"].items(), key=lambda kv: kv[1].get("rank") or 99)
        for model, row in ordered:
            if "error" in row:
                out.append(f"    {model:<20} ERROR {row['error']}")
                continue
            interval = (f"({row['ci_low']:.4g}-{row['ci_high']:.4g})" if row["ci_low"] is not None else "")
            out.append(f"    {row.get('rank') or '-':>2}{'*' if row.get('tied_with_best') else ' '} {model:<20} "
                       f"{row['mean']:.4g} {interval:<22} {row['wall_s']:>8.1f} s  ({row['epochs']} epochs)")
        for model, pair in table.get("vs_gradient_boosting", {}).items():
            verdict = {True: "tied or better", False: "worse", None: "not comparable"}[pair["tied_or_better"]]
            out.append(f"    {model} vs gradient_boosting: {verdict}; wall time {pair['wall_ratio']}x")
        ttq = table.get("time_to_quality")
        if ttq:
            reached_text = (f"reached ours in {ttq['tutorial_s_to_ours']} s" if ttq["tutorial_reached_ours"]
                            else f"never reached ours ({ttq['tutorial_best_val']}), {ttq['tutorial_total_s']} s")
            out.append(f"    time to quality ({ttq['member']}): ours val {ttq['ours_val']} in {ttq['ours_s']} s "
                       f"(epoch {ttq['ours_best_epoch']} of {ttq['ours_epochs']}, {ttq['ours_s_to_final']} s); "
                       f"tutorial {reached_text} -> {ttq['ratio']}x the whole run, {ttq['ratio_to_final']}x to it")
    s = result["summary"]
    out.append("  mean rank: " + ", ".join(f"{m} {r} ({s['tables_ranked'][m]} tables)" for m, r in s["mean_rank"].items()))
    out.append("  tied with the best: " + ", ".join(f"{m} {n} of {s['tables_ranked'][m]}"
                                                     for m, n in s["tied_with_best"].items()))
    out.append("  tied with or better than gradient_boosting: " + ", ".join(
        f"{m} on {n} of {s['tables_ranked'].get(m, 0)}" for m, n in s["tied_or_better_than_gradient_boosting"].items()))
    return out


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.collection", description=__doc__.splitlines()[0])
    parser.add_argument("--tables", help=f"comma-separated, of: {', '.join(TABLES)} (default: all)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated catalog models")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--out", help="also write the JSON here, after each table")
    parser.add_argument("--device", default="cpu", help="where the neural models train (cpu, cuda, auto)")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="summarise the --out files of runs on other tables")
    args = parser.parse_args(argv)
    if args.merge:
        result = merged([json.loads(Path(path).read_text()) for path in args.merge])
    else:
        result = measure(args.tables.split(",") if args.tables else None, args.models.split(","), args.repeats,
                         device=args.device, out_path=Path(args.out) if args.out else None)
    print(json.dumps(result, indent=2, default=str))
    print("\n".join(lines(result)))


if __name__ == "__main__":
    main()
