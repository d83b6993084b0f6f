"""Home: what the workbench does, where it trains, what is in it, and a quick start."""

import streamlit as st

from ui.auth import require_access
from ui.forms import sample_picker
from ui.frame import require_frame
from ui.resources import device_description, get_store, model_defaults
from ui.tables import runs_column_config, runs_frame
from ui.text import escape_markdown
from workbench.monitoring import recent_alarms

require_frame(__file__)
require_access(logout_button=False)  # also when Streamlit runs this file without app.py
store = get_store()

st.title("Workbench")
st.markdown(
    "Upload a CSV, pick a model and its settings, and train it without writing code.  \n"
    "Watch it learn, compare runs side by side, and predict on new rows with the best one."
)

all_datasets = store.list_datasets()
n_runs = store.count_runs()
left, middle, right = st.columns(3)
device, precision = device_description()
left.metric("Trains on", escape_markdown(device), help=escape_markdown(precision))
middle.metric("Datasets", len(all_datasets))
right.metric("Runs", f"{n_runs:,}")

drifting = recent_alarms(store)  # the runs that predicted most recently, a few JSON summaries each
if drifting:
    st.subheader("Drift alarms")
    for run_id, alarms in drifting:
        more = f" ({len(alarms):,} alarms; the first:)" if len(alarms) > 1 else ""
        st.warning(f"Run **{escape_markdown(run_id)}**{more} {escape_markdown(alarms[0])}", icon=":material/warning:")
        st.page_link("pages/monitor.py", query_params={"run": run_id}, label=f"Monitor run {escape_markdown(run_id)}",
                     icon=":material/monitoring:")

st.subheader("Try a sample dataset")
added = sample_picker(store, "Sample", "Add this sample", type="primary")
if added is not None:
    st.success(f"{'Added' if added.created else 'You already have'} **{escape_markdown(added.dataset.name)}**. "
               "Open **Data** to look at it, or **Train** to fit a model.")

st.subheader("Recent runs")
if n_runs == 0:
    st.info("No runs yet. Add a dataset on **Data**, then start a run on **Train**.")
else:
    names = {d.id: d.name for d in all_datasets}
    st.dataframe(runs_frame(store.list_runs(limit=10), names, model_defaults()), hide_index=True, width="stretch",
                 column_config=runs_column_config())
    st.caption(f"The 10 most recent of {n_runs:,} runs; all of them are on **Runs & Compare**.")
