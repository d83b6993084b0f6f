"""Serving: the latency of the served prediction API (issue 22, "Measured") for the default MLP and gradient boosting
trained on the repeats part's table (numbers and a category). Each model is served by a real server
(`python -m workbench serve` on a free loopback port), called over one keep-alive connection as a client would:
1,000 one-row requests, each a different row (p50 and p99 in ms; target p50 <= 10 ms), then 10,000-row batches as
JSON records and as CSV (rows per second).
    python -m benchmarks.serving [--rows N]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGET_P50_MS = 10.0
MODELS = ("mlp", "gradient_boosting")


def measure(rows: int = 5_000, requests: int = 1_000, batch_rows: int = 10_000, batches: int = 3,
            models: tuple[str, ...] = MODELS) -> dict:
    from benchmarks.repeats import table
    from workbench import datasets, jobs
    from workbench.runconfig import RunConfig
    from workbench.store import RunStatus, Store

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as folder:
        env = dict(os.environ, WORKBENCH_HOME=str(Path(folder) / "home"))
        env.pop("WORKBENCH_DATABASE_URL", None)
        env.pop("WORKBENCH_API_TOKEN", None)
        previous = {name: os.environ.get(name) for name in ("WORKBENCH_HOME", "WORKBENCH_DATABASE_URL")}
        os.environ["WORKBENCH_HOME"] = env["WORKBENCH_HOME"]
        os.environ.pop("WORKBENCH_DATABASE_URL", None)
        try:
            store = Store.from_settings()
            data = table(rows)
            dataset_id = datasets.add_dataset(store, data, "serving.csv").dataset.id
            run_ids = {model: jobs.submit_run(store, RunConfig(dataset_id=dataset_id, target="label", model=model)).id
                       for model in models}
            jobs.run_worker(store, once=True)
            for model, run_id in run_ids.items():
                run = store.get_run(run_id, with_epochs=False)
                if run.status != RunStatus.SUCCEEDED:
                    raise RuntimeError(f"{model} did not train: {run.error}")
            store.close()
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        features = pd.read_csv(io.BytesIO(data)).drop(columns=["label"])
        one_row = [json.dumps({"records": [record]}).encode()
                   for record in json.loads(features.head(requests).to_json(orient="records"))]
        repeated = pd.concat([features] * (batch_rows // len(features) + 1), ignore_index=True).head(batch_rows)
        batch_json = json.dumps({"records": json.loads(repeated.to_json(orient="records"))}).encode()
        batch_csv = repeated.to_csv(index=False).encode()
        results = {name: _measure_model(env, run_id, one_row, batch_json, batch_csv, batch_rows, batches)
                   for name, run_id in run_ids.items()}
    return {"rows": rows, "requests": len(one_row), "batch_rows": batch_rows, "target_p50_ms": TARGET_P50_MS,
            "models": results, "load_avg_1m": round(os.getloadavg()[0], 2),
            "met": all(r["p50_ms"] <= TARGET_P50_MS for r in results.values())}


def _measure_model(env: dict, run_id: str, one_row: list[bytes], batch_json: bytes, batch_csv: bytes, rows: int,
                   batches: int) -> dict:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "workbench", "serve", run_id, "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        connection = _connect(port, server)
        for body in one_row[:20]:  # warm the connection and the server's first-call paths
            _post(connection, body, "application/json")
        latencies = []
        for body in one_row:
            started = time.perf_counter()
            _post(connection, body, "application/json")
            latencies.append(time.perf_counter() - started)
        json_s = min(_timed(connection, batch_json, "application/json") for _ in range(batches))
        csv_s = min(_timed(connection, batch_csv, "text/csv") for _ in range(batches))
        connection.close()
    finally:
        server.terminate()
        server.wait(30)
    ms = np.asarray(latencies) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "batch_json_rows_per_s": round(rows / json_s), "batch_csv_rows_per_s": round(rows / csv_s),
            "load_avg_1m": round(os.getloadavg()[0], 2)}  # latency is only comparable on a similarly busy machine


def _connect(port: int, server: subprocess.Popen, timeout_s: float = 180) -> http.client.HTTPConnection:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server stopped at start")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            connection.request("GET", "/health")
            connection.getresponse().read()
            return connection
        except OSError:
            connection.close()
            time.sleep(0.2)
    raise RuntimeError("the server did not answer")


def _post(connection: http.client.HTTPConnection, body: bytes, content_type: str) -> None:
    connection.request("POST", "/predict", body, {"Content-Type": content_type})
    answer = connection.getresponse()
    data = answer.read()
    if answer.status != 200:
        raise RuntimeError(f"/predict answered {answer.status}: {data[:200]!r}")


def _timed(connection: http.client.HTTPConnection, body: bytes, content_type: str) -> float:
    started = time.perf_counter()
    _post(connection, body, content_type)
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000)
    print(json.dumps(measure(parser.parse_args().rows), indent=2))
