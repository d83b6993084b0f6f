"""The RealMLP recipe, one part at a time (issue 21, item 1): on each table of the collection (benchmarks/tables.py),
the default MLP against the default with ONE part of the recipe switched on, as run groups on the same folds.

Per table, each variant is a repeated run (`jobs.submit_group`; every group of a table is tested on the same folds;
on small tables the repeats are rounded up to whole rounds of 5-fold cross-validation)
trained by one in-process worker; the pair is compared by workbench.groups (the corrected resampled t-test): each
one's rank by mean (1 or 2), whether they are tied, the difference with its 95% interval and the verdict.
Across tables, per part: the mean rank of the default and of the switched variant, the mean relative score change
(in %, positive = better, for every metric) with a 95% t-interval over the tables, wins/ties/losses (a win or a loss
is a pair whose verdict is not a tie), and the mean ratios of the members' run times and epochs (switched over
default; on a busy machine the epochs are the steadier measure of cost).

A part is left out on a table where it changes nothing (label smoothing on regression, one-hot for small categories
without categorical columns) and everywhere where the default already holds its value.

    python -m benchmarks.recipe [--tables iris,wine] [--parts robust_scaling,adam_beta2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.tables import TABLES, Table
from workbench import datasets, groups, jobs
from workbench.config import Settings
from workbench.evaluation import NotComparable
from workbench.models.mlp import MLPParams
from workbench.models.registry import MODELS
from workbench.prepare import resolve_scaling
from workbench.runconfig import PrepConfig, RunConfig
from workbench.store import Store
from workbench.tasks import Task, higher_is_better, primary_metric

REPEATS = 3
MAX_TIME_RATIO = 1.5  # a part that more than this multiplies the run time is not "at no big time cost"
SMALL_TABLES = ("iris", "wine", "diabetes", "breast_cancer", "penguins", "hitters", "carseats", "titanic")


@dataclass(frozen=True)
class Part:
    """One change of the recipe: MLP hyperparameters and preprocessing settings it switches."""

    name: str
    params: dict = field(default_factory=dict)
    prep: dict = field(default_factory=dict)
    classification_only: bool = False
    needs_categories: bool = False

    def applies(self, table: Table) -> bool:
        return not ((self.classification_only and table.task == Task.REGRESSION)
                    or (self.needs_categories and not table.categorical))

    def is_default(self) -> bool:
        defaults = MLPParams()
        spec = MODELS["mlp"]
        scaling = resolve_scaling(PrepConfig(), spec.family, spec.categorical, spec.scaling)
        return (all(getattr(defaults, k) == v for k, v in self.params.items())
                and self.prep.get("scaling", scaling) == scaling)


PARTS = {p.name: p for p in (
    Part("robust_scaling", prep={"scaling": "robust"}),
    Part("plr_embeddings", params={"numeric_embeddings": "periodic"}),
    Part("pbld_embeddings", params={"numeric_embeddings": "pbld"}),  # RealMLP's own, lighter
    Part("pbld_8_waves", params={"pbld_frequencies": 8}),  # half its cost
    Part("pbld_scale_1", params={"pbld_scale": 1.0}),  # faster starting waves: hotel_rates 15.41 -> 14.44 (one split)
    Part("one_hot_small_categories", params={"one_hot_small_categories": True}, needs_categories=True),
    Part("label_smoothing", params={"label_smoothing": 0.1}, classification_only=True),
    Part("adam_beta2", params={"adam_beta2": 0.95}),
    Part("flat_cosine", params={"lr_schedule": "flat_cosine"}),
    Part("layers_3x256", params={"hidden_sizes": [256, 256, 256]}),
    Part("front_scale", params={"front_scale": True}),
    Part("relu", params={"activation": "relu"}),  # the default before GELU
    Part("gelu", params={"activation": "gelu"}),
    Part("selu", params={"activation": "selu"}),  # RealMLP's for classification
    Part("mish", params={"activation": "mish"}),  # RealMLP's for regression
    # beyond the recipe: what the tutorial loop that beat us on diamonds does differently (issue 21)
    Part("no_dropout", params={"dropout": 0.0}),
    Part("standard_scaling", prep={"scaling": "standard"}),
    Part("standard_no_dropout", params={"dropout": 0.0}, prep={"scaling": "standard"}),
    Part("robust_no_dropout", params={"dropout": 0.0}, prep={"scaling": "robust"}),
    # fewer, larger steps: what the time to quality on the larger tables depends on
    Part("batch_512", params={"batch_size": 512, "lr": 2e-3 * 2 ** 0.5}),  # the automatic rule before 57a4c48
    Part("batch_512_lr_4e-3", params={"batch_size": 512, "lr": 4e-3}),
    Part("lr_4e-3", params={"lr": 4e-3}),
    # a shorter wait for a better epoch: the best came at epoch 8 of 24 on default and hotel_rates
    Part("patience_8", params={"patience": 8}),
)}


def measure(tables: Sequence[str] = SMALL_TABLES, parts: Sequence[str] | None = None, repeats: int = REPEATS,
            params: dict | None = None, out_path: Path | None = None, warm_up: bool = True) -> dict:
    """`params`: hyperparameters every variant shares (for tiny test runs; the benchmark itself uses the defaults).
    `out_path`: where to write the JSON after each table, so that a long run that is stopped keeps what it measured.
    `warm_up`: see `measure_table` (off for smoke tests, whose times mean nothing)."""
    chosen = [PARTS[name] for name in (parts or PARTS)]
    out: dict = {"repeats": repeats, "parts": [p.name for p in chosen], "shared_params": params or {},
                 "skipped_as_default": [p.name for p in chosen if p.is_default()], "tables": {}}
    chosen = [p for p in chosen if not p.is_default()]
    for i, name in enumerate(tables):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            store = Store.from_settings(Settings(home=home, database_url=f"sqlite:///{home / 'workbench.db'}"))
            try:
                out["tables"][name] = measure_table(store, TABLES[name], chosen, repeats, params or {},
                                                    warm_up=warm_up and i == 0)
            finally:
                store.close()
        out["summary"] = summary(out["tables"], [p.name for p in chosen])
        if out_path:
            out_path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return out


def train_variant(store: Store, dataset_id: str, table: Table, repeats: int, params: dict, prep: dict) -> dict:
    config = RunConfig(dataset_id, table.target, "mlp", task=str(table.task), repeats=repeats, params=params,
                       prep=PrepConfig(**prep))
    started = time.perf_counter()
    group, _ = jobs.submit_group(store, config)
    jobs.run_worker(store, once=True)
    summary_ = groups.summarize(store.get_group(group.id), store.group_runs(group.id))
    figure = summary_.metrics.get(primary_metric(table.task))
    run_s = [r.duration_s or 0.0 for r in summary_.finished]
    return {"group_id": group.id, "mean": figure.mean if figure else None, "n": figure.n if figure else 0,
            "wall_s": round(time.perf_counter() - started, 2), "run_s": round(float(np.mean(run_s)), 3) if run_s else None,
            "epochs": round(float(np.mean([r.epochs_done for r in summary_.finished])), 1) if run_s else None,
            "errors": sorted({r.error for r in summary_.members if r.error})}


def measure_table(store: Store, table: Table, parts: Sequence[Part], repeats: int, params: dict,
                  warm_up: bool = False) -> dict:
    """`warm_up`: first train a one-epoch group that is not measured, so that the first variant's time does not
    include the process's one-off start-up costs (imports, torch's first calls)."""
    frame = table.load()
    dataset = datasets.add_dataset(store, frame.to_csv(index=False).encode("utf-8"), f"{table.name}.csv").dataset
    if warm_up:
        train_variant(store, dataset.id, table, 2, {**params, "epochs": 1}, {})
    metric = primary_metric(table.task)
    result: dict = {"rows": len(frame), "task": str(table.task), "metric": metric, "parts": {}}
    default = train_variant(store, dataset.id, table, repeats, params, {})
    result["default"] = default
    for part in parts:
        if not part.applies(table):
            continue
        switched = train_variant(store, dataset.id, table, repeats, {**params, **part.params}, part.prep)
        result["parts"][part.name] = {"switched": switched, **pair(store, default, switched, metric)}
    return result


def pair(store: Store, default: dict, switched: dict, metric: str) -> dict:
    """The default and the switched group compared by workbench.groups: ranks, tie, difference and its interval."""
    if default["mean"] is None or switched["mean"] is None:
        return {"error": "a variant has no finished repeat"}
    try:
        ranking = groups.compare_items(groups.load_items(store, [default["group_id"], switched["group_id"]]), metric)
    except NotComparable as exc:
        return {"error": str(exc)}
    comparison = ranking.pairs[0]
    sign = 1.0 if higher_is_better(metric) else -1.0
    gain = sign * (switched["mean"] - default["mean"])  # in the metric's units; positive: the switch is better
    tied = len(ranking.tied_with_best) == 2
    return {**ranks(default["mean"], switched["mean"], sign),
            "outcome": "tie" if tied else ("win" if gain > 0 else "loss"),
            "gain": gain, "relative_gain_pct": 100.0 * gain / abs(default["mean"]) if default["mean"] else None,
            "difference_ci": [comparison.ci_low, comparison.ci_high], "verdict": str(comparison.verdict),
            "sentence": comparison.sentence,
            "time_ratio": (switched["run_s"] / default["run_s"]) if default["run_s"] else None,
            "epochs_ratio": (switched["epochs"] / default["epochs"]) if default["epochs"] else None}


def ranks(default: float, switched: float, sign: float) -> dict:
    """1 for the better mean, 2 for the other; 1.5 each for equal means (a part that ends at the same weights, as a
    shorter patience whose best epoch came first), which the ranking's order would otherwise give to the default."""
    if math.isclose(default, switched, rel_tol=1e-9, abs_tol=1e-12):
        return {"rank_default": 1.5, "rank_switched": 1.5}
    switched_ahead = sign * (switched - default) > 0
    return {"rank_default": 1 + switched_ahead, "rank_switched": 2 - switched_ahead}


