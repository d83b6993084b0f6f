"""The one-click ensemble of finished runs (Runs & Compare: chosen runs, and the runs of "Try every model")."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from ui.text import escape_markdown
from workbench import ensembles, jobs
from workbench.errors import UserError
from workbench.store import Run, Store


def offer_ensemble(store: Store, runs: Sequence[Run], key: str) -> None:
    """A button that queues an ensemble of those of `runs` that can make one (ensembles.proposal), then opens its
    page; nothing when fewer than two can."""
    members = ensembles.proposal(runs)
    if not members:
        return
    repeated = " Repeated runs give a repeated ensemble on the same folds, compared with them with intervals." \
        if members[0].group_id else ""
    if st.button("Build an ensemble of these runs", key=key, icon=":material/join:",
                 help=f"A weighted average of these {len(members)} runs, chosen on their validation rows (greedy "
                      f"ensemble selection): it usually beats the best of them. It trains in seconds.{repeated}"):
        try:
            with st.spinner("Checking the runs…"):
                run = jobs.submit_run(store, ensembles.config_for(store, [r.id for r in members]))
                jobs.executor_for(store).ensure_running()
        except UserError as exc:
            st.error(escape_markdown(exc))
        else:
            st.switch_page("pages/run.py", query_params={"run": run.id})  # a group's first repeat: links to it
