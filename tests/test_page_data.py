"""The Data page: quick start from a chosen target, and never a traceback on messy tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_classification_frame
from tests.test_pages import customers, page, texts
from workbench import datasets, jobs
from workbench.store import RunStatus

TARGET_LABEL = "Column you want to predict"
HOSTILE = "‮[Sign in](https://evil.example) :material/home: 名前 <b>x</b>"


@pytest.fixture(autouse=True)
def worker_starts(monkeypatch) -> list[str]:
    """The page asks the executor for a worker after a quick start; tests train in-process with run_worker."""
    calls: list[str] = []
    monkeypatch.setattr(jobs.LocalExecutor, "ensure_running", lambda self: calls.append("ensure_running") or False)
    return calls


def choose_target(at, name: str):
    next(s for s in at.selectbox if s.label.startswith(TARGET_LABEL)).select(name).run()
    return at


def quick_start_button(at):
    return next((b for b in at.button if b.label == "Quick start"), None)


def assert_one_sentence_errors(at) -> None:
    for error in at.error:
        text = str(error.value)
        assert "\n" not in text and "Traceback" not in text and text.rstrip().endswith((".", "?")), text


def test_quick_start_queues_strong_defaults_and_links_to_them(store, worker_starts):
    datasets.add_dataset(store, customers().to_csv(index=False).encode(), "customers.csv")
    at = page("data").run()
    assert quick_start_button(at) is None  # only once a target is chosen
    choose_target(at, "label")
    quick_start_button(at).click().run()
    assert not at.exception and not at.error, texts(at.error)
    runs = store.list_runs()[::-1]
    assert [r.model for r in runs] == ["gradient_boosting", "logistic_regression", "random_forest", "mlp"]
    assert worker_starts == ["ensure_running"]
    assert "Queued 4 runs" in texts(at.success) and "](/runs)" in at.success[-1].value
    links = next(m.value for m in at.markdown if "/run?run=" in m.value)
    for run in runs:
        assert f"](/run?run={run.id}) (queued)" in links

    for run in runs:
        jobs.cancel_run(store, run.id)
    at.run()  # the list follows the runs; a rerun queues nothing more
    links = next(m.value for m in at.markdown if "/run?run=" in m.value)
    assert links.count("(cancelled)") == 4 and store.count_runs() == 4
    choose_target(at, "x1")
    assert not any("/run?run=" in m.value for m in at.markdown)  # it was about the other target


def test_a_quick_start_that_cannot_train_says_why_in_one_sentence(store, worker_starts):
    frame = customers(n=60).assign(constant="same")
    datasets.add_dataset(store, frame.to_csv(index=False).encode(), "c.csv")
    at = choose_target(page("data").run(), "constant")
    quick_start_button(at).click().run()
    assert not at.exception
    assert "has only one value" in texts(at.error)
    assert_one_sentence_errors(at)
    assert store.count_runs() == 0 and worker_starts == []


def messy_tables() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    gaps = make_classification_frame(n=80).astype({"flag": object})
    for column in ("x1", "x2", "colour", "flag"):
        gaps.loc[rng.random(len(gaps)) < 0.4, column] = np.nan
    dated = make_classification_frame(n=80)
    dated["when"] = pd.date_range("2020-02-29", periods=len(dated), freq="37h").strftime("%d/%m/%Y %H:%M")
    imbalanced = make_classification_frame(n=300)
    imbalanced["label"] = np.where(np.arange(300) < 3, "fraud", "ok")
    hostile = make_classification_frame(n=60).rename(columns={"x1": HOSTILE, "label": "目标 ‮label"})
    hostile["colour"] = hostile["colour"].map({"red": "=HYPERLINK(1)", "green": "🙂", "blue": "\u200b"})
    empty_numbers = make_classification_frame(n=40).assign(x2=np.nan)
    return {"gaps": gaps, "dated": dated, "imbalanced": imbalanced, "hostile": hostile,
            "one_row": make_classification_frame(n=1), "empty_numbers": empty_numbers}


@pytest.mark.parametrize("name", list(messy_tables()))
def test_messy_tables_never_show_a_traceback(store, name):
    """Every column as the target, then a quick start: a profile, a warning or one sentence, never an exception."""
    frame = messy_tables()[name]
    at = page("data").run()
    at.file_uploader[0].upload(f"{name}.csv", frame.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception, at.exception
    assert_one_sentence_errors(at)
    for column in frame.columns:
        choose_target(at, column)
        assert not at.exception, (column, at.exception)
        assert_one_sentence_errors(at)
    quick_start_button(at).click().run()
    assert not at.exception, at.exception
    assert_one_sentence_errors(at)
    queued = store.list_runs(statuses=(RunStatus.QUEUED,))
    assert bool(queued) != bool(at.error), texts(at.error)  # queued, or said why not: never both, never neither
    if name == "one_row":
        assert "at least 20 are needed" in texts(at.error)
