"""Serve a trained run as an HTTP prediction API, and the served runs the Deploy page starts and stops.

`create_app` wraps one run's model, loaded once, in a FastAPI app: `POST /predict` (JSON records or a CSV body,
checked against the training schema exactly as Predict checks a file), `GET /schema`, `GET /health`, and the
OpenAPI docs at `/docs` (their scripts and styles served by the app itself, so the docs work offline). `serve` runs
it under uvicorn in the foreground (`python -m workbench serve`).
`start_served_run`, `stop_served_run` and `served_runs` manage such servers as background processes, each recorded
in `WORKBENCH_HOME/serving/<run id>.json` (a record whose process is gone means the run is not served).
"""

import contextlib
import fcntl
import hmac
import ipaddress
import json
import logging
import math
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from workbench.errors import UserError
from workbench.ingest import ingest_bytes
from workbench.predict import KIND_WORDS, Prediction, TrainedModel, load_model_for_run
from workbench.prepare import MISSING_CATEGORY
from workbench.tasks import Task

__all__ = ["TOKEN_VARIABLE", "ServedRun", "api_token", "check_bind", "create_app", "curl_example", "serve",
           "served_runs", "start_served_run", "stop_served_run"]

log = logging.getLogger("workbench.serving")

TOKEN_VARIABLE = "WORKBENCH_API_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
CSV_TYPES = ("text/csv", "application/csv", "text/plain")
START_TIMEOUT_S = 120.0  # a busy machine takes a while to import torch and scikit-learn
STOP_TIMEOUT_S = 10.0

OnBatch = Callable[..., None]  # on_batch(frame, prediction_table, source="api")


