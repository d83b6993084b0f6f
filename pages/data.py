"""Data: upload or pick a dataset, read its profile, quick-start a few strong models for a target, delete it."""

import streamlit as st

from ui import charts
from ui.auth import require_access
from ui.forms import remembered_selectbox, sample_picker
from ui.frame import require_frame
from ui.guard import guarded_fragment
from ui.resources import get_store, load_table, max_upload_mb
from ui.tables import columns_frame, metric_label
from ui.text import escape_markdown, show_notes
from workbench import datasets, jobs
from workbench.errors import UserError
from workbench.quickstart import quick_start

QUICK_START_REFRESH_S = 2.0

require_frame(__file__)
require_access(logout_button=False)  # also when Streamlit runs this file without app.py
store = get_store()
st.title("Data")

upload_col, sample_col = st.columns([3, 2])
with upload_col:
    uploaded = st.file_uploader(
        "Upload a CSV", key="upload", max_upload_size=max_upload_mb(),
        help="Comma, semicolon, tab or pipe separated; any common encoding. The same file twice is one dataset.",
    )
    st.caption(f"Files up to {max_upload_mb():,} MB.")
    # The uploader keeps its file across reruns: ingest each upload once, not on every click.
    if uploaded is not None and st.session_state.get("ingested_upload") != uploaded.file_id:
        try:
            with st.spinner("Reading the file…"):
                added = datasets.add_dataset(store, uploaded.getvalue(), uploaded.name)
        except UserError as exc:
            st.error(escape_markdown(exc))
        else:
            st.session_state["ingested_upload"] = uploaded.file_id
            st.session_state["dataset_id"] = added.dataset.id
            st.session_state["upload_added"] = added
    added = st.session_state.get("upload_added")
    if added is not None and uploaded is not None and st.session_state.get("ingested_upload") == uploaded.file_id:
        name = escape_markdown(added.dataset.name)
        st.success(f"Added **{name}**: {added.dataset.n_rows:,} rows, {added.dataset.n_columns:,} columns."
                   if added.created else f"This file was uploaded before as **{name}**; showing it.")

with sample_col:
    sample_picker(store, "Or add a sample dataset", "Add sample")

all_datasets = store.list_datasets()
if not all_datasets:
    st.info("No datasets yet. Upload a CSV above, or add a sample to try the workbench.")
    st.stop()

by_id = {d.id: d for d in all_datasets}
st.divider()
dataset_id = remembered_selectbox(
    "Dataset", list(by_id), "dataset_id",
    format_func=lambda i: f"{by_id[i].name} ({by_id[i].n_rows:,} rows × {by_id[i].n_columns} columns)",
)
dataset = by_id[dataset_id]

with st.expander(f"All datasets ({len(all_datasets)})"):
    st.dataframe(
        [{"Name": d.name, "Rows": d.n_rows, "Columns": d.n_columns, "Size (KB)": round(d.size_bytes / 1024, 1),
          "Added": d.created_at, "Id": d.id} for d in all_datasets],
        hide_index=True, width="stretch",
    )

column_names = [c["name"] for c in dataset.profile["columns"]]
target = st.selectbox(
    "Column you want to predict (optional)", column_names, index=None, key=f"profile_target_{dataset_id}",
    placeholder="Pick one to check for class imbalance and columns that give the answer away",
)
try:
    profile = datasets.profile_with_target(store, dataset_id, target)
except UserError as exc:
    st.error(escape_markdown(exc))
    st.stop()

rows, columns, duplicates = st.columns(3)
rows.metric("Rows", f"{profile['n_rows']:,}")
columns.metric("Columns", f"{profile['n_columns']:,}")
duplicates.metric("Duplicate rows", f"{profile['duplicate_rows']:,}")

show_notes(dataset.notes)
if profile["warnings"]:
    st.markdown("**Things to know before training**")
    for warning in profile["warnings"]:
        st.warning(escape_markdown(warning["message"]))
else:
    st.success("No problems found in this table.")



@st.fragment(run_every=QUICK_START_REFRESH_S)
@guarded_fragment
def quick_start_runs(run_ids: list[str]) -> None:
    """The quick start's runs with their status, as the worker trains them."""
    st.markdown("\n".join(
        f"- [{escape_markdown(run.model.replace('_', ' '))}](/run?run={escape_markdown(run.id)}) "
        f"({escape_markdown(run.status)}"
        + (f", test {escape_markdown(metric_label(run.primary_metric))} {run.primary_value:.4f}"
           if run.primary_metric and run.primary_value is not None else "") + ")"
        for run in store.get_runs(run_ids)))


if target is not None:
    with st.container(border=True):
        st.markdown(f"**Quick start**: train a few strong models with their default settings to predict "
                    f"**{escape_markdown(target)}**: gradient boosting, a linear model, a random forest and a "
                    "neural network (MLP), all scored on the same test rows. The first results come back in "
                    "seconds; the rest follow in the background.")
        if st.button("Quick start", type="primary", key=f"quick_start_{dataset_id}"):
            try:
                queued = quick_start(store, dataset_id, target)
            except UserError as exc:
                st.error(escape_markdown(exc))
            else:
                jobs.executor_for(store).ensure_running()
                st.session_state["quick_started"] = {"dataset_id": dataset_id, "target": target,
                                                     "runs": [r.id for r in queued]}
        started = st.session_state.get("quick_started")
        if started and started["dataset_id"] == dataset_id and started["target"] == target:
            st.success(f"Queued {len(started['runs'])} runs; a worker trains them one after another. Follow each "
                       "on its page, or all of them side by side on [Runs & Compare](/runs):")
            quick_start_runs(started["runs"])

profile_tab, chart_tab, preview_tab = st.tabs(["Columns", "Distribution", "Preview"])
with profile_tab:
    st.dataframe(columns_frame(profile), hide_index=True, width="stretch")
with chart_tab:
    chosen = st.selectbox("Column", column_names, key=f"histogram_column_{dataset_id}")
    column = next(c for c in profile["columns"] if c["name"] == chosen)
    if column.get("histogram"):
        st.plotly_chart(charts.histogram(column), width="stretch")
    else:
        st.info(f"'{escape_markdown(chosen)}' has no values to draw.")
with preview_tab:
    try:
        st.dataframe(load_table(dataset_id).head(100), width="stretch")
        st.caption("The first 100 rows.")
    except UserError as exc:
        st.error(escape_markdown(exc))

with st.expander("Delete this dataset"):
    n_runs = len(store.list_runs(dataset_id=dataset_id))
    st.write(f"Deleting **{escape_markdown(dataset.name)}** also deletes its {n_runs:,} run(s) and their trained models.")
    confirmed = st.checkbox("Yes, delete it", key=f"confirm_delete_{dataset_id}")
    if st.button("Delete dataset", disabled=not confirmed, type="primary"):
        try:
            datasets.delete_dataset(store, dataset_id)
        except UserError as exc:  # e.g. it has queued or running runs
            st.error(escape_markdown(exc))
        else:
            st.session_state.pop("dataset_id", None)
            st.rerun()
