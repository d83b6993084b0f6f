"""What a run or group learned (importance, partial dependence) and the advisor's card, shared by the Run page and
Runs & Compare. Streamlit only; the figures come from the engine (workbench.explain, workbench.advisor)."""

from __future__ import annotations

import streamlit as st

from ui import charts
from ui.text import escape_markdown
from workbench import advisor, explain, jobs
from workbench.errors import UserError
from workbench.store import Store

ADVICE_TITLES = {"overfitting": "Memorising the training rows", "underfitting": "Too simple for this table",
                 "not_converged": "Still improving when it stopped", "lr_too_high": "Learning rate too high",
                 "lr_too_low": "Learning rate too low", "leak": "A column may give the answer away",
                 "imbalance": "One class dominates", "tiny_data": "Few rows for a neural network",
                 "classical_better": "A classical model does better", "ok": "Nothing to fix"}


def show_advice(store: Store, item_id: str, heading: str = "What to try next") -> None:
    """The advisor's diagnoses of a run or group under `heading`: each a sentence, its evidence, and the next run in
    one click. Nothing at all for a run that failed or was cancelled (its own message says why)."""
    advice = advisor.advise(store, item_id)
    if not advice:
        return
    st.subheader(escape_markdown(heading))
    for i, piece in enumerate(advice):
        with st.container(border=True):
            show = st.success if piece.code == "ok" else st.warning
            show(f"**{escape_markdown(ADVICE_TITLES.get(piece.code, piece.code))}.** {escape_markdown(piece.message)}",
                 icon=":material/check_circle:" if piece.code == "ok" else ":material/lightbulb:")
            if piece.evidence:
                st.caption("Evidence: " + " · ".join(
                    f"{escape_markdown(name.replace('_', ' '))} {escape_markdown(_evidence(value))}"
                    for name, value in piece.evidence.items()))
            if piece.suggestion is None:
                continue
            button_col, command_col = st.columns([1, 3], vertical_alignment="center")
            if button_col.button("Queue this run", key=f"advice.{item_id}.{i}.{piece.code}",
                                 icon=":material/play_arrow:", help="Train the suggested run now, in the background"):
                try:
                    queued = advisor.queue_suggestion(store, item_id, piece.suggestion)
                    jobs.executor_for(store).ensure_running()
                except UserError as exc:
                    st.error(escape_markdown(exc))
                else:
                    st.success(f"Queued run {escape_markdown(queued.id)}.")
                    st.page_link("pages/run.py", query_params={"run": queued.id}, label="Open its page",
                                 icon=":material/open_in_new:")
            command_col.code(advisor.suggestion_command(store, item_id, piece.suggestion), language="bash",
                             wrap_lines=True)


def _evidence(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def show_importance(store: Store, item_id: str, target: str, can_compute: bool) -> None:
    """Permutation importance with error bars, its CSV, the notes on what was sampled, and partial dependence."""
    explanation = explain.item_explanation(store, item_id)
    if explanation is None:
        if not can_compute:
            st.info("Only a run that finished has a model to explain.")
            return
        st.info("What this model relies on has not been worked out yet (runs trained before this existed, and "
                "search trials, are explained on request).")
        if st.button("Work it out now", key=f"explain.{item_id}", icon=":material/insights:"):
            try:
                with st.spinner("Shuffling each column of the test rows…"):
                    explain.item_explanation(store, item_id, compute=True)
            except UserError as exc:
                st.error(escape_markdown(exc))
            else:
                st.rerun()
        return
    if not explanation.importance:
        st.info("No column could be measured.")
        return
    if all(abs(c.importance) < 1e-9 and (c.high is None or abs(c.high) < 1e-9) for c in explanation.importance):
        st.info("Shuffling any one column leaves the test score unchanged: the model does not use its columns (it "
                "predicts about the same for every row). The advice above says what to try.")
        return
    st.plotly_chart(charts.importance_bars(explanation), width="stretch")
    group = any(c.low is not None for c in explanation.importance)
    st.caption(("Each bar: how much worse the model scores on its test rows when that column's values are shuffled "
                "(the column made useless). ") + ("Whiskers: the 95% interval of the mean over the group's repeats."
                                                  if group else "Whiskers: the spread over the shuffles.")
               + " Near zero: the model does not use the column; below zero: noise.")
    st.download_button("Download as CSV", explain.importance_csv(explanation), on_click="ignore",
                       file_name=f"importance-{item_id}.csv", mime="text/csv", key=f"explain.csv.{item_id}")
    if explanation.notes:
        st.caption(" ".join(escape_markdown(note) for note in explanation.notes))
    if explanation.partial_dependence:
        st.markdown("**How the prediction moves with the most important columns**")
        columns = st.columns(min(3, len(explanation.partial_dependence)))
        for col, (name, curve) in zip(columns, explanation.partial_dependence.items(), strict=False):
            col.plotly_chart(charts.partial_dependence(name, curve, target), width="stretch")
        st.caption("Each chart changes one column over its usual values, with every other column as it is in the "
                   "test rows, and shows the average prediction.")
