"""Run: one run on its own page, at a shareable address (`/run?run=ID`): how it went, its scores, curves and
diagnostics, its settings, the data it used, and what to do next (predict, export, retrain with changes, delete).
A queued or running run shows its live progress instead, with Cancel."""

import pandas as pd
import streamlit as st

from ui import charts
from ui.auth import require_access
from ui.explain import show_advice, show_importance
from ui.export import onnx_export
from ui.frame import require_frame
from ui.guard import guarded_fragment
from ui.resources import get_store, model_defaults
from ui.tables import (
    SPLIT_NAMES,
    STATUS_ICONS,
    format_duration,
    format_interval,
    format_value,
    metric_label,
    progress_text,
    run_label,
)
from ui.text import escape_markdown, show_notes
from workbench import compare, jobs
from workbench.errors import UserError
from workbench.predict import export_run
from workbench.store import Run, RunStatus
from workbench.tasks import baseline_name

LIVE_REFRESH_S = 1.5
PICK_KEY = "run.pick"  # the run chosen in the picker; the address (?run=ID) follows it
DELETED_KEY = "run.deleted"  # the id of the run this page just deleted, to say so after the rerun
STATUS_WORDS = {RunStatus.QUEUED: "queued, waiting for the worker", RunStatus.RUNNING: "training",
                RunStatus.SUCCEEDED: "finished", RunStatus.FAILED: "failed", RunStatus.DIVERGED: "diverged",
                RunStatus.CANCELLED: "cancelled", RunStatus.INTERRUPTED: "interrupted",
                RunStatus.PRUNED: "pruned"}
PREP_WORDS = {"impute_numeric": "Missing numbers filled with the column's", "scaling": "Numbers scaled",
              "categorical": "Categories encoded as", "datetime_parts": "Dates split into year, month, weekday…"}

require_frame(__file__)
require_access(logout_button=False)  # also when Streamlit runs this file without app.py
store = get_store()
jobs.recover_stale_runs(store)  # once per page load: a dead worker's run reads as interrupted
st.title("Run")

deleted = st.session_state.pop(DELETED_KEY, None)
if deleted:
    st.success(f"Run {escape_markdown(deleted)} was deleted, with its trained model.")
runs = store.list_runs()
if not runs:
    st.info("No runs yet. Start one on **Train**; every run gets a page of its own here.")
    st.stop()
names = {d.id: d.name for d in store.list_datasets()}
by_id = {r.id: r for r in runs}

# The address decides which run shows: a link from a table, a shared URL, or the picker (which rewrites it).
wanted = st.query_params.get("run")
st.session_state[PICK_KEY] = wanted if wanted in by_id else None
if wanted and wanted not in by_id:
    st.warning(f"There is no run {escape_markdown(wanted)}: it was deleted, or the address is not quite right. "
               f"Choose a run below.")


def follow_pick() -> None:
    pick = st.session_state.get(PICK_KEY)
    if pick:
        st.query_params["run"] = pick
    else:
        st.query_params.pop("run", None)


run_id = st.selectbox("Run", list(by_id), format_func=lambda i: run_label(by_id[i], names), key=PICK_KEY,
                      placeholder="Choose a run (newest first)", on_change=follow_pick)
if run_id is None:
    st.caption("Every table of runs (Home, Train, Runs & Compare) links to the page of each run.")
    st.stop()
run = store.get_run(run_id)
dataset_name = names.get(run.dataset_id)


