"""The Monitor page (/monitor?run=ID), the alarms on Home, the link from the Run page, and the Predict page logging
each prediction once."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.test_page_run import run_page
from tests.test_pages import ROOT, TIMEOUT, _no_background_worker, customers, page, texts, train  # noqa: F401
from workbench import datasets, monitoring
from workbench.predict import load_model_for_run


def monitor_page(run_id: str | None = None) -> AppTest:
    """The app opened at /monitor?run=RUN_ID."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    if run_id is not None:
        at.query_params["run"] = run_id
    return at.switch_page("pages/monitor.py").run()


@pytest.fixture
def run_id(store) -> str:
    dataset_id = datasets.add_dataset(store, customers(n=200).to_csv(index=False).encode(), "customers.csv").dataset.id
    return train(store, dataset_id)


def predict(store, run_id: str, rows: pd.DataFrame, source: str = "api") -> None:
    monitoring.record_batch(store, run_id, rows, load_model_for_run(store, run_id).predict(rows), source=source)


def new_rows(n: int, seed: int = 7, **changes) -> pd.DataFrame:
    return customers(n=n, seed=seed).drop(columns=["label"]).assign(**changes)


def test_a_run_that_predicted_nothing_says_where_predictions_come_from(store, run_id):
    at = monitor_page(run_id)
    assert not at.exception
    assert f"Run {run_id} has predicted nothing yet" in texts(at.info)


def test_alarms_come_first_then_requests_predictions_and_the_drift_table(store, run_id):
    predict(store, run_id, new_rows(150, seed=8), source="page")
    predict(store, run_id, new_rows(300, colour="red"))  # one colour on every row: a third of them in training
    at = monitor_page(run_id)
    assert not at.exception, at.exception
    assert at.selectbox(key="monitor.pick").value == run_id
    (alarm,) = at.error
    assert texts([alarm]).startswith("Column 'colour' has drifted from the training rows (PSI ")
    assert re.search(r"'red' is \d+% of its recent values, against \d+% in training\.$", texts([alarm]))
    assert [m.value for m in at.metric[:2]] == ["2", "450"]
    table = at.dataframe[0].value
    assert set(table["column"]) == {"x1", "x2", "colour", "flag"}
    assert table.set_index("column").loc["colour", "drifted"] == "yes"
    assert (table.set_index("column").drop("colour")["drifted"] == "no").all()
    assert len(at.get("plotly_chart")) == 3  # requests, predictions, one column
    at.number_input(key=f"monitor.last.{run_id}").set_value(1).run()  # only the newest batch: all red
    assert not at.exception
    assert "'red' is 100% of its recent values" in texts(at.error)


def test_without_alarms_the_page_says_so_and_home_stays_quiet(store, run_id):
    predict(store, run_id, new_rows(400, seed=9))
    at = monitor_page(run_id)
    assert not at.exception and not at.error
    assert "No drift: the latest 400 rows look like the training rows" in texts(at.success)
    home = page("home").run()
    assert not home.exception and "Drift alarms" not in [s.value for s in home.subheader]


def test_home_lists_the_drifting_runs_with_a_link_to_their_monitor(store, run_id):
    predict(store, run_id, new_rows(300, x1=5.0))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()  # Home, with the navigation
    assert not at.exception
    assert "Drift alarms" in [s.value for s in at.subheader]
    assert re.match(rf"Run \*\*{run_id}\*\*( \(\d alarms; the first:\))? Column 'x1' has drifted from the training "
                    r"rows \(PSI [\d.]+\): its recent mean is 5, against [-\d.]+ in training\.$", texts(at.warning))
    links = [link for link in at.get("page_link") if link.proto.page == "monitor"]
    assert [link.proto.query_string for link in links] == [f"run={run_id}"]


def test_the_run_page_links_to_its_monitor(store, run_id):
    at = run_page(run_id)
    assert not at.exception
    [link] = [link for link in at.get("page_link") if link.proto.label == "Monitor its predictions"]
    assert link.proto.page == "monitor" and link.proto.query_string == f"run={run_id}"


def test_the_predict_page_logs_a_file_once_and_each_row_by_hand(store, run_id):
    at = page("predict").run()
    rows = new_rows(40)
    at.file_uploader(key="predict_upload").upload("new.csv", rows.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception
    at.number_input(key=f"explain_row.{run_id}").set_value(3).run()  # a rerun predicts the file again
    assert not at.exception
    next(b for b in at.button if b.label == "Predict this row").click().run()
    assert not at.exception
    batches = store.list_prediction_batches(run_id)
    assert sorted((b.source, b.n_rows) for b in batches) == [("page", 1), ("page", 40)]
    assert all(set(b.summary["columns"]) == {"x1", "x2", "colour", "flag"} for b in batches)


@pytest.mark.parametrize("period,hours", [("hour", [0]), ("hour", [0, 1, 5]), ("day", [0, 24 * 9])])
def test_requests_chart_shows_whole_periods_even_for_one_bar(period, hours):
    from ui.charts import prediction_requests

    start = pd.Timestamp("2026-11-30 10:00")
    table = pd.DataFrame({"period": [start + pd.Timedelta(hours=h) for h in hours], "source": "api",
                          "batches": 1, "rows": 3})
    axis = prediction_requests(table, period).layout.xaxis
    step = pd.Timedelta(hours=1 if period == "hour" else 24)
    low, high = (pd.Timestamp(x) for x in axis.range)
    assert low == start - step and high == start + pd.Timedelta(hours=hours[-1]) + step  # never zoomed to milliseconds
    assert "%H" in axis.tickformat if period == "hour" else "%H" not in axis.tickformat
