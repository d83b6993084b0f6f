"""The advisor's rules (workbench/advisor.py) on runs with planted problems, as the store returns them."""

from __future__ import annotations

import math
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.advisor import CODES, diagnose
from workbench.explain import ColumnImportance, Explanation
from workbench.store import EpochMetrics, Run, RunStatus


def make_run(model="mlp", status=RunStatus.SUCCEEDED, train=(), val=(), params=None, test=None, base=None,
             task="binary", epochs_done=None, run_id="r1", split="s", value=None, intervals=None):
    epochs = [EpochMetrics(i + 1, t, v, None, None, 1.0) for i, (t, v) in enumerate(zip(train, val, strict=False))]
    test = test or {"accuracy": 0.8, "balanced_accuracy": 0.79, "log_loss": 0.45, "f1": 0.79}
    base = base or {"accuracy": 0.5, "balanced_accuracy": 0.5, "log_loss": 0.693}
    primary = "rmse" if task == "regression" else "accuracy"
    return Run(id=run_id, dataset_id="d", status=status, model=model, target="y", task=task, config={"params": {}},
               params=params if params is not None else {"lr": 2e-3, "epochs": 200, "hidden_sizes": [256, 256],
                                                         "dropout": 0.1, "weight_decay": 1e-4},
               device="cpu", created_at=datetime(2024, 1, 1), started_at=None, finished_at=None, heartbeat_at=None,
               worker_id=None, cancel_requested=False, epochs_planned=200, epochs_done=epochs_done or len(epochs),
               batches_per_epoch=1, batches_done=0, duration_s=1.0, primary_metric=primary,
               primary_value=value if value is not None else test.get(primary), split_fingerprint=split,
               metrics={"test": test, "val": test}, baseline={"test": base}, curves={},
               details={"n_train": 1400, "n_val": 300, "n_test": 300}, error=None, epochs=epochs,
               intervals=intervals or {})


HEALTHY_TRAIN = [0.6, 0.5, 0.45, 0.42, 0.41, 0.40, 0.40, 0.39, 0.39, 0.39]
HEALTHY_VAL = [0.55, 0.48, 0.46, 0.45, 0.45, 0.44, 0.45, 0.44, 0.45, 0.45]


def codes(advice):
    return [a.code for a in advice]


def test_a_healthy_run_has_nothing_to_fix():
    assert codes(diagnose(make_run(train=HEALTHY_TRAIN, val=HEALTHY_VAL), n_rows=2000)) == ["ok"]


def test_rising_validation_loss_while_training_loss_falls_is_overfitting():
    train = [0.6, 0.4, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.01]
    val = [0.55, 0.45, 0.42, 0.45, 0.55, 0.7, 0.8, 0.9, 1.0, 1.1]
    advice = diagnose(make_run(train=train, val=val, params={"lr": 2e-3, "epochs": 200, "hidden_sizes": [1024] * 3,
                                                             "dropout": 0.1, "weight_decay": 1e-4}), n_rows=2000)
    assert codes(advice) == ["overfitting"]
    assert advice[0].suggestion.params == {"dropout": 0.3, "weight_decay": 0.1}  # the same size: smaller did worse
    assert advice[0].evidence["best_epoch"] == 3


def test_a_neural_run_on_a_few_hundred_rows_is_tiny_data():
    """One network -> TabM (averaged networks); TabM itself -> gradient boosting (what is left to try)."""
    advice = diagnose(make_run(train=HEALTHY_TRAIN, val=HEALTHY_VAL), n_rows=200)
    assert codes(advice)[0] == "tiny_data" and advice[0].suggestion.model == "tabm"
    averaged = diagnose(make_run(model="tabm", train=HEALTHY_TRAIN, val=HEALTHY_VAL, params={"lr": 2e-3}), n_rows=200)
    assert codes(averaged)[0] == "tiny_data" and averaged[0].suggestion.model == "gradient_boosting"
    classical = make_run(model="gradient_boosting", run_id="gb", value=0.78,
                         test={"accuracy": 0.78, "balanced_accuracy": 0.78})
    assert "tiny_data" not in codes(diagnose(make_run(train=HEALTHY_TRAIN, val=HEALTHY_VAL), [classical], n_rows=200))


def test_an_overfitting_network_on_a_few_hundred_rows_is_told_about_tabm_first():
    """Both are said; TabM first (on the planted 500-row table it beat the overfitting network on validation and test
    rows, and a shrunk network did worse; benchmarks/advisor.py)."""
    train = [0.6, 0.4, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.01]
    val = [0.55, 0.45, 0.42, 0.45, 0.55, 0.7, 0.8, 0.9, 1.0, 1.1]
    advice = diagnose(make_run(train=train, val=val, params={"lr": 2e-3, "epochs": 200, "hidden_sizes": [1024] * 3,
                                                             "dropout": 0.1, "weight_decay": 1e-4}), n_rows=500)
    assert codes(advice) == ["tiny_data", "overfitting"]
    assert advice[0].suggestion.model == "tabm" and advice[1].suggestion.model == "mlp"


