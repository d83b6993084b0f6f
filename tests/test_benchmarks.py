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
