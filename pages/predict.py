"""Predict: pick a dataset and one of its trained runs (the best preselected), predict a CSV (download the result)
or try one row by hand; export the model with instructions. Each prediction is logged for the Monitor page."""

import pandas as pd
import streamlit as st

from ui import charts
from ui.auth import require_access
from ui.export import onnx_export
from ui.forms import remembered_selectbox, what_if_inputs
from ui.frame import require_frame
from ui.resources import get_store, load_table, max_upload_mb
from ui.tables import format_value, metric_label, run_label
from ui.text import escape_markdown, show_notes
from workbench import contributions
from workbench.errors import UserError
from workbench.monitoring import record_batch
from workbench.predict import best_run_ids, best_runs, comparable_group, export_run, load_model_for_run, predict_file
from workbench.safe_csv import to_safe_csv
from workbench.store import RunStatus

PREVIEW_ROWS = 1_000
SHOWN_RUN_KEY = "predict_run_shown"  # the run this page showed last
LOGGED_KEY = "predict_logged"  # (run, uploaded file) pairs already logged for monitoring: a rerun predicts again

require_frame(__file__)
require_access(logout_button=False)  # also when Streamlit runs this file without app.py
store = get_store()
st.title("Predict")

runs = store.list_runs(statuses=(RunStatus.SUCCEEDED,))  # newest first
if not runs:
    st.info("There is no trained model yet. Train one on **Train**; when it has finished it can predict here.")
    st.stop()
names = {d.id: d.name for d in store.list_datasets()}
by_id = {r.id: r for r in runs}
dataset_ids = list(dict.fromkeys(r.dataset_id for r in runs))  # the dataset with the newest run first
# "predict_run" preselects a run: this page's own picker keeps it, and the Run page sets it before switching here.
# A run asked for by another page brings its dataset along; after that the dataset is the visitor's choice.
requested = st.session_state.get("predict_run")
if requested in by_id and requested != st.session_state.get(SHOWN_RUN_KEY):
    st.session_state["predict_dataset"] = by_id[requested].dataset_id
elif st.session_state.get("predict_dataset") not in dataset_ids and st.session_state.get("dataset_id") in dataset_ids:
    st.session_state["predict_dataset"] = st.session_state["dataset_id"]  # the one chosen on Data
n_runs = {i: sum(r.dataset_id == i for r in runs) for i in dataset_ids}
dataset_id = remembered_selectbox(
    "Dataset", dataset_ids, "predict_dataset",
    format_func=lambda i: f"{names.get(i, 'a deleted dataset')} ({n_runs[i]} trained run{'s' if n_runs[i] > 1 else ''})")
dataset_runs = [r for r in runs if r.dataset_id == dataset_id]
best = best_runs(dataset_runs)
best_ids = best_run_ids(dataset_runs)
several_targets = len({r.target for r in dataset_runs}) > 1
if st.session_state.get("predict_run") not in {r.id for r in dataset_runs}:
    # The best run of the newest run's group: the target and test rows the visitor worked on last.
    newest = dataset_runs[0]
    st.session_state["predict_run"] = best.get(comparable_group(newest), newest).id


def picker_label(run_id: str) -> str:
    run = by_id[run_id]
    label = run_label(run) + (f" · predicts {run.target}" if several_targets else "")
    return label + (" · best" if run_id in best_ids else "")


run_id = remembered_selectbox("Trained run", [r.id for r in dataset_runs], "predict_run", format_func=picker_label,
                              help="Marked best: the highest test score (lowest for errors such as RMSE) among the "
                                   "runs that predict the same column, scored on the same test rows.")
st.session_state[SHOWN_RUN_KEY] = run_id
run = by_id[run_id]
st.caption(f"{escape_markdown(run.model)} predicting **{escape_markdown(run.target)}** ({escape_markdown(run.task)}) "
           f"from {escape_markdown(names.get(run.dataset_id, 'a deleted dataset'))}"
           + (f" · test {escape_markdown(metric_label(run.primary_metric))} {run.primary_value:.4f}"
              if run.primary_metric and run.primary_value is not None else ""))
group_best = best.get(comparable_group(run))
if group_best is not None and run.id not in best_ids:
    st.info(f"Run {escape_markdown(group_best.id)} ({escape_markdown(group_best.model)}) scores better on the same "
            f"test rows: {escape_markdown(metric_label(group_best.primary_metric))} "
            f"{group_best.primary_value:.4f}.")

try:
    training_table = load_table(run.dataset_id)
except UserError as exc:
    st.error(escape_markdown(exc))
    st.stop()
# The columns the model reads, as saved with it (identifiers, free text and excluded columns are not among them).
try:
    features = load_model_for_run(store, run.id).input_columns
