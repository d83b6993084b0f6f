"""The Deploy page: the best run preselected, a served run started and stopped from the page (a real server
process), found again after a reload, and a curl example built from the real schema and typical values."""

from __future__ import annotations

import http.client
import json
import subprocess

import pytest

from tests.test_pages import _no_background_worker, customers, page, texts, train  # noqa: F401
from tests.test_serving import free_port
from workbench import datasets, serving
from workbench.errors import UserError


@pytest.fixture
def customers_id(store) -> str:
    return datasets.add_dataset(store, customers(n=150).to_csv(index=False).encode(), "customers.csv").dataset.id


def health(url: str) -> dict:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/health")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def test_start_and_stop_a_served_run_from_the_page(store, customers_id, monkeypatch):
    monkeypatch.delenv(serving.TOKEN_VARIABLE, raising=False)
    good = train(store, customers_id, C=1.0)
    train(store, customers_id, C=1e-6)  # newest, and weaker
    at = page("deploy").run()
    assert not at.exception
    picker = next(s for s in at.selectbox if s.label == "Run to serve")
    assert picker.value == good and picker.format_func(good).endswith(" · best")
    port = free_port()
    at.number_input[0].set_value(port).run()
    curl = at.code[0].value
    assert f"http://127.0.0.1:{port}/predict" in curl and "Authorization" not in curl
    assert {"x1", "x2", "colour", "flag"} == set(json.loads(curl.split("-d '")[1].rstrip("'"))["records"][0])
    assert "No token is needed" in texts(at.caption)
    next(b for b in at.button if b.label == "Start serving").click().run()
    try:
        assert not at.exception and not at.error
        (served,) = serving.served_runs(store)
        assert served.run_id == good and served.port == port
        assert health(served.url) == {"status": "ok", "run_id": good}
        assert "This run is being served" in texts(at.success)
        assert at.code[0].value == served.url
        with pytest.raises(UserError, match="already served at http://127.0.0.1"):
            serving.start_served_run(store, good, free_port())
        # The curl example on the page predicts the row, as a user pasting it into a shell would.
        done = subprocess.run(["bash", "-c", at.code[1].value], capture_output=True, text=True, timeout=60)
        assert json.loads(done.stdout)["rows"] == 1, done.stderr
        # After a reload (a fresh session) the page still knows what is served.
        again = page("deploy").run()
        assert not again.exception
        assert next(s for s in again.selectbox if s.label == "Run to serve").value == good
        assert any(f"Run {good}" in t.value and served.url in t.value for t in again.text)
        next(b for b in again.button if b.label == "Stop").click().run()
        assert not again.exception
    finally:
        for leftover in serving.served_runs(store):
            serving.stop_served_run(store, leftover.run_id)
    assert serving.served_runs(store) == []
    with pytest.raises(OSError):
        health(served.url)
    assert (store.settings.home / f"serve-{good}.log").is_file()
    with pytest.raises(UserError, match="not being served"):
        serving.stop_served_run(store, good)
    assert not any(b.label == "Stop" for b in again.button)
    assert any(b.label == "Start serving" for b in again.button)


def test_a_token_in_the_environment_shows_in_the_example(store, customers_id, monkeypatch):
    monkeypatch.setenv(serving.TOKEN_VARIABLE, "a-secret-token-value")
    train(store, customers_id)
    at = page("deploy").run()
    assert not at.exception
    assert 'Authorization: Bearer $WORKBENCH_API_TOKEN' in at.code[0].value
    assert "a-secret-token-value" not in at.code[0].value + texts(at.caption)
    assert "Requests need the API token" in texts(at.caption)


def test_a_port_in_use_is_one_sentence(store, customers_id, monkeypatch):
    import socket

    monkeypatch.delenv(serving.TOKEN_VARIABLE, raising=False)
    train(store, customers_id)
    at = page("deploy").run()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        at.number_input[0].set_value(taken.getsockname()[1]).run()
        next(b for b in at.button if b.label == "Start serving").click().run()
    assert not at.exception
    assert "already in use; pick another port" in texts(at.error)
    assert serving.served_runs(store) == []
