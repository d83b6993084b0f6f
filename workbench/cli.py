"""`python -m workbench ...`: every action of the app, headless.

A user error prints one line `error: ...` on stderr and exits 2; there is never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from workbench.errors import BROKE, UserError
from workbench.runconfig import SCALINGS, PrepConfig
from workbench.store.entities import RunStatus

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage dump is not one plain line
        raise UserError(message[0].upper() + message[1:] + ("" if message.endswith(".") else "."))


def terminal_safe(text: Any) -> str:
    """Text as a terminal shows it literally: control and format characters (escape sequences, bidi overrides,
    zero-width spaces) become visible escapes such as \\x1b; letters of every script stay as they are."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _store():
    from workbench.jobs import recover_stale_runs
    from workbench.store import Store

    store = Store.from_settings()
    recover_stale_runs(store)  # so that `runs`, `show`, `cancel` never show a dead worker's run as running
    return store


# -- data ----------------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> None:
    from workbench import datasets

    store = _store()
    if args.sample:
        added = datasets.add_sample(store, args.sample)
    elif args.path:
        added = datasets.add_path(store, args.path, args.name)
    else:
        raise UserError("Give a CSV path or --sample NAME.")
    d = added.dataset
    data = {
        "dataset_id": d.id, "name": d.name, "rows": d.n_rows, "created": added.created,
        "columns": [{"name": c["name"], "kind": c["kind"], "missing": c["missing"], "distinct": c["distinct"]}
                    for c in d.profile["columns"]],
        "warnings": [w["message"] for w in d.profile["warnings"]],
        "notes": d.notes if added.created else ["This file was ingested before; the existing dataset is used."],
    }
    if args.json:
        _print_json(data)
        return
    print(f"dataset {d.id}  {terminal_safe(d.name)}  {d.n_rows:,} rows x {d.n_columns} columns"
          + ("" if added.created else "  (already ingested)"))
    _print_columns(d.profile["columns"])
    for note in data["notes"]:
        print(f"note: {terminal_safe(note)}")
    for warning in data["warnings"]:
        print(f"warning: {terminal_safe(warning)}")


def _print_columns(columns: list[dict[str, Any]]) -> None:
    names = [terminal_safe(c["name"]) for c in columns]
    width = max([len(n) for n in names] + [6])
    print(f"  {'column':<{width}}  {'kind':<11} {'missing':>8} {'distinct':>9}")
    for name, c in zip(names, columns, strict=True):
        print(f"  {name:<{width}}  {c['kind']:<11} {c['missing']:>8,} {c['distinct']:>9,}")


def cmd_datasets(args: argparse.Namespace) -> None:
    items = _store().list_datasets()
    if args.json:
        _print_json([{"dataset_id": d.id, "name": d.name, "rows": d.n_rows, "columns": d.n_columns,
                      "created_at": d.created_at.isoformat()} for d in items])
        return
    if not items:
        print("No datasets yet. Try: python -m workbench ingest --sample wine")
    for d in items:
        print(f"{d.id}  {d.name:<40} {d.n_rows:>10,} rows {d.n_columns:>4} cols  {d.created_at:%Y-%m-%d %H:%M}")


def cmd_profile(args: argparse.Namespace) -> None:
    from workbench.datasets import profile_with_target

    profile = profile_with_target(_store(), args.dataset_id, args.target)
    if args.json:
        _print_json(profile)
        return
    print(f"{profile['n_rows']:,} rows x {profile['n_columns']} columns, {profile['duplicate_rows']:,} duplicate rows")
    _print_columns(profile["columns"])
    for warning in profile["warnings"]:
        print(f"warning: {terminal_safe(warning['message'])}")


def cmd_delete_dataset(args: argparse.Namespace) -> None:
    from workbench.datasets import delete_dataset

    dataset = delete_dataset(_store(), args.dataset_id)
    print(f"deleted dataset {dataset.id} ({dataset.name}) and its runs")


