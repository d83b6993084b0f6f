"""Ingest + profile a generated 1,000,000 x 20 CSV (mixed numeric and categorical, some missing).

Run in a fresh process so the peak RSS is that of ingestion alone:
    python -m benchmarks.ingest_scale [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT


def make_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    columns = {}
    for i in range(12):
        values = rng.normal(size=rows).round(4)
        values[rng.random(rows) < 0.02] = np.nan
        columns[f"num_{i}"] = values
    for i in range(4):
        columns[f"int_{i}"] = rng.integers(0, 1000, rows)
    for i in range(3):
        cats = np.array([f"cat_{k}" for k in range(5 + 10 * i)])
        values = cats[rng.integers(0, len(cats), rows)].astype(object)
        values[rng.random(rows) < 0.01] = None
        columns[f"cat_{i}"] = values
    columns["label"] = np.where(rng.random(rows) < 0.3, "yes", "no")
    pd.DataFrame(columns).to_csv(path, index=False)


def measure(rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "big.csv"
        make_csv(csv_path, rows)
        env = dict(os.environ, WORKBENCH_HOME=str(Path(tmp) / "home"),
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        code = (
            "import json, time; from benchmarks.common import peak_rss_mb; from workbench.store import Store;"
            "from workbench import datasets;"
            f"t=time.perf_counter(); d=datasets.add_path(Store.from_settings(), {str(csv_path)!r}).dataset;"
            "s=time.perf_counter()-t; r=peak_rss_mb();"
            "print(json.dumps({'rows': d.n_rows, 'columns': d.n_columns, 'seconds': round(s, 2), 'peak_rss_mb': round(r)}))"
        )
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["csv_mb"] = round(csv_path.stat().st_size / 1024 / 1024, 1)
        return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    print(json.dumps(measure(parser.parse_args().rows), indent=2))


if __name__ == "__main__":
    main()
