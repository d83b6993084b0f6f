"""The device and precision shown on the Home page say what training will really use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from workbench import devices
from workbench.models.registry import resolve_params


@pytest.mark.parametrize("native_bf16", [True, False])
def test_the_precision_sentence_matches_what_auto_mixed_precision_does_on_a_cpu(monkeypatch, native_bf16):
    monkeypatch.setattr(devices, "best_device", lambda: "cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native_bf16)
    autocast = devices.autocast_for(torch.device("cpu"), resolve_params("mlp", {}).mixed_precision)
    assert isinstance(autocast, torch.autocast) == native_bf16
    assert ("bf16 mixed precision" in devices.describe_precision()) == native_bf16
    assert devices.describe_device().startswith("CPU (")


@pytest.mark.parametrize("workers", [1, 2, 64])
def test_each_of_several_workers_trains_on_its_share_of_the_cores(workers):
    """Run in a fresh process: thread pools are process-wide."""
    code = f"""
import json, os, torch
from threadpoolctl import threadpool_info
from workbench.devices import share_cores
cores = len(os.sched_getaffinity(0))
before = torch.get_num_threads()
threads = share_cores({workers})
print(json.dumps({{"cores": cores, "before": before, "threads": threads, "torch": torch.get_num_threads(),
                  "pools": [p["num_threads"] for p in threadpool_info()]}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    share = max(1, seen["cores"] // workers)
    assert seen["threads"] == share
    if workers == 1:  # one worker keeps what it had
        assert seen["torch"] == seen["before"]
    else:
        assert seen["torch"] == min(share, 8) and all(n <= share for n in seen["pools"])


@pytest.mark.parametrize(("rows", "limited"), [(600, True), (19_999, True), (20_000, False)])
def test_scikit_learn_fits_on_small_tables_use_one_thread(rows, limited):
    from threadpoolctl import threadpool_info

    before = [p["num_threads"] for p in threadpool_info()]
    with devices.classical_threads(rows):
        inside = [p["num_threads"] for p in threadpool_info()]
    assert inside and inside == ([1] * len(before) if limited else before)
    assert [p["num_threads"] for p in threadpool_info()] == before  # restored afterwards