def cmd_db(args: argparse.Namespace) -> None:
    from workbench.store import Store, schema

    if args.action == "history":
        for revision, message, is_head in schema.history():
            print(f"{revision}  {message}" + ("  (head)" if is_head else ""))
        return
    store = Store.from_settings(migrate=False)  # `current` reports the database as it is
    if args.action == "upgrade":
        before = store.schema_revision()
        head = store.upgrade_schema()
        print(f"the database is at revision {head}" + ("" if before == head else f" (was {before or 'empty'})"))
        return
    current = store.schema_revision()
    print(current or "empty")
    if current != schema.head_revision():
        print(f"note: the newest revision is {schema.head_revision()}; opening the workbench (or `db upgrade`) "
              "brings the database there", file=sys.stderr)


# -- models and runs -----------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> None:
    from workbench.models.registry import catalog

    entries = catalog()
    if args.json:
        _print_json(entries)
        return
    for entry in entries:
        print(f"{entry['name']:<20} {entry['family']:<9} {entry['description']}")
        print(f"    when to use it: {entry['when_to_use']}")
        print(f"    preprocessing 'auto': numbers {entry['auto_scaling']}, categories {entry['auto_categorical']}")
        for p in entry["params"]:
            tier = " (advanced)" if p["advanced"] else ""
            print(f"    {p['name']:<18} {p['label']}{tier}; default {p['default']!s}. {p['help']}")


def _assignments(pairs: list[str], option: str) -> dict[str, str]:
    """`NAME=VALUE` pairs of a repeatable option (`--set`, `--space`, `--fix`)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UserError(f"{option} takes NAME=VALUE, not '{pair}'.")
        out[name.strip()] = value.strip()
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from workbench import datasets, jobs
    from workbench.runconfig import RunConfig, SplitConfig

    store = _store()
    if bool(args.dataset) == bool(args.csv):
        raise UserError("Give either --dataset ID or --csv PATH.")
    dataset_id = args.dataset or datasets.add_path(store, args.csv).dataset.id
    params = _assignments(args.set, "--set")
    if args.seed is not None:
        params["seed"] = args.seed
    config = RunConfig(dataset_id=dataset_id, target=args.target, model=args.model, task=args.task,
                       exclude=args.exclude, params=params,
                       split=SplitConfig(seed=args.split_seed if args.split_seed is not None else SplitConfig.seed,
                                         order_by=args.split_by_time),
                       prep=PrepConfig(scaling=args.scaling), repeats=args.repeats)
    if config.repeats > 1:
        return _train_group(store, config, args)
    run = jobs.submit_run(store, config)
    if args.background:
        started = jobs.executor_for(store).ensure_running()
        if args.json:
            _print_json({"run_id": run.id, "status": run.status, "worker_started": started})
        else:
            print(f"queued run {run.id}" + (" (started a worker)" if started else ""))
        return 0
    run = jobs.run_in_foreground(store, run)
    _show_run(run, args.json)
    return _exit_status(run)


def _exit_status(run) -> int:
    """0 unless the run failed: then 2 when the data or a setting stopped it (its message is the plain sentence
    shown), 1 when training broke."""
    if run.status != RunStatus.FAILED:
        return 0
    if (run.error or "").startswith(BROKE):
        return 1
    print(f"error: {terminal_safe(run.error or 'the run failed')}", file=sys.stderr)
    return EXIT_USER_ERROR


def cmd_quickstart(args: argparse.Namespace) -> None:
    from workbench import jobs
    from workbench.quickstart import quick_start

    store = _store()
    runs = quick_start(store, args.dataset, args.target)
    started = jobs.executor_for(store).ensure_running()
    if args.json:
        _print_json({"runs": [{"run_id": r.id, "model": r.model, "task": r.task, "status": r.status} for r in runs],
                     "worker_started": started})
        return
    for run in runs:
        print(f"queued run {run.id}  {run.model}  {run.task}")
    print("a worker trains them" + (" (started one)" if started else "") + "; follow them with: "
          "python -m workbench runs --dataset " + terminal_safe(args.dataset))


def _train_group(store, config, args: argparse.Namespace) -> int:
    """A repeated run: queued for the workers (--background), or its members trained here one after another; the
    exit status is a failed member's when none finished."""
    from workbench import groups, jobs

    group, members = jobs.submit_group(store, config)
    if args.background:
        started = jobs.executor_for(store).ensure_running()
        if args.json:
            _print_json({"group_id": group.id, "run_ids": [r.id for r in members], "status": RunStatus.QUEUED,
                         "worker_started": started})
        else:
            print(f"queued run group {group.id}: {len(members)} members{_rounded_up(len(members), config.repeats)}"
                  + (" (started workers)" if started else ""))
        return 0
    for member in members:
        jobs.run_in_foreground(store, member)
    summary = groups.summarize(store.get_group(group.id), store.group_runs(group.id))
    failed = [run for run in summary.members if run.status == RunStatus.FAILED]
    status = _exit_status(failed[0]) if failed and not summary.finished else 0
    if args.json:
        _print_json(groups.group_json(summary))
        return status
    print(f"run group {group.id}  {group.model}  target={terminal_safe(group.target)}  "
          f"{len(summary.finished)} of {group.n_members} members finished in {summary.cost_seconds:.1f}s"
          f"{_rounded_up(group.n_members, config.repeats)}")
    for metric, figure in summary.metrics.items():
        print(f"  {metric:<18} {groups.format_interval(figure.mean, figure.ci_low, figure.ci_high)}  "
              f"spread {figure.sd:.4f}")
    for run in summary.members:
        if run.error:
            print(f"  {run.member} {run.id} {run.status}: {terminal_safe(run.error)}")
    return status


