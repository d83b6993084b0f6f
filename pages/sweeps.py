"""Sweeps: each search of a model's settings (`/sweeps?sweep=ID`): how far it got, every trial as a point with the
best so far, the settings against the score, which settings mattered, every trial as a run, and one button that
retrains the best settings with repeats so its score gets an honest interval."""

import pandas as pd
import streamlit as st

from ui import charts
from ui.auth import require_access
from ui.frame import require_frame
from ui.guard import guarded_fragment
from ui.resources import get_store, model_catalog
from ui.tables import format_duration, metric_label, run_page_url, runs_column_config
from ui.text import escape_markdown
from workbench import jobs, sweeps
from workbench.errors import UserError
from workbench.store import SweepStatus

LIVE_REFRESH_S = 2.0
PICK_KEY = "sweeps.pick"  # the sweep chosen in the picker; the address (?sweep=ID) follows it
STATE_WORDS = {"complete": "finished", "pruned": "stopped early (pruned)", "fail": "failed", "running": "training",
               "waiting": "waiting"}

require_frame(__file__)
require_access(logout_button=False)  # also when Streamlit runs this file without app.py
store = get_store()
jobs.recover_stale_runs(store)  # once per page load: a dead worker's trial reads as interrupted
st.title("Sweeps")

all_sweeps = store.list_sweeps()
if not all_sweeps:
    st.info("No searches yet. On **Train**, open **Not sure which settings or model? Search** to let Optuna try "
            "many settings of a model for you.")
    st.stop()
names = {d.id: d.name for d in store.list_datasets()}
by_id = {s.id: s for s in all_sweeps}
wanted = st.query_params.get("sweep")
if wanted in by_id:
    st.session_state[PICK_KEY] = wanted
elif wanted:
    st.warning(f"There is no sweep {escape_markdown(wanted)}: it was deleted with its dataset, or the address is "
               "not quite right. Choose one below.")
st.session_state.setdefault(PICK_KEY, all_sweeps[0].id)


def sweep_label(sweep_id: str) -> str:
    s = by_id[sweep_id]
    return (f"{s.id} · {s.model} · {names.get(s.dataset_id, 'a deleted dataset')} → {s.target} · {s.status} · "
            f"{s.created_at:%Y-%m-%d %H:%M}")


def follow_pick() -> None:
    st.query_params["sweep"] = st.session_state[PICK_KEY]


sweep_id = st.selectbox("Sweep", list(by_id), format_func=sweep_label, key=PICK_KEY, on_change=follow_pick)
catalog = {entry["name"]: entry for entry in model_catalog()}
labels = {spec["name"]: spec["label"] for spec in catalog.get(by_id[sweep_id].model, {}).get("params", [])}


def show_header(summary: sweeps.SweepSummary) -> None:
    sweep = summary.sweep
    st.markdown(f"Searching the settings of **{escape_markdown(sweep.model)}** to predict "
                f"**{escape_markdown(sweep.target)}** in **{escape_markdown(names.get(sweep.dataset_id, '?'))}**, by "
                f"validation {escape_markdown(metric_label(summary.metric))} "
                f"({'higher' if summary.direction == 'maximize' else 'lower'} is better).")
    done = summary.n_complete + summary.n_pruned + summary.n_failed
    status, best, trials, duration = st.columns(4)
    status.metric("Status", escape_markdown(str(sweep.status)))
    best.metric(f"Best validation {escape_markdown(metric_label(summary.metric))}",
                f"{summary.best.value:.4f}" if summary.best and summary.best.value is not None else "—",
                help="Of the finished trials; its test score is on its run's page")
    trials.metric("Trials ended", f"{done:,} of {sweep.n_trials:,}",
                  help=f"{summary.n_complete:,} finished, {summary.n_pruned:,} stopped early, {summary.n_failed:,} "
                       f"failed; {summary.n_running:,} training now")
    duration.metric("Time", escape_markdown(format_duration(summary.duration_s) or "—"))
    if sweep.status == SweepStatus.RUNNING:
        st.progress(min(1.0, done / sweep.n_trials), text=escape_markdown(
            f"{done} of {sweep.n_trials} trials ended; {summary.n_running} training now"))
        if st.button("Cancel the search", disabled=sweep.cancel_requested, key=f"sweeps.cancel.{sweep.id}",
                     help="Starts no more trials and stops the ones training; finished trials stay"):
            try:
                sweeps.cancel_sweep(store, sweep.id)
            except UserError as exc:
                st.error(escape_markdown(exc))
            st.rerun()
    if sweep.error:
        st.warning(escape_markdown(sweep.error))


