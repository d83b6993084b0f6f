"""Train: one form built from the model catalog, and a live panel of the runs in progress."""

import streamlit as st

from ui import charts
from ui.auth import require_access
from ui.forms import param_widgets, remembered_selectbox
from ui.frame import require_frame
from ui.guard import guarded_fragment
from ui.resources import get_store, model_catalog, model_defaults
from ui.tables import STATUS_ICONS, format_duration, likely_target, metric_label, runs_frame
from ui.text import escape_markdown
from workbench import jobs
from workbench.errors import UserError
from workbench.runconfig import CATEGORICAL_ENCODINGS, IMPUTATIONS, SCALINGS, TASKS, PrepConfig, RunConfig, SplitConfig
from workbench.store import ACTIVE_STATUSES, RunStatus

LIVE_REFRESH_S = 1.5
TASK_LABELS = {"auto": "detect from the target", "binary": "binary classification (two classes)",
               "multiclass": "multiclass classification", "regression": "regression (a number)"}
SCALING_LABELS = {"auto": "auto (suits the model)", "standard": "standardise", "minmax": "min-max to 0..1",
                  "quantile": "quantile to a normal shape"}
ENCODING_LABELS = {"auto": "auto (suits the model)", "onehot": "one-hot", "embedding": "learned embeddings"}

require_frame(__file__)
require_access(logout_button=False)  # also when Streamlit runs this file without app.py
store = get_store()
jobs.recover_stale_runs(store)  # once per page load: a dead worker's run reads as interrupted
st.title("Train")

all_datasets = store.list_datasets()
if not all_datasets:
    st.info("There is no data to train on yet. Add a CSV or a sample dataset on **Data** first.")
    st.stop()

by_id = {d.id: d for d in all_datasets}
catalog = {entry["name"]: entry for entry in model_catalog()}

data_col, model_col = st.columns(2)
with data_col:
    st.subheader("Data")
    dataset_id = remembered_selectbox("Dataset", list(by_id), "dataset_id",
                                      format_func=lambda i: f"{by_id[i].name} ({by_id[i].n_rows:,} rows)")
    dataset = by_id[dataset_id]
    columns = [c["name"] for c in dataset.schema]
    target = st.selectbox("Column to predict", columns, index=columns.index(likely_target(dataset)),
                          key=f"target.{dataset_id}")
    task = st.selectbox("Task", TASKS, format_func=TASK_LABELS.get, key="task")
    exclude = st.multiselect(
        "Columns to leave out", [c for c in columns if c != target], key=f"exclude.{dataset_id}",
        help="Columns that would not be known when predicting, or that give the answer away. "
             "Identifier columns are left out automatically.",
    )
    with st.expander("Preprocessing"):
        impute = st.selectbox("Fill missing numbers with the column's", IMPUTATIONS,
                              index=IMPUTATIONS.index(PrepConfig.impute_numeric), key="impute")
        scaling = st.selectbox("Scale numbers", SCALINGS, format_func=SCALING_LABELS.get, key="scaling")
        categorical = st.selectbox("Encode categories", CATEGORICAL_ENCODINGS, format_func=ENCODING_LABELS.get,
                                   key="categorical")
        datetime_parts = st.checkbox("Split dates into year, month, weekday…", value=True, key="datetime_parts")
    with st.expander("Train / validation / test split"):
        st.caption("Runs with the same split settings on the same dataset are tested on the same rows, "
                   "so their scores compare fairly.")
        train_col, val_col, test_col, seed_col = st.columns(4)
        train_pct = train_col.number_input("Training %", 5, 95, 70, step=5, key="train_pct")
        val_pct = val_col.number_input("Validation %", 5, 95, 15, step=5, key="val_pct")
        test_pct = test_col.number_input("Test %", 5, 95, 15, step=5, key="test_pct")
        split_seed = seed_col.number_input("Split seed", 0, 2**31 - 1, SplitConfig.seed, key="split_seed")

with model_col:
    st.subheader("Model")
    if not catalog:
        st.warning("The model catalog is empty; the training engine is not installed.")
        st.stop()
    model = st.selectbox("Architecture", list(catalog), key="model",
                         format_func=lambda name: f"{name} ({catalog[name]['family']})")
    st.caption(escape_markdown(catalog[model]["description"]))
    with st.expander("Hyperparameters", expanded=True):
        params = param_widgets(catalog[model]["params"], key_prefix=f"param.{model}")

if st.button("Start training", type="primary"):
    config = RunConfig(
        dataset_id=dataset_id, target=target, model=model, task=task, exclude=exclude,
        params={k: v for k, v in params.items() if v is not None},
        split=SplitConfig(train=train_pct / 100, val=val_pct / 100, test=test_pct / 100, seed=int(split_seed)),
        prep=PrepConfig(impute_numeric=impute, scaling=scaling, categorical=categorical,
                        datetime_parts=datetime_parts),
    )
    try:
        with st.spinner("Checking the settings…"):
            run = jobs.submit_run(store, config)
            jobs.LocalExecutor(store).ensure_running()
    except UserError as exc:
        st.error(escape_markdown(exc))
    else:
        st.success(f"Run **{escape_markdown(run.id)}** is queued ({escape_markdown(run.task)}, "
                   f"{escape_markdown(run.model)}). Its progress shows below.")


@st.fragment(run_every=LIVE_REFRESH_S)
@guarded_fragment
def live_panel() -> None:
    """Runs in progress, straight from the store: leaving the page or reloading loses nothing."""
    active = store.list_runs(statuses=ACTIVE_STATUSES)
    st.subheader("In progress")
    if not active:
        st.caption("No runs are queued or training.")
    names = {d.id: d.name for d in store.list_datasets()}
    for run in reversed(active):  # oldest first: the order the worker takes them
        with st.container(border=True):
            head, cancel = st.columns([5, 1])
            head.markdown(f"{STATUS_ICONS[run.status]} **{escape_markdown(run.model)}** · {escape_markdown(run.id)} · "
                          f"{escape_markdown(names.get(run.dataset_id, run.dataset_id))} → "
                          f"{escape_markdown(run.target)} · {escape_markdown(run.status)}")
            if cancel.button("Cancel", key=f"cancel.{run.id}", disabled=run.cancel_requested):
                try:
                    jobs.cancel_run(store, run.id)
                except UserError as exc:
                    st.error(escape_markdown(exc))
            if run.status == RunStatus.QUEUED:
                st.caption("Waiting for the worker.")
                continue
            progress = run.progress()
            text = f"Epoch {progress['epoch']} of {progress['epochs_planned'] or '?'}"
            if progress["eta_s"] is not None:
                text += f" · about {format_duration(progress['eta_s'])} left"
            if run.cancel_requested:
                text += " · stopping…"
            st.progress(progress["fraction"], text=escape_markdown(text))
            epochs = store.epochs(run.id)
            if epochs:
                st.plotly_chart(charts.live_curves(epochs, metric_label(run.primary_metric or "metric")),
                                key=f"live.{run.id}", width="stretch")

    finished = [r for r in store.list_runs(limit=5) if r.is_final]
    if finished:
        st.subheader("Latest finished")
        st.dataframe(runs_frame(finished, names, model_defaults()), hide_index=True, width="stretch")
        for run in finished:
            if run.error:
                st.caption(f"{STATUS_ICONS[run.status]} {escape_markdown(run.id)}: {escape_markdown(run.error)}")
        st.caption("Compare them on **Runs & Compare**.")


live_panel()