def _rounded_up(n_members: int, repeats: int) -> str:
    """Why a group has more members than the repeats asked for; '' where it has as many."""
    from workbench.evaluation.folds import N_FOLDS

    return "" if n_members == repeats else \
        f" (--repeats {repeats} is rounded up to whole rounds of {N_FOLDS}-fold cross-validation)"


def cmd_compare(args: argparse.Namespace) -> None:
    from workbench import groups

    store = _store()
    ranking = groups.compare_items(groups.load_items(store, args.ids), args.metric, args.band)
    if args.json:
        _print_json(groups.comparison_json(ranking))
        return
    print(terminal_safe(ranking.sentence))
    for item in ranking.items:
        tie = "  tied with best" if item.tied_with_best else ""
        print(f"  {item.rank}. {item.kind:<5} {item.id}  {ranking.metric} "
              f"{groups.format_interval(item.mean, *groups.clip_interval(ranking.metric, item.ci_low, item.ci_high))}"
              f"{tie}")
    for pair in ranking.pairs:
        print(f"  {terminal_safe(pair.sentence)}")
    for item_id, reason in ranking.refused.items():
        print(f"  not compared: {item_id}: {terminal_safe(reason)}")


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from workbench import groups

    metric, rows = groups.read_leaderboard(_store(), args.dataset_id, args.target, args.metric)
    if args.json:
        _print_json(groups.leaderboard_json(metric, rows))
        return
    print(f"leaderboard of {args.dataset_id} predicting {terminal_safe(args.target)} by {metric}")
    for row in rows:
        tie = {True: "tied with best", False: "", None: terminal_safe(row.note)}[row.tied_with_best]
        print(f"  {row.rank}. {row.model:<20} {row.kind:<5} {row.id}  "
              f"{groups.format_interval(row.mean, row.ci_low, row.ci_high):<24} {row.cost_seconds:8.1f}s  {tie}")


