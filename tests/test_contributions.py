"""Per-row explanations (issue 18 point 3): one contribution per original column for every model family, adding up
to the prediction minus the baseline, the deciding column on top, the 2,000-row cap, and `predict --explain`."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest

from tests.test_cli import run_cli
from workbench.contributions import (
    CONTRIBUTION_PREFIX,
    MAX_EXPLAINED_ROWS,
    SENTENCE_COLUMN,
    explain,
    typical_row,
)
from workbench.errors import UserError
from workbench.predict import load_model
from workbench.runconfig import RunConfig
from workbench.runner import execute

N_ROWS = 240


def messy_frame(seed: int = 0) -> pd.DataFrame:
    """`decides` alone decides every target; the other columns are noise with missing numbers, a unicode category,
    a date column (split into parts by the preprocessing) and true/false."""
    rng = np.random.default_rng(seed)
    decides = rng.normal(size=N_ROWS)
    frame = pd.DataFrame({
        "decides": decides,
        "noise": np.where(rng.random(N_ROWS) < 0.15, np.nan, rng.normal(size=N_ROWS)),
        "plan": rng.choice(["basic", "pro", "ünïcødé 😀"], N_ROWS),
        "signup": pd.date_range("2022-01-01", periods=N_ROWS, freq="D").strftime("%Y-%m-%d"),
        "flag": rng.random(N_ROWS) < 0.5,
    })
    frame["churns"] = np.where(decides > 0, "yes", "no")
    frame["tier"] = np.array(["low", "mid", "high"])[np.digitize(decides, [-0.5, 0.5])]
    frame["spend"] = 10.0 * decides + rng.normal(scale=0.1, size=N_ROWS)
    return frame


TARGETS = ("churns", "tier", "spend")
FAMILIES = [  # (model, target, settings): every family, every task at least once
    ("random_forest", "churns", {"n_estimators": 50}),
    ("random_forest", "spend", {"n_estimators": 50}),
    ("gradient_boosting", "churns", {}),
    ("gradient_boosting", "tier", {}),
    ("gradient_boosting", "spend", {}),
    ("logistic_regression", "tier", {}),
    ("ridge", "spend", {}),
    ("linear", "churns", {"epochs": 30}),
    ("mlp", "churns", {"epochs": 30}),
    ("mlp", "spend", {"epochs": 30}),
    ("mlp", "tier", {"epochs": 30}),
]


def trained(tmp_path, name: str, target: str, params: dict):
    frame = messy_frame()
    config = RunConfig("d", target, name, exclude=[t for t in TARGETS if t != target], params=params)
    outcome = execute(config, frame, tmp_path / "run")
    assert outcome.status == "succeeded", outcome.error
    return load_model(tmp_path / "run"), frame


@pytest.mark.parametrize(("name", "target", "params"), FAMILIES, ids=[f"{m}-{t}" for m, t, _ in FAMILIES])
def test_every_family_explains_each_original_column_and_adds_up(tmp_path, name, target, params):
    model, frame = trained(tmp_path, name, target, params)
    rows = messy_frame(seed=1).drop(columns=list(TARGETS)).head(60)
    rows.loc[3, "noise"] = np.nan
    rows.loc[4, "plan"] = "never seen ✨"
    explanation = explain(model, model.check_schema(rows).frame, typical_row(model, frame))

    assert list(explanation.contributions.columns) == ["decides", "noise", "flag", "plan", "signup"]
    assert len(explanation.contributions) == len(rows) == len(explanation.sentences)
    assert np.isfinite(explanation.contributions.to_numpy()).all()
    # Shapley values add up exactly (shap's trees; every sampled order of the columns telescopes)
    np.testing.assert_allclose(explanation.contributions.sum(axis=1), explanation.predicted - explanation.baseline,
                               atol=1e-5)
    predicted = model.predict_proba(model.check_schema(rows).frame)
    expected = predicted if model.task == "regression" else predicted.max(axis=1) if model.task == "multiclass" \
        else predicted[:, 1]
    np.testing.assert_allclose(explanation.predicted, expected, rtol=1e-6)
    # the planted column decides the target, so it moves the predictions most, by far
    mean_size = explanation.contributions.abs().mean()
    assert mean_size["decides"] >= 1.5 * mean_size.drop("decides").max(), mean_size.to_dict()
    assert all(s.startswith("Predicted ") for s in explanation.sentences)
    # and the sentences name it for more of the rows it moves than any other column. Not for all: near the boundary
    # the planted column's effect is small, and the typical row the contributions start from sits near it, where a
    # small network on 168 training rows also leans on noise. Over 4 training seeds the default MLP (binary) gave the
    # planted column 1.75-2.83x any other's mean size and named it for 0.52-0.72 of the moved rows; without number
    # embeddings 1.10-2.19x and 0.42-0.60 (issue 21's notes).
    moved = np.abs(explanation.predicted - explanation.baseline) > 0.25 * np.abs(explanation.predicted -
                                                                          explanation.baseline).max()
    named = pd.Series([s.split("mostly because '", 1)[-1].split("' is", 1)[0] for s in explanation.sentences])
    counts = named[moved].value_counts()
    assert moved.sum() >= 5 and counts.index[0] == "decides" and counts.iloc[0] > counts.iloc[1:2].sum(), counts


def test_the_sentence_names_the_value_and_its_direction(tmp_path):
    model, frame = trained(tmp_path, "logistic_regression", "churns", {})
    rows = pd.DataFrame({"decides": [3.0, -3.0], "noise": [0.0, np.nan], "plan": ["pro", "ünïcødé 😀"],
                         "signup": ["2022-03-01", "2022-03-01"], "flag": [True, False]})
    explanation = explain(model, model.check_schema(rows).frame, typical_row(model, frame))
    high, low = explanation.sentences
    assert high.startswith("Predicted 'yes' (probability of 'yes' ")
    assert "mostly because 'decides' is high (+0." in high
    assert low.startswith("Predicted 'no' (probability of 'yes' ")
    assert "'decides' is low (-0." in low
    assert explanation.output == "the predicted probability of 'yes'"


def test_more_than_the_cap_is_refused_in_one_sentence(tmp_path):
    model, frame = trained(tmp_path, "logistic_regression", "churns", {})
    rows = messy_frame().drop(columns=list(TARGETS)).sample(MAX_EXPLAINED_ROWS + 1, replace=True, random_state=0)
    with pytest.raises(UserError, match=r"^At most 2,000 rows can be explained at once, and this has 2,001; "):
        explain(model, model.check_schema(rows).frame, typical_row(model, frame))


def test_predict_explain_adds_a_contribution_per_column_and_the_sentence(home, capsys, tmp_path):
    """A run trained by the ordinary path (nothing stored for explanations) explains from its saved files and its
    dataset; the run folder is left as it was."""
    path = tmp_path / "customers.csv"
    messy_frame().drop(columns=["tier", "spend"]).to_csv(path, index=False)
    code, out, err = run_cli(capsys, "ingest", str(path), "--json")
    assert code == 0, err
    dataset_id = json.loads(out)["dataset_id"]
    code, out, err = run_cli(capsys, "train", "--dataset", dataset_id, "--target", "churns", "--model",
                             "gradient_boosting", "--json")
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    run_dir = home / "runs" / run_id
    files = sorted(p.name for p in run_dir.iterdir())
    new = tmp_path / "new.csv"
    messy_frame(seed=2).drop(columns=list(TARGETS)).head(25).to_csv(new, index=False)
    out_path = tmp_path / "predictions.csv"
    code, out, err = run_cli(capsys, "predict", run_id, str(new), "--out", str(out_path), "--explain")
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(out_path.read_text(encoding="utf-8"))))
    assert len(table) == 25
    added = [c for c in table[0] if c.startswith(CONTRIBUTION_PREFIX)]
    assert added == [CONTRIBUTION_PREFIX + c for c in ("decides", "noise", "flag", "plan", "signup")]
    for row in table:
        total = sum(float(row[c]) for c in added)
        assert row[SENTENCE_COLUMN].startswith(f"Predicted '{row['prediction']}' (probability of 'yes' ")
        assert abs(total) <= 1.0
    assert sorted(p.name for p in run_dir.iterdir()) == files

    code, out, err = run_cli(capsys, "predict", run_id, str(new))  # without the flag: no contribution columns
    assert code == 0 and CONTRIBUTION_PREFIX not in out and SENTENCE_COLUMN not in out.splitlines()[0]

    big = tmp_path / "big.csv"
    messy_frame().drop(columns=list(TARGETS)).sample(2_001, replace=True, random_state=0).to_csv(big, index=False)
    code, out, err = run_cli(capsys, "predict", run_id, str(big), "--explain")
    assert code == 2 and err.startswith("error: At most 2,000 rows can be explained at once") and "Traceback" not in err
