"""Train: one form built from the model catalog, and a live panel of the runs in progress.

The form's state lives in the URL (dataset, target, model and every changed setting), so a refresh or a shared link
shows the same form; `?from_run=ID` fills it from a stored run ("Retrain with changes").
"""

from dataclasses import replace

import streamlit as st

from ui import charts
from ui.auth import require_access
from ui.forms import param_widgets, remembered_selectbox, seed_param_state, sweep_space_editor
from ui.frame import require_frame
from ui.guard import guarded_fragment
from ui.resources import get_store, model_catalog, model_defaults
from ui.tables import (
    STATUS_ICONS,
    likely_target,
    metric_label,
    progress_text,
    run_label,
    runs_column_config,
    runs_frame,
)
from ui.text import escape_markdown
from workbench import jobs, sweeps, timing
from workbench.errors import UserError
from workbench.models.params import coerce
from workbench.models.registry import DEFAULT_MODEL
from workbench.runconfig import (
    CATEGORICAL_ENCODINGS,
    IMPUTATIONS,
    MAX_REPEATS,
    SCALINGS,
    TASKS,
    PrepConfig,
    RunConfig,
    SplitConfig,
)
from workbench.store import ACTIVE_STATUSES, RunStatus

LIVE_REFRESH_S = 1.5
TASK_LABELS = {"auto": "detect from the target", "binary": "binary classification (two classes)",
               "multiclass": "multiclass classification", "regression": "regression (a number)"}
SCALING_LABELS = {"auto": "auto (suits the model)", "standard": "standardise", "minmax": "min-max to 0..1",
                  "quantile": "quantile to a normal shape", "robust": "robust, outliers clipped smoothly"}
ENCODING_LABELS = {"auto": "auto (suits the model)", "onehot": "one-hot", "embedding": "learned embeddings"}
# Form fields kept in the URL besides the hyperparameters (which use their own names): {url key: session key}.
FORM_FIELDS = {"task": "task", "impute": "impute", "scaling": "scaling", "categorical": "categorical",
               "datetime_parts": "datetime_parts", "train_pct": "train_pct", "val_pct": "val_pct",
               "test_pct": "test_pct", "split_seed": "split_seed", "repeats": "repeats"}
FORM_DEFAULTS = {"task": "auto", "impute": PrepConfig.impute_numeric, "scaling": PrepConfig.scaling,
                 "categorical": PrepConfig.categorical, "datetime_parts": PrepConfig.datetime_parts,
                 "train_pct": round(SplitConfig.train * 100), "val_pct": round(SplitConfig.val * 100),
                 "test_pct": round(SplitConfig.test * 100), "split_seed": SplitConfig.seed, "repeats": 1}
STARTED = "train.started_run"  # the run this session just started: its card comes first until it ends

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
if not catalog:
    st.warning("The model catalog is empty; the training engine is not installed.")
    st.stop()
defaults = model_defaults()


def form_from_url() -> dict | None:
    """The form the URL describes: a stored run's config (?from_run=ID) or the fields themselves; None if neither."""
    query = st.query_params
    if "from_run" in query:
        try:
            return store.get_run(query["from_run"], with_epochs=False).config
        except UserError as exc:
            st.warning(escape_markdown(exc))
            return None
    if "dataset" not in query:
        return None
    model = query.get("model", "")
    params = {k: v for k, v in query.items() if k in defaults.get(model, {})}
    form = {"dataset_id": query["dataset"], "target": query.get("target"), "model": model,
            "exclude": query.get_all("exclude"), "params": params, "order_by": query.get("order_by")}
    form.update({key: query[key] for key in FORM_FIELDS if key in query})
    return form