def merged(results: Sequence[dict]) -> dict:
    """Several results (of the same parts and repeats, on different tables) as one, summarised again."""
    out = {**results[0], "tables": {name: t for r in results for name, t in r["tables"].items()}}
    out["summary"] = summary(out["tables"], [p for p in out["parts"] if p not in out["skipped_as_default"]])
    return out


def mean_interval(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """The mean over tables with its 95% t-interval (None with fewer than two tables)."""
    values = np.asarray(values, dtype="float64")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None, None
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values)) \
        if values.std() > 0 else (mean, mean)
    return mean, float(low), float(high)


def summary(tables: dict[str, dict], parts: Sequence[str]) -> dict:
    out = {}
    for name in parts:
        rows = [t["parts"][name] for t in tables.values() if name in t["parts"] and "error" not in t["parts"][name]]
        if not rows:
            continue
        gains = [r["relative_gain_pct"] for r in rows if r["relative_gain_pct"] is not None]
        mean, low, high = mean_interval(gains)
        ratios = [r["time_ratio"] for r in rows if r["time_ratio"]]
        out[name] = {"tables": len(rows),
                     "mean_rank_default": round(float(np.mean([r["rank_default"] for r in rows])), 2),
                     "mean_rank_switched": round(float(np.mean([r["rank_switched"] for r in rows])), 2),
                     "mean_change_pct": round(mean, 3), "ci_pct": [_round(low), _round(high)],
                     "wins": sum(r["outcome"] == "win" for r in rows), "ties": sum(r["outcome"] == "tie" for r in rows),
                     "losses": sum(r["outcome"] == "loss" for r in rows),
                     "time_ratio": round(float(np.mean(ratios)), 2) if ratios else None,
                     "epochs_ratio": _mean([r.get("epochs_ratio") for r in rows]),
                     "helps": helps(mean, high, rows, ratios)}
    return out


