"""The served prediction API (issue 22 item 1): a real uvicorn server started by `python -m workbench serve`
answers health, schema and predictions, refuses what it must (missing columns 422, no token 401, oversize 413,
a reachable address without a token); the API predicts exactly what Predict predicts, messy rows included; the
managed server processes of the Deploy page start, are found again and stop."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import event, given
from hypothesis import strategies as st

from tests.conftest import make_classification_frame
from workbench import datasets, jobs, serving
from workbench.cli import main as cli_main
from workbench.errors import UserError
from workbench.predict import load_model_for_run
from workbench.runconfig import RunConfig
from workbench.store import RunStatus, Store

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-3nq8-Zz"
PRICE = "prix € (ttc)"  # a unicode column name
COLOURS = ["red", "green", "blue", "rouge-é"]


def training_frame(n: int = 200) -> pd.DataFrame:
    frame = make_classification_frame(n=n)
    frame[PRICE] = np.round(np.random.default_rng(1).uniform(1, 100, n), 2)
    frame["colour"] = np.random.default_rng(2).choice(COLOURS, n)
    frame["signup"] = pd.date_range("2023-01-01", periods=n, freq="D")
    frame.loc[::7, "x2"] = np.nan
    return frame


@pytest.fixture(scope="module")
def served_home(tmp_path_factory):
    """A workbench home with one dataset and a finished and a queued run; settings read from it."""
    home = tmp_path_factory.mktemp("serve") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORKBENCH_HOME", str(home))
        patch.delenv("WORKBENCH_DATABASE_URL", raising=False)
        patch.delenv(serving.TOKEN_VARIABLE, raising=False)
        store = Store.from_settings()
        dataset = datasets.add_dataset(store, training_frame().to_csv(index=False).encode(), "shop.csv").dataset
        run = jobs.submit_run(store, RunConfig(dataset_id=dataset.id, target="label", model="logistic_regression"))
        jobs.run_worker(store, once=True)
        assert store.get_run(run.id).status == RunStatus.SUCCEEDED
        queued = jobs.submit_run(store, RunConfig(dataset_id=dataset.id, target="label", model="mlp"))
        yield {"home": home, "store": store, "run_id": run.id, "queued_id": queued.id}
        store.close()


@pytest.fixture
def store(served_home, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(served_home["home"]))
    monkeypatch.delenv("WORKBENCH_DATABASE_URL", raising=False)
    monkeypatch.delenv(serving.TOKEN_VARIABLE, raising=False)
    return served_home["store"]


@pytest.fixture
def run_id(served_home) -> str:
    return served_home["run_id"]


@pytest.fixture(scope="module")
def model(served_home):
    return load_model_for_run(served_home["store"], served_home["run_id"])


@pytest.fixture(scope="module")
def batches():
    return []


@pytest.fixture(scope="module")
def client(served_home, batches):
    """The app with a token and a monitoring hook that records what it is given."""
    app = serving.create_app(served_home["store"], served_home["run_id"], TOKEN,
                             on_batch=lambda frame, table, source: batches.append((frame, table, source)),
                             max_request_bytes=50_000)
    with TestClient(app) as test_client:
        yield test_client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def new_rows(n: int = 5) -> pd.DataFrame:
    return training_frame(n + 50).drop(columns=["label"]).tail(n).reset_index(drop=True)


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a real server ------------------------------------------------------------------------------------------------


def start_server(served_home, **env_vars) -> tuple[subprocess.Popen, int]:
    """`python -m workbench serve` of the finished run on a free loopback port, once it answers /health."""
    port = free_port()
    env = dict(os.environ, WORKBENCH_HOME=str(served_home["home"]), **env_vars)
    env.pop("WORKBENCH_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "workbench", "serve", served_home["run_id"], "--port",
                                str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read().decode()
        try:
            if request(port, "GET", "/health")[0] == 200:
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not answer within 120 s")


@pytest.fixture(scope="module")
def server(served_home):
    """A real server with a token and a 1 MB request limit."""
    process, port = start_server(served_home, WORKBENCH_MAX_UPLOAD_MB="1", **{serving.TOKEN_VARIABLE: TOKEN})
    try:
        yield port
    finally:
        process.terminate()
        process.wait(30)


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body, headers or {})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        connection.close()


def test_a_real_server_answers_health_schema_and_predictions(server, model, run_id):
    assert request(server, "GET", "/health") == (200, {"status": "ok", "run_id": run_id})
    status, schema = request(server, "GET", "/schema", headers=AUTH)
    assert status == 200
    assert [c["name"] for c in schema["columns"]] == model.input_columns
    rows = new_rows(3)
    expected = model.predict_rows(rows)
    status, answer = request(server, "POST", "/predict", json.dumps({"records": records(rows)}).encode(),
                             {**AUTH, "Content-Type": "application/json"})
    assert status == 200, answer
    assert answer["predictions"] == expected.table["prediction"].tolist()
    np.testing.assert_allclose([p["yes"] for p in answer["probabilities"]], expected.table["proba_yes"], rtol=1e-6)
    status, from_csv = request(server, "POST", "/predict", rows.to_csv(index=False).encode(),
                               {**AUTH, "Content-Type": "text/csv; charset=utf-8"})
    assert status == 200 and from_csv["predictions"] == answer["predictions"]


def logged_api_rows(store, run_id: str, before: set[str]) -> int:
    batches = [b for b in store.list_prediction_batches(run_id, with_summary=False) if b.id not in before]
    assert {b.source for b in batches} <= {"api"}
    return sum(b.n_rows for b in batches)


def test_a_real_servers_answered_requests_are_logged_for_monitoring(server, served_home):
    """`serve` logs answered requests as prediction batches (source api), gathered for up to a second."""
    store, run_id = served_home["store"], served_home["run_id"]
    before = {b.id for b in store.list_prediction_batches(run_id, with_summary=False)}
    rows = new_rows(4)
    status, _ = request(server, "POST", "/predict", json.dumps({"records": records(rows)}).encode(),
                        {**AUTH, "Content-Type": "application/json"})
    assert status == 200
    deadline = time.monotonic() + 30  # logged by the recorder's thread, after the answer
    while logged_api_rows(store, run_id, before) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logged_api_rows(store, run_id, before) >= 4  # (with what an earlier test's requests left waiting)


def test_a_cleanly_stopped_server_logs_the_requests_still_waiting(served_home):
    """SIGTERM (how the Deploy page stops a server) right after a request: its batch is in the store."""
    store, run_id = served_home["store"], served_home["run_id"]
    process, port = start_server(served_home, **{serving.TOKEN_VARIABLE: ""})
    try:
        before = {b.id for b in store.list_prediction_batches(run_id, with_summary=False)}
        for n in (3, 2):
            status, _ = request(port, "POST", "/predict", json.dumps(records(new_rows(n))).encode(),
                                {"Content-Type": "application/json"})
            assert status == 200
        assert logged_api_rows(store, run_id, before) == 0  # still waiting for the second to pass
    finally:
        process.terminate()
        process.wait(30)
    assert logged_api_rows(store, run_id, before) == 5


def test_a_real_server_refuses_a_missing_column_no_token_and_an_oversize_body(server):
    body = json.dumps({"records": records(new_rows(2).drop(columns=[PRICE]))}).encode()
    status, answer = request(server, "POST", "/predict", body, {**AUTH, "Content-Type": "application/json"})
    assert status == 422 and f"'{PRICE}'" in answer["detail"]
    assert request(server, "POST", "/predict", body, {"Content-Type": "application/json"})[0] == 401
    assert request(server, "GET", "/schema")[0] == 401
    assert request(server, "GET", "/schema", headers={"Authorization": f"Bearer {TOKEN}x"})[0] == 401
    big = json.dumps({"records": records(new_rows(1)) * 8_000}).encode()
    assert len(big) > 1024 * 1024
    status, answer = request(server, "POST", "/predict", big, {**AUTH, "Content-Type": "application/json"})
    assert status == 413 and "limit" in answer["detail"]


# -- the app, through TestClient --------------------------------------------------------------------------------


def test_json_records_a_plain_list_and_csv_predict_as_predict_does(client, model):
    rows = new_rows(6)
    rows.loc[1, "colour"] = "violet"  # never seen in training
    rows.loc[2, "x1"] = None
    rows = rows.astype({"x1": object})
    rows.loc[3, "x1"] = "about 3"  # not a number
    expected = model.predict_rows(pd.DataFrame(records(rows)))
    for body in ({"records": records(rows)}, records(rows)):
        answer = client.post("/predict", json=body, headers=AUTH).json()
        assert answer["rows"] == 6
        assert answer["predictions"] == expected.table["prediction"].tolist()
        assert answer["warnings"] == expected.table["warnings"].tolist()
        assert answer["notes"] == expected.notes
        assert "'colour': 'violet' was never seen in training" in answer["warnings"][1]
        assert "'x1': 'about 3' is not a number" in answer["warnings"][3]
        assert answer["classes"] == ["no", "yes"]
        assert all(abs(sum(p.values()) - 1) < 1e-6 for p in answer["probabilities"])
    csv = rows.to_csv(index=False).encode()
    from_csv = client.post("/predict", content=csv, headers={**AUTH, "Content-Type": "text/csv"}).json()
    assert from_csv["predictions"] == model.predict_csv(csv).table["prediction"].tolist()


def test_the_schema_lists_columns_kinds_and_categories(client, model):
    schema = client.get("/schema", headers=AUTH).json()
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    assert kinds == {"x1": "numeric", "x2": "numeric", PRICE: "numeric", "flag": "boolean", "colour": "categorical",
                     "signup": "datetime"}
    colour = next(c for c in schema["columns"] if c["name"] == "colour")
    assert colour["categories"] == sorted(COLOURS)
    assert schema["task"] == "binary" and schema["classes"] == ["no", "yes"] and schema["target"] == "label"


@pytest.mark.parametrize(("body", "content_type", "words"), [
    (b'{"records": [{"x1": 1', "application/json", "not valid JSON (line 1"),
    (b'{"rows": []}', "application/json", '{"records": ['),
    (b'[1, 2]', "application/json", '{"records": ['),
    (b'{"records": []}', "application/json", "no rows"),
    (b'[{"x1": [1, 2], "x2": 1}]', "application/json", "Column 'x1' holds a list or an object in record 1"),
    (b"", "text/csv", "empty"),
    (b"\x00\x01binary", "text/csv", "binary"),
])
def test_unusable_input_is_one_sentence_422(client, body, content_type, words):
    answer = client.post("/predict", content=body, headers={**AUTH, "Content-Type": content_type})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and words in detail and "Traceback" not in detail


def test_a_missing_column_is_named(client):
    rows = records(new_rows(2).drop(columns=["colour", PRICE]))
    answer = client.post("/predict", json={"records": rows}, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["detail"].count("'colour'") == 1 and f"'{PRICE}'" in answer.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN[:-1]}"}])
def test_without_the_token_only_health_and_docs_answer(client, headers):
    assert client.get("/schema", headers=headers).status_code == 401
    answer = client.post("/predict", json={"records": records(new_rows(1))}, headers=headers)
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert client.get("/health", headers=headers).status_code == 200
    assert client.get("/docs", headers=headers).status_code == 200
    assert client.get("/openapi.json", headers=headers).status_code == 200


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_their_scripts_and_styles_from_the_app_itself(client, page):
    """Offline, a CDN is out of reach: every script and stylesheet the docs page names is served by the app."""
    html = client.get(page).text
    assets = re.findall(r'<script[^>]*src="([^"]+)"', html) + re.findall(r'<link[^>]*href="([^"]+)"', html)
    assert any(url.endswith(".js") for url in assets)
    for url in assets:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        answer = client.get(url)
        assert answer.status_code == 200 and len(answer.content) > 1_000, url
    assert "/openapi.json" in html


def test_without_a_token_set_every_endpoint_is_open(store, run_id):
    with TestClient(serving.create_app(store, run_id, None)) as open_client:
        assert open_client.get("/schema").status_code == 200
        assert open_client.post("/predict", json=records(new_rows(1))).status_code == 200


def test_an_oversize_body_is_413_declared_or_streamed(client):
    big = json.dumps(records(new_rows(1)) * 400).encode()
    assert len(big) > 50_000
    assert client.post("/predict", content=big, headers={**AUTH, "Content-Type": "application/json"}
                       ).status_code == 413

    def chunks():  # no Content-Length: the limit holds while the body streams in
        for start in range(0, len(big), 4096):
            yield big[start:start + 4096]

    answer = client.post("/predict", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 413 and "50,000 bytes" in answer.json()["detail"]


def test_each_prediction_reaches_the_monitoring_hook_and_its_failure_does_not_fail_the_request(
        store, run_id, client, batches, caplog):
    batches.clear()
    rows = records(new_rows(4))
    client.post("/predict", json=rows, headers=AUTH)
    ((frame, table, source),) = batches
    assert source == "api" and len(frame) == 4 and list(table.columns[-4:]) == ["prediction", "proba_no",
                                                                               "proba_yes", "warnings"]
    assert client.post("/predict", json=[{"x1": 1}], headers=AUTH).status_code == 422  # the hook sees nothing
    assert len(batches) == 1

    def broken(frame, table, source):
        raise RuntimeError("the monitoring store is down")

    with TestClient(serving.create_app(store, run_id, None, on_batch=broken)) as failing:
        answer = failing.post("/predict", json=rows)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 4
    assert "on_batch failed" in caplog.text and "the monitoring store is down" in caplog.text


# Mostly values of the column's kind, sometimes not: a word in a number column, an impossible date, an unseen or
# unicode category, a missing value, a stray extra column.
NUMBER = st.one_of(st.floats(-1e6, 1e6), st.integers(-10**6, 10**6), st.none(),
                   st.sampled_from(["", "1e400", "NaN", "abc", "3,5", "2023-01-01"]))
CATEGORY = st.one_of(st.sampled_from(COLOURS), st.none(), st.text(max_size=6))
FLAG = st.one_of(st.booleans(), st.none(), st.sampled_from(["TRUE", "no", 1, 0, "maybe"]))
DATE = st.one_of(st.sampled_from(["2023-02-01", "2024-12-31T10:00:00", "31/12/2023"]), st.none(),
                 st.sampled_from(["2023-02-30", "not a date", 17]))
RECORD = st.fixed_dictionaries({"x1": NUMBER, "x2": NUMBER, PRICE: NUMBER, "flag": FLAG, "colour": CATEGORY,
                                "signup": DATE}, optional={"extra ⚠": st.text(max_size=4)})


@given(st.lists(RECORD, min_size=1, max_size=6))
def test_messy_records_get_the_same_answer_as_predict_or_the_same_sentence(client, model, rows):
    answer = client.post("/predict", json={"records": rows}, headers=AUTH)
    event(f"status {answer.status_code}")
    try:
        expected = model.predict_rows(pd.DataFrame(rows))
    except UserError as exc:
        assert answer.status_code == 422 and answer.json()["detail"] == str(exc)
        return
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["predictions"] == expected.table["prediction"].tolist()
    assert got["warnings"] == expected.table["warnings"].tolist() and got["notes"] == expected.notes


# -- refusing to serve --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "8.8.8.8"])
def test_a_reachable_address_needs_a_token(host):
    with pytest.raises(UserError, match="WORKBENCH_API_TOKEN"):
        serving.check_bind(host, None)
    serving.check_bind(host, TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_addresses_need_no_token(host):
    serving.check_bind(host, None)


def test_the_cli_refuses_a_reachable_address_an_unfinished_run_and_a_taken_port(store, run_id, served_home, capsys):
    assert cli_main(["serve", run_id, "--host", "0.0.0.0"]) == 2
    assert capsys.readouterr().err.startswith("error: Serving on 0.0.0.0 lets other machines call the model")
    assert cli_main(["serve", served_home["queued_id"], "--port", str(free_port())]) == 2
    assert "has not finished successfully (queued)" in capsys.readouterr().err
    assert cli_main(["serve", run_id, "--host", "no-such-host.invalid"]) == 2
    assert "is not an address" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert cli_main(["serve", run_id, "--port", str(taken.getsockname()[1])]) == 2
    assert "already in use" in capsys.readouterr().err


# -- managed server processes (the Deploy page) --------------------------------------------------------------------


def test_a_record_whose_process_is_gone_means_not_served(store, run_id, served_home):
    folder = served_home["home"] / "serving"
    folder.mkdir(exist_ok=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / f"{run_id}.json").write_text(json.dumps({"run_id": run_id, "host": "127.0.0.1", "port": 1, "pid": dead.pid,
                                                       "started": "2026-01-01T00:00:00+00:00",
                                                       "process_started": 0.0}))
    (folder / "garbage.json").write_text("{not json")
    # A live process that is not ours (its start time differs) is not our server either.
    (folder / "other.json").write_text(json.dumps({"run_id": "other", "host": "127.0.0.1", "port": 2,
                                                   "pid": os.getpid(), "started": "2026-01-01T00:00:00+00:00",
                                                   "process_started": 1.0}))
    assert serving.served_runs(store) == []
    with pytest.raises(UserError, match="not being served"):
        serving.stop_served_run(store, run_id)
    for path in folder.glob("*.json"):
        path.unlink()


def test_starting_refuses_an_unfinished_run_and_a_taken_port(store, run_id, served_home):
    with pytest.raises(UserError, match="has not finished successfully"):
        serving.start_served_run(store, served_home["queued_id"], free_port())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UserError, match="already in use"):
            serving.start_served_run(store, run_id, taken.getsockname()[1])
    assert serving.served_runs(store) == []


def test_the_curl_example_quotes_hostile_names_for_the_shell():
    record = {"it's $(touch /tmp/pwned-by-serve)": "`id`", "x": np.float64(1.5), "when": pd.Timestamp("2024-01-02"),
              "gone": float("nan"), "n": np.int64(3), "région": "Île-de-France"}
    command = serving.curl_example("http://127.0.0.1:8000", record, token_required=True)
    assert 'Authorization: Bearer $WORKBENCH_API_TOKEN' in command
    done = subprocess.run(["bash", "-c", command.replace("curl ", "printf '%s\\n' ", 1)], capture_output=True,
                          text=True)
    body = json.loads(done.stdout.splitlines()[-1])
    assert body == {"records": [{"it's $(touch /tmp/pwned-by-serve)": "`id`", "x": 1.5, "when": "2024-01-02T00:00:00",
                                 "gone": None, "n": 3, "région": "Île-de-France"}]}
    assert not Path("/tmp/pwned-by-serve").exists()
    assert '"région": "Île-de-France"' in command  # readable as the user wrote it, not \u escapes
