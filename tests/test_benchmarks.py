"""The benchmark suite's --quick entry runs one cheap part end to end and writes the expected JSON (no timings)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket

import pandas as pd
import pytest

from benchmarks.suite import main


def test_quick_utilisation_writes_the_expected_json(tmp_path, capsys):
    out = tmp_path / "latest.json"
    assert main(["--quick", "--only", "utilisation", "--out", str(out), "--no-table"]) == 0
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result
    assert {"quick", "machine", "cpu", "targets", "seconds", "errors"} <= set(result)
    assert result["quick"] is True and result["errors"] == {}
    assert {"torch", "load_avg_1m", "torch_threads"} <= set(result["machine"])
    utilisation = result["cpu"]["utilisation"]
    assert {"matmul_gflops", "flops_per_step", "utilisation", "variants", "dtype"} <= set(utilisation)
    assert {"defaults", "no_dropout_no_clip", "float32"} == set(utilisation["variants"])
    assert {"dtype", "step_ms", "gflops", "utilisation"} <= set(utilisation["variants"]["defaults"])
    assert utilisation["variants"]["float32"]["dtype"] == "float32"
    assert utilisation["matmul_gflops"] == utilisation["matmul_gflops_by_dtype"][utilisation["dtype"]]
    assert [t["name"] for t in result["targets"]] == [f"utilisation 3x512 @4096 ({utilisation['dtype']})"]


def test_quality_scores_small_samples_on_more_splits():
    """Wine's test split is 27 rows: it gets enough splits for 200 test rows; larger samples keep three."""
    from benchmarks.quality import split_seeds_for

    assert split_seeds_for(178) == tuple(range(8))
    assert split_seeds_for(1797) == (0, 1, 2)
    assert split_seeds_for(1797, min_splits=5) == tuple(range(5))


def test_step_flops_are_the_matmul_flops_a_training_step_runs():
    """The utilisation's numerator, against torch's own count of the step's matmuls (forward and backward)."""
    from contextlib import nullcontext

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.common import PLAIN_MLP, build_mlp, mlp_params
    from benchmarks.utilisation import step_flops
    from workbench.tasks import Objective
    from workbench.training import make_optimizer, train_step

    params = mlp_params(hidden_sizes=[16, 8], mixed_precision="off", **PLAIN_MLP)
    model = build_mlp(5, params, "cpu")
    x, x_cat, y = torch.randn(32, 5), torch.zeros((32, 0), dtype=torch.long), torch.randint(0, 2, (32,))
    with FlopCounterMode(display=False) as counter:
        train_step(model, x, x_cat, y, Objective("binary"), make_optimizer(model, params), params, nullcontext())
    assert counter.get_total_flops() == step_flops(32, [5, 16, 8, 1])


def test_quick_sweeps_part_reports_both_sweeps_and_the_retrained_best():
    """Tiny sizes: the part runs end to end; its figures are there, not its targets."""
    from benchmarks.sweeps import measure

    result = measure(rows=400, trials=2, epochs=2, repeats=2)
    assert {"defaults", "pruned", "unpruned", "best_retrained", "pruning_saved", "overhead_share", "met"} <= set(result)
    assert result["pruned"]["n_complete"] + result["pruned"]["n_pruned"] == 2
    assert result["unpruned"]["n_pruned"] == 0 and result["unpruned"]["n_complete"] == 2
    assert 0 <= result["overhead_share"] <= 1 and result["best_retrained"]["test_mean"] is not None
    pruned = result["pruned"]  # every kind of bookkeeping was timed, and it is part of the time outside the epochs
    assert all(pruned["outside_epochs_s"][k] > 0 for k in ("optuna", "store", "save", "prepare"))
    assert result["overhead_share"] == pruned["bookkeeping_share"] <= pruned["outside_epochs_share"]
    assert result["unpruned"]["epochs_trained"] == 4 and result["noise"] > 0 and result["defaults"]["epochs"] <= 2