def show_trials(summary: sweeps.SweepSummary) -> None:
    trials = summary.trials
    frame = pd.DataFrame({"number": [t.number for t in trials], "state": [t.state for t in trials],
                          "value": [t.value for t in trials]}, dtype=object)
    frame["value"] = pd.to_numeric(frame["value"])
    chart_col, importance_col = st.columns([3, 2])
    with chart_col:
        st.plotly_chart(charts.sweep_history(frame, summary.best_so_far, summary.metric), width="stretch")
        st.caption("Each point is a trial's validation score (a pruned trial: its score when it was stopped); the "
                   "line is the best finished trial so far.")
    with importance_col:
        if summary.importances:
            st.plotly_chart(charts.importances(summary.importances, labels), width="stretch")
            st.caption("How much of the score's variation each searched setting explains (Optuna's fANOVA). "
                       "Settings that matter little can be fixed.")
        else:
            st.caption("Which settings mattered shows once two trials have finished with different scores.")
    complete = [t for t in trials if t.state == "complete" and t.value is not None]
    if len(complete) >= 2 and complete[0].params:
        table = pd.DataFrame([{labels.get(k, k): v for k, v in t.params.items()} for t in complete])
        for column in table.columns:
            numeric = pd.to_numeric(table[column], errors="coerce")
            table[column] = numeric if numeric.notna().all() and table[column].map(type).ne(bool).all() \
                else table[column].astype(str)
        value_name = f"validation {metric_label(summary.metric)}"
        table[value_name] = [t.value for t in complete]
        st.plotly_chart(charts.parallel_coordinates(table, value_name, summary.direction == "maximize"),
                        width="stretch")
        st.caption("Each line is a finished trial: its settings, and its score on the last axis and as colour.")
    st.dataframe(pd.DataFrame({
        "Trial": [t.number for t in trials],
        "Page": [run_page_url(t.run_id) if t.run_id else None for t in trials],
        "Ended": [STATE_WORDS.get(t.state, t.state) for t in trials],
        f"Validation {metric_label(summary.metric)}": [t.value for t in trials],
        "Epochs": [t.epochs for t in trials],
        "Time": [format_duration(t.duration_s) for t in trials],
        "Settings": [", ".join(f"{labels.get(k, k)} {short(v)}" for k, v in t.params.items()) for t in trials],
    }), hide_index=True, width="stretch", column_config=runs_column_config())


def short(value: object) -> str:
    """A trial's setting in a table: 0.00136 rather than 0.0013648156854197653."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def show_retrain(summary: sweeps.SweepSummary) -> None:
    if summary.best is None:
        return
    st.subheader("Use the best settings")
    st.caption("The best trial won among many, so its score is a little lucky. Retrain its settings with repeats "
               "to get an honest score with an interval, and compare it with other models on Runs & Compare.")
    repeats_col, button_col = st.columns([1, 2], vertical_alignment="bottom")
    repeats = repeats_col.number_input("Repeats", 2, 50, int(summary.sweep.config.get("repeats", 5)),
                                       key=f"sweeps.repeats.{summary.sweep.id}")
    if button_col.button("Retrain the best with repeats", type="primary", key=f"sweeps.retrain.{summary.sweep.id}"):
        try:
            group, _ = sweeps.retrain_best(store, summary.sweep.id, int(repeats))
            jobs.executor_for(store).ensure_running()
        except UserError as exc:
            st.error(escape_markdown(exc))
        else:
            st.success(f"Queued run group {escape_markdown(group.id)}: the best settings, {group.n_members:,} "
                       "repeats. Compare it on Runs & Compare when it has trained.")


@st.fragment(run_every=LIVE_REFRESH_S)
@guarded_fragment
def live_sweep(sweep_id: str) -> None:
    """A running sweep redraws from the store; an ended one draws once."""
    summary = sweeps.sweep_summary(store, sweep_id)
    show_header(summary)
    show_trials(summary)
    if summary.sweep.status.is_final:
        st.rerun()


summary = sweeps.sweep_summary(store, sweep_id)
if summary.sweep.status.is_final:
    show_header(summary)
    show_trials(summary)
    show_retrain(summary)
else:
    live_sweep(sweep_id)
    show_retrain(summary)
