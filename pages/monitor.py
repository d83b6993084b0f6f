"""Monitor: what a trained run has been asked since it was trained (`/monitor?run=ID`): its drift alarms on top,
requests over time, its predictions against those on its test rows, and per column the drift of recent rows against
its training rows (PSI and a chi-squared test, workbench.monitoring)."""

import pandas as pd
import streamlit as st

from ui import charts
from ui.auth import require_access
from ui.frame import require_frame
from ui.resources import get_store
from ui.tables import run_label
from ui.text import escape_markdown
from workbench import monitoring
from workbench.errors import UserError
from workbench.store import RunStatus

PICK_KEY = "monitor.pick"  # the run chosen in the picker; the address (?run=ID) follows it
KIND_WORDS = {"number": "number", "date": "date", "category": "category"}

require_frame(__file__)
require_access(logout_button=False)  # also when Streamlit runs this file without app.py
store = get_store()
st.title("Monitor")

runs = store.list_runs(statuses=(RunStatus.SUCCEEDED,))
if not runs:
    st.info("There is no trained model yet. Train one on **Train**; what it is asked to predict afterwards "
            "(on **Predict**, with the CLI or through the API) is watched here.")
    st.stop()
by_id = {r.id: r for r in runs}
activity = {a.run_id: a for a in store.prediction_activity()}
names = {d.id: d.name for d in store.list_datasets()}
ordered = [i for i in activity if i in by_id] + [r.id for r in runs if r.id not in activity]  # latest asked first
wanted = st.query_params.get("run")
if wanted in by_id:
    st.session_state[PICK_KEY] = wanted
elif wanted:
    st.warning(f"There is no finished run {escape_markdown(wanted)}: it was deleted, or the address is not quite "
               "right. Choose one below.")
if st.session_state.get(PICK_KEY) not in by_id:
    st.session_state[PICK_KEY] = ordered[0]


def picker_label(run_id: str) -> str:
    asked = activity.get(run_id)
    return run_label(by_id[run_id], names) + (f" · {asked.rows:,} rows predicted" if asked else " · nothing predicted")


def follow_pick() -> None:
    st.query_params["run"] = st.session_state[PICK_KEY]


run_id = st.selectbox("Run", ordered, format_func=picker_label, key=PICK_KEY, on_change=follow_pick)
run = by_id[run_id]
batches = store.list_prediction_batches(run_id, with_summary=False)
if not batches:
    st.info(f"Run {escape_markdown(run_id)} has predicted nothing yet. Every prediction made with it on **Predict**, "
            "with `python -m workbench predict` or through its served API shows up here, compared with the rows it "
            "was trained on.")
    st.stop()

last_n = st.number_input("Compare the latest batches", 1, 10_000, monitoring.DEFAULT_LAST_BATCHES, step=10,
                         key=f"monitor.last.{run_id}",
                         help="Their rows are pooled and compared with the run's training rows.")
try:
    report = monitoring.monitor_report(store, run_id, last_n_batches=int(last_n))
except UserError as exc:
    st.error(escape_markdown(exc))
    st.stop()

# The alarms first: one sentence each.
tested = [c for c in report.columns if c.psi is not None]
for alarm in report.alarms:
    st.error(escape_markdown(alarm), icon=":material/warning:")
if not report.alarms and tested:
    st.success(f"No drift: the latest {report.rows:,} rows look like the training rows in every column.")
elif not tested:
    st.info(f"The latest {report.batches:,} batches hold {report.rows:,} rows; at least {monitoring.MIN_ROWS:,} are "
            "needed to judge drift.")

total_batches, total_rows = len(batches), sum(b.n_rows for b in batches)
left, middle, right = st.columns(3)
left.metric("Batches", f"{total_batches:,}")
middle.metric("Rows predicted", f"{total_rows:,}")
right.metric("Last prediction", escape_markdown(f"{batches[0].created_at:%b %d, %H:%M}"),
             help=escape_markdown(f"{batches[0].created_at:%Y-%m-%d %H:%M:%S} UTC"))

st.subheader("Requests over time")
requests, period = monitoring.requests_over_time(batches)
st.plotly_chart(charts.prediction_requests(requests, period), width="stretch")

st.subheader("Predictions")
shift = report.prediction_shift
if shift is None:
    st.caption("This run kept no predictions of its test rows to compare with.")
else:
    st.plotly_chart(charts.shares(shift.labels, shift.reference_share, shift.current_share,
                                  "Predictions: recent rows against the test rows", "test rows",
                                  f"latest {shift.rows:,} rows"), width="stretch")
    if shift.psi is not None:
        verdict = ("shifted" if shift.drifted else "no shift beyond chance" if shift.p_value >= monitoring.ALPHA
                   else f"a real but small shift (PSI under {monitoring.PSI_THRESHOLD:g})")
        st.caption(f"Against the run's predictions on its test rows: PSI {shift.psi:.3f}, p-value "
                   f"{shift.p_value:.2g}; {verdict}.")

st.subheader("Drift of each column against the training rows")
table = pd.DataFrame([{"column": c.column, "kind": KIND_WORDS.get(c.kind, c.kind), "recent rows": c.rows,
                       "PSI": c.psi, "p-value": c.p_value,
                       "drifted": "yes" if c.drifted else ("no" if c.psi is not None else "too few rows")}
                      for c in sorted(report.columns, key=lambda c: -(c.psi or 0))])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"PSI": st.column_config.NumberColumn(format="%.3f"),
                            "p-value": st.column_config.NumberColumn(format="%.2g")})
st.caption(f"The latest {report.batches:,} batches ({report.rows:,} rows) on the training rows' bins (deciles of "
           f"numbers and dates; the common categories and 'other'; missing values). A column drifts when its PSI "
           f"is above {monitoring.PSI_THRESHOLD:g} and the chi-squared test's p-value is below "
           f"{monitoring.ALPHA:g} divided by the {len(tested)} columns tested.")

columns = {c.column: c for c in report.columns}
shown = st.selectbox("Column to look at", list(columns), key=f"monitor.column.{run_id}")
column = columns[shown]
st.plotly_chart(charts.shares(column.labels, column.reference_share, column.current_share, column.column,
                              "training rows", f"latest {column.rows:,} rows"), width="stretch")
