"""Per-row explanations on the Predict page: a predicted file's chosen row and the "what if" row each get a sentence
and a contribution per column that add up to the prediction."""

from __future__ import annotations

import pytest

from tests.test_pages import _no_background_worker, customers, page, plotly_charts, texts, train  # noqa: F401
from workbench import contributions, datasets
from workbench.errors import UserError


@pytest.fixture
def customers_id(store) -> str:
    return datasets.add_dataset(store, customers(n=200).to_csv(index=False).encode(), "customers.csv").dataset.id


def test_a_chosen_row_of_a_predicted_file_is_explained(store, customers_id):
    run_id = train(store, customers_id)
    rows = customers(n=6, seed=4).drop(columns=["label"])
    at = page("predict").run()
    at.file_uploader(key="predict_upload").upload("new.csv", rows.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception, at.exception
    at.number_input(key=f"explain_row.{run_id}").set_value(3).run()
    assert not at.exception, at.exception
    expected = contributions.explain_rows(store, run_id, rows.iloc[[2]])
    assert expected.sentences[0] in texts(at.markdown)
    figure = plotly_charts(at)[-1].proto.spec
    assert "What moved this prediction" in figure
    total = expected.contributions.iloc[0].sum()
    assert total == pytest.approx(expected.predicted[0] - expected.baseline[0], abs=1e-4)


def test_the_what_if_row_is_explained_beside_its_prediction(store, customers_id):
    train(store, customers_id, model="random_forest")
    at = page("predict").run()
    next(b for b in at.button if b.label == "Predict this row").click().run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("Predicted ") and "because" in m.value or "typical" in m.value
               for m in at.markdown), texts(at.markdown)
    assert any("What moved this prediction" in c.proto.spec for c in plotly_charts(at))


def test_a_row_outside_the_file_is_one_sentence(store, customers_id):
    run_id = train(store, customers_id)
    data = customers(n=3, seed=4).drop(columns=["label"]).to_csv(index=False).encode()
    with pytest.raises(UserError, match="The file has rows 1 to 3"):
        contributions.explain_file_rows(store, run_id, data, [5])
