"""`python -m benchmarks [--quick] [--only NAME ...] [--out PATH] [--compile]`: one JSON document, then a table.

Results are also written to bench-results/latest.json (git-ignored). Parts: throughput, time_to_quality,
sklearn_mlp, utilisation, ingest, train_memory, quality, runs_page, repeats (5 repeats against one run),
estimates (the Train form's expected time against the real run), evaluation (the comparison statistics'
simulations: false alarms, planted gaps, coverage), sweeps (a 30-trial MLP sweep against the defaults, with and
without pruning, and its overhead), collection (every default model, repeated, on the real tables of
benchmarks/tables.py, with ranks, ties and the time to quality against the tutorial loop), advisor (planted problems:
what the advisor names and whether following its first suggestion improves validation; importance's cost on the
50,000-row task), cluster (a 12-trial MLP sweep on a local two-node Ray cluster against one node, and the Ray
executor's dispatch overhead against a local worker's), drift (alarm rates of the monitoring on 100 simulated
batches per scenario), busy (the MLP's training step with one other CPU-bound process running, against idle),
recipe (the RealMLP recipe's parts, each switched on alone against the default MLP, on the small collection
tables). On a machine with CUDA, throughput,
time_to_quality, sklearn_mlp and utilisation also run our trainer on the GPU (bf16 autocast, its default there).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

from benchmarks import common
from workbench.devices import tune_cpu_allocator

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("throughput", "time_to_quality", "sklearn_mlp", "utilisation", "ingest", "train_memory", "quality",
         "runs_page", "repeats", "estimates", "evaluation", "sweeps", "collection", "advisor", "cluster", "serving", "drift",
         "busy", "recipe")


def run_part(name: str, quick: bool, device: str, compile_model: bool) -> dict:
    if name == "throughput":
        from benchmarks import throughput
        return throughput.measure(device, rows=20_000 if quick else 200_000, repeats=1 if quick else 5)
    if name == "time_to_quality":
        from benchmarks import time_to_quality
        return time_to_quality.measure(device, rows=20_000 if quick else 200_000, max_epochs=6 if quick else 12,
                                       compile_model=compile_model and device == "cuda")
    if name == "sklearn_mlp":
        from benchmarks import sklearn_mlp
        return sklearn_mlp.measure(device, rows=20_000 if quick else 200_000, max_epochs=8 if quick else 15)
    if name == "utilisation":
        from benchmarks import utilisation
        if quick:
            return utilisation.measure(device, batch=512, width=128, seconds=0.5)
        return utilisation.measure(device)
    if name == "ingest":
        from benchmarks import ingest_scale
        out = ingest_scale.measure(100_000 if quick else 1_000_000)
        out["met"] = bool(quick or (out["seconds"] < 15 and out["peak_rss_mb"] < 2048))
        return out
    if name == "train_memory":
        from benchmarks import train_memory
        return train_memory.measure(50_000 if quick else 1_000_000)
    if name == "quality":
        from benchmarks import quality
        return quality.measure(quick=quick)
    if name == "runs_page":
        from benchmarks import runs_page
        return runs_page.measure(100 if quick else 500)
    if name == "repeats":
        from benchmarks import repeats
        return repeats.measure(2_000 if quick else 10_000)
    if name == "estimates":
        from benchmarks import estimates
        return estimates.measure(2000 if quick else 6000)
    if name == "evaluation":
        from benchmarks import evaluation
        comparisons = 40 if quick else 200
        return {"false_alarms": evaluation.false_alarms(comparisons), "planted_gap": evaluation.planted_gap(comparisons),
                "coverage": evaluation.coverage(200 if quick else 1000), "bootstrap_seconds": evaluation.bootstrap_seconds()}
    if name == "sweeps":
        from benchmarks import sweeps
        return sweeps.measure(2_000, trials=4, epochs=3, repeats=2) if quick else sweeps.measure()
    if name == "collection":
        from benchmarks import collection, tables
        return collection.measure(tables.smallest(3) if quick else None, repeats=2 if quick else collection.REPEATS)
    if name == "advisor":
        from benchmarks import advisor
        return advisor.measure(quick)
    if name == "cluster":
        from benchmarks import cluster
        return cluster.measure(trials=4, rows=1000, epochs=3) if quick else cluster.measure()
    if name == "serving":
        from benchmarks import serving
        return serving.measure(1_000, requests=100, batch_rows=1_000, batches=1) if quick else serving.measure()
    if name == "drift":
        from benchmarks import drift
        return drift.measure(batches=100, rows=1_000)  # the targets' own sizes: milliseconds on summaries
    if name == "busy":
        from benchmarks import busy
        return busy.measure(2_000 if quick else busy.ROWS)
    if name == "recipe":  # the RealMLP recipe's parts, each against the default MLP (issue 21)
        from benchmarks import recipe
        if quick:
            return recipe.measure(("iris",), parts=("adam_beta2",), repeats=2, params={"epochs": 2}, warm_up=False)
        return recipe.measure(recipe.SMALL_TABLES, repeats=recipe.REPEATS)
    raise ValueError(name)


DEVICE_PARTS = ("throughput", "time_to_quality", "sklearn_mlp", "utilisation")  # ours on each device


def targets(results: dict) -> list[dict]:
    """Each target of the performance issue, with the measured figure and whether it is met (CPU figures)."""
    out = []

    def add(name: str, target: str, measured, met) -> None:
        out.append({"name": name, "target": target, "measured": measured, "met": met})

    cpu = results.get("cpu", {})
    if "throughput" in cpu:
        for batch, need in (("256", 1.5), ("4096", 3.0)):
            row = cpu["throughput"]["by_batch"].get(batch)
            if row:
                add(f"throughput batch {batch}", f">= {need}x tutorial", row["speedup"], row["speedup"] >= need)
    if "time_to_quality" in cpu:
        s = cpu["time_to_quality"]["speedup_vs_best"]
        add("time to quality vs tutorial", ">= 5x", s, s is not None and s >= 5)
    if "sklearn_mlp" in cpu:
        s = cpu["sklearn_mlp"]["speedup"]
        add("time to quality vs sklearn MLP", ">= 3x", s, s is not None and s >= 3)
    if "utilisation" in cpu:
        u = cpu["utilisation"]["utilisation"]
        add(f"utilisation 3x512 @4096 ({cpu['utilisation']['dtype']})", ">= 0.70 of matmul", u, u >= 0.7)
    ingest = results.get("ingest")
    if ingest and "seconds" in ingest:
        add(f"ingest+profile {ingest['rows']:,} x {ingest['columns']}", "< 15 s, < 2 GB",
            f"{ingest['seconds']} s, {ingest['peak_rss_mb']} MB", ingest["met"])
    memory = results.get("train_memory")
    if memory and "overhead_over_table" in memory:
        # "Near the data size": the run (preprocessing, tensors, training, scoring) adds at most the table's size.
        ratio = memory["overhead_over_table"]
        add(f"training memory {memory['rows']:,} rows", "run adds <= 1.0x the table", ratio, ratio <= 1.0)
    quality = results.get("quality", {})
    for name, row in quality.get("mlp_vs_gradient_boosting", {}).items():
        add(f"mlp within 2 pts of GB: {name}", "gap <= 2.0", row["gap_points"], row["within_2_points"])
    page = results.get("runs_page")
    if page and "first_render_s" in page:
        add(f"runs page, {page['runs']} runs", "< 2 s", page["first_render_s"], page["met"])
    repeated = results.get("repeats")
    if repeated and "ratio" in repeated:
        add(f"{repeated['repeats']} repeats vs one run, {repeated['rows']:,} rows, 1 worker",
            f"<= {repeated['target_ratio']}x", repeated["ratio"], repeated["met"])
        add(f"{repeated['repeats']} repeats on 2 workers vs 1 worker", f"< {repeated['ratio']}x",
            repeated["two_workers_ratio"], repeated["two_workers_faster"])
    swept = results.get("sweeps")
    if swept and "pruning_saved" in swept:
        add(f"{swept['trials']}-trial MLP sweep vs defaults, {swept['rows']:,} rows (validation)", "better",
            f"{swept['pruned']['best_val']} vs {swept['defaults']['val']}",
            (swept["pruned"]["best_val"] or 0) > (swept["defaults"]["val"] or 1))
        add("pruning saves wall time (sweeps side by side)", f">= {swept['target_pruning_saved']:.0%}",
            swept["pruning_saved"], swept["pruning_saved"] >= swept["target_pruning_saved"])
        add("pruned best vs unpruned best (validation)", f"within {swept['noise']}",
            f"{swept['pruned']['best_val']} vs {swept['unpruned']['best_val']}", swept["within_noise"])
        add(f"sweep time in ask, tell, storage and saving (outside the epochs altogether: "
            f"{swept['pruned']['outside_epochs_share']:.1%})", f"<= {swept['target_overhead_share']:.0%}",
            swept["overhead_share"], swept["overhead_share"] <= swept["target_overhead_share"])
    advised = results.get("advisor")
    if advised and "cases" in advised:
        problems = [c for c in advised["cases"] if c["planted"] != "ok"]
        add("advisor names the planted problem", f"all {len(problems)} cases",
            ", ".join(f"{c['case']}: {'first' if c['first'] else 'named' if c['named'] else 'missed'}" for c in problems),
            advised["named_all"])
        add("advisor on the healthy run", "ok only", ",".join(next(c["codes"] for c in advised["cases"]
                                                                   if c["planted"] == "ok")), advised["healthy_ok_only"])
        add("first suggestion improves validation", f">= {advised['target_improved']} of {advised['problem_cases']}",
            f"{advised['improved']} (on the test rows: {advised['improved_on_test']})",
            advised["improved"] >= advised["target_improved"])
    served = results.get("serving")
    if served and "models" in served:
        for model, row in served["models"].items():
            add(f"API one-row request, {model} (p50; p99 {row['p99_ms']} ms)", f"p50 <= {served['target_p50_ms']} ms",
                row["p50_ms"], row["p50_ms"] <= served["target_p50_ms"])
    collection = results.get("collection")
    if collection:
        out.extend(collection_targets(collection))
    cluster = results.get("cluster")
    if cluster and "ratio" in cluster:
        add(f"{cluster['trials']}-trial MLP sweep on 2 Ray nodes vs 1", f">= {cluster['target_ratio']}x",
            cluster["ratio"], cluster["met"])
    drifted = results.get("drift")
    if drifted and "scenarios" in drifted:
        for r in (r for r in drifted["scenarios"] if r["target"]):
            add(f"drift alarm: {r['scenario']}", f">= {drifted['target_detection']:.0%} detected, <= "
                f"{drifted['target_false_alarms']:.0%} false alarms",
                (f"{r['detection_rate']:.0%} detected, " if "detection_rate" in r else "")
                + f"{r['false_alarm_rate']:.0%} false alarms", r["met"])
    busy = results.get("busy")
    if busy and "ratio" in busy:
        add(f"MLP training step with one other CPU-bound process (idle {busy['idle']['step_ms']} ms, busy "
            f"{busy['busy']['step_ms']} ms)", f"<= {busy['target_ratio']}x idle", f"{busy['ratio']}x", busy["met"])
    return out


def collection_targets(collection: dict) -> list[dict]:
    """Issue 21's targets on the real tables."""
    from benchmarks.collection import BIG_TABLE_ROWS

    out = []
    tables = collection["tables"]
    for name, result in tables.items():
        ttq = result.get("time_to_quality")
        if ttq and result["rows"] >= BIG_TABLE_ROWS:
            out.append({"name": f"time to quality vs tutorial: {name}", "target": ">= 5x, ours at least its best",
                        "measured": f"{ttq['ratio']}x", "met": bool(ttq["ratio"] and ttq["ratio"] >= 5
                                                                     and ttq["ours_val_at_least_tutorial_best"])})
        pair = result.get("vs_gradient_boosting", {}).get("mlp")
        if pair and result["task"] == "regression":
            out.append({"name": f"mlp wall time vs gradient boosting: {name}", "target": "<= 10x, tied or better",
                        "measured": f"{pair['wall_ratio']}x, {'tied or better' if pair['tied_or_better'] else 'worse'}",
                        "met": bool(pair["wall_ratio"] is not None and pair["wall_ratio"] <= 10 and pair["tied_or_better"])})
    versus = [r.get("vs_gradient_boosting", {}) for r in tables.values() if r.get("vs_gradient_boosting")]
    if versus:
        share = sum(any(v.get(m, {}).get("tied_or_better") for m in ("mlp", "tabm")) for v in versus) / len(versus)
        out.append({"name": "mlp or tabm tied with or better than gradient boosting", "target": ">= 70% of tables",
                    "measured": f"{share:.0%} of {len(versus)}", "met": share >= 0.7})
    ranked = [r["models"]["ensemble"] for r in tables.values() if r["models"].get("ensemble", {}).get("rank")]
    if ranked:
        share = sum(r["tied_with_best"] for r in ranked) / len(ranked)
        out.append({"name": "ensemble best or tied with the best", "target": ">= 80% of tables",
                    "measured": f"{share:.0%} of {len(ranked)}", "met": share >= 0.8})
    return out


