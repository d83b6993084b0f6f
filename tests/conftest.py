"""Shared fixtures: seeds, tiny synthetic data, a workbench home with a real SQLite store on tmp_path, and
(for the store and jobs tests) the same tests on a real PostgreSQL server started for the session."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

BACKENDS = ("sqlite", "postgresql")
ROOT = Path(__file__).resolve().parents[1]


def with_checkout_on_path() -> dict:
    """The environment with this checkout first on PYTHONPATH (for a subprocess that imports `workbench`); the path
    already set is kept (on a machine whose packages come through it)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh WORKBENCH_HOME for this test; every engine call reads settings from it."""
    path = tmp_path / "wb-home"
    monkeypatch.setenv("WORKBENCH_HOME", str(path))
    monkeypatch.delenv("WORKBENCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("WORKBENCH_WORKERS", "1")  # the default follows the machine's cores; tests ask for more
    return path


@pytest.fixture
def store(home):
    from workbench.store import Store

    s = Store.from_settings()
    yield s
    s.close()


# -- databases: `pytestmark = pytest.mark.usefixtures("database")` runs a module's tests on both backends ------


def pytest_configure(config):
    config.addinivalue_line("markers", "backend(name): run only with this `database` backend (sqlite, postgresql)")


def pytest_collection_modifyitems(config, items):
    """A test marked backend("sqlite") keeps only its sqlite variant (deselected, not skipped)."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("backend")
        param = getattr(item, "callspec", None) and item.callspec.params.get("database")
        (dropped if marker and param and param != marker.args[0] else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@dataclass
class PostgresServer:
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(sql)


def _postgres_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on a free loopback port and a temporary data directory, for the session."""
    bindir = _postgres_bindir()
    if bindir is None:
        reason = "no PostgreSQL binaries (initdb) on this machine; `.ci/run` installs Debian's postgresql package"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    # initdb refuses to run as root: then the server runs as the `postgres` user, who must own its folder.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off")
    try:
        for command in ([bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                        [bindir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-t", "60", "-o", options,
                         "start"]):
            done = subprocess.run([*as_user, *map(str, command)], capture_output=True, text=True)
            if done.returncode != 0:
                log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
                pytest.fail(f"{command[0].name} failed: {done.stderr}{done.stdout}{log}", pytrace=False)
        yield PostgresServer(port)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def database(request, home, monkeypatch):
    """The test's database: the SQLite file under `home`, or a fresh database on the PostgreSQL server, which
    the store, worker processes and CLI calls all reach through WORKBENCH_DATABASE_URL. Yields the backend."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"wb_{uuid.uuid4().hex[:12]}"
    server.admin(f"CREATE DATABASE {name}")
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", server.url(name))
    yield "postgresql"
    server.admin(f"DROP DATABASE {name} WITH (FORCE)")


def make_classification_frame(n: int = 600, n_classes: int = 2, seed: int = 0) -> pd.DataFrame:
    """Numeric, categorical and boolean features with a learnable target."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    flag = rng.random(n) < 0.5
    score = 2.0 * x1 - 1.5 * x2 + np.where(colour == "red", 1.5, 0.0) + np.where(flag, 0.7, -0.7)
    score += rng.normal(scale=0.3, size=n)
    if n_classes == 2:
        label = np.where(score > 0, "yes", "no")
    else:
        edges = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
        label = np.array([f"class_{i}" for i in np.digitize(score, edges)])
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "flag": flag, "label": label})


def make_regression_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(-2, 2, size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    y = 3.0 * x1 + x2**2 + np.where(colour == "blue", 2.0, 0.0) + rng.normal(scale=0.2, size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "y": y})


@pytest.fixture
def binary_frame() -> pd.DataFrame:
    return make_classification_frame(n_classes=2)


@pytest.fixture
def multiclass_frame() -> pd.DataFrame:
    return make_classification_frame(n_classes=3)


@pytest.fixture
def regression_frame() -> pd.DataFrame:
    return make_regression_frame()


@contextlib.contextmanager
def writes_held(database_url: str, first: str | None = None) -> Iterator[None]:
    """Another connection holds the whole database against writers (readers go on) until the block ends, as a
    long backup or a stuck program would. `first` is SQL committed just before the hold begins."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        lock = ["BEGIN IMMEDIATE"]
    else:
        import psycopg

        connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False),
                                     autocommit=True)
        lock = ["BEGIN", "LOCK TABLE datasets, runs, epochs, workers IN EXCLUSIVE MODE"]
    try:
        if first:
            connection.execute(first)
        for statement in lock:
            connection.execute(statement)
        yield
        connection.execute("COMMIT")
    finally:
        connection.close()


# Hypothesis: "ci" (the default) is small, derandomized and without deadlines, so the suite stays fast and
# deterministic; `pytest --hypothesis-profile=thorough` explores for as long as it is given.
from hypothesis import HealthCheck, settings  # noqa: E402

_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile("ci", max_examples=20, derandomize=True, deadline=None, database=None,
                          suppress_health_check=_SLOW_DATA, print_blob=True)
settings.register_profile("thorough", max_examples=1000, deadline=None, suppress_health_check=_SLOW_DATA,
                          print_blob=True)
settings.load_profile("ci")