# -- the collection of real tables -------------------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    """No socket can connect: a loader that tried to download would fail."""
    def refuse(*_args, **_kwargs):
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_every_table_loads_offline_as_declared(offline):
    """Each table comes from files its package's wheel shipped, with the declared rows, target, task, categories and
    missing values (the real ones: nothing is injected)."""
    from benchmarks.tables import TABLES, shipped_file
    from workbench.prepare import detect_task

    for table in TABLES.values():
        frame = table.load()
        assert len(frame) == table.rows, table.name
        assert table.target in frame.columns, table.name
        assert detect_task(frame[table.target].dropna(), "auto") == table.task, table.name
        features = frame.drop(columns=[table.target])
        assert not {"rownames", *table.excluded} & set(features.columns), table.name
        has_text = any(not pd.api.types.is_numeric_dtype(features[c]) for c in features)
        assert has_text == table.categorical, table.name
        assert bool(features.isna().to_numpy().any()) == table.missing, table.name
        for distribution, path in table.files:
            assert shipped_file(distribution, path).is_file()
            assert path in table.source
    tables = list(TABLES.values())
    assert len(tables) >= 12 and {t.task for t in tables} == {"binary", "multiclass", "regression"}
    assert min(t.rows for t in tables) == 150 and max(t.rows for t in tables) >= 50_000
    assert sum(t.categorical for t in tables) >= 3 and sum(t.missing for t in tables) >= 3


