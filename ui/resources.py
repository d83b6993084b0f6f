"""Cached handles shared by the pages. Streamlit-only: the engine never imports this."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit import config

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
    """The upload limit, WORKBENCH_MAX_UPLOAD_MB. Each file uploader hands it to the browser, which refuses a larger
    file before sending any of it."""
    return get_settings().max_upload_mb


def apply_upload_limit() -> None:
    """app.py, before any page: the server's own cap (server.maxUploadSize, read on each upload request, which it
    cuts off once the body grows past it) follows the same limit, for uploads that do not come through our page."""
    limit = max_upload_mb()
    if config.get_option("server.maxUploadSize") != limit:
        config.set_option("server.maxUploadSize", limit, where_defined="WORKBENCH_MAX_UPLOAD_MB")


@st.cache_resource(show_spinner=False)
def model_catalog() -> list[dict]:
    """The model catalog: names, families, descriptions and hyperparameter schemas (fixed per release)."""
    from workbench.models.registry import catalog

    return catalog()


def model_defaults() -> dict[str, dict]:
    """{model: {hyperparameter: default}}, to tell which settings a run changed."""
    return {entry["name"]: {p["name"]: p.get("default") for p in entry["params"]} for entry in model_catalog()}
