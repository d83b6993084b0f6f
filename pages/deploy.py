"""Deploy: serve a trained run as an HTTP prediction API on this machine (start and stop a managed server process),
with its address, a copyable curl example for one row and what to do about the token."""

import pandas as pd
import streamlit as st

from ui.auth import require_access
from ui.forms import remembered_selectbox, typical_values
from ui.frame import require_frame
from ui.resources import get_store, load_table
from ui.tables import run_label
from ui.text import escape_markdown
from workbench import serving
from workbench.errors import UserError
from workbench.predict import best_run_ids, best_runs, comparable_group, load_model_for_run
from workbench.store import RunStatus

require_frame(__file__)
require_access(logout_button=False)  # also when Streamlit runs this file without app.py
store = get_store()
st.title("Deploy")

runs = store.list_runs(statuses=(RunStatus.SUCCEEDED,))  # newest first
if not runs:
    st.info("There is no trained model yet. Train one on **Train**; when it has finished it can be served here as "
            "an API that other programs call.")
    st.stop()
names = {d.id: d.name for d in store.list_datasets()}
by_id = {r.id: r for r in runs}
served = {s.run_id: s for s in serving.served_runs(store)}  # a server whose process has gone is forgotten here
best_ids = best_run_ids(runs)

if served:
    st.subheader("Served now")
    for item in served.values():
        left, right = st.columns([5, 1])
        run = by_id.get(item.run_id)
        left.text(f"Run {item.run_id}" + (f" ({run.model} predicting {run.target})" if run else "")
                  + f" at {item.url}, since {pd.Timestamp(item.started):%b %d, %H:%M} UTC")  # plain: copyable
        if right.button("Stop", key=f"stop.{item.run_id}"):
            try:
                serving.stop_served_run(store, item.run_id)
            except UserError as exc:
                st.error(escape_markdown(exc))
            else:
                st.rerun()

if st.session_state.get("deploy_run") not in by_id:
    # A served run, else the best run of the newest run's group, as Predict preselects.
    served_here = [i for i in served if i in by_id]
    newest = runs[0]
    st.session_state["deploy_run"] = served_here[0] if served_here else \
        best_runs(runs).get(comparable_group(newest), newest).id
run_id = remembered_selectbox(
    "Run to serve", list(by_id), "deploy_run",
    format_func=lambda i: run_label(by_id[i], names) + (" · best" if i in best_ids else "")
    + (" · served" if i in served else ""),
    help="Marked best: the highest test score (lowest for errors such as RMSE) among the runs that predict the same "
         "column, scored on the same test rows.")
run = by_id[run_id]
token_set = serving.api_token() is not None

if run_id in served:
    url = served[run_id].url
    st.success("This run is being served. POST rows to /predict at this address; /schema lists the columns it needs "
               "and /docs is its interactive documentation.")
    st.code(url, language=None)
    st.link_button("Open the API docs", f"{url}/docs")
else:
    taken = {s.port for s in served.values()}
    port = st.number_input("Port", 1024, 65535, next(p for p in range(serving.DEFAULT_PORT, 65536) if p not in taken),
                           key=f"deploy_port.{run_id}", help="The server listens on 127.0.0.1 at this port: "
                           "programs on this machine can call it.")
    if st.button("Start serving", type="primary"):
        try:
            with st.spinner("Starting the server (it loads the model once)…"):
                serving.start_served_run(store, run_id, int(port))
        except UserError as exc:
            st.error(escape_markdown(exc))
        else:
            st.rerun()
    url = serving.base_url(serving.DEFAULT_HOST, int(port))

st.subheader("Call it")
columns = load_model_for_run(store, run_id).input_columns
try:
    example = typical_values(load_table(run.dataset_id)[columns], columns)
except UserError:  # the dataset was deleted: the columns still show, without example values
    example = dict.fromkeys(columns)
st.caption("One row with typical values of the training data (the median of numbers, the most common category); "
           "send more rows in the list, or a CSV file with Content-Type: text/csv.")
example = {name: float(f"{value:.4g}") if isinstance(value, float) else value for name, value in example.items()}
st.code(serving.curl_example(url, example, token_required=token_set), language="bash", wrap_lines=True)
if token_set:
    st.caption("Requests need the API token: this workbench runs with WORKBENCH_API_TOKEN set, so the server answers "
               "only requests that send it as `Authorization: Bearer <token>` (all but /health).")
else:
    st.caption("No token is needed: any program on this machine can call it. To require one, set WORKBENCH_API_TOKEN "
               "before starting the workbench. From a terminal, `python -m workbench serve RUN_ID --host 0.0.0.0` "
               "serves to other machines, and refuses to without the token.")
if serving.log_path(store, run_id).is_file():
    st.text(f"The server's log: {serving.log_path(store, run_id)}")
