"""Runs & Compare: every run in a sortable, filterable table linking to each run's page; one run, or several side
by side; delete."""

import hashlib

import pandas as pd
import streamlit as st

from ui import charts
from ui.auth import require_access
from ui.ensemble import offer_ensemble
from ui.explain import show_advice, show_importance
from ui.frame import require_frame
from ui.guard import guarded_fragment
from ui.resources import get_store, model_defaults
from ui.tables import (
    format_interval,
    groups_frame,
    leaderboard_frame,
    metric_label,
    run_label,
    runs_column_config,
    runs_frame,
)
from ui.text import escape_markdown
from workbench import compare, groups, jobs
from workbench.errors import UserError
from workbench.evaluation import NotComparable, Verdict
from workbench.evaluation.verdicts import EQUIVALENCE_BANDS, POINT_METRICS
from workbench.store import RunStatus

require_frame(__file__)
require_access(logout_button=False)  # also when Streamlit runs this file without app.py
store = get_store()
jobs.recover_stale_runs(store)  # once per page load: a dead worker's run reads as interrupted
st.title("Runs & Compare")
TRIED_REFRESH_S = 2.0


@st.fragment(run_every=TRIED_REFRESH_S)
@guarded_fragment
def tried_progress(run_ids: list[str]) -> None:
    """How many runs of "Try every model" have ended; once all have, the whole page offers their ensemble."""
    tried = store.get_runs(run_ids)
    finished = sum(r.is_final for r in tried)
    if finished == len(tried):
        st.rerun()
    st.info(f"Try every model: {finished:,} of {len(tried):,} runs have ended. When all have, an ensemble of "
            "them can be built here in one click.")


# "Try every model" comes here with its runs (?every=id,id,...): it ends by proposing their ensemble.
tried_ids = [i for i in st.query_params.get("every", "").split(",") if i]
if tried_ids:
    tried_runs = store.get_runs(tried_ids)
    if tried_runs and all(r.is_final for r in tried_runs):
        succeeded = sum(r.status == RunStatus.SUCCEEDED for r in tried_runs)
        st.success(f"Try every model: all {len(tried_runs):,} runs have ended, {succeeded:,} of them successfully; "
                   "see the leaderboard below.")
        offer_ensemble(store, tried_runs, key="ensemble.tried")
    elif tried_runs:
        tried_progress([r.id for r in tried_runs])

runs = store.list_runs()
if not runs:
    st.info("No runs yet. Start one on **Train**; every run you train is listed here.")
    st.stop()
names = {d.id: d.name for d in store.list_datasets()}

status_col, model_col, dataset_col = st.columns(3)
statuses = status_col.multiselect("Status", sorted({r.status for r in runs}), key="filter.status",
                                  placeholder="All statuses")
models = model_col.multiselect("Model", sorted({r.model for r in runs}), key="filter.model",
                               placeholder="All models")
dataset_ids = dataset_col.multiselect("Dataset", sorted({r.dataset_id for r in runs}, key=lambda i: names.get(i, i)),
                                      format_func=lambda i: names.get(i, i), key="filter.dataset",
                                      placeholder="All datasets")
shown = [r for r in runs if (not statuses or r.status in statuses) and (not models or r.model in models)
         and (not dataset_ids or r.dataset_id in dataset_ids)]
st.dataframe(
    runs_frame(shown, names, model_defaults()), hide_index=True, width="stretch", height=min(38 + 35 * len(shown), 420),
    column_config={
        **runs_column_config(),
        "Test score": st.column_config.NumberColumn(format="%.4f", help="The main test metric of the run's task"),
        "95% interval": st.column_config.TextColumn(help="Where the test score would likely fall on other test rows "
                                                    "like these (bootstrap); empty for runs from before intervals"),
        "Group": st.column_config.TextColumn(help="The run group of a repeated run; each repeat is a run"),
        "Created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        "Settings": st.column_config.TextColumn(help="Hyperparameters changed from the model's defaults"),
        "Message": st.column_config.TextColumn(help="Why a run failed, diverged, was cancelled or was interrupted"),
    },
)
st.caption(f"{len(shown):,} of {len(runs):,} runs. Click a column header to sort.")

run_groups = store.list_groups()
summaries = groups.summarize_all(run_groups, runs)
shown_groups = [g for g in run_groups if (not models or g.model in models)
                and (not dataset_ids or g.dataset_id in dataset_ids)]