def test_a_learning_rate_of_one_with_a_jagged_loss_is_too_high():
    train = [0.9, 1.4, 0.8, 2.0, 0.9, 1.7, 0.8, 1.5, 0.9, 1.2]
    advice = diagnose(make_run(train=train, val=train, params={"lr": 1.0, "epochs": 200}), n_rows=2000)
    assert codes(advice)[0] == "lr_too_high" and advice[0].suggestion.params == {"lr": 2e-3}
    assert codes(diagnose(make_run(status=RunStatus.DIVERGED, params={"lr": 0.5}))) == ["lr_too_high"]


def test_a_tiny_learning_rate_with_a_flat_loss_is_too_low():
    flat = [0.69, 0.69, 0.689, 0.688, 0.688, 0.687]
    advice = diagnose(make_run(train=flat, val=flat, params={"lr": 1e-5, "epochs": 6},
                               test={"accuracy": 0.52, "balanced_accuracy": 0.52}), n_rows=2000)
    assert "lr_too_low" in codes(advice)


def test_a_near_perfect_score_resting_on_one_column_is_a_leak():
    explanation = Explanation("accuracy", [ColumnImportance("copy", 0.45, 0.01), ColumnImportance("x1", 0.02, 0.01)])
    advice = diagnose(make_run(model="gradient_boosting", test={"accuracy": 0.99, "balanced_accuracy": 0.99}),
                      explanation=explanation, n_rows=2000)
    assert codes(advice) == ["leak"] and advice[0].suggestion.exclude == ["copy"]


def test_accuracy_far_above_balanced_accuracy_is_imbalance():
    advice = diagnose(make_run(model="mlp", train=HEALTHY_TRAIN, val=HEALTHY_VAL,
                               test={"accuracy": 0.95, "balanced_accuracy": 0.6},
                               base={"accuracy": 0.95, "log_loss": 0.2}), n_rows=5000)
    assert "imbalance" in codes(advice)


def test_still_improving_at_the_epoch_limit_is_not_converged():
    falling = [1.0 - 0.05 * i for i in range(10)]
    advice = diagnose(make_run(train=falling, val=falling, params={"lr": 2e-3, "epochs": 10}), n_rows=2000)
    assert "not_converged" in codes(advice)
    assert advice[codes(advice).index("not_converged")].suggestion.params == {"epochs": 30}


def test_a_classical_run_outside_the_neural_interval_is_better():
    neural = make_run(train=HEALTHY_TRAIN, val=HEALTHY_VAL, intervals={"test": {"accuracy": [0.75, 0.85]}})
    classical = make_run(model="gradient_boosting", run_id="gb", value=0.9, test={"accuracy": 0.9})
    advice = diagnose(neural, [classical], n_rows=2000)
    assert codes(advice) == ["classical_better"] and advice[0].suggestion.model == "gradient_boosting"


losses = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()), max_size=30)


@settings(max_examples=150, deadline=None)
@given(train=losses, val=losses, status=st.sampled_from(list(RunStatus)), model=st.sampled_from(["mlp", "linear",
       "gradient_boosting"]), accuracy=st.floats(0, 1), balanced=st.floats(0, 1), lr=st.floats(1e-6, 1.0),
       n_rows=st.integers(20, 100_000))
def test_advice_always_has_evidence_numbers_and_never_crashes(train, val, status, model, accuracy, balanced, lr,
                                                              n_rows):
    run = make_run(model=model, status=status, train=train, val=val, params={"lr": lr, "epochs": 30},
                   test={"accuracy": accuracy, "balanced_accuracy": balanced})
    for advice in diagnose(run, n_rows=n_rows):
        assert advice.code in CODES
        assert advice.evidence and all(v is None or (isinstance(v, (int, float)) and math.isfinite(v))
                                       for v in advice.evidence.values())
        assert any(v is not None for v in advice.evidence.values())
        assert (advice.suggestion is None) == (advice.code == "ok")


def test_imbalance_suggests_balanced_class_weights_also_for_a_boosting_run():
    """Another model as it is does not help a rare class (a random forest in place of boosting lowered balanced
    accuracy on the advisor benchmark's 95/5 table): the suggestion weighs the classes, whatever the run's model."""
    for model in ("gradient_boosting", "mlp"):
        advice = diagnose(make_run(model=model, train=HEALTHY_TRAIN, val=HEALTHY_VAL,
                                   test={"accuracy": 0.96, "balanced_accuracy": 0.69},
                                   base={"accuracy": 0.95, "log_loss": 0.2}), n_rows=10_000)
        imbalance = next(a for a in advice if a.code == "imbalance")
        assert imbalance.suggestion.model == "gradient_boosting"
        assert imbalance.suggestion.params == {"balance_classes": True}