def helps(mean: float, high: float | None, rows: list[dict], ratios: list[float]) -> bool:
    """The rule for switching a part on by default (issue 21): a better mean rank, a mean change whose interval is
    not clearly negative (its upper end above zero), and no big time cost (at most MAX_TIME_RATIO x)."""
    better_rank = np.mean([r["rank_switched"] for r in rows]) < np.mean([r["rank_default"] for r in rows])
    not_clearly_worse = (high if high is not None else mean) > 0
    return bool(better_rank and not_clearly_worse and (not ratios or np.mean(ratios) <= MAX_TIME_RATIO))


def lines(result: dict) -> list[str]:
    out = [f"recipe A/B: {len(result['tables'])} tables, {result['repeats']} repeats; default MLP vs one part switched "
           "(mean rank 1 = better or tied; change in % of the default's score, + = better, 95% interval over tables)"]
    if result.get("skipped_as_default"):
        out.append(f"  already the default (not measured): {', '.join(result['skipped_as_default'])}")
    for name, table in result["tables"].items():
        default = table["default"]
        out.append(f"  {name} ({table['rows']:,} rows, {table['metric']}): default {_fmt(default['mean'])} "
                   f"in {default['run_s']} s a run")
        for part, row in table["parts"].items():
            if "error" in row:
                out.append(f"    {part:<26} ERROR {row['error']}")
                continue
            low, high = row["difference_ci"]
            out.append(f"    {part:<26} {_fmt(row['switched']['mean'])} ({row['relative_gain_pct']:+.2f}%), "
                       f"difference [{low:.4g}, {high:.4g}], {row['outcome']}, time x{row['time_ratio']:.2f}, "
                       f"epochs x{row.get('epochs_ratio') or 0:.2f}")
    out.append(f"  {'part':<26} {'tables':>6} {'rank def/sw':>11} {'change % [95% CI]':>28} {'W/T/L':>7} "
               f"{'time':>6} {'epochs':>6}  helps")
    for name, s in result["summary"].items():
        low, high = s["ci_pct"]
        interval = f"[{low:+.2f}, {high:+.2f}]" if low is not None else "[n/a]"
        out.append(f"  {name:<26} {s['tables']:>6} {s['mean_rank_default']:>5}/{s['mean_rank_switched']:<5} "
                   f"{s['mean_change_pct']:>+8.2f} {interval:>19} {s['wins']:>2}/{s['ties']}/{s['losses']} "
                   f"{'x' + format(s['time_ratio'], '.2f') if s['time_ratio'] else '-':>6} "
                   f"{'x' + format(s['epochs_ratio'], '.2f') if s.get('epochs_ratio') else '-':>6}  {s['helps']}")
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v]
    return round(float(np.mean(known)), 2) if known else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recipe", description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(SMALL_TABLES), help=f"comma-separated, of: {', '.join(TABLES)}")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of: {', '.join(PARTS)}")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="summarise the --out files of runs on other tables")
    args = parser.parse_args(argv)
    if args.merge:
        result = merged([json.loads(Path(path).read_text()) for path in args.merge])
    else:
        result = measure(args.tables.split(","), args.parts.split(","), args.repeats,
                         out_path=Path(args.out) if args.out else None)
    print("\n".join(lines(result)))


if __name__ == "__main__":
    main()