def api_token() -> str | None:
    """The bearer token every request but /health must carry (WORKBENCH_API_TOKEN); None when it is not set."""
    return os.environ.get(TOKEN_VARIABLE) or None


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is reachable from this machine only."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError(f"The host '{host}' is not an address this machine can listen on.") from exc
    return all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on an address other machines can reach unless requests need a token."""
    if not is_loopback(host) and not token:
        raise UserError(f"Serving on {host} lets other machines call the model: set {TOKEN_VARIABLE} to a secret "
                        f"first (every request must then send it), or serve on {DEFAULT_HOST}.")


# -- the API -----------------------------------------------------------------------------------------------------


def input_schema(model: TrainedModel) -> list[dict[str, Any]]:
    """Each input column with its kind and, for categories, the values seen in training."""
    features = model.preprocessor.features
    kinds = {name: kind for kind in KIND_WORDS for name in getattr(features, kind)}
    known = dict(zip(features.categorical, model.known_categories(), strict=True))
    columns = []
    for name in model.input_columns:
        column: dict[str, Any] = {"name": name, "kind": kinds[name], "expects": KIND_WORDS[kinds[name]]}
        if name in known:
            column["categories"] = sorted(known[name] - {MISSING_CATEGORY})
        columns.append(column)
    return columns


def request_frame(body: bytes, content_type: str) -> tuple[pd.DataFrame, Mapping[str, pd.Series] | None]:
    """The rows of a request: a CSV body read as uploads are read, or JSON `{"records": [...]}` or `[...]`, each
    record an object of column to value. Also the CSV cells the reader could not read (flagged as in Predict)."""
    if content_type in CSV_TYPES:
        ingested = ingest_bytes(body)
        return ingested.table, ingested.unread
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise UserError(f"The request body is not valid JSON{where}; send {{\"records\": [{{column: value, ...}}]}} "
                        "or a CSV file with Content-Type: text/csv.") from exc
    records = payload.get("records") if isinstance(payload, dict) else payload
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise UserError('Send the rows as {"records": [{column: value, ...}, ...]} or as a list of such objects.')
    if not records:
        raise UserError("The request has no rows to predict.")
    frame = pd.DataFrame(records)
    for name in frame.select_dtypes(include="object").columns:
        nested = frame[name].map(lambda value: isinstance(value, (list, dict)))
        if nested.any():
            row = int(np.flatnonzero(nested.to_numpy())[0]) + 1
            raise UserError(f"Column '{name}' holds a list or an object in record {row:,}; send a number, text, "
                            "true, false or null.")
    return frame, None


def prediction_answer(model: TrainedModel, prediction: Prediction) -> dict[str, Any]:
    """The JSON answer: per row the prediction, class probabilities and warnings; the notes on the whole request."""
    table = prediction.table
    answer: dict[str, Any] = {"rows": len(table)}
    if model.task == Task.REGRESSION:
        answer["predictions"] = [v if math.isfinite(v) else None for v in table["prediction"].astype(float).tolist()]
    else:
        answer["predictions"] = table["prediction"].tolist()
        answer["classes"] = list(model.classes)
        probabilities = table[[f"proba_{label}" for label in model.classes]].to_numpy(dtype="float64").tolist()
        answer["probabilities"] = [dict(zip(model.classes, row, strict=True)) for row in probabilities]
    answer["warnings"] = table["warnings"].tolist()
    answer["notes"] = prediction.notes
    return answer


def _notify(on_batch: OnBatch, frame: pd.DataFrame, table: pd.DataFrame) -> None:
    """A monitoring hook's failure is logged, never the request's."""
    try:
        on_batch(frame, table, source="api")
    except Exception:
        log.exception("on_batch failed; the prediction was answered")


def _warm_up(model: TrainedModel) -> None:
    """One prediction at start, so the first request does not pay for lazy imports and first-call set-up."""
    try:
        model.predict_rows(pd.DataFrame([dict.fromkeys(model.input_columns)]))
    except UserError:
        pass


def create_app(store, run_id: str, token: str | None, on_batch: OnBatch | None = None,
               max_request_bytes: int | None = None, on_stop: Callable[[], None] | None = None):
    """A FastAPI app serving run `run_id` (a finished run; refused in one sentence otherwise). With `token`, every
    endpoint but /health and the docs needs `Authorization: Bearer <token>`. Bodies over `max_request_bytes`
    (default: the upload limit, WORKBENCH_MAX_UPLOAD_MB) are refused with 413. `on_stop` runs when the server
    shuts down cleanly (uvicorn on SIGTERM or Ctrl+C, before it lets the signal end the process)."""
    import anyio
    from fastapi import BackgroundTasks, Depends, HTTPException, Request
    from fastapi.responses import JSONResponse, Response
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from fastapi_offline import FastAPIOffline

    from workbench.devices import limit_cpu_threads

    model = load_model_for_run(store, run_id)
    run = store.get_run(run_id, with_epochs=False)
    limit = max_request_bytes or store.settings.max_upload_bytes
    limit_cpu_threads()  # more threads than cores slows small models down
    _warm_up(model)
    schema = {"run_id": run.id, "model": run.model, "target": run.target, "task": model.task,
              "classes": model.classes, "columns": input_schema(model), "max_request_bytes": limit}
    one_at_a_time = anyio.CapacityLimiter(1)  # predictions share the CPU threads; /health answers meanwhile

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        if on_stop is not None:
            on_stop()

    app = FastAPIOffline(  # FastAPI whose docs load their scripts from the app itself, not from a CDN
        lifespan=lifespan,
        title=f"Workbench run {run.id}",
        description=f"{run.model} predicting `{run.target}` ({model.task}). POST rows to /predict as JSON records or "
                    "as a CSV file; GET /schema lists the columns it needs.")
    bearer = HTTPBearer(auto_error=False, description=f"The value of {TOKEN_VARIABLE} where the server runs.")

    def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), token.encode()):  # in constant time
            raise HTTPException(401, "Send the API token as 'Authorization: Bearer <token>'.",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        reference = secrets.token_hex(4)
        log.error("unexpected error %s", reference, exc_info=exc)
        return JSONResponse({"detail": f"The server failed on this request; report reference {reference} (the "
                                       "details are in its log)."}, status_code=500)

    @app.get("/health", summary="Whether the server is up, and the run it serves")
    def health() -> dict[str, Any]:
        return {"status": "ok", "run_id": run.id}

    @app.get("/schema", dependencies=[Depends(authorized)], summary="The input columns, their kinds and categories")
    def get_schema() -> dict[str, Any]:
        return schema

    @app.post("/predict", dependencies=[Depends(authorized)], summary="Predict rows",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"type": "object", "properties": {"records": {
                      "type": "array", "items": {"type": "object"}}}}},
                  "text/csv": {"schema": {"type": "string"}}}}})
    async def predict(request: Request, background: BackgroundTasks) -> Response:
        """Rows as JSON `{"records": [{column: value, ...}, ...]}` (or the list alone) or a CSV file (Content-Type:
        text/csv). Answers per row the prediction, class probabilities and warnings (what did not fit the training
        schema), and notes about the whole request. A missing column or unusable input is a 422 naming it."""
        body = await _read_body(request, limit)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()

        def work() -> tuple[pd.DataFrame, Prediction, bytes]:
            frame, unread = request_frame(body, content_type)
            prediction = model.predict_rows(frame, unread)
            return frame, prediction, json.dumps(prediction_answer(model, prediction), ensure_ascii=False).encode()

        try:
            frame, prediction, answer = await anyio.to_thread.run_sync(work, limiter=one_at_a_time)
        except UserError as exc:
            raise HTTPException(422, str(exc)) from exc
        if on_batch is not None:
            background.add_task(_notify, on_batch, frame, prediction.table)  # after the answer is sent
        return Response(answer, media_type="application/json")

    return app


async def _read_body(request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes (declared, or while streaming)."""
    from fastapi import HTTPException

    too_large = HTTPException(413, f"The request is larger than the limit of {limit:,} bytes; send fewer rows "
                                   "per request.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def serve(store, run_id: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          on_batch: OnBatch | None = None) -> None:
    """Serve run `run_id` on host:port until interrupted (`python -m workbench serve`)."""
    import uvicorn

    token = api_token()
    check_bind(host, token)
    if not 1 <= port <= 65535:
        raise UserError(f"The port must be between 1 and 65535, not {port}.")
    _check_port_free(host, port)
    recorder = None
    if on_batch is None:  # answered requests are prediction batches on the run's Monitor page, logged a second apart
        from workbench.monitoring import BatchRecorder

        on_batch = recorder = BatchRecorder(store, run_id)
    try:
        app = create_app(store, run_id, token, on_batch, on_stop=recorder.close if recorder else None)
        print(f"serving run {run_id} at {base_url(host, port)} (docs at /docs)"
              + ("; requests need the token" if token else "") + "; Ctrl+C stops", flush=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)  # a log line per request is slow
    finally:  # (on SIGTERM and Ctrl+C the app's shutdown has closed it already: uvicorn then re-raises the signal)
        if recorder is not None:
            recorder.close()  # the requests still waiting are logged


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else \
        f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closed port is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"Port {port} on {host} is already in use; pick another port.") from exc