def prefill(form: dict) -> None:
    """Put a described form (a run config or the URL's fields) into the widgets' session state. What no longer
    fits (a deleted dataset, a renamed column, a value out of range) is left at its default, with a warning."""
    dataset_id = form.get("dataset_id")
    if dataset_id not in by_id:
        st.warning("The dataset of that form is no longer here; pick one below.")
        return
    st.session_state["dataset_id"] = dataset_id
    columns = [c["name"] for c in by_id[dataset_id].schema]
    if form.get("target") in columns:
        st.session_state[f"target.{dataset_id}"] = form["target"]
    st.session_state[f"exclude.{dataset_id}"] = [c for c in form.get("exclude") or [] if c in columns]
    split, prep = form.get("split") or {}, form.get("prep") or {}
    fields = {"task": form.get("task"), "impute": prep.get("impute_numeric"), "scaling": prep.get("scaling"),
              "categorical": prep.get("categorical"), "datetime_parts": prep.get("datetime_parts"),
              "split_seed": split.get("seed"),
              **{f"{name}_pct": round(split[name] * 100) for name in ("train", "val", "test") if name in split}}
    fields.update({key: form[key] for key in FORM_FIELDS if key in form})
    order_by = split.get("order_by", form.get("order_by"))
    st.session_state[f"order_by.{dataset_id}"] = order_by if order_by in columns else ""
    for key, value in fields.items():
        if value is None:
            continue
        default = FORM_DEFAULTS[key]
        try:
            st.session_state[FORM_FIELDS[key]] = coerce(key, type(default).__name__, value)
        except UserError:
            st.warning(f"The setting {escape_markdown(key)} in the link was not understood and was left as it was.")
    model = form.get("model")
    if model not in catalog:
        return
    st.session_state["model"] = model
    specs = catalog[model]["params"]
    values = {}
    for spec in specs:
        if spec["name"] in (form.get("params") or {}):
            try:
                values[spec["name"]] = coerce(spec["name"], spec["type"], form["params"][spec["name"]])
            except UserError as exc:
                st.warning(escape_markdown(exc))
    seed_param_state(specs, f"param.{model}", values)