def show_summary(run: Run) -> None:
    st.subheader(f"{STATUS_ICONS[run.status]} {escape_markdown(run.model)} · {escape_markdown(run.id)}")
    st.markdown(f"**{escape_markdown(run.model)}** predicting **{escape_markdown(run.target)}** "
                f"({escape_markdown(run.task)}) from **{escape_markdown(dataset_name or 'a deleted dataset')}**.")
    status, score, duration, epochs = st.columns(4)
    status.metric("Status", escape_markdown(STATUS_WORDS[run.status]))
    if run.primary_metric and run.primary_value is not None:
        interval = format_interval(run.primary_value, *(run.intervals or {}).get("test", {}).get(
            run.primary_metric, (None, None))).partition(" (")[2].rstrip(")")
        # The interval under the score, uncoloured and without an arrow: a range, not a change.
        score.metric(f"Test {escape_markdown(metric_label(run.primary_metric))}", f"{run.primary_value:.4f}",
                     delta=escape_markdown(f"95%: {interval}") if interval else None, delta_color="off",
                     delta_arrow="off",
                     help="The 95% bootstrap interval over the test rows" if interval else None)
    duration.metric("Duration", escape_markdown(format_duration(run.duration_s) or "—"))
    epochs.metric("Epochs", f"{run.epochs_done:,}" + (f" of {run.epochs_planned:,}" if run.epochs_planned else ""))
    st.caption(f"Created {escape_markdown(run.created_at.strftime('%Y-%m-%d %H:%M'))} UTC" + (f" · trained on {escape_markdown(run.device)}" if run.device else ""))
    if run.group_id:
        st.caption(f"One repeat ({escape_markdown(run.member or '')}) of run group {escape_markdown(run.group_id)}: "
                   "compare the whole group on Runs & Compare.")
    if run.sweep_id:
        st.page_link("pages/sweeps.py", query_params={"sweep": run.sweep_id}, icon=":material/travel_explore:",
                     label=f"Trial {run.trial_number:,} of sweep {escape_markdown(run.sweep_id)}: see the whole search")
    if run.error:
        (st.error if run.status == RunStatus.FAILED else st.warning)(escape_markdown(run.error))


@st.fragment(run_every=LIVE_REFRESH_S)
@guarded_fragment
def live_progress(run_id: str) -> None:
    """A queued or running run, straight from the store; once it ends the whole page shows its results."""
    run = store.get_run(run_id, with_epochs=False)
    if run.is_final:
        st.rerun()
    if st.button("Cancel this run", key=f"run.cancel.{run.id}", disabled=run.cancel_requested):
        try:
            jobs.cancel_run(store, run.id)
        except UserError as exc:
            st.error(escape_markdown(exc))
        st.rerun()  # the page shows what the cancel changed
    if run.status == RunStatus.QUEUED:
        st.caption("Waiting for the worker; it trains queued runs one after another.")
        return
    epochs = store.epochs(run.id)
    progress = run.progress(epochs)
    st.progress(progress["fraction"], text=escape_markdown(progress_text(run, progress)))
    if epochs:
        st.plotly_chart(charts.live_curves(epochs, metric_label(run.primary_metric or "metric")), width="stretch",
                        key=f"run.live.{run.id}")


def show_actions(run: Run) -> None:
    predict_col, export_col, retrain_col = st.columns(3)
    trained = run.status == RunStatus.SUCCEEDED
    if predict_col.button("Predict with this run", type="primary", disabled=not trained,
                          help=None if trained else "Only a run that finished has a model to predict with."):
        st.session_state["predict_run"] = run.id  # the Predict page's remembered choice
        st.switch_page("pages/predict.py")
    if trained:
        export_col.download_button("Export the model (zip)", lambda: export_run(store, run.id), on_click="ignore",
                                   file_name=f"workbench-run-{run.id}.zip", mime="application/zip")
        with export_col:
            onnx_export(store, run.id)
    with retrain_col:
        st.page_link("pages/train.py", query_params={"from_run": run.id}, label="Retrain with changes",
                     icon=":material/tune:", help="The Train form with this run's settings filled in")
        if trained:
            st.page_link("pages/monitor.py", query_params={"run": run.id}, label="Monitor its predictions",
                         icon=":material/monitoring:", help="What it was asked since, and drift against its training rows")


def show_scores(run: Run) -> None:
    scores = compare.run_scores(run)
    if scores.empty:
        if run.status == RunStatus.PRUNED:
            st.info("This run has no scores: its sweep stopped it early (pruned) because it was doing worse than the "
                    "other trials; its learning curves are kept.")
        else:
            st.info(f"This run has no scores: it {escape_markdown(STATUS_WORDS[run.status])} before it was tested.")
        return
    table = pd.DataFrame({
        "Test": [format_interval(*row) for row in scores[["test", "test_low", "test_high"]].itertuples(
            index=False, name=None)],
        "Validation": [format_interval(v) for v in scores["validation"]],
        f"Baseline ({baseline_name(run.task)})": [format_interval(v) for v in scores["baseline"]],
    }, index=[f"{metric_label(m)} {'↑' if up else '↓'}" for m, up in scores["higher_is_better"].items()])
    st.dataframe(table, width="stretch")
    interval_note = ("In brackets: the range the test score would likely fall in on other test rows like these "
                     "(a 95% bootstrap interval). " if scores["test_low"].notna().any() else "")
    st.caption(f"{interval_note}↑: higher is better; ↓: lower is better. The baseline always predicts the "
               f"{escape_markdown(baseline_name(run.task))} of the training rows; a useful model beats it "
               "clearly on the test rows.")