def _run_json(run) -> dict[str, Any]:
    data = {
        "run_id": run.id, "status": run.status, "model": run.model, "task": run.task, "target": run.target,
        "dataset_id": run.dataset_id, "params": run.params, "device": run.device, "epochs_run": run.epochs_done,
        "duration_s": run.duration_s, "metrics": run.metrics, "baseline": run.baseline, "error": run.error,
        "created_at": run.created_at.isoformat(), "split_fingerprint": run.split_fingerprint,
        "notes": (run.details or {}).get("notes") or [],
    }
    if not run.is_final:
        data["progress"] = run.progress()
        data["history"] = [vars(e) for e in run.epochs]
    return data


def _show_run(run, as_json: bool) -> None:
    if as_json:
        _print_json(_run_json(run))
        return
    print(f"run {run.id}  {run.status}  {run.model}  {run.task}  target={run.target}  device={run.device}")
    if not run.is_final:
        p = run.progress()
        eta = f", ETA {p['eta_likely_s']:.0f}s (up to {p['eta_s']:.0f}s)" if p["eta_s"] is not None else ""
        print(f"  epoch {p['epoch']} of {p['epochs_planned']}{eta}")
    if run.duration_s is not None:
        print(f"  {run.epochs_done} epochs in {run.duration_s:.1f}s")
    for split in ("val", "test"):
        values = run.metrics.get(split, {})
        if values:
            print(f"  {split:<5} " + "  ".join(f"{k}={v:.4f}" for k, v in values.items() if isinstance(v, (int, float))))
    base = run.baseline.get("test", {})
    if base:
        print("  base  " + "  ".join(f"{k}={v:.4f}" for k, v in base.items() if isinstance(v, (int, float))))
    if run.error:
        print(f"  message: {run.error}")
    for note in (run.details or {}).get("notes") or []:  # what preparation decided: columns left out, dates read
        print(f"  note: {note}")


def cmd_runs(args: argparse.Namespace) -> None:
    runs = _store().list_runs(dataset_id=args.dataset)
    if args.json:
        _print_json([{"run_id": r.id, "status": r.status, "model": r.model, "task": r.task,
                      "dataset_id": r.dataset_id, "target": r.target, "primary_metric": r.primary_metric,
                      "primary_value": r.primary_value, "duration_s": r.duration_s,
                      "created_at": r.created_at.isoformat()} for r in runs])
        return
    if not runs:
        print("No runs yet.")
    for r in runs:
        metric = f"{r.primary_metric}={r.primary_value:.4f}" if r.primary_value is not None else ""
        print(f"{r.id}  {r.status:<11} {r.model:<20} {r.task:<10} {metric:<22} {r.created_at:%Y-%m-%d %H:%M}")


def cmd_show(args: argparse.Namespace) -> None:
    _show_run(_store().get_run(args.run_id), args.json)


def cmd_delete_run(args: argparse.Namespace) -> None:
    from workbench.jobs import delete_run

    delete_run(_store(), args.run_id)
    print(f"deleted run {args.run_id}")


def cmd_cancel(args: argparse.Namespace) -> None:
    from workbench.jobs import cancel_run

    run = cancel_run(_store(), args.run_id)
    print(f"run {run.id}: " + ("cancelled" if run.status == RunStatus.CANCELLED else "cancel requested"))


# -- sweeps --------------------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> None:
    from workbench.advisor import advise, suggestion_command
    from workbench.explain import item_explanation

    store = _store()
    explanation = item_explanation(store, args.id, compute=True)
    advice = advise(store, args.id)
    if args.json:
        _print_json({"importance": explanation.importance_json() if explanation else [],
                     "partial_dependence": explanation.partial_dependence if explanation else {},
                     "advice": [a.to_dict() for a in advice]})
        return
    if explanation is None:
        print("No importance: no member of this group has finished successfully yet.")
    else:
        print(f"importance of each column: how much {explanation.metric} drops when it is shuffled "
              f"({explanation.n_rows:,} test rows, {explanation.n_repeats} shuffles)")
        for item in explanation.importance:
            spread = (f"95% interval {item.low:.4f} to {item.high:.4f}" if item.low is not None
                      else f"± {item.std:.4f}")
            print(f"  {terminal_safe(item.column):<30} {item.importance:>9.4f}  {spread}")
        for note in explanation.notes:
            print(f"  note: {terminal_safe(note)}")
    for item in advice:
        print(f"{item.code}: {terminal_safe(item.message)}")
        if item.evidence:
            print("  evidence: " + ", ".join(f"{k}={v}" for k, v in item.evidence.items()))
        if item.suggestion:
            print(f"  next run: {terminal_safe(suggestion_command(store, args.id, item.suggestion))}")