def keep_form_in_url(form: dict) -> None:
    """The form as URL fields: dataset, target and model always, everything else only where it differs from its
    default, so links stay short."""
    fields: dict = {"dataset": form["dataset_id"], "target": form["target"], "model": form["model"]}
    if form["exclude"]:
        fields["exclude"] = form["exclude"]
    if form["order_by"]:
        fields["order_by"] = form["order_by"]
    fields.update({key: str(form[key]) for key in FORM_FIELDS if form[key] != FORM_DEFAULTS[key]})
    model_defaults_ = defaults[form["model"]]
    for name, value in form["params"].items():
        if value is not None and value != model_defaults_.get(name):
            fields[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    current = {key: st.query_params.get_all(key) for key in st.query_params}
    wanted = {key: value if isinstance(value, list) else [value] for key, value in fields.items()}
    if current != wanted:
        st.query_params.from_dict(fields)


# Apply the URL once per session (a refresh starts a new one), and a ?from_run link each time it names another run.
described = form_from_url()
source = ("run", st.query_params.get("from_run")) if "from_run" in st.query_params else ("url", None)
if described is not None and (source[0] == "run" and st.session_state.get("train.prefilled") != source
                              or "train.prefilled" not in st.session_state):
    prefill(described)
st.session_state["train.prefilled"] = source if described is not None else st.session_state.get(
    "train.prefilled", ("none", None))


@st.fragment(run_every=LIVE_REFRESH_S)
@guarded_fragment
def live_panel() -> None:
    """Runs in progress, straight from the store: leaving the page or reloading loses nothing. The run this session
    just started is announced at the top, until it ends."""
    started = st.session_state.get(STARTED)
    if started:
        try:
            run = store.get_run(started, with_epochs=False)
        except UserError:  # deleted meanwhile
            run = None
        if run is None or run.is_final:
            st.session_state.pop(STARTED, None)
        else:
            st.success(f"Run **{escape_markdown(run.id)}** is {escape_markdown(run.status)} "
                       f"({escape_markdown(run.task)}, {escape_markdown(run.model)}).")
    active = store.list_runs(statuses=ACTIVE_STATUSES)
    st.subheader("In progress")
    if not active:
        st.caption("No runs are queued or training.")
    names = {d.id: d.name for d in store.list_datasets()}
    for run in reversed(active):  # oldest first: the order the worker takes them
        with st.container(border=True, key=f"live-card-{run.id}"):
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
            epochs = store.epochs(run.id)
            progress = run.progress(epochs)
            st.progress(progress["fraction"], text=escape_markdown(progress_text(run, progress)))
            if epochs:
                st.plotly_chart(charts.live_curves(epochs, metric_label(run.primary_metric or "metric")),
                                key=f"live.{run.id}", width="stretch")

    finished = [r for r in store.list_runs(limit=5) if r.is_final]
    if finished:
        st.subheader("Latest finished")
        st.dataframe(runs_frame(finished, names, defaults), hide_index=True, width="stretch",
                     column_config=runs_column_config())
        for run in finished:
            if run.error:
                st.caption(f"{STATUS_ICONS[run.status]} {escape_markdown(run.id)}: {escape_markdown(run.error)}")
        st.caption("Compare them on **Runs & Compare**.")


# A run this session just started comes first, so its card is in view; otherwise the form does.
panel_first = bool(st.session_state.get(STARTED))
if panel_first:
    live_panel()
    st.divider()

data_col, model_col = st.columns(2)
with data_col:
    st.subheader("Data")
    dataset_id = remembered_selectbox("Dataset", list(by_id), "dataset_id",
                                      format_func=lambda i: f"{by_id[i].name} ({by_id[i].n_rows:,} rows)")
    dataset = by_id[dataset_id]
    columns = [c["name"] for c in dataset.schema]
    kinds = {c["name"]: c["kind"] for c in dataset.schema}
    st.session_state.setdefault(f"target.{dataset_id}", likely_target(dataset))
    target = st.selectbox("Column to predict", columns, key=f"target.{dataset_id}")
    st.session_state.setdefault("task", "auto")
    task = st.selectbox("Task", TASKS, format_func=TASK_LABELS.get, key="task")
    st.session_state[f"exclude.{dataset_id}"] = [c for c in st.session_state.get(f"exclude.{dataset_id}", [])
                                                 if c != target]
    exclude = st.multiselect(
        "Columns to leave out", [c for c in columns if c != target], key=f"exclude.{dataset_id}",
        help="Columns that would not be known when predicting, or that give the answer away. "
             "Identifier columns are left out automatically.",
    )
    for key, value in FORM_DEFAULTS.items():
        st.session_state.setdefault(FORM_FIELDS[key], value)
    with st.expander("Preprocessing"):
        impute = st.selectbox("Fill missing numbers with the column's", IMPUTATIONS, key="impute")
        scaling = st.selectbox("Scale numbers", SCALINGS, format_func=SCALING_LABELS.get, key="scaling")
        categorical = st.selectbox("Encode categories", CATEGORICAL_ENCODINGS, format_func=ENCODING_LABELS.get,
                                   key="categorical")
        # what 'auto' is for the model picked (its selectbox comes later on the page; its value is in the session)
        picked = catalog.get(st.session_state.get("model"), catalog[DEFAULT_MODEL])
        automatic = [f"numbers {SCALING_LABELS[picked['auto_scaling']]}" if scaling == "auto" else "",
                     f"categories {ENCODING_LABELS[picked['auto_categorical']]}" if categorical == "auto" else ""]
        if any(automatic):
            st.caption(escape_markdown(f"Auto for {picked['name']}: {'; '.join(filter(None, automatic))}."))
        datetime_parts = st.checkbox("Split dates into year, month, weekday…", key="datetime_parts")
    date_columns = [c for c in columns if kinds.get(c) == "datetime" and c != target]
    with st.expander("Train / validation / test split", expanded=bool(date_columns)):
        order_by = None
        if date_columns:
            st.session_state.setdefault(f"order_by.{dataset_id}", "")  # "": a random split (None shows no choice)
            order_by = st.selectbox(
                "Order by time", ["", *date_columns], key=f"order_by.{dataset_id}",
                format_func=lambda c: "no: rows split at random" if not c else f"{c}: train on the earliest, "
                                                                               "test on the latest",
                help="With a date column, train on the earliest rows, validate on the next and test on the latest, "
                     "as the model will be used: on rows from after its training. Rows with no date are left out.")
            order_by = order_by or None
            if order_by is None:
                st.warning("This table has dates. A random split trains on rows from after the test rows, so the "
                           "test score can look better than the model will do on new rows: choose a date column "
                           "to order the split by.")
        st.caption("Runs with the same split settings on the same dataset are tested on the same rows, "
                   "so their scores compare fairly.")
        train_col, val_col, test_col, seed_col = st.columns(4)
        train_pct = train_col.number_input("Training %", 5, 95, step=5, key="train_pct")
        val_pct = val_col.number_input("Validation %", 5, 95, step=5, key="val_pct")
        test_pct = test_col.number_input("Test %", 5, 95, step=5, key="test_pct")
        split_seed = seed_col.number_input("Split seed", 0, 2**31 - 1, key="split_seed", disabled=bool(order_by),
                                           help="Which rows go where in a random split.")

# The expected time of each model on this table: the table's size and this machine's measured speed.
profile_columns = {c["name"]: c for c in dataset.profile.get("columns", [])}
distinct = profile_columns.get(target, {}).get("distinct", 0)
likely_task = task if task != "auto" else (
    "regression" if kinds.get(target) == "numeric" and distinct > 20 else "binary" if distinct <= 2 else "multiclass")
n_features = max(1, len(columns) - 1 - len(exclude))
n_rows = dataset.n_rows


def expected_time(model: str, params: dict) -> str:
    if likely_task not in catalog[model]["tasks"]:
        return f"not for {likely_task}"
    try:
        seconds = timing.expected_seconds(model, params, n_rows, n_features, likely_task,
                                          train_share=train_pct / 100)
    except UserError:
        return "?"
    return timing.about(seconds)


with model_col:
    st.subheader("Model")
    st.session_state.setdefault("model", DEFAULT_MODEL)
    with st.spinner("Timing the models on this machine…"):
        estimates = {name: expected_time(name, {}) for name in catalog}
    model = st.selectbox("Architecture", list(catalog), key="model",
                         format_func=lambda name: f"{name} ({catalog[name]['family']}) · {estimates[name]}")
    st.caption(f"{escape_markdown(catalog[model]['description'])} **When to use it:** "
               f"{escape_markdown(catalog[model]['when_to_use'])}")
    params = param_widgets(catalog[model]["params"], key_prefix=f"param.{model}")
    chosen = {k: v for k, v in params.items() if v is not None}
    estimate = expected_time(model, chosen)
    if estimate[0].isdigit() or estimate.startswith(("about", "under")):
        note = " if early stopping ends it at the usual point" if catalog[model]["family"] == "neural" else ""
        st.caption(f"Expected training time on this table: {escape_markdown(estimate)}{escape_markdown(note)} "
                   "(from its size and this machine's measured speed).")

    repeats = st.number_input(
        "Repeats", 1, MAX_REPEATS, key="repeats",
        help="Train this model several times on different folds of the table (5 folds per round) and seeds: the "
             "scores get a mean and an honest interval, and two models trained with repeats can be told apart on "
             "Runs & Compare. 1: a single run.")

keep_form_in_url({"dataset_id": dataset_id, "target": target, "model": model, "exclude": exclude,
                  "order_by": order_by, "params": chosen, "task": task, "impute": impute, "scaling": scaling,
                  "categorical": categorical, "datetime_parts": datetime_parts, "train_pct": int(train_pct),
                  "val_pct": int(val_pct), "test_pct": int(test_pct), "split_seed": int(split_seed),
                  "repeats": int(repeats)})

config = RunConfig(
    dataset_id=dataset_id, target=target, model=model, task=task, exclude=exclude, params=chosen,
    split=SplitConfig(train=train_pct / 100, val=val_pct / 100, test=test_pct / 100, seed=int(split_seed),
                      order_by=order_by),
    prep=PrepConfig(impute_numeric=impute, scaling=scaling, categorical=categorical, datetime_parts=datetime_parts),
    repeats=int(repeats),
)
if st.button("Start training", type="primary"):
    try:
        with st.spinner("Checking the settings…"):
            run = jobs.submit_run(store, config)
            jobs.executor_for(store).ensure_running()
    except UserError as exc:
        st.error(escape_markdown(exc))
    else:
        st.session_state[STARTED] = run.id
        st.rerun()  # the live panel moves above the form, with this run's card in view


def search_panel() -> None:
    """A sweep of this model's settings, or every model with its defaults: the two ways not to choose by hand."""
    neural = catalog[model]["family"] == "neural"
    st.caption("A search trains this model many times, each time with settings Optuna picks from what scored well "
               "so far; every trial is a run of its own. The first trial uses the defaults. Settings not searched "
               "keep the values above.")
    space_text = sweep_space_editor(model, catalog[model]["params"], chosen, key=f"sweep.space.{model}")
    trials_col, minutes_col, prune_col = st.columns(3)
    n_trials = trials_col.number_input("Trials", 1, sweeps.MAX_TRIALS, sweeps.DEFAULT_TRIALS, key="sweep.trials",
                                       help="How many settings to try.")
    minutes = minutes_col.number_input("Time limit in minutes", min_value=1, value=None, key="sweep.minutes",
                                       placeholder="none", help="No new trial starts after this.")
    prune = prune_col.toggle("Stop weak trials early", value=neural, disabled=not neural, key=f"sweep.prune.{model}",
                             help="A trial scoring worse than the median of earlier trials at the same epoch stops "
                                  "(pruned); its curves stay. Only for neural models, which train in epochs.")
    earlier = {r.id: r for r in store.list_runs(dataset_id=dataset_id, statuses=(RunStatus.SUCCEEDED,))
               if r.model == model and r.target == target}
    try_form = st.checkbox("Also try the settings above", value=bool(chosen), key=f"sweep.try_form.{model}",
                           disabled=not chosen, help="Right after the defaults, a trial with the settings you "
                                                     "changed in the form (the searched ones).")
    try_runs = st.multiselect("Also try the settings of these runs", list(earlier), key=f"sweep.try_runs.{model}",
                              format_func=lambda i: run_label(earlier[i]),
                              help="Settings you already know work well: each is tried early in the search.")
    if st.button("Start search", icon=":material/travel_explore:"):
        searched = {name: text for name, text in space_text.items() if text is not None}
        defaults = {spec["name"]: spec["default"] for spec in catalog[model]["params"]}
        kept = {name: chosen.get(name, defaults[name]) for name, text in space_text.items() if text is None}
        try:
            sweep_config = sweeps.SweepConfig(
                run=replace(config, repeats=1, params=kept),
                n_trials=int(n_trials), timeout_s=minutes * 60 if minutes else None, space=searched, prune=prune,
                known_good=([chosen] if try_form and chosen else []) + [earlier[i].params for i in try_runs])
            with st.spinner("Setting up the search…"):
                sweep = sweeps.submit_sweep(store, sweep_config)
                jobs.executor_for(store).ensure_running()
        except UserError as exc:
            st.error(escape_markdown(exc))
        else:
            st.switch_page("pages/sweeps.py", query_params={"sweep": sweep.id})
    st.divider()
    repeated = f", each with {int(repeats)} repeats" if repeats > 1 else ""
    st.caption(f"Or train every model that fits this task once with its defaults{escape_markdown(repeated)}, "
               "and see which is best on the leaderboard of Runs & Compare, which then offers an ensemble of them.")
    if st.button("Try every model", icon=":material/apps:"):
        try:
            with st.spinner("Checking the settings…"):
                tried = sweeps.try_every_model(store, dataset_id, target, repeats=int(repeats), task=task, base=config)
                jobs.executor_for(store).ensure_running()
        except UserError as exc:
            st.error(escape_markdown(exc))
        else:  # Runs & Compare follows these runs and, once they have finished, proposes their ensemble
            st.switch_page("pages/runs.py", query_params={"every": ",".join(r.id for r in tried)})


with st.expander("Not sure which settings or model? Search", icon=":material/travel_explore:"):
    search_panel()

if not panel_first:
    live_panel()
