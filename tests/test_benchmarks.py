"""The benchmark suite's --quick entry runs one cheap part end to end and writes the expected JSON (no timings)."""

from __future__ import annotations

import json

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

    from benchmarks.common import build_mlp, mlp_params
    from benchmarks.utilisation import step_flops
    from workbench.tasks import Objective
    from workbench.training import make_optimizer, train_step

    params = mlp_params(hidden_sizes=[16, 8], mixed_precision="off")
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