def cmd_sweep(args: argparse.Namespace) -> None:
    from workbench import jobs, sweeps
    from workbench.runconfig import RunConfig

    store = _store()
    if args.workers < 1:
        raise UserError("--workers must be at least 1.")
    every = args.model == "all"
    n_trials = args.trials if args.trials is not None else (1 if every else sweeps.DEFAULT_TRIALS)
    run = RunConfig(dataset_id=args.dataset, target=args.target, model=args.model, task=args.task,
                    params=_assignments(args.fix, "--fix"))
    known_good = []
    for run_id in args.try_run:  # known-good configurations: the settings of earlier runs, tried after the defaults
        earlier = store.get_run(run_id, with_epochs=False)
        if earlier.model != args.model:
            raise UserError(f"Run {run_id} trained {earlier.model}; a search of {args.model} can only start from "
                            f"a {args.model} run.")
        known_good.append(earlier.params)
    config = sweeps.SweepConfig(run, n_trials=n_trials, timeout_s=args.timeout_s,
                                space=_assignments(args.space, "--space"),
                                prune=False if args.no_prune else None, seed=args.seed, known_good=known_good)
    submitted = sweeps.sweep_every_model(store, config) if every else [sweeps.submit_sweep(store, config)]
    if args.background:
        started = jobs.executor_for(store).ensure_running()
        if not args.json:
            print("\n".join(f"queued sweep {s.id} ({s.model}, {s.n_trials} trials)" for s in submitted)
                  + (" (started a worker)" if started else ""))
    else:
        jobs.sweep_in_foreground(store, [s.id for s in submitted], extra_workers=args.workers - 1)
    summaries = [sweeps.sweep_summary(store, s.id) for s in submitted]
    if args.json:
        data = [s.to_json() for s in summaries]
        _print_json(data if every else data[0])
        return
    if not args.background:
        for summary in summaries:
            _print_sweep(summary)


def _print_sweep(summary) -> None:
    data = summary.to_json()
    print(f"sweep {data['sweep_id']}  {data['status']}  {data['model']}  {data['n_complete']} complete, "
          f"{data['n_pruned']} pruned, {data['n_failed']} failed of {data['n_trials']}  in {data['duration_s']:.1f}s")
    if data["best_run_id"]:
        print(f"  best: run {data['best_run_id']}  validation {data['metric']}={data['best_value']:.4f}")
        print("  " + "  ".join(f"{k}={terminal_safe(v)}" for k, v in data["best_params"].items()))
    if summary.sweep.error:
        print(f"  message: {terminal_safe(summary.sweep.error)}")


def cmd_sweeps(args: argparse.Namespace) -> None:
    found = _store().list_sweeps(dataset_id=args.dataset)
    if args.json:
        _print_json([{"sweep_id": s.id, "status": s.status, "model": s.model, "dataset_id": s.dataset_id,
                      "target": s.target, "n_trials": s.n_trials, "trials_started": s.trials_started,
                      "best_run_id": s.best_run_id, "created_at": s.created_at.isoformat()} for s in found])
        return
    if not found:
        print("No sweeps yet.")
    for s in found:
        print(f"{s.id}  {s.status:<9} {s.model:<20} {s.trials_started}/{s.n_trials} trials  "
              f"best={s.best_run_id or '-'}  {s.created_at:%Y-%m-%d %H:%M}")