if shown_groups:
    st.subheader("Run groups")
    st.dataframe(groups_frame([summaries[g.id] for g in shown_groups], names), hide_index=True, width="stretch",
                 height=min(38 + 35 * len(shown_groups), 320))
    st.caption("A run group is one setup trained several times on fixed folds of its table; each repeat is a run "
               "above. Score: the mean over the finished repeats, with its 95% interval; spread: how much one "
               "repeat's score varies.")

st.subheader("Compare runs and groups")
comparable = [r for r in shown if r.is_final]
label_of = {g.id: summaries[g.id].label() for g in shown_groups if summaries[g.id].finished}
label_of |= {r.id: run_label(r, names) for r in comparable}
# Options come from the store on every run: Streamlit drops a chosen run that was deleted meanwhile.
selected = st.multiselect("Runs or groups to compare", list(label_of), format_func=label_of.get, key="compare",
                          placeholder="Choose one run to look at, or several runs or groups to compare")


def show_verdict(chosen_ids: list[str]) -> None:
    """Is A better than B (two items), or who is tied with the best (more), on top of the comparison."""
    items = groups.load_items(store, chosen_ids)
    task = items.task()
    if not task:
        st.warning("These solve different tasks, so none can be called better than another.")
        return
    scored = [m for m in compare.compare_metrics([r for r in items.runs.values()]
                                                 + [m for g in items.groups.values() for m in g.finished]).table]
    metric_col, band_col = st.columns(2)
    metric = metric_col.selectbox("Judge by", scored or [items.default_metric()], format_func=metric_label,
                                  key="verdict.metric")
    band = band_col.number_input(
        "Counts as the same within ±", min_value=0.0, value=None, step=0.001, format="%.4f", key="verdict.band",
        placeholder=f"default: {default_band_text(metric)}",
        help="The practical-equivalence band, in the metric's own units: a gap surely inside it is no real "
             "difference. Empty: the default.")
    try:
        ranking = groups.compare_items(items, metric, band)
    except NotComparable as exc:
        st.warning(f"Not compared: {escape_markdown(exc)}")
        return
    if len(ranking.items) == 2:
        [pair] = ranking.pairs
        show = st.success if pair.verdict == Verdict.CLEARLY_BETTER else st.info
        show(f"**{VERDICT_WORDS[pair.verdict]}.** {escape_markdown(pair.sentence)}")
    else:
        st.info(f"**Ranking by {escape_markdown(metric_label(metric))}.** {escape_markdown(ranking.sentence)}")
        st.dataframe(pd.DataFrame({
            "Rank": [i.rank for i in ranking.items],
            "Run or group": [label_of.get(i.id, i.name) for i in ranking.items],
            "Score (95% interval)": [format_interval(i.mean, *groups.clip_interval(metric, i.ci_low, i.ci_high))
                                     for i in ranking.items],
            "Tied with best": [i.tied_with_best for i in ranking.items],
            "p against the best": [i.p_value for i in ranking.items],
        }), hide_index=True, width="stretch", column_config={
            "p against the best": st.column_config.NumberColumn(format="%.3f", help="Holm-corrected"),
            "Tied with best": st.column_config.CheckboxColumn(help="Not clearly worse than the best")})
    for reason in ranking.refused.values():
        st.caption(f"Not compared: {escape_markdown(reason)}")


def show_group(summary: groups.GroupSummary) -> None:
    finished = f"{len(summary.finished)} of {summary.group.n_members}"
    st.markdown(f"**Group {escape_markdown(summary.group.id)}**: {escape_markdown(summary.group.model)}, "
                f"{escape_markdown(finished)} repeats finished.")
    st.dataframe(pd.DataFrame({
        "Metric": [metric_label(m) for m in summary.metrics],
        "Mean (95% interval)": [format_interval(f.mean, f.ci_low, f.ci_high) for f in summary.metrics.values()],
        "Spread": [f.sd for f in summary.metrics.values()],
        "Repeats": [f.n for f in summary.metrics.values()],
    }), hide_index=True, width="stretch", column_config={
        "Spread": st.column_config.NumberColumn(format="%.4f", help="Standard deviation over the repeats")})


