"""Comparison logic: best per metric by direction, the baseline row, the settings diff, same test rows."""

from __future__ import annotations

import pytest

from tests.conftest import make_regression_frame
from ui import charts
from workbench import compare, datasets, jobs
from workbench.errors import UserError
from workbench.runconfig import RunConfig
from workbench.store import EpochMetrics, Run, RunResult, RunStatus, Store

CSV = b"x1,x2,label\n" + b"".join(f"{i},{i % 7},{'yes' if i % 3 else 'no'}\n".encode() for i in range(60))


def finished_run(store: Store, dataset_id: str, model: str = "mlp", params: dict | None = None,
                 test: dict | None = None, fingerprint: str = "fp-a", epochs: int = 3, split_seed: int = 0,
                 task: str = "binary"):
    """A run written straight to the store as a worker would leave it (no training needed)."""
    config = RunConfig(dataset_id=dataset_id, target="label", model=model, params=params or {})
    config.split.seed = split_seed
    run = store.create_run(config.to_dict(), model=model, target="label", task=task, params=params or {})
    for epoch in range(1, epochs + 1):
        store.record_epoch(run.id, EpochMetrics(epoch, 1.0 / epoch, 1.2 / epoch, 0.5 + epoch / 10, 0.01, 0.1))
    test = test if test is not None else {"accuracy": 0.8, "log_loss": 0.4}
    store.finish_run(run.id, RunResult(RunStatus.SUCCEEDED, primary_metric=next(iter(test), None),
                     primary_value=next(iter(test.values()), None), split_fingerprint=fingerprint,
                     metrics={"val": test, "test": test}, baseline={"test": {"accuracy": 0.6, "log_loss": 0.67}},
                     duration_s=1.5))
    return store.get_run(run.id)


@pytest.fixture
def dataset_id(store):
    return datasets.add_dataset(store, CSV, "small.csv").dataset.id


def test_best_per_metric_respects_direction(store, dataset_id):
    a = finished_run(store, dataset_id, params={"lr": 0.1}, test={"accuracy": 0.9, "log_loss": 0.5})
    b = finished_run(store, dataset_id, params={"lr": 0.01}, test={"accuracy": 0.8, "log_loss": 0.3})
    names = compare.run_names([a, b])
    result = compare.compare_metrics([a, b])
    assert result.best == {"accuracy": [names[a.id]], "log_loss": [names[b.id]]}
    assert result.higher_is_better == {"accuracy": True, "log_loss": False}
    assert list(result.table.columns) == ["accuracy", "log_loss"]


def test_baseline_row_is_added_once_per_test_set_and_never_best(store, dataset_id):
    a = finished_run(store, dataset_id, test={"accuracy": 0.5, "log_loss": 0.9})
    b = finished_run(store, dataset_id, test={"accuracy": 0.55, "log_loss": 0.8})
    result = compare.compare_metrics([a, b])
    assert result.baseline_rows == ["Baseline (majority class)"]
    assert result.table.loc["Baseline (majority class)", "accuracy"] == 0.6
    assert "Baseline (majority class)" not in result.best["accuracy"]


def test_ties_are_all_marked_best(store, dataset_id):
    a = finished_run(store, dataset_id, test={"accuracy": 0.9})
    b = finished_run(store, dataset_id, test={"accuracy": 0.9})
    assert len(compare.compare_metrics([a, b]).best["accuracy"]) == 2


def test_params_diff_shows_only_what_differs(store, dataset_id):
    a = finished_run(store, dataset_id, params={"lr": 0.1, "epochs": 5, "hidden": [256, 256]})
    b = finished_run(store, dataset_id, params={"lr": 0.01, "epochs": 5, "hidden": [128]})
    diff = compare.params_diff([a, b])
    assert list(diff.index) == ["lr", "hidden"]
    assert diff.loc["hidden"].tolist() == ["256,256", "128"]


def test_params_diff_names_a_setting_only_one_run_has(store, dataset_id):
    a = finished_run(store, dataset_id, model="mlp", params={"dropout": 0.1})
    b = finished_run(store, dataset_id, model="random_forest", params={"n_estimators": 100})
    diff = compare.params_diff([a, b])
    assert set(diff.index) == {"model", "dropout", "n_estimators"}
    assert diff.loc["n_estimators"].tolist() == [compare.MISSING, "100"]