def curl_example(url: str, record: Mapping[str, Any], token_required: bool) -> str:
    """A shell command that predicts one row, safe to paste whatever the column names hold."""
    body = json.dumps({"records": [{name: _json_value(value) for name, value in record.items()}]}, ensure_ascii=False)
    lines = [f"curl -X POST {shlex.quote(url.rstrip('/') + '/predict')}", "-H 'Content-Type: application/json'"]
    if token_required:
        lines.append(f'-H "Authorization: Bearer ${TOKEN_VARIABLE}"')
    lines.append(f"-d {shlex.quote(body)}")
    return " \\\n  ".join(lines)


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return _json_value(value.item())
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    return value if isinstance(value, (bool, int, float, str)) else str(value)


# -- served runs as managed processes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedRun:
    run_id: str
    host: str
    port: int
    pid: int
    started: str  # ISO time
    process_started: float  # the process's own start time: a reused pid is not our server

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)


def _serving_dir(store) -> Path:
    return store.settings.home / "serving"


def log_path(store, run_id: str) -> Path:
    return store.settings.home / f"serve-{run_id}.log"


def _alive(served: ServedRun) -> bool:
    try:
        process = psutil.Process(served.pid)
        return (abs(process.create_time() - served.process_started) < 1.0
                and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def served_runs(store) -> list[ServedRun]:
    """The runs served now by processes this workbench started, by port. A record whose process is gone (or is
    unreadable) counts as not served; it is only read here (reads never write), and replaced at the next start."""
    folder = _serving_dir(store)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            served = ServedRun(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(served):
            found.append(served)
    return sorted(found, key=lambda s: s.port)


def start_served_run(store, run_id: str, port: int, host: str = DEFAULT_HOST,
                     timeout_s: float = START_TIMEOUT_S) -> ServedRun:
    """Start serving a finished run in a background process that outlives the caller (as the worker does), and
    wait until it answers; logs go to WORKBENCH_HOME/serve-<run id>.log. Refused in one sentence when the run has
    not finished, is served already, or the port is taken."""
    load_model_for_run(store, run_id)  # refuses an unfinished run or a damaged model folder here, not in the log
    check_bind(host, api_token())
    folder = _serving_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".start.lock", "w") as lock:  # check-then-start is atomic across pages and tabs
        fcntl.flock(lock, fcntl.LOCK_EX)
        served = {s.run_id: s for s in served_runs(store)}
        if run_id in served:
            raise UserError(f"Run {run_id} is already served at {served[run_id].url}.")
        if any(s.port == port for s in served.values()):
            raise UserError(f"Port {port} already serves another run; pick another port.")
        _check_port_free(host, port)
        env = dict(os.environ, WORKBENCH_HOME=str(store.settings.home))
        with open(log_path(store, run_id), "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "workbench", "serve", run_id, "--host", host, "--port", str(port)],
                env=env, stdout=log_file, stderr=log_file, stdin=subprocess.DEVNULL,
                start_new_session=True)  # outlives the page that started it
        record = ServedRun(run_id, host, port, process.pid, datetime.now(UTC).isoformat(timespec="seconds"),
                           psutil.Process(process.pid).create_time())
        (folder / f"{run_id}.json").write_text(json.dumps(asdict(record)), encoding="utf-8")
    _wait_until_up(store, record, process, timeout_s)
    return record


def _wait_until_up(store, record: ServedRun, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            (_serving_dir(store) / f"{record.run_id}.json").unlink(missing_ok=True)
            raise UserError(_failure_sentence(store, record.run_id))
        try:
            with urllib.request.urlopen(f"{record.url}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    stop_served_run(store, record.run_id)
    raise UserError(f"The server for run {record.run_id} did not answer within {timeout_s:.0f} s; see "
                    f"{log_path(store, record.run_id)}.")


def _failure_sentence(store, run_id: str) -> str:
    """The CLI's own `error: ...` sentence from the log, or where to look."""
    try:
        lines = log_path(store, run_id).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else f"The server for run {run_id} stopped at start; see {log_path(store, run_id)}."


def stop_served_run(store, run_id: str) -> None:
    """Stop serving a run: end its process (and anything it started), then forget it."""
    served = next((s for s in served_runs(store) if s.run_id == run_id), None)
    if served is None:
        raise UserError(f"Run {run_id} is not being served.")
    try:
        process = psutil.Process(served.pid)
        os.killpg(served.pid, signal.SIGTERM)  # its own session: the group is the server's
        try:
            process.wait(STOP_TIMEOUT_S)
        except psutil.TimeoutExpired:
            os.killpg(served.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT_S)
    except (psutil.NoSuchProcess, ProcessLookupError):
        pass  # it ended on its own meanwhile
    (_serving_dir(store) / f"{run_id}.json").unlink(missing_ok=True)
