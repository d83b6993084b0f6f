"""Cached handles shared by the pages. Streamlit-only: the engine never imports this."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from workbench import datasets
from workbench.config import get_settings
from workbench.store import Store


@st.cache_resource(show_spinner=False)
def _store_for(database_url: str, home: str) -> Store:
    # Keyed on the database and the home: tests (or a changed WORKBENCH_HOME) never share a handle.
    return Store.from_settings()


def get_store() -> Store:
    settings = get_settings()
    return _store_for(settings.database_url, str(settings.home))


@st.cache_data(show_spinner=False, max_entries=4)
def _table_for(database_url: str, dataset_id: str) -> pd.DataFrame:
    return datasets.load_table(get_store(), dataset_id)


def load_table(dataset_id: str) -> pd.DataFrame:
    """A dataset's table; datasets never change once stored (their id is their content hash)."""
    return _table_for(get_settings().database_url, dataset_id)


@st.cache_resource(show_spinner=False)
def device_description() -> tuple[str, str]:
    """The training device and, for its help tooltip, the precision it trains in by default."""
    from workbench.devices import describe_device, describe_precision

    return describe_device(), describe_precision()


def max_upload_mb() -> int:
    """The browser-side upload limit from .streamlit/config.toml (server.maxUploadSize)."""
    return int(st.get_option("server.maxUploadSize"))


@st.cache_resource(show_spinner=False)
def model_catalog() -> list[dict]:
    """The model catalog: names, families, descriptions and hyperparameter schemas (fixed per release)."""
    from workbench.models.registry import catalog

    return catalog()


def model_defaults() -> dict[str, dict]:
    """{model: {hyperparameter: default}}, to tell which settings a run changed."""
    return {entry["name"]: {p["name"]: p.get("default") for p in entry["params"]} for entry in model_catalog()}