def test_same_test_rows(store, dataset_id):
    a = finished_run(store, dataset_id, fingerprint="fp-a")
    b = finished_run(store, dataset_id, fingerprint="fp-a")
    c = finished_run(store, dataset_id, fingerprint="fp-b", split_seed=1)
    assert compare.same_test_rows([a, b])
    assert not compare.same_test_rows([a, c])
    result = compare.compare_metrics([a, c])
    assert len(result.baseline_rows) == 2  # one per test set, each named by it


def test_hyperparameter_frame_keeps_numbers_numeric(store, dataset_id):
    a = finished_run(store, dataset_id, params={"lr": 0.1, "activation": "relu"}, test={"accuracy": 0.7})
    b = finished_run(store, dataset_id, params={"lr": 0.01, "activation": "gelu"}, test={"accuracy": 0.8})
    frame = compare.hyperparameter_frame([a, b], "accuracy")
    assert frame["lr"].tolist() == [0.1, 0.01]
    assert frame["activation"].tolist() == ["relu", "gelu"]
    assert frame["accuracy"].tolist() == [0.7, 0.8]


def test_learning_curves_long_form(store, dataset_id):
    a = finished_run(store, dataset_id, epochs=4)
    curves = compare.learning_curves([a])
    assert len(curves) == 12
    assert set(zip(curves["split"], curves["metric"], strict=True)) == {
        ("training", "log_loss"), ("validation", "log_loss"), ("validation", "accuracy")}
    figure = charts.learning_curves(curves)
    assert {figure.layout.yaxis.title.text, figure.layout.yaxis2.title.text} == {
        "log loss, lower is better", "accuracy, higher is better"}