def default_band_text(metric: str) -> str:
    kind, width = EQUIVALENCE_BANDS.get(metric, ("relative", 0.01))
    if kind == "relative":
        return f"{width:.0%} of the better score"
    return f"{width * 100:g} point" if metric in POINT_METRICS else f"{width:g}"


def show_comparison(chosen: list, group_scores: compare.MetricsComparison | None = None) -> None:
    """`chosen`: the runs, and the finished repeats of the chosen groups; `group_scores`: with groups, the Scores
    tab's one row per group (its mean and interval) instead of a row per repeat."""
    # A group's repeats are tested on different rows by design; the verdict above pairs them properly.
    if group_scores is None and not compare.same_test_rows(chosen):
        st.warning("These runs were tested on different rows (another dataset, other split settings, or other "
                   "repeats of a group), so their test scores side by side do not compare fairly.")
    if len({r.task for r in chosen}) > 1:
        st.warning("These runs solve different tasks; only the metrics they share are comparable.")
    scores = group_scores or compare.compare_metrics(chosen)
    scores_tab, curves_tab, settings_tab, diagnostics_tab = st.tabs(
        ["Scores", "Learning curves", "Settings", "Diagnostics"])
    with scores_tab:
        show_scores(scores)
    with curves_tab:
        show_learning_curves(chosen)
    with settings_tab:
        if len(chosen) == 1:
            st.dataframe(compare.settings_table(chosen[0], model_defaults().get(chosen[0].model)), hide_index=True,
                         width="stretch")
        else:
            show_settings(chosen)
    with diagnostics_tab:
        show_diagnostics(chosen)


def show_settings(chosen: list) -> None:
    show_all = st.toggle("Show all settings", key="compare.all_settings",
                         help="Off: only the settings that differ between these runs")
    table = compare.params_diff(chosen, only_differing=not show_all)
    if table.empty:
        st.info("These runs have exactly the same settings.")
        return
    st.markdown("**Every setting**" if show_all else "**Settings that differ** (everything else is the same)")
    st.dataframe(table, width="stretch")
    metric = chosen[0].primary_metric
    if metric and not compare.params_diff(chosen).empty:
        frame = compare.hyperparameter_frame(chosen, metric)
        st.plotly_chart(charts.parallel_coordinates(frame, metric, compare.higher_is_better(metric)),
                        width="stretch")
        st.caption(f"Each line is a run; the last axis and the colour are its test "
                   f"{escape_markdown(metric_label(metric))}.")


def show_scores(scores: compare.MetricsComparison) -> None:
    if scores.table.empty:
        st.info("None of these runs has test scores (they did not finish training).")
        return
    st.dataframe(charts.highlight_best(scores), width="stretch")
    if scores.unscored:
        st.caption(f"Not scored, so not in the table: {', '.join(escape_markdown(r) for r in scores.unscored)}.")
    directions = ", ".join(f"{metric_label(m)} {'↑' if up else '↓'}" for m, up in scores.higher_is_better.items())
    st.caption(f"Test scores. The best run per metric is in green; the grey row is a model that always predicts "
               f"the most common class (or the mean) — a useful model beats it clearly. {escape_markdown(directions)}")
    metrics = list(scores.table.columns)
    metric = st.selectbox("Metric for the bar chart", metrics, format_func=metric_label, key="compare.metric")
    st.plotly_chart(charts.metric_bars(scores.table, metric, scores.baseline_rows, scores.intervals), width="stretch")
    if any(scores.intervals.values()):
        st.caption("Whiskers: the 95% interval of each run's score over its test rows, and of each group's mean "
                   "over its repeats (runs trained before intervals were kept show their score only).")


def show_learning_curves(chosen: list) -> None:
    curves = compare.learning_curves(chosen, names)
    if curves.empty:
        st.info("These runs have no per-epoch history (classical models train in one step).")
        return
    st.plotly_chart(charts.learning_curves(curves), width="stretch")
    if len(set(curves["run"])) < len(chosen):
        st.caption("Runs without any per-epoch history (stopped before their first epoch) are not drawn.")
    st.caption("Dotted: training; solid: validation. A classical model trains in one step: one point at epoch 1. "
               "Regression losses are shown as RMSE in the target's units, "
               "so every run shares one scale. A validation curve that rises while the training curve falls means "
               "the model is memorising the training rows (overfitting).")


