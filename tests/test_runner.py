"""One run end to end, and the checks made before a run is queued."""

from __future__ import annotations

from dataclasses import replace

import pytest

from workbench.errors import UserError
from workbench.models.registry import get_model
from workbench.prepare import prepare
from workbench.runconfig import PrepConfig, RunConfig, SplitConfig
from workbench.runner import Preparations, execute, validate_config


@pytest.mark.parametrize("config,message", [
    (RunConfig("d", "nope", "mlp"), "no column called 'nope'"),
    (RunConfig("d", "label", "nope"), "no model called 'nope'"),
    (RunConfig("d", "label", "ridge"), "'ridge' does not do binary"),
    (RunConfig("d", "label", "mlp", task="regression"), "Regression needs a numeric target"),
    (RunConfig("d", "label", "mlp", exclude=["zzz"]), "Cannot exclude 'zzz'"),
    (RunConfig("d", "label", "mlp", params={"lr": "2"}), "'lr' must be at most"),
    (RunConfig("d", "label", "mlp", split=SplitConfig(train=0.9, val=0.2, test=0.1)), "add up to 1"),
    (RunConfig("d", "label", "mlp", task="ordinal"), "Task must be one of"),
    (RunConfig("d", "label", "mlp", split=SplitConfig(order_by="when")), "Cannot order the split by 'when'"),
    (RunConfig("d", "label", "mlp", split=SplitConfig(order_by="colour")), "most of its values are not dates"),
    (RunConfig("d", "label", "mlp", split=SplitConfig(order_by="label")), "it is the column to predict"),
])
def test_validate_config_refuses_before_training(binary_frame, config, message):
    with pytest.raises(UserError, match=message):
        validate_config(config, binary_frame)


def test_one_class_target_is_refused(binary_frame):
    with pytest.raises(UserError, match="only one value"):
        validate_config(RunConfig("d", "label", "mlp"), binary_frame.assign(label="yes"))


def test_outcome_of_a_classification_run(binary_frame, tmp_path):
    outcome = execute(RunConfig("d", "label", "mlp", params={"epochs": 4}), binary_frame, tmp_path / "run")
    assert outcome.status == "succeeded" and outcome.task == "binary" and outcome.device == "cpu"
    assert outcome.epochs_run == 4 and len(outcome.history) == 4
    assert (outcome.n_train, outcome.n_val, outcome.n_test) == (420, 90, 90)
    assert outcome.primary_metric == "accuracy"
    assert set(outcome.metrics) == {"val", "test"} and "roc_auc" in outcome.metrics["test"]
    assert outcome.baseline["test"]["accuracy"] < outcome.metrics["test"]["accuracy"]
    assert outcome.curves["labels"] == ["no", "yes"] and outcome.curves["roc"]
    assert outcome.params["hidden_sizes"] == [256, 256] and outcome.params["epochs"] == 4
    assert len(outcome.split_fingerprint) == 16


def test_runs_with_the_same_split_share_the_fingerprint(binary_frame, tmp_path):
    a = execute(RunConfig("d", "label", "logistic_regression"), binary_frame, tmp_path / "a")
    b = execute(RunConfig("d", "label", "random_forest"), binary_frame, tmp_path / "b")
    c = execute(RunConfig("d", "label", "logistic_regression", split=SplitConfig(seed=7)), binary_frame, tmp_path / "c")
    assert a.split_fingerprint == b.split_fingerprint != c.split_fingerprint
    assert a.baseline == b.baseline


def _prepared_by(preparations: Preparations, frame, config: RunConfig, member=None) -> list[int]:
    made = []

    def make():
        made.append(1)
        spec = get_model(config.model)
        return prepare(frame, config.target, "auto", config.exclude, config.split, config.prep, spec.family,
                       spec.categorical, model_scaling=spec.scaling)

    preparations.prepared(frame, config, get_model(config.model), member, make)
    return made


def test_a_workers_next_trial_reuses_the_preparation_and_scores_exactly_as_without_it(binary_frame, tmp_path):
    preparations = Preparations()
    table = preparations.table("file-1", lambda: binary_frame)
    configs = [RunConfig("d", "label", "mlp", params={"epochs": 2, "lr": lr}) for lr in (1e-3, 3e-3)]
    kept = [execute(c, table, tmp_path / f"kept{i}", preparations=preparations) for i, c in enumerate(configs)]
    fresh = [execute(c, binary_frame.copy(), tmp_path / f"fresh{i}") for i, c in enumerate(configs)]
    for a, b in zip(kept, fresh, strict=True):
        assert a.metrics == b.metrics and a.notes == b.notes and a.split_fingerprint == b.split_fingerprint
    assert kept[0].metrics != kept[1].metrics  # the trials differ: the hyperparameters were not taken from the cache
    # A run's notes are its own: adding one does not reach the next run's.
    kept[0].notes.append("mine")
    assert "mine" not in execute(configs[0], table, tmp_path / "again", preparations=preparations).notes
    assert _prepared_by(preparations, table, configs[0]) == []  # reused


@pytest.mark.parametrize("change", [
    {"exclude": ["colour"]}, {"split": SplitConfig(seed=3)}, {"target": "x1"}, {"task": "regression"},
    {"model": "linear"},  # the same family, another encoding of categories (one-hot)
    {"prep": PrepConfig(scaling="quantile")},
    {"model": "cnn"},  # the same family and encoding, its own scaling (quantile; the mlp's is robust)
    {"model": "mlp", "params": {"dropout": 0.3}},  # what only the training reads: the same preparation (below)
])
def test_a_preparation_is_not_reused_for_anything_it_reads(binary_frame, change):
    """Anything `prepare` reads changes the key; the two runs of a sweep differ only in what training reads."""
    preparations = Preparations()
    table = preparations.table("file-1", lambda: binary_frame)
    config = RunConfig("d", "label", "mlp")
    assert _prepared_by(preparations, table, config) == [1]
    assert _prepared_by(preparations, table, replace(config, params={"lr": 0.1})) == []
    reads_the_same = "params" in change
    assert _prepared_by(preparations, table, replace(config, **change)) == ([] if reads_the_same else [1])


def test_a_changed_file_is_read_again_and_prepared_again(binary_frame):
    preparations = Preparations()
    first = preparations.table(("f", 1), lambda: binary_frame)
    assert preparations.table(("f", 1), lambda: binary_frame.copy()) is first
    config = RunConfig("d", "label", "mlp")
    assert _prepared_by(preparations, first, config) == [1]
    second = preparations.table(("f", 2), lambda: binary_frame.copy())
    assert second is not first
    assert _prepared_by(preparations, second, config) == [1]
    assert _prepared_by(preparations, first, config) == [1]  # not the kept table: prepared, never kept
    assert _prepared_by(preparations, first, config) == [1]
