"""Shared fixtures: seeds, tiny synthetic data, and a workbench home with a real SQLite store on tmp_path."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch


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
    return path


@pytest.fixture
def store(home):
    from workbench.store import Store

    s = Store.from_settings()
    yield s
    s.close()


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


# Hypothesis: "ci" (the default) is small, derandomized and without deadlines, so the suite stays fast and
# deterministic; `pytest --hypothesis-profile=thorough` explores for as long as it is given.
from hypothesis import HealthCheck, settings  # noqa: E402

_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile("ci", max_examples=20, derandomize=True, deadline=None, database=None,
                          suppress_health_check=_SLOW_DATA, print_blob=True)
settings.register_profile("thorough", max_examples=1000, deadline=None, suppress_health_check=_SLOW_DATA,
                          print_blob=True)
settings.load_profile("ci")