VERDICT_WORDS = {Verdict.CLEARLY_BETTER: "Clearly better", Verdict.PROBABLY_BETTER: "Probably better",
                 Verdict.NO_CLEAR_WINNER: "No clear winner", Verdict.PRACTICALLY_SAME: "Practically the same"}


def show_leaderboard() -> None:
    """The best group or run of each model per dataset and target: which model should I use?"""
    pairs = sorted({(r.dataset_id, r.target) for r in shown if r.status == RunStatus.SUCCEEDED},
                   key=lambda p: (names.get(p[0], p[0]), p[1]))
    if not pairs:
        return
    st.subheader("Leaderboard")
    pair = st.selectbox("Dataset and target", pairs, key="leaderboard.pair",
                        format_func=lambda p: f"{names.get(p[0], p[0])} → {p[1]}")
    metric, rows = groups.dataset_leaderboard(runs, summaries, *pair)
    st.dataframe(leaderboard_frame(rows, metric), hide_index=True, width="stretch")
    st.caption(f"The best run or group of each model by test {escape_markdown(metric_label(metric))}, with its 95% "
               "interval. Tied with best: not clearly worse than the top one (repeated runs on the same folds, "
               "Holm-corrected); a single run cannot be tested, so repeat it. Cost: training time, all repeats "
               "together.")


def show_diagnostics(chosen: list) -> None:
    """Confusion matrices and ROC/PR curves for classifiers; predicted-vs-actual and residuals for regressors."""
    figures = charts.diagnostics(chosen)
    if not figures:
        st.info("These runs have no test predictions to draw.")
    for figure in figures:
        st.plotly_chart(figure, width="stretch")


if selected:
    if len(selected) == 1 and selected[0] not in summaries:
        if st.button(f"Open the page of run {escape_markdown(selected[0])}", icon=":material/open_in_new:",
                     help="Its settings, the data it used, notes, and actions: predict, export, retrain, delete"):
            st.switch_page("pages/run.py", query_params={"run": selected[0]})
    if len(selected) == 1:
        show_advice(store, selected[0])
    if len(selected) > 1:
        show_verdict(selected)
        offer_ensemble(store, store.get_runs([i for i in selected if i not in summaries]), key="ensemble.selected")
    elif selected[0] in summaries:
        show_group(summaries[selected[0]])
        with st.expander("What the group's model relies on", icon=":material/insights:"):
            show_importance(store, selected[0], summaries[selected[0]].group.target,
                            can_compute=bool(summaries[selected[0]].finished))
    # A group is compared through its repeats: history and curves only for the chosen runs and members.
    chosen_groups = [summaries[i] for i in selected if i in summaries]
    chosen_runs = store.get_runs([i for i in selected if i not in summaries])
    show_comparison(chosen_runs + [m for g in chosen_groups for m in g.finished],
                    groups.scores_side_by_side(chosen_groups, chosen_runs) if chosen_groups else None)
elif label_of:
    st.info("Choose a run to see its scores, learning curves and settings, or several runs or groups to see "
            "which is really better.")

show_leaderboard()

deleted = st.session_state.pop("delete.done", None)
if deleted:
    st.success(f"Deleted {deleted:,} run(s) and their trained models.")
with st.expander("Delete runs", expanded=bool(deleted)):
    finished = {r.id: label_of.get(r.id) or run_label(r, names) for r in shown if r.is_final}
    to_delete = st.multiselect("Runs to delete", list(finished), format_func=finished.get, key="delete.runs",
                               help="Queued or running runs must be cancelled first (on Train or on the run's page).")
    confirmed = False
    if to_delete:
        # The confirmation belongs to exactly these runs: a changed list (a run picked, dropped, or deleted
        # elsewhere) is a new checkbox, unticked.
        chosen_digest = hashlib.sha256("\n".join(sorted(to_delete)).encode()).hexdigest()[:16]
        confirmed = st.checkbox(f"Yes, delete {len(to_delete)} run(s) and their trained models",
                                key=f"delete.confirm.{chosen_digest}")
    if st.button("Delete runs", disabled=not (to_delete and confirmed)) and to_delete and confirmed:
        try:
            for run_id in to_delete:
                jobs.delete_run(store, run_id)
        except UserError as exc:
            st.error(escape_markdown(exc))
        else:
            st.session_state.pop("delete.runs", None)
            st.session_state["delete.done"] = len(to_delete)
            st.rerun()