def table(results: dict) -> str:
    lines = [f"Workbench benchmarks ({'quick' if results['quick'] else 'full'}), load {results['machine']['load_avg_1m']}"
             f" at start, {results['machine']['load_avg_end_1m']} at end, {results['machine']['torch_threads']} torch threads"]
    for device in ("cpu", "cuda"):
        part = results.get(device, {})
        if "throughput" in part:
            for batch, row in part["throughput"]["by_batch"].items():
                lines.append(f"[{device}] throughput batch {batch:>5}: ours {row['ours_rows_per_s']:>9,} rows/s, "
                             f"tutorial {row['tutorial_rows_per_s']:>9,} rows/s  -> {row['speedup']}x")
        if "time_to_quality" in part:
            t = part["time_to_quality"]
            lines.append(f"[{device}] time to quality ({t['metric']} {t['target_score']}): tutorial "
                         f"{t['tutorial']['seconds_to_best']} s to best ({t['tutorial']['seconds_total']} s total), ours "
                         f"{t['ours']['seconds']} s{'' if t['ours']['reached'] else ' (NOT reached)'} -> "
                         f"{t['speedup_vs_best']}x")
        if "sklearn_mlp" in part:
            t = part["sklearn_mlp"]
            lines.append(f"[{device}] vs sklearn MLP ({t['target_score']}): sklearn {t['sklearn']['seconds_to_best']} s, "
                         f"ours {t['ours']['seconds']} s{'' if t['ours']['reached'] else ' (NOT reached)'} -> {t['speedup']}x")
        if "utilisation" in part:
            u = part["utilisation"]
            matmuls = ", ".join(f"{dtype} {gflops}" for dtype, gflops in u["matmul_gflops_by_dtype"].items())
            variants = ", ".join(f"{k} ({v['dtype']}) {v['gflops']} GFLOP/s ({v['utilisation']:.0%})"
                                 for k, v in u["variants"].items())
            lines.append(f"[{device}] utilisation {u['hidden']} @ {u['batch']}: matmul GFLOP/s {matmuls}; step {variants}")
    if "ingest" in results:
        i = results["ingest"]
        lines.append(f"ingest+profile {i['rows']:,} x {i['columns']} ({i['csv_mb']} MB CSV): {i['seconds']} s, "
                     f"peak RSS {i['peak_rss_mb']} MB")
    if "train_memory" in results:
        m = results["train_memory"]
        lines.append(f"training memory {m['rows']:,} rows: table {m['table_mb']} MB in memory, peak RSS "
                     f"{m['peak_rss_mb']} MB (with the table {m['rss_with_table_mb']} MB, +{m['training_overhead_mb']} MB "
                     f"for the run: {m['overhead_over_table']}x the table), {m['seconds']} s")
    if "quality" in results:
        for name, data in results["quality"]["datasets"].items():
            cells = ", ".join(f"{m} {r['test']}" for m, r in data["models"].items())
            lines.append(f"quality {name} ({data['rows']:,} rows, test {next(iter(data['models'].values()))['metric']}"
                         f"): {cells}")
    if "runs_page" in results:
        p = results["runs_page"]
        lines.append(f"runs page with {p['runs']} runs: first render {p['first_render_s']} s, warm {p['warm_render_s']} s")
    if "repeats" in results:
        r = results["repeats"]
        lines.append(f"repeats: {r['repeats']} repeats of the default MLP on {r['rows']:,} rows {r['group_s']} s, one run "
                     f"{r['single_s']} s -> {r['ratio']}x (1 worker); on 2 workers {r['two_workers_group_s']} s -> "
                     f"{r['two_workers_ratio']}x")
    if "sweeps" in results:
        w = results["sweeps"]
        p, u, b = w["pruned"], w["unpruned"], w["best_retrained"]
        lines.append(f"sweeps: {w['trials']} MLP trials on {w['rows']:,} rows: defaults val {w['defaults']['val']}, best val "
                     f"{p['best_val']} pruned ({p['wall_s']} s, {p['n_pruned']} pruned) / {u['best_val']} unpruned "
                     f"({u['wall_s']} s) -> saved {w['pruning_saved']:.0%} of the time, {w['epochs_saved']:.0%} of the epochs "
                     f"({p['epochs_trained']} vs {u['epochs_trained']}); best retrained x{b['repeats']}: test "
                     f"{b['test_mean']} {b['test_ci']}; ask/tell/storage/saving {w['overhead_share']:.1%}, outside epochs "
                     f"{p['outside_epochs_share']:.1%} ({', '.join(f'{k} {v} s' for k, v in p['outside_epochs_s'].items())}), "
                     f"outside runs {p['outside_runs_share']:.1%}")
    if "collection" in results:
        from benchmarks.collection import lines as collection_lines
        lines.extend(collection_lines(results["collection"]))
    if "advisor" in results:
        from benchmarks.advisor import lines as advisor_lines
        lines.extend(advisor_lines(results["advisor"]))
    if "cluster" in results:
        from benchmarks.cluster import lines as cluster_lines
        lines.extend(cluster_lines(results["cluster"]))
    if "drift" in results:
        from benchmarks.drift import lines as drift_lines
        lines.extend(drift_lines(results["drift"]))
    if "recipe" in results:
        from benchmarks.recipe import lines as recipe_lines
        lines.extend(recipe_lines(results["recipe"]))
    for name, error in results.get("errors", {}).items():
        lines.append(f"ERROR {name}: {error}")
    lines.append("targets (quick sizes: a smoke check, not the targets' settings):" if results["quick"] else "targets:")
    for t in results["targets"]:
        lines.append(f"  {'MET ' if t['met'] else 'MISS'} {t['name']}: {t['measured']} (target {t['target']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    parser.add_argument("--only", action="append", choices=PARTS, metavar="NAME",
                        help=f"run only this part (repeatable): {', '.join(PARTS)}")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "latest.json"), help="where to write the JSON")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the model on CUDA")
    parser.add_argument("--no-table", action="store_true", help="print the JSON only")
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all",
                        help="where the per-device parts run (default: the CPU, and CUDA where there is one)")
    args = parser.parse_args(argv)
    parts = args.only or list(PARTS)
    # Our trainer tunes glibc's allocator on its first CPU run, process-wide; do it up front so both sides of
    # every comparison run under the same allocator and the ratios measure the training loops alone. For the same
    # reason the whole suite runs with the heap on huge pages (see benchmarks/__main__.py), as `python -m workbench`.
    tune_cpu_allocator()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.device != "all":
        if args.device not in devices:
            parser.error(f"--device {args.device}: this machine has no such device")
        devices = [args.device]
    results: dict = {"quick": args.quick, "machine": common.machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "seconds": {}, "errors": {}}
    for name in parts:
        for device in devices if name in DEVICE_PARTS else [None]:
            label = f"{name}[{device}]" if device else name
            print(f"... {label}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            try:
                value = run_part(name, args.quick, device or "cpu", args.compile)
            except Exception as exc:  # one failing part must not hide the others' figures
                results["errors"][label] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc(file=sys.stderr)
                continue
            finally:
                results["seconds"][label] = round(time.perf_counter() - started, 1)
            if device:
                results.setdefault(device, {})[name] = value
            else:
                results[name] = value
    results["machine"]["load_avg_end_1m"] = round(__import__("os").getloadavg()[0], 2)
    results["machine"]["peak_rss_mb"] = common.peak_rss_mb()
    results["targets"] = targets(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = json.dumps(results, indent=2, default=str)
    out.write_text(document + "\n")
    print(document)
    if not args.no_table:
        print()
        print(table(results))
    return 1 if results["errors"] else 0