def cmd_show_sweep(args: argparse.Namespace) -> None:
    from workbench import sweeps

    summary = sweeps.sweep_summary(_store(), args.sweep_id)
    if args.json:
        _print_json({**summary.to_json(), "space": summary.space, "importances": summary.importances,
                     "trials": [vars(t) for t in summary.trials]})
        return
    _print_sweep(summary)
    for t in summary.trials:
        value = f"{t.value:.4f}" if t.value is not None else "-"
        print(f"  trial {t.number:>3}  {t.state:<9} {value:>8}  run {t.run_id or '-'}")


def cmd_cancel_sweep(args: argparse.Namespace) -> None:
    from workbench.sweeps import cancel_sweep

    sweep = cancel_sweep(_store(), args.sweep_id)
    print(f"sweep {sweep.id}: cancelled; its running trials stop within seconds")


def cmd_predict(args: argparse.Namespace) -> None:
    from workbench.ingest import read_path
    from workbench.monitoring import record_batch
    from workbench.predict import predict_file, to_safe_csv

    store = _store()
    if args.explain:
        from workbench.contributions import explain_csv, with_contributions

        result, explanation = explain_csv(store, args.run_id, read_path(args.path))
        table = with_contributions(result.table, explanation)
    else:
        result = predict_file(store, args.run_id, read_path(args.path))
        table = result.table
    record_batch(store, args.run_id, result.inputs(), result.table, source="cli")  # never fails the prediction
    for note in result.notes:  # on stderr, so that the CSV on stdout stays clean
        print(f"note: {terminal_safe(note)}", file=sys.stderr)
    text = to_safe_csv(table)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {len(result.table):,} predictions to {terminal_safe(args.out)}")
    else:
        sys.stdout.write(text)


def cmd_monitor(args: argparse.Namespace) -> None:
    from workbench.monitoring import DEFAULT_LAST_BATCHES, format_value, monitor_report

    if args.last is not None and args.last < 1:
        raise UserError("--last must be at least 1.")
    report = monitor_report(_store(), args.run_id, last_n_batches=args.last or DEFAULT_LAST_BATCHES)
    if args.json:
        _print_json(report.to_dict())
        return
    if not report.batches:
        print(f"Run {args.run_id} has predicted nothing yet: there is nothing to monitor.")
        return
    print(f"run {args.run_id}: the latest {report.batches:,} prediction batches ({report.rows:,} rows, "
          f"{report.first_at:%Y-%m-%d %H:%M} to {report.last_at:%Y-%m-%d %H:%M} UTC) against its training rows")
    for alarm in report.alarms or ["no drift alarm"]:
        print(f"  {'alarm: ' if report.alarms else ''}{terminal_safe(alarm)}")
    print(f"  {'column':<30} {'PSI':>7} {'p':>10}  drifted")
    for c in report.columns:
        psi, p = ("-", "-") if c.psi is None else (f"{c.psi:.3f}", f"{c.p_value:.2g}")
        print(f"  {terminal_safe(c.column):<30} {psi:>7} {p:>10}  {'yes' if c.drifted else 'no'}"
              + ("" if c.psi is not None else f"  (only {c.rows:,} recent rows)"))
    shift = report.prediction_shift
    if shift is not None and shift.psi is not None:
        mean = (f", mean {format_value(shift.current_mean, 'number')} against "
                f"{format_value(shift.reference_mean, 'number')}" if shift.kind == "numbers" else "")
        print(f"  predictions against the test rows': PSI {shift.psi:.3f}, p {shift.p_value:.2g}{mean}, "
              f"{'shifted' if shift.drifted else 'not shifted'}")