def test_a_table_file_must_be_the_one_its_wheel_shipped(tmp_path, monkeypatch):
    """Protection: a data file that is not in its distribution's RECORD, or that changed since, is refused."""
    from benchmarks.tables import shipped_file

    package = tmp_path / "tablespkg"
    package.mkdir()
    data = package / "données ünï.csv"
    data.write_text("a,b\n1,2\n", encoding="utf-8")
    digest = base64.urlsafe_b64encode(hashlib.sha256(data.read_bytes()).digest()).rstrip(b"=").decode()
    info = tmp_path / "tablespkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tablespkg\nVersion: 1.0\n")
    (info / "RECORD").write_text(f'"tablespkg/{data.name}",sha256={digest},{data.stat().st_size}\n'
                                 "tablespkg-1.0.dist-info/RECORD,,\n", encoding="utf-8")
    (package / "extra.csv").write_text("a\n1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert shipped_file("tablespkg", f"tablespkg/{data.name}") == data
    with pytest.raises(RuntimeError, match="is not a file"):
        shipped_file("tablespkg", "tablespkg/extra.csv")
    with pytest.raises(RuntimeError, match="not installed"):
        shipped_file("no-such-tables-package", "x.csv")
    data.write_text("a,b\n1,3\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="differs from the file"):
        shipped_file("tablespkg", f"tablespkg/{data.name}")


def test_the_tutorial_loop_is_timed_as_a_users_own_script_runs(monkeypatch):
    """Protection: our processes make OpenMP threads sleep while they wait, which made the tutorial's small steps
    2.8x slower; its child process has the environment of a user's script, and learns as the tutorial does."""
    from benchmarks.common import make_data
    from benchmarks.time_to_quality import tutorial_until_plateau

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    data = make_data(2_000, features=8, task="binary")
    result = tutorial_until_plateau(data, "cpu", patience=1, max_epochs=3)
    assert result["omp_wait_policy"] == ""
    assert 1 <= len(result["epochs"]) <= 3 and result["best_score"] > 0.6
    assert result["epochs"][result["best_epoch"] - 1][2] == pytest.approx(result["best_score"], abs=1e-5)


def test_collection_runs_tiny_and_reports_ranks_ties_and_time_to_quality():
    """Two small real tables (multiclass with categories and missing values; regression with categories), short
    runs: every model gets a mean with an interval on the same folds, a rank and a tie mark; the summary and the
    suite's targets read it."""
    from benchmarks import collection
    from benchmarks.suite import collection_targets

    result = collection.measure(("penguins", "carseats"), ("mlp", "gradient_boosting", "logistic_regression", "ridge"),
                                repeats=2, params={"mlp": {"epochs": 3}, "gradient_boosting": {"max_iter": 5}},
                                tutorial_max_epochs=3)
    json.dumps(result)
    penguins, carseats = result["tables"]["penguins"], result["tables"]["carseats"]
    assert set(penguins["models"]) == {"mlp", "gradient_boosting", "logistic_regression"}
    assert set(carseats["models"]) == {"mlp", "gradient_boosting", "ridge"}
    for table in (penguins, carseats):
        assert table["members"] == 5  # one round of 5 folds: every row tested once
        ranks = sorted(row["rank"] for row in table["models"].values())
        assert ranks == [1, 2, 3]
        for row in table["models"].values():
            assert {"mean", "ci_low", "ci_high", "n", "wall_s", "run_s", "epochs", "tied_with_best"} <= set(row)
            assert row["n"] == 5 and row["ci_low"] <= row["mean"] <= row["ci_high"]
        assert next(r for r in table["models"].values() if r["rank"] == 1)["tied_with_best"]
        assert table["models"]["mlp"]["epochs"] <= 3
        assert set(table["vs_gradient_boosting"]) == {"mlp"}
        ttq = table["time_to_quality"]
        assert ttq["tutorial_epochs"] <= 3 and ttq["ratio"] > 0
        assert 1 <= ttq["ours_best_epoch"] <= ttq["ours_epochs"] and ttq["ratio_to_final"] >= ttq["ratio"]
        assert ttq["tutorial_s_to_ours"] <= ttq["tutorial_total_s"]
        assert ttq["ours_val_at_least_tutorial_best"] is not ttq["tutorial_reached_ours"] or \
            ttq["tutorial_best_val"] == ttq["ours_val"]
    assert penguins["metric"] == "accuracy" and 0 <= penguins["models"]["mlp"]["mean"] <= 1
    assert carseats["metric"] == "rmse" and carseats["higher_is_better"] is False
    summary = result["summary"]
    assert set(summary["mean_rank"]) == {"mlp", "gradient_boosting", "logistic_regression", "ridge"}
    assert summary["tables_ranked"]["mlp"] == 2 and 0 <= summary["tied_with_best"]["mlp"] <= 2
    assert set(summary["mlp_gb_wall_ratio_regression"]) == {"carseats"}
    assert set(summary["time_to_quality_ratio"]) == set(summary["time_to_quality_ratio_to_final"]) == {"penguins",
                                                                                                     "carseats"}
    text = "\n".join(collection.lines(result))
    assert "penguins (344 rows, multiclass" in text and "mean rank:" in text
    names = [t["name"] for t in collection_targets(result)]
    assert names == ["mlp wall time vs gradient boosting: carseats", "mlp or tabm tied with or better than gradient "
                     "boosting"]  # no table of 10,000 rows here, no ensemble


def test_quick_advisor_part_advises_planted_cases_and_trains_the_suggestion():
    """Tiny sizes, two cases (all six take minutes): each is trained and advised, the problem case's first suggestion
    is trained, and the importance cost is measured; the figures are there, not the targets."""
    from benchmarks.advisor import measure

    result = measure(quick=True, names=["leak", "healthy"], importance_rows=300)
    assert {"cases", "named_all", "first_all", "healthy_ok_only", "improved", "problem_cases", "importance"} <= set(result)
    assert [c["case"] for c in result["cases"]] == ["leak", "healthy"] and result["problem_cases"] == 1
    for case in result["cases"]:
        assert case["codes"] and {"planted", "named", "first", "advice", "metric"} <= set(case)
        if case["planted"] != "ok" and case["advice"][0]["suggestion"]:
            assert {"val_before", "val_after", "improved", "improved_on_test", "outcome", "command"} <= set(case)
            assert case["command"].startswith("python -m workbench train")
    leak = next(c for c in result["cases"] if c["case"] == "leak")
    assert leak["codes"][0] == "leak" and leak["suggestion"]["exclude"] == ["settled_amount"]
    for model in ("mlp", "gradient_boosting"):
        cost = result["importance"][model]
        assert cost["explain_s"] > 0 and cost["train_s"] > 0 and len(cost["top_columns"]) == 3


def test_cluster_part_reports_the_ratio_and_both_dispatch_overheads():
    """The figures' shape, from a result as benchmarks.cluster.measure returns it (running it takes minutes: the
    Ray executor itself is tested on a real cluster in tests/test_ray_executor.py)."""
    from benchmarks.cluster import lines
    from benchmarks.suite import targets

    result = {"trials": 12, "rows": 3000, "epochs": 15, "one_node": {"wall_s": 80.0, "succeeded": 12, "nodes": 1},
              "two_nodes": {"wall_s": 45.0, "succeeded": 12, "nodes": 2}, "ratio": 1.78, "target_ratio": 1.6,
              "met": True, "dispatch_s": {"ray": 0.9, "local": 0.6}, "load_avg_1m": 1.0}
    assert targets({"cluster": result}) == [{"name": "12-trial MLP sweep on 2 Ray nodes vs 1", "target": ">= 1.6x",
                                             "measured": 1.78, "met": True}]
    assert "1 node 80.0 s, 2 nodes 45.0 s -> 1.78x; dispatch (submit to first epoch) ray 0.9 s, local worker 0.6 s" \
        in lines(result)[0]
def test_serving_measures_a_real_server():
    """The serving part trains, serves and calls a model over HTTP (tiny: one model, a few requests)."""
    from benchmarks import serving

    result = serving.measure(rows=300, requests=5, batch_rows=40, batches=1, models=("gradient_boosting",))
    (figures,) = result["models"].values()
    assert result["requests"] == 5 and 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert figures["batch_json_rows_per_s"] > 0 and figures["batch_csv_rows_per_s"] > 0
    assert result["met"] == (figures["p50_ms"] <= serving.TARGET_P50_MS)
def test_drift_part_reports_each_scenarios_rates_and_meets_the_targets():
    """The full-size drift part takes milliseconds (it works on summaries), so the smoke test runs it as measured."""
    from benchmarks.drift import lines
    from benchmarks.suite import run_part, targets

    result = run_part("drift", quick=True, device="cpu", compile_model=False)
    assert [r["scenario"] for r in result["scenarios"]][:3] == ["unchanged", "number shifted 1 std",
                                                                "category share 30% -> 60%"]
    assert result["met"] and result["seconds"] < 10
    rows = [t for t in targets({"drift": result}) if t["name"].startswith("drift alarm")]
    assert len(rows) == 3 and all(t["met"] for t in rows)
    assert "detected" in "\n".join(lines(result))


def test_busy_part_times_a_step_idle_and_beside_a_spinning_process():
    from benchmarks import busy

    result = busy.measure(rows=600)
    assert result["idle"]["step_ms"] > 0 and result["busy"]["step_ms"] > 0
    assert result["idle"]["omp_wait_policy"] == "PASSIVE" == result["busy"]["omp_wait_policy"]
    assert result["met"] == (result["ratio"] <= busy.TARGET_RATIO)


def test_recipe_part_compares_each_switched_part_with_the_default_mlp():
    """Tiny: one table, one part, two repeats of two epochs (on iris, rounded up to one round of 5 folds); the
    figures come from workbench.groups."""
    from benchmarks.recipe import lines
    from benchmarks.suite import run_part

    result = run_part("recipe", quick=True, device="cpu", compile_model=False)
    (table,) = result["tables"].values()
    assert set(table["parts"]) == {"adam_beta2"}
    for name, row in table["parts"].items():
        assert row["switched"]["n"] == table["default"]["n"] == 5 and row["outcome"] in ("win", "tie", "loss")
        assert {row["rank_default"], row["rank_switched"]} in ({1, 2}, {1.5}) and row["time_ratio"] > 0
        assert result["summary"][name]["tables"] == 1
    assert "adam_beta2" in "\n".join(lines(result))
