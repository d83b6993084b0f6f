"""A run that cannot fit in memory is refused before it starts, in one sentence; the estimate is close to what
training really takes; ordinary runs are never refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from tests.conftest import with_checkout_on_path
from workbench import jobs, memory
from workbench.errors import UserError
from workbench.models.registry import get_model
from workbench.runconfig import RunConfig
from workbench.runner import execute, validate_config
from workbench.samples import SAMPLES, load_sample

ROOT = Path(__file__).resolve().parents[1]
GB = 2**30


def wide_table(columns: int, rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"f{i}" for i in range(columns)])
    frame["label"] = np.where(frame["f0"] > 0, "yes", "no")
    return frame


def with_free_memory(monkeypatch, n_bytes: int) -> None:
    """This machine as one with `n_bytes` of memory available (psutil is what the estimate asks)."""
    real = psutil.virtual_memory()
    monkeypatch.setattr(psutil, "virtual_memory", lambda: real._replace(available=n_bytes))
    monkeypatch.setattr(memory, "CGROUP", Path("/nonexistent"))


def test_a_default_transformer_on_2001_columns_is_refused_before_it_is_queued(store):
    """Protection: runner.validate_config estimates the run's peak memory and refuses it, so submit_run queues
    nothing (the probe's run was killed by the kernel at 21.8 GB and left 'interrupted')."""
    from workbench import datasets

    table = wide_table(2001)
    validate_config(RunConfig("d", "label", "transformer"), wide_table(5))  # what any first check loads, once
    started = time.perf_counter()
    with pytest.raises(UserError) as refused:
        validate_config(RunConfig("d", "label", "transformer"), table)
    seconds = time.perf_counter() - started
    message = str(refused.value)
    assert message.startswith("This run would need about ") and " GB of memory but " in message, message
    assert "attention between 2,001 feature tokens" in message and "exclude some columns" in message
    assert "\n" not in message and seconds < 1.0, seconds
    print(f"\nrefused in {seconds * 1000:.0f} ms: {message}")

    dataset_id = datasets.add_dataset(store, table.to_csv(index=False).encode(), "wide.csv").dataset.id
    with pytest.raises(UserError, match="would need about"):
        jobs.submit_run(store, RunConfig(dataset_id, "label", "transformer"))
    assert store.list_runs() == []


def test_the_prepared_shapes_are_checked_again_before_training(tmp_path, monkeypatch):
    """Protection: runner.execute checks again with the shapes the preparation made. Here each text column holds
    dates, which the table's estimate counts as one category token each and the preparation turns into four date
    parts: four times the tokens, sixteen times the attention. (Small enough to train if the check is removed.)"""
    rng = np.random.default_rng(0)
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, size=(80, 50)).ravel(), unit="D")
    table = pd.DataFrame(np.asarray(days.strftime("%Y-%m-%d")).reshape(80, 50), columns=[f"d{i}" for i in range(50)])
    table["label"] = rng.choice(["yes", "no"], size=80)
    config = RunConfig("d", "label", "transformer", params={"batch_size": 16, "epochs": 1})
    with_free_memory(monkeypatch, 200 * 2**20)
    validate_config(config, table)  # 50 tokens: about 20 MB
    with pytest.raises(UserError, match=r"would need about \d+ MB of memory but 200 MB is free, most of it for "
                                        r"attention between 200 feature tokens"):
        execute(config, table, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_the_default_mlp_on_the_bundled_samples_is_never_refused(sample, monkeypatch, tmp_path):
    """Even on a machine with 1 GB free, the default MLP on every bundled sample fits, by a wide margin."""
    table = load_sample(sample)
    config = RunConfig("d", SAMPLES[sample].target, "mlp")
    resolved = validate_config(config, table)
    spec = get_model("mlp")
    estimate = memory.estimate(spec, resolved.hyperparameters, memory.table_shapes(table, config, spec, resolved.task))
    assert estimate.total < 100 * 2**20, estimate
    with_free_memory(monkeypatch, GB)
    validate_config(config, table)
    if sample == "wine":  # and through a whole run, checked again with the prepared shapes
        assert execute(RunConfig("d", "cultivar", "mlp", params={"epochs": 1}), table, tmp_path / "r").status == \
            "succeeded"


MEASURE = """
import json, sys, tempfile
from pathlib import Path
import numpy as np, pandas as pd
from benchmarks.common import peak_rss_mb, rss_mb
from tests.test_memory import wide_table
from workbench import memory
from workbench.models.registry import get_model
from workbench.runconfig import RunConfig
from workbench.runner import execute, validate_config

model, rows, columns, params = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
config = RunConfig("d", "label", model, params={"epochs": 1, **params})
with tempfile.TemporaryDirectory() as tmp:
    execute(RunConfig("d", "label", model, params={**config.params, "batch_size": 8}), wide_table(columns, 60, 1),
            Path(tmp) / "warm-up")  # libraries, thread pools and allocator arenas, whatever the size
    table = wide_table(columns, rows)
    resolved = validate_config(config, table)
    spec = get_model(model)
    estimate = memory.estimate(spec, resolved.hyperparameters, memory.table_shapes(table, config, spec, resolved.task))
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
    before = rss_mb()
    assert execute(config, table, Path(tmp) / "run").status == "succeeded"
print(json.dumps({"measured_mb": peak_rss_mb() - before, "estimated_mb": estimate.total / 2**20}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak memory through Linux's /proc")
def test_the_estimate_is_within_a_factor_of_two_of_the_measured_peak():
    """Each run in its own process: the growth of its peak resident memory over a whole run (preparation, training,
    evaluation, saving) against the estimate made before it."""
    # float32: the estimate counts activations as float32, and bf16 autocast halves most of an MLP's.
    runs = [("mlp", 6000, 40, {"hidden_sizes": "1024,1024,1024", "batch_size": 1024, "mixed_precision": "off"}),
            ("transformer", 800, 60, {"batch_size": 256}),
            ("cnn", 3000, 100, {"batch_size": 512, "channels": 128})]

    def measure(run) -> dict:
        model, rows, columns, params = run
        done = subprocess.run([sys.executable, "-c", MEASURE, model, str(rows), str(columns), json.dumps(params)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env=with_checkout_on_path())
        assert done.returncode == 0, done.stderr[-2000:]
        return {"model": model, **json.loads(done.stdout.strip().splitlines()[-1])}

    with ThreadPoolExecutor(len(runs)) as pool:
        figures = list(pool.map(measure, runs))
    print("\n" + "\n".join(f"{f['model']}: measured {f['measured_mb']:.0f} MB, estimated {f['estimated_mb']:.0f} MB"
                           for f in figures))
    for f in figures:
        assert 0.5 <= f["estimated_mb"] / f["measured_mb"] <= 2.0, f