def trained_regression(store, dataset_id: str, model: str, **params) -> Run:
    run = jobs.submit_run(store, RunConfig(dataset_id=dataset_id, target="y", model=model, params=params))
    jobs.run_worker(store, once=True)
    run = store.get_run(run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def test_regression_curves_are_in_the_target_units_whatever_the_scaling(store):
    """A network learns a standardised target and records MSE on that scale; a classical model records MSE in the
    target's units. On one chart both must read as RMSE in the target's units: the same network on the target in
    dollars and in thousands of dollars draws curves 1,000 times apart, and a ridge regression lands beside it."""
    frame = make_regression_frame(n=200)
    dollars = frame.assign(y=frame["y"] * 1000)
    ids = {name: datasets.add_dataset(store, table.to_csv(index=False).encode(), f"{name}.csv").dataset.id
           for name, table in (("thousands", frame), ("dollars", dollars))}
    thousands_mlp = trained_regression(store, ids["thousands"], "mlp", epochs=4, patience=0)
    dollars_mlp = trained_regression(store, ids["dollars"], "mlp", epochs=4, patience=0)
    dollars_ridge = trained_regression(store, ids["dollars"], "ridge")
    # The raw losses do not tell the scale apart: the network saw the same standardised numbers twice.
    assert [e.val_loss for e in thousands_mlp.epochs] == pytest.approx([e.val_loss for e in dollars_mlp.epochs],
                                                                       rel=1e-3)
    curves = compare.learning_curves([thousands_mlp, dollars_mlp, dollars_ridge],
                                     {ids["thousands"]: "Houses (k$)", ids["dollars"]: "Houses ($)"})
    assert set(curves["metric"]) == {"rmse"} and not curves["higher_is_better"].any()
    names = compare.run_names([thousands_mlp, dollars_mlp, dollars_ridge])
    by_run = {run.id: curves[curves["run"] == names[run.id]].set_index(["epoch", "split"])["value"]
              for run in (thousands_mlp, dollars_mlp, dollars_ridge)}
    assert len(by_run[thousands_mlp.id]) == 8  # 4 epochs, training and validation
    ratio = by_run[dollars_mlp.id] / by_run[thousands_mlp.id]
    assert ratio.to_numpy() == pytest.approx(1000, rel=1e-2)
    # The last validation point is close to the final model's validation RMSE (weight averaging and restoring the
    # best epoch move it a little), in dollars, for both kinds of model.
    spread = float(dollars["y"].std())
    for run in (dollars_mlp, dollars_ridge):
        last = by_run[run.id].xs("validation", level="split").iloc[-1]
        assert last == pytest.approx(run.metrics["val"]["rmse"], rel=0.05)
        assert 0.01 * spread < last < 1.5 * spread
    # Different datasets: their RMSEs are in units that may differ, so each gets its own axis.
    assert set(curves["unit"]) == {"y (Houses (k$))", "y (Houses ($))"}
    figure = charts.learning_curves(curves)
    assert {axis.title.text for axis in (figure.layout.yaxis, figure.layout.yaxis2)} == {
        "RMSE of y (Houses (k$)), lower is better", "RMSE of y (Houses ($)), lower is better"}


def test_classification_and_regression_curves_never_share_an_axis(store, dataset_id):
    classifier = finished_run(store, dataset_id, epochs=3)
    regressor = finished_run(store, dataset_id, epochs=3, task="regression", test={"rmse": 2.0})
    curves = compare.learning_curves([classifier, regressor])
    panels = curves.groupby(["metric", "unit"])["run"].unique()
    assert {key: len(runs) for key, runs in panels.items()} == {
        ("log_loss", ""): 1, ("accuracy", ""): 1, ("rmse", "label"): 1}
    # The regressor's records: val_loss 1.2/e (MSE on its scale) and val_metric 0.5+e/10 (RMSE in units); their
    # ratio, the target's scale, is taken as the median over the epochs (here: epoch 2's).
    rmse = curves[curves["metric"] == "rmse"].set_index(["epoch", "split"])["value"]
    scale = (0.5 + 0.2) / (1.2 / 2) ** 0.5
    assert rmse[(2, "training")] == pytest.approx((1.0 / 2) ** 0.5 * scale)
    assert rmse[(3, "validation")] == pytest.approx(0.8)


def test_one_runs_scores_and_settings(store, dataset_id):
    run = finished_run(store, dataset_id, params={"lr": 0.1, "epochs": 5},
                       test={"accuracy": 0.8, "log_loss": 0.4, "f1": float("nan")})
    scores = compare.run_scores(run)
    assert list(scores.index) == ["accuracy", "log_loss"]  # not a number: not a score
    assert scores.loc["log_loss", ["test", "validation", "baseline", "higher_is_better"]].tolist() == [
        0.4, 0.4, 0.67, False]
    assert scores[["test_low", "test_high"]].isna().all().all()  # written without intervals: the points only
    settings = compare.settings_table(run, {"lr": 0.001, "epochs": 5, "seed": 0}).set_index("setting")
    assert settings["changed"].to_dict() == {"lr": True, "epochs": False}
    assert settings.loc["lr", "default"] == "0.001"


def test_delete_run_refuses_a_running_run(store, dataset_id, home):
    run = store.create_run(RunConfig(dataset_id=dataset_id, target="label", model="mlp").to_dict(),
                           model="mlp", target="label", task="binary", params={})
    with pytest.raises(UserError, match="cancel it"):
        jobs.delete_run(store, run.id)
    done = finished_run(store, dataset_id)
    (home / "runs" / done.id).mkdir(parents=True)
    jobs.delete_run(store, done.id)
    assert not (home / "runs" / done.id).exists()
    with pytest.raises(UserError):
        store.get_run(done.id)


def test_baseline_row_comes_from_a_finished_run_when_a_cancelled_one_is_first(store, dataset_id):
    """A cancelled run scored nothing and has no baseline; the finished run beside it on the same rows has one."""
    cancelled = store.create_run(RunConfig(dataset_id=dataset_id, target="label", model="mlp").to_dict(), model="mlp",
                                 target="label", task="binary", params={})
    store.finish_run(cancelled.id, RunResult(RunStatus.CANCELLED, split_fingerprint="fp-a",
                                             error="Cancelled by the user."))
    done = finished_run(store, dataset_id)
    result = compare.compare_metrics([store.get_run(cancelled.id), done])
    assert result.baseline_rows == ["Baseline (majority class)"]
    assert result.table.loc["Baseline (majority class)", "accuracy"] == 0.6
    assert list(result.table.index) == [compare.run_names([done])[done.id], "Baseline (majority class)"]
    assert result.unscored == [f"mlp · {cancelled.id[:6]} (cancelled)"]