def show_curves(run: Run) -> None:
    curves = compare.learning_curves([run], names)
    if curves.empty:
        st.info("This run has no per-epoch history.")
        return
    st.plotly_chart(charts.learning_curves(curves), width="stretch")
    if run.epochs_done <= 1:
        st.caption("This model trains in one step: one point, its validation score.")
    else:
        st.caption("Dotted: training; solid: validation. A validation curve that rises while the training curve "
                   "falls means the model is memorising the training rows (overfitting).")


def show_diagnostics(run: Run) -> None:
    figures = charts.diagnostics([run])
    if not figures:
        st.info("This run has no test predictions to draw.")
    for figure in figures:
        st.plotly_chart(figure, width="stretch")


def show_settings(run: Run) -> None:
    settings = compare.settings_table(run, model_defaults().get(run.model))
    if settings.empty:
        st.info("This model has no settings.")
        return
    st.dataframe(settings, hide_index=True, width="stretch", column_config={
        "setting": "Setting", "value": "Value (as it ran)", "default": "Default",
        "changed": st.column_config.CheckboxColumn("Changed", help="Set to something other than the default"),
    })
    changed = settings.loc[settings["changed"], "setting"].tolist()
    st.caption(f"Changed from the defaults: {escape_markdown(', '.join(changed))}." if changed
               else "Every setting is the model's default.")


def show_data(run: Run) -> None:
    config, details = run.config or {}, run.details or {}
    split, prep = config.get("split") or {}, config.get("prep") or {}
    counts = {s: details.get(f"n_{s}") for s in SPLIT_NAMES}
    facts = {"Dataset": dataset_name or "(deleted)", "Column to predict": run.target, "Task": run.task}
    if all(n is not None for n in counts.values()):
        facts["Rows"] = ", ".join(f"{counts[s]:,} {SPLIT_NAMES[s]}" for s in SPLIT_NAMES)
    if details.get("dropped_target_rows"):
        facts["Rows left out"] = f"{details['dropped_target_rows']:,} without a value to predict"
    if split:
        facts["Split"] = (", ".join(f"{round(100 * split[s])} % {SPLIT_NAMES[s]}" for s in SPLIT_NAMES if s in split)
                          + f" (seed {split.get('seed', 0)})")
    facts["Columns left out"] = ", ".join(config.get("exclude") or []) or "none chosen (identifiers, free text and " \
                                                                         "constant columns are left out by themselves)"
    for key, value in prep.items():
        facts[PREP_WORDS.get(key, key.replace("_", " "))] = ("yes" if value is True else "no" if value is False
                                                             else format_value(value))
    # A table: its cells are plain text, so names from the file need no escaping.
    st.dataframe(pd.DataFrame({"": list(facts), "Value": list(facts.values())}), hide_index=True, width="stretch")
    notes = details.get("notes") or []
    if notes:
        st.markdown("**Notes from preparing the data**")
        show_notes(notes)


def show_delete(run: Run) -> None:
    with st.expander("Delete this run"):
        if not run.is_final:
            st.caption("Cancel the run first; a queued or running run cannot be deleted.")
            return
        confirmed = st.checkbox(f"Yes, delete run {escape_markdown(run.id)} and its trained model",
                                key=f"run.delete.confirm.{run.id}")
        if st.button("Delete", disabled=not confirmed, key=f"run.delete.{run.id}") and confirmed:
            try:
                jobs.delete_run(store, run.id)
            except UserError as exc:
                st.error(escape_markdown(exc))
                return
            st.query_params.pop("run", None)
            st.session_state.pop(PICK_KEY, None)
            st.session_state[DELETED_KEY] = run.id
            st.rerun()


show_summary(run)
if not run.is_final:
    live_progress(run.id)
    show_delete(run)
    st.stop()
show_actions(run)
show_advice(store, run.id)
scores_tab, learned_tab, curves_tab, diagnostics_tab, settings_tab, data_tab = st.tabs(
    ["Scores", "What it learned", "Learning curves", "Diagnostics", "Settings", "Data and notes"])
with scores_tab:
    show_scores(run)
with learned_tab:
    show_importance(store, run.id, run.target, can_compute=run.status == RunStatus.SUCCEEDED)
with curves_tab:
    show_curves(run)
with diagnostics_tab:
    show_diagnostics(run)
with settings_tab:
    show_settings(run)
with data_tab:
    show_data(run)
show_delete(run)