def cmd_export(args: argparse.Namespace) -> None:
    if args.format == "onnx":
        from workbench.onnx_export import bundle_check, export_onnx

        data = export_onnx(_store(), args.run_id)
        out = Path(args.out or f"workbench-run-{args.run_id}-onnx.zip")
        out.write_bytes(data)
        print(f"wrote the ONNX bundle of run {args.run_id} to {terminal_safe(str(out))}")
        print(bundle_check(data).sentence())
        return
    from workbench.predict import export_run

    data = export_run(_store(), args.run_id)
    out = Path(args.out or f"workbench-run-{args.run_id}.zip")
    out.write_bytes(data)
    print(f"wrote the model of run {args.run_id} to {out}")


def cmd_worker(args: argparse.Namespace) -> None:
    import torch

    from workbench.jobs import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker[%(process)d] %(message)s")
    gpus = torch.cuda.device_count()
    concurrent = args.max_concurrent or max(gpus, 1)  # default: one run at a time on a CPU, one per GPU
    if concurrent < 1:
        raise UserError("--max-concurrent must be at least 1.")
    command = [sys.executable, "-m", "workbench", "worker", "--max-concurrent", "1"]
    command += ["--once"] if args.once else []
    command += ["--idle-exit", str(args.idle_exit)] if args.idle_exit is not None else []
    children = []
    for i in range(1, concurrent):  # one process per concurrent run: no shared interpreter, no GIL
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(i % gpus)) if gpus else None
        children.append(subprocess.Popen(command, env=env))
    if gpus and concurrent > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = "0"
    processed = run_worker(_store(), once=args.once, idle_exit_s=args.idle_exit)
    for child in children:
        child.wait()
    print(f"worker processed {processed} runs")


def cmd_serve(args: argparse.Namespace) -> None:
    from workbench.serving import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s serve[%(process)d] %(message)s")
    serve(_store(), args.run_id, args.host, args.port)