except UserError as exc:
    st.error(escape_markdown(exc))
    st.stop()
st.download_button("Export this model (zip)", export_run(store, run.id), file_name=f"workbench-run-{run.id}.zip",
                   mime="application/zip", help="config.json, the preprocessing (skops) and the weights "
                   "(safetensors or skops): safe formats that load without unpickling.")
onnx_export(store, run.id)

@st.cache_data(max_entries=32, show_spinner=False)
def explain_file_row(run_id: str, data: bytes, row: int) -> contributions.Explanation:
    return contributions.explain_file_rows(store, run_id, data, [row])


def show_explanation(explained: contributions.Explanation) -> None:
    """One row's sentence and each column's contribution."""
    st.markdown(escape_markdown(explained.sentences[0]))
    st.plotly_chart(charts.contributions(explained.contributions.iloc[0], explained.output), width="stretch")
    st.caption(f"Each bar: how much that column moved {escape_markdown(explained.output)} away from "
               f"{escape_markdown(explained.baseline_words)} ({explained.baseline[0]:.3g}); together they add up to "
               f"the prediction ({explained.predicted[0]:.3g}). Worked out by {escape_markdown(explained.method)}.")


file_tab, what_if_tab = st.tabs(["Predict a CSV", "What if…"])
with file_tab:
    st.write(f"Upload rows with the columns the model was trained on: {', '.join(escape_markdown(c) for c in features)}.")
    uploaded = st.file_uploader("CSV to predict", key="predict_upload", max_upload_size=max_upload_mb(),
                                help=f"Files up to {max_upload_mb():,} MB.")
    if uploaded is not None:
        try:
            with st.spinner("Predicting…"):
                prediction = predict_file(store, run.id, uploaded.getvalue())
        except UserError as exc:
            st.error(escape_markdown(exc))
        else:
            result = prediction.table
            logged = st.session_state.setdefault(LOGGED_KEY, set())
            if (run.id, uploaded.file_id) not in logged:  # once per file, not on every rerun of the page
                record_batch(store, run.id, prediction.inputs(), result, source="page")
                logged.add((run.id, uploaded.file_id))
            flagged = int((result["warnings"] != "").sum())
            st.success(f"{len(result):,} predictions" + (f"; {flagged:,} rows are flagged in the **warnings** column."
                                                        if flagged else "."))
            show_notes(prediction.notes)  # values that did not parse, unseen categories, empty rows, extra columns
            st.dataframe(result.head(PREVIEW_ROWS), width="stretch", hide_index=True)
            if len(result) > PREVIEW_ROWS:
                st.caption(f"The first {PREVIEW_ROWS:,} rows; the download has all of them.")
            st.download_button("Download predictions (CSV)", to_safe_csv(result), type="primary",
                               file_name=f"predictions-{run.id}.csv", mime="text/csv", key="download_predictions")
            st.subheader("Why this prediction?")
            row_number = st.number_input("Row to explain", 1, len(result), 1, key=f"explain_row.{run.id}",
                                         help="Its position in the file (the first row of data is 1)")
            try:
                with st.spinner("Working out what moved this prediction…"):
                    explained = explain_file_row(run.id, uploaded.getvalue(), int(row_number) - 1)
            except UserError as exc:
                st.error(escape_markdown(exc))
            else:
                show_explanation(explained)

with what_if_tab:
    st.write("Change any value and see what the model predicts for that one row. "
             "It starts from a typical row: the median of numbers, the most common category.")
    with st.form(f"what_if.{run.id}"):
        row = what_if_inputs(training_table, features, key_prefix=f"what_if.{run.id}")
        submitted = st.form_submit_button("Predict this row", type="primary")
    if submitted:
        frame = pd.DataFrame([row]).astype({c: training_table[c].dtype for c in features
                                            if pd.api.types.is_numeric_dtype(training_table[c])}, errors="ignore")
        try:
            checked = load_model_for_run(store, run.id).predict_rows(frame)
        except UserError as exc:
            st.error(escape_markdown(exc))
        else:
            record_batch(store, run.id, frame, checked.table, source="page")
            show_notes(checked.notes)
            prediction = checked.table
            predicted = format_value(prediction["prediction"].iloc[0])
            st.metric(f"Predicted {escape_markdown(run.target)}", escape_markdown(predicted))
            probabilities = {c.removeprefix("proba_"): float(prediction[c].iloc[0])
                             for c in prediction.columns if c.startswith("proba_")}
            if probabilities:
                st.plotly_chart(charts.class_probabilities(probabilities), width="stretch")
            try:
                with st.spinner("Working out what moved this prediction…"):
                    explained = contributions.explain_rows(store, run.id, frame)
            except UserError as exc:
                st.error(escape_markdown(exc))
            else:
                show_explanation(explained)