# -- wiring --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m workbench", description="Workbench: train and compare models on a CSV.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("ingest", help="read a CSV into a dataset")
    p.add_argument("path", nargs="?")
    p.add_argument("--name")
    p.add_argument("--sample", help="a bundled sample: breast_cancer, wine, iris, digits, diabetes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("datasets", help="list datasets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("profile", help="profile a dataset")
    p.add_argument("dataset_id")
    p.add_argument("--target")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("db", help="the database schema: current revision, upgrade, history")
    p.add_argument("action", choices=["current", "upgrade", "history"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("delete-dataset", help="delete a dataset and its runs (none may be queued or running)")
    p.add_argument("dataset_id")
    p.set_defaults(func=cmd_delete_dataset)

    p = sub.add_parser("models", help="the model catalog")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train a model")
    p.add_argument("--dataset")
    p.add_argument("--csv")
    p.add_argument("--target", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--task", default="auto", choices=["auto", "binary", "multiclass", "regression"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--exclude", action="append", default=[])
    p.add_argument("--seed", type=int)
    p.add_argument("--split-seed", type=int)
    p.add_argument("--split-by-time", metavar="COLUMN",
                   help="train on the earliest rows by this date column, test on the latest (no future leaks in)")
    p.add_argument("--scaling", default=PrepConfig.scaling, choices=SCALINGS,
                   help="how numbers are scaled (robust: median and quartiles, outliers clipped smoothly)")
    p.add_argument("--background", action="store_true", help="queue it and return; a worker trains it")
    p.add_argument("--repeats", type=int, default=1,
                   help="train it N times on fixed folds (a run group with a mean and an interval per metric)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("quickstart", help="queue a few strong default models for a target and start a worker")
    p.add_argument("--dataset", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("runs", help="list runs")
    p.add_argument("--dataset")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="show a run")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("delete-run", help="delete a run")
    p.add_argument("run_id")
    p.set_defaults(func=cmd_delete_run)

    p = sub.add_parser("cancel", help="cancel a queued or running run")
    p.add_argument("run_id")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("predict", help="predict with a finished run")
    p.add_argument("run_id")
    p.add_argument("path")
    p.add_argument("--out")
    p.add_argument("--explain", action="store_true",
                   help="add each column's contribution to the prediction ('contribution: <column>', against a "
                        "typical row) and a sentence ('explanation'); at most 2,000 rows")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("monitor", help="drift of a run's recent predictions against its training rows, with alarms")
    p.add_argument("run_id")
    p.add_argument("--last", type=int, metavar="N", help="compare the latest N prediction batches (default 100)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("export", help="export a trained model as a zip of safe files, or as a portable ONNX bundle")
    p.add_argument("run_id")
    p.add_argument("--format", choices=("native", "onnx"), default="native",
                   help="native: the Workbench's own files (default); onnx: model.onnx with a predict.py and serve.py "
                        "that need only onnxruntime and numpy (and FastAPI to serve)")
    p.add_argument("--out")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="serve a finished run as an HTTP prediction API (FastAPI, docs at /docs)")
    p.add_argument("run_id")
    p.add_argument("--host", default="127.0.0.1",
                   help="another machine's reach needs WORKBENCH_API_TOKEN set (requests send it as a bearer token)")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("compare", help="is A better than B: compare runs and run groups on the same test rows")
    p.add_argument("ids", nargs="+", metavar="ID", help="a run id or a run group id")
    p.add_argument("--metric", help="default: the task's main metric")
    p.add_argument("--band", type=float, help="gaps within ±BAND count as practically the same (metric units)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("leaderboard", help="the best run or group of each model on a dataset and target")
    p.add_argument("dataset_id")
    p.add_argument("--target", required=True)
    p.add_argument("--metric", help="default: the task's main metric")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("explain", help="what a run (or group) learned: column importance, partial dependence, advice")
    p.add_argument("id", metavar="ID", help="a run id or a run group id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("sweep", help="search a model's hyperparameters: every trial is a run")
    p.add_argument("--dataset", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--model", required=True, help="a model, or 'all': one sweep per model that fits the task")
    p.add_argument("--task", default="auto", choices=["auto", "binary", "multiclass", "regression"])
    p.add_argument("--trials", type=int, help="how many trials (default 20; with --model all, 1: the defaults)")
    p.add_argument("--timeout-s", type=float, help="start no trial after this many seconds")
    p.add_argument("--space", action="append", default=[],
                   help="NAME=LOW:HIGH[:log] or NAME=a,b,c (lists of numbers: 128/256,256), repeatable")
    p.add_argument("--fix", action="append", default=[], help="NAME=VALUE, not searched, repeatable")
    p.add_argument("--try-run", action="append", default=[], metavar="RUN_ID",
                   help="also try this earlier run's settings, right after the defaults; repeatable")
    p.add_argument("--workers", type=int, default=1, help="trials at a time, in this and K-1 more processes")
    p.add_argument("--no-prune", action="store_true", help="never stop a trial early")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument("--json", action="store_true")
    p.add_argument("--background", action="store_true", help="queue it for the workers and return")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("sweeps", help="list sweeps")
    p.add_argument("--dataset")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sweeps)

    p = sub.add_parser("show-sweep", help="show a sweep and its trials")
    p.add_argument("sweep_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show_sweep)

    p = sub.add_parser("cancel-sweep", help="cancel a running sweep")
    p.add_argument("sweep_id")
    p.set_defaults(func=cmd_cancel_sweep)

    p = sub.add_parser("worker", help="train queued runs and sweep trials")
    p.add_argument("--once", action="store_true", help="stop when the queue is empty and no sweep has a trial")
    p.add_argument("--max-concurrent", type=int, help="runs at a time (default: 1 on a CPU, one per GPU)")
    p.add_argument("--idle-exit", type=float, help="stop after this many seconds with an empty queue")
    p.set_defaults(func=cmd_worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        status = args.func(args) or 0
    except UserError as exc:
        print(f"error: {terminal_safe(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... runs | head` stopped reading: not an error; Python's exit flush must not say so
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        print(f"error: unexpected failure ({type(exc).__name__}: {exc}); set WORKBENCH_DEBUG=1 for details",
              file=sys.stderr)
        return 1
    return status
