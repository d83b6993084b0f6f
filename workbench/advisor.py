"""The advisor: what a run's (or group's) curves, scores, baseline, peers and importance say is wrong, each with the
numbers that show it and one concrete next run; "ok" (nothing to fix) when no rule fires.

The rules and their thresholds (why each threshold, in a word):
- leak: the test score closes at least LEAK_GAP_SHARE (90%) of the gap between the trivial baseline and a perfect
  score (accuracy; R² for regression) AND one column carries at least LEAK_IMPORTANCE_SHARE (50%) of the summed
  positive importance and at least LEAK_RATIO (3) times the next column's. Real tables rarely let one column explain
  nearly everything; when one does, it is usually recorded after the target. -> the same run without that column.
- lr_too_high: the run diverged; or its learning rate is at least LR_FACTOR (10) times the model's default (the
  catalogue's default works on the bundled samples) AND its training loss is jagged (rose from one epoch to the next
  in at least JAGGED_SHARE, 40%, of epochs: a loss averaged over an epoch falls in most epochs while it learns) or
  stuck (the last training loss is at least STUCK_SHARE, 90%, of the trivial model's loss). -> the default rate.
- lr_too_low: the rate is at most 1/LR_FACTOR of the default AND the training loss is flat (fell less than
  FLAT_DROP, 10%, from the first epoch to the last) or still falling at the epoch limit. -> the default rate.
- tiny_data: a neural run on fewer than TINY_ROWS (1,000) rows (a default MLP has ~70,000 weights: over 100 per
  training row there) that no classical run on the same test rows loses to. -> TabM (32 networks trained together
  and averaged); a TabM run -> gradient boosting.
- overfitting: after its best epoch the validation loss rose by at least RISE_SHARE (20%) of its best and by 3 times
  its epoch-to-epoch jitter (not noise), while the training loss kept falling (by at least RISE_SHARE). ->
  the same network with dropout at least 0.3 and weight decay at least 0.1 (a smaller one did worse, below).
- not_converged: the run used every epoch it was allowed and its best validation epoch is among the last
  LATE_SHARE (5%, at least the last 2) of them: it was still improving. -> three times the epochs.
- underfitting: the training loss stays at least UNDERFIT_SHARE (80%) of the trivial model's loss (the network did
  not even fit its training rows) and the test score closes less than NEAR_BASELINE_SHARE (10%) of the gap to a
  perfect score. -> a larger network and more epochs.
- imbalance: test accuracy is at least IMBALANCE_GAP (0.10) above balanced accuracy: accuracy is mostly the
  majority class's share. -> trust balanced accuracy (and F1); gradient boosting with balanced class weights
  (balance_classes), which makes a rare class count as much as a common one. (Not another model as it is: on the
  benchmark's 95/5 table a random forest in place of gradient boosting lowered validation balanced accuracy from
  0.776 to 0.698; balancing the classes is what moves it. benchmarks/advisor.py measures it.)
- classical_better: a classical run on the same test rows beats the best neural run there by more than that neural
  run's 95% bootstrap interval (workbench.evaluation's stored interval). -> that classical model and settings.
Curve rules need at least MIN_EPOCHS (5) epochs with finite losses; a rule without its evidence never fires.
Order: tiny_data comes before the curve rules. Why TabM for a tiny table, measured on benchmarks/advisor.py's planted
tables over 20 split seeds (accuracy, mean of validation / test):
- 200 rows, the default MLP: 0.818 / 0.702. TabM 0.871 / 0.773; gradient boosting 0.748 / 0.745 (no early stopping,
  rate 0.05, 200 trees, 10-row leaves: 0.774 / 0.780, the best on the test rows, yet below the MLP on validation); a
  random forest 0.765 / 0.755; the MLP shrunk to 64,64 with dropout 0.3 and weight decay 0.01: 0.810 / 0.703.
- 500 rows, a 3x1024 MLP (it overfits): 0.845 / 0.799. TabM 0.889 / 0.841; gradient boosting 0.776 / 0.792; shrunk to
  64,64 as above 0.792 / 0.756; the same size with dropout 0.3 and weight decay 0.1: 0.837 / 0.797 (as good: the
  overfitting rule's suggestion, second there); with dropout 0.5, 3.6 points lower on the test rows (10 splits).
A network's validation score is its best epoch's on those very rows (early stopping keeps it): on 31 rows it reads
11 points above its test score, where a classical model's does not (its validation rows are unseen). TabM picks its
epoch the same way, so its validation gain is like for like, and it gains on the test rows too; shrinking the
network lost on both (early stopping already keeps an overfitting network's best epoch). In the benchmark itself
(5 splits, the suggestion queued and trained as a user would): 200 rows 0.800 / 0.707 -> 0.884 / 0.773; the 3x1024
network 0.837 / 0.797 -> 0.880 / 0.843.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from workbench.errors import UserError
from workbench.explain import Explanation, find_item, group_explanation, run_explanation
from workbench.models.registry import MODELS, resolve_params
from workbench.predict import comparable_group
from workbench.store.entities import EpochMetrics, Run, RunStatus
from workbench.tasks import Task, higher_is_better

CODES = ("overfitting", "underfitting", "not_converged", "lr_too_high", "lr_too_low", "leak", "imbalance", "tiny_data",
         "classical_better", "ok")
LEAK_GAP_SHARE = 0.9
LEAK_IMPORTANCE_SHARE = 0.5
LEAK_RATIO = 3.0
LR_FACTOR = 10.0
JAGGED_SHARE = 0.4
STUCK_SHARE = 0.9
FLAT_DROP = 0.1
TINY_ROWS = 1_000
RISE_SHARE = 0.2
LATE_SHARE = 0.05
UNDERFIT_SHARE = 0.8
NEAR_BASELINE_SHARE = 0.1
IMBALANCE_GAP = 0.10
MIN_EPOCHS = 5
SUGGESTED_MODEL = "gradient_boosting"
SMALL_TABLE_MODEL = "tabm"  # a tiny table's next neural run: see the module's docstring


@dataclass
class Suggestion:
    """A next run: its model, the settings to change (on top of the run's own when the model stays; the new model's
    defaults otherwise) and the columns to add to the excluded ones."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)


@dataclass
class Advice:
    code: str
    message: str
    evidence: dict[str, float]
    suggestion: Suggestion | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "evidence": self.evidence,
                "suggestion": asdict(self.suggestion) if self.suggestion else None}


# -- the rules over one run -----------------------------------------------------------------------------------------


@dataclass
class Curves:
    """A neural run's finite per-epoch losses."""

    train: list[float]
    val: list[float]

    @classmethod
    def of(cls, epochs: Sequence[EpochMetrics]) -> Curves | None:
        rows = [(e.train_loss, e.val_loss) for e in epochs
                if _finite(e.train_loss) and _finite(e.val_loss)]
        if len(rows) < MIN_EPOCHS:
            return None
        return cls([r[0] for r in rows], [r[1] for r in rows])

    @property
    def best(self) -> int:  # index of the lowest validation loss
        return min(range(len(self.val)), key=lambda i: self.val[i])

    def jitter(self) -> float:
        steps = sorted(abs(b - a) for a, b in zip(self.val, self.val[1:], strict=False))
        return steps[len(steps) // 2]

    def rises(self) -> float:
        return sum(b > a for a, b in zip(self.train, self.train[1:], strict=False)) / (len(self.train) - 1)


def diagnose(run: Run, peers: Sequence[Run] = (), explanation: Explanation | None = None,
             n_rows: int | None = None) -> list[Advice]:
    """The advice on one run: `peers`, other runs of the same dataset and target (those on the same test rows are
    compared); `explanation`, its importance; `n_rows`, the rows it learned and was tested on. A run that neither
    succeeded nor diverged gets no advice (its error says what happened)."""
    spec = MODELS.get(run.model)
    if spec is None or run.status not in (RunStatus.SUCCEEDED, RunStatus.DIVERGED):
        return []
    neural = spec.family == "neural"
    params = run.params or {}
    default_lr = _default(run.model, "lr") if neural else None
    lr = params.get("lr")
    curves = Curves.of(run.epochs) if neural else None
    advice: list[Advice] = []
    if run.status == RunStatus.DIVERGED:
        if not neural:  # no learning rate to lower; its message says what happened
            return []
        suggestion = Suggestion(run.model, {"lr": default_lr if lr is None or lr > default_lr else lr / LR_FACTOR})
        return [Advice("lr_too_high", f"The training diverged (its loss stopped being a number) at a learning rate of "
                                      f"{lr:g}; try a smaller one." if lr else "The training diverged; try a smaller "
                                      "learning rate.", {"lr": float(lr or 0.0), "epochs_done": run.epochs_done},
                       suggestion)]
    task = run.task
    test, base = run.metrics.get("test", {}), run.baseline.get("test", {})
    closed = _gap_closed(task, test, base)
    baseline_loss = 1.0 if task == Task.REGRESSION else base.get("log_loss")

    if explanation and closed is not None and closed >= LEAK_GAP_SHARE:
        positive = [i for i in explanation.importance if (i.importance or 0) > 0]
        total = sum(i.importance for i in positive)
        if positive and total > 0:
            top, second = positive[0], (positive[1].importance if len(positive) > 1 else 0.0)
            share = top.importance / total
            if share >= LEAK_IMPORTANCE_SHARE and top.importance >= LEAK_RATIO * second:
                advice.append(Advice(
                    "leak", f"Too good to be true: '{top.column}' carries {share:.0%} of what the model relies on and "
                    f"the score is near perfect; if that column is known only after the outcome, it leaks the answer. "
                    "Train without it.",
                    {"score_gap_closed": round(closed, 4), "importance_share": round(share, 4),
                     "top_importance": top.importance, "next_importance": round(second, 6)},
                    Suggestion(run.model, {}, [top.column])))

    if neural and lr is not None and default_lr and curves:
        stuck = baseline_loss is not None and curves.train[-1] >= STUCK_SHARE * baseline_loss
        if lr >= LR_FACTOR * default_lr and (curves.rises() >= JAGGED_SHARE or stuck):
            advice.append(Advice(
                "lr_too_high", f"The learning rate {lr:g} is {lr / default_lr:.0f} times the model's default and the "
                "training loss " + ("jumps up and down" if curves.rises() >= JAGGED_SHARE else "stays at the level "
                                    "of a trivial model") + f"; try the default {default_lr:g}.",
                {"lr": lr, "default_lr": default_lr, "share_of_epochs_loss_rose": round(curves.rises(), 4),
                 "last_train_loss": round(curves.train[-1], 6), "trivial_model_loss": _num(baseline_loss)},
                Suggestion(run.model, {"lr": default_lr})))
        drop = (curves.train[0] - curves.train[-1]) / abs(curves.train[0]) if curves.train[0] else 0.0
        at_limit = run.epochs_done >= int(params.get("epochs") or 0) > 0
        if lr <= default_lr / LR_FACTOR and (drop < FLAT_DROP or (at_limit and curves.best == len(curves.val) - 1)):
            advice.append(Advice(
                "lr_too_low", f"The learning rate {lr:g} is a {default_lr / lr:.0f}th of the model's default and the "
                f"training loss fell only {drop:.0%} over {len(curves.train)} epochs; try the default {default_lr:g}.",
                {"lr": lr, "default_lr": default_lr, "train_loss_drop": round(drop, 4),
                 "epochs": len(curves.train)}, Suggestion(run.model, {"lr": default_lr})))

    if neural and n_rows is not None and n_rows < TINY_ROWS:
        classical = [p for p in _same_rows(run, peers) if MODELS.get(p.model) and MODELS[p.model].family == "classical"]
        best = _best(classical)
        if best is None or not _better(run, best):
            evidence = {"rows": n_rows, "training_rows": int(run.details.get("n_train", 0))}
            if best is not None:
                evidence.update({"this_score": run.primary_value, "classical_score": best.primary_value})
            averaged = run.model == SMALL_TABLE_MODEL  # already the averaged networks: the trees are what is left
            advice.append(Advice(
                "tiny_data", f"With only {n_rows:,} rows a neural network has far more weights than rows to learn "
                "them from" + (f", and it does not beat {best.model} ({run.primary_metric} {best.primary_value:.4f})"
                               if best else "") + ("; gradient boosting is usually as good or better on a table this "
                                                   "small." if averaged else "; on a table this small, TabM (32 "
                                                   "networks trained together and averaged) or gradient boosting "
                                                   "usually does better than one network."),
                evidence, Suggestion(SUGGESTED_MODEL if averaged else SMALL_TABLE_MODEL)))

    if neural and curves and not any(a.code == "lr_too_high" for a in advice):
        best = curves.best
        rise = curves.val[-1] - curves.val[best]
        train_fall = curves.train[best] - curves.train[-1]
        if (rise >= RISE_SHARE * abs(curves.val[best]) and rise >= 3 * curves.jitter()
                and train_fall >= RISE_SHARE * abs(curves.train[best])):
            advice.append(Advice(
                "overfitting", f"The model learns its training rows by heart: after epoch {best + 1} the validation "
                f"loss rose {rise / abs(curves.val[best]):.0%} while the training loss kept falling; more "
                "dropout and a stronger weight decay hold it back from that.",
                {"best_epoch": best + 1, "best_val_loss": round(curves.val[best], 6),
                 "last_val_loss": round(curves.val[-1], 6), "train_loss_at_best": round(curves.train[best], 6),
                 "last_train_loss": round(curves.train[-1], 6)}, _regularised(run)))
        limit = int(params.get("epochs") or 0)
        late = max(2, math.ceil(LATE_SHARE * len(curves.val)))
        if limit and run.epochs_done >= limit and best >= len(curves.val) - late:
            advice.append(Advice(
                "not_converged", f"The run used all {limit} epochs it was allowed and its best validation loss came "
                f"at epoch {best + 1}: it was still improving; give it more epochs.",
                {"epochs_allowed": limit, "best_epoch": best + 1, "epochs_done": run.epochs_done},
                Suggestion(run.model, {"epochs": min(100_000, 3 * limit)})))
        if (baseline_loss and closed is not None and closed < NEAR_BASELINE_SHARE
                and min(curves.train) >= UNDERFIT_SHARE * baseline_loss):
            advice.append(Advice(
                "underfitting", f"The model barely beats a trivial one: its training loss ({min(curves.train):.4f}) "
                f"stays near the trivial model's ({baseline_loss:.4f}); a larger network trained longer can learn "
                "more.", {"lowest_train_loss": round(min(curves.train), 6), "trivial_model_loss": _num(baseline_loss),
                          "score_gap_closed": round(closed, 4)}, _larger(run)))

    if task != Task.REGRESSION and _finite(test.get("accuracy")) and _finite(test.get("balanced_accuracy")):
        gap = test["accuracy"] - test["balanced_accuracy"]
        if gap >= IMBALANCE_GAP:
            advice.append(Advice(
                "imbalance", f"Accuracy ({test['accuracy']:.3f}) is far above balanced accuracy "
                f"({test['balanced_accuracy']:.3f}): most rows are one class, so accuracy mostly counts them; trust "
                "balanced accuracy and F1 here, and weigh the classes so the rare one counts as much.",
                {"accuracy": round(test["accuracy"], 4), "balanced_accuracy": round(test["balanced_accuracy"], 4),
                 "majority_share": _num(base.get("accuracy")), "f1": _num(test.get("f1"))},
                Suggestion(SUGGESTED_MODEL, {"balance_classes": True})))

    if neural:
        same = _same_rows(run, peers)
        classical = _best([p for p in same if MODELS.get(p.model) and MODELS[p.model].family == "classical"])
        neural_best = _best([p for p in [*same, run] if MODELS.get(p.model) and MODELS[p.model].family == "neural"])
        interval = (neural_best.intervals.get("test", {}).get(neural_best.primary_metric)
                    if neural_best is not None else None)
        if classical is not None and neural_best is not None and interval and _clearly_ahead(classical, interval):
            advice.append(Advice(
                "classical_better", f"{classical.model} ({classical.primary_metric} {classical.primary_value:.4f}) is "
                f"clearly ahead of every neural run on the same test rows (the best, {neural_best.model}, scores "
                f"{neural_best.primary_value:.4f}, 95% interval {interval[0]:.4f} to {interval[1]:.4f}).",
                {"classical_score": classical.primary_value, "best_neural_score": neural_best.primary_value,
                 "neural_interval_low": interval[0], "neural_interval_high": interval[1]},
                Suggestion(classical.model, _changed(classical))))

    if not advice:
        evidence = {k: round(v, 4) for k, v in (("test_" + (run.primary_metric or ""), run.primary_value),
                                                 ("baseline", base.get(run.primary_metric or ""))) if _finite(v)}
        return [Advice("ok", "Nothing to fix: no problem shows in the curves, the scores or the importance.",
                       evidence)]
    return advice


def _regularised(run: Run) -> Suggestion:
    """The same network, held back harder. Not smaller, and dropout no higher than 0.3 unless it already was: on the
    planted 3x1024-on-500-rows run (module docstring) a smaller network and dropout 0.5 both lost on the test rows."""
    params, changes = run.params, {}
    if "dropout" in params:
        changes["dropout"] = max(0.3, float(params["dropout"]))
    if "weight_decay" in params:
        changes["weight_decay"] = min(1.0, max(0.1, 10 * float(params["weight_decay"])))
    return Suggestion(run.model, changes)


def _larger(run: Run) -> Suggestion:
    params, changes = run.params, {}
    if "hidden_sizes" in params:
        changes["hidden_sizes"] = [min(8192, 2 * int(h)) for h in params["hidden_sizes"]]
    for name in ("d_model", "channels", "hidden_size"):
        if name in params:
            changes[name] = min(1024, 2 * int(params[name]))
    if "epochs" in params:
        changes["epochs"] = min(100_000, 2 * int(params["epochs"]))
    return Suggestion(run.model, changes)


def _changed(run: Run) -> dict[str, Any]:
    """A run's settings that differ from its model's defaults."""
    defaults = asdict(resolve_params(run.model, {}))
    return {k: v for k, v in (run.config.get("params") or {}).items() if defaults.get(k) != v}


def _default(model: str, name: str) -> float | None:
    return asdict(resolve_params(model, {})).get(name)


def _gap_closed(task: str, test: dict[str, float], base: dict[str, float]) -> float | None:
    """How much of the way from the trivial model to a perfect score the run got (1: perfect)."""
    if task == Task.REGRESSION:
        return test["r2"] if _finite(test.get("r2")) else None
    accuracy, trivial = test.get("accuracy"), base.get("accuracy")
    if not (_finite(accuracy) and _finite(trivial)) or trivial >= 1:
        return None
    return (accuracy - trivial) / (1 - trivial)


def _same_rows(run: Run, peers: Sequence[Run]) -> list[Run]:
    key = comparable_group(run)
    return [p for p in peers if p.id != run.id and p.status == RunStatus.SUCCEEDED and comparable_group(p) == key
            and _finite(p.primary_value)]


def _best(runs: Sequence[Run]) -> Run | None:
    scored = [r for r in runs if _finite(r.primary_value) and r.primary_metric]
    if not scored:
        return None
    sign = 1 if higher_is_better(scored[0].primary_metric) else -1
    return max(scored, key=lambda r: sign * r.primary_value)


def _better(a: Run, b: Run) -> bool:
    sign = 1 if higher_is_better(a.primary_metric or "") else -1
    return sign * (a.primary_value - b.primary_value) > 0


def _clearly_ahead(classical: Run, interval: Sequence[float]) -> bool:
    value = classical.primary_value
    return value > max(interval) if higher_is_better(classical.primary_metric or "") else value < min(interval)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any) -> float | None:
    return round(float(value), 6) if _finite(value) else None


# -- runs and groups in the store -----------------------------------------------------------------------------------


def advise(store, item_id: str) -> list[Advice]:
    """The advice on a run or a run group. A group: the codes that fire in at least half of its finished members,
    each with the first such member's evidence and how many members showed it."""
    run, group = find_item(store, item_id)
    peers = store.list_runs(dataset_id=(run or group).dataset_id)
    dataset = store.get_dataset((run or group).dataset_id)
    if run is not None:
        return _advise_run(run, peers, dataset.n_rows, run_explanation(run))
    members = store.get_runs([m.id for m in store.group_runs(group.id)])
    finished = [m for m in members if m.status in (RunStatus.SUCCEEDED, RunStatus.DIVERGED)]
    importance = group_explanation(group, members)
    per_member = [_advise_run(m, peers, dataset.n_rows, importance) for m in finished]
    counts: dict[str, list[Advice]] = {}
    for advice in per_member:
        for item in advice:
            counts.setdefault(item.code, []).append(item)
    out = []
    for code, items in counts.items():
        if code != "ok" and 2 * len(items) >= len(finished):
            first = items[0]
            out.append(replace(first, evidence={**first.evidence, "members_showing_it": len(items),
                                                "members_finished": len(finished)}))
    if not out and finished:
        scores = [m.primary_value for m in finished if _finite(m.primary_value)]
        evidence = {"members_finished": len(finished)}
        if scores:
            evidence["mean_test_score"] = round(sum(scores) / len(scores), 4)
        out = [Advice("ok", "Nothing to fix: no problem shows in most of the group's members.", evidence)]
    return out


def _advise_run(run: Run, peers: Sequence[Run], n_rows: int, explanation: Explanation | None) -> list[Advice]:
    used = sum(int(run.details.get(k, 0) or 0) for k in ("n_train", "n_val", "n_test")) or n_rows
    return diagnose(run, peers, explanation, used)


def suggested_config(store, item_id: str, suggestion: Suggestion):
    """The run config of the suggested run: the run's (a group's: with its repeats) with the suggestion applied."""
    from workbench.runconfig import RunConfig

    run, group = find_item(store, item_id)
    config = RunConfig.from_dict(group.config if group is not None else run.config)
    if suggestion.model not in MODELS:
        raise UserError(f"There is no model called '{suggestion.model}'.")
    params = {**config.params, **suggestion.params} if suggestion.model == config.model else dict(suggestion.params)
    exclude = list(dict.fromkeys([*config.exclude, *suggestion.exclude]))
    return replace(config, model=suggestion.model, params=params, exclude=exclude)


def queue_suggestion(store, item_id: str, suggestion: Suggestion) -> Run:
    """Queue the suggested run (a group's suggestion: a group with the same repeats; its first member is returned).
    The caller starts the workers (jobs.executor_for(store).ensure_running())."""
    from workbench.jobs import submit_run

    return submit_run(store, suggested_config(store, item_id, suggestion))


def suggestion_command(store, item_id: str, suggestion: Suggestion) -> str:
    """The `train` command line that queues the same suggested run."""
    config = suggested_config(store, item_id, suggestion)
    words = ["python", "-m", "workbench", "train", "--dataset", config.dataset_id, "--target", config.target,
             "--model", config.model]
    if config.task != "auto":
        words += ["--task", config.task]
    for key, value in config.params.items():
        shown = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        words += ["--set", f"{key}={shown}"]
    for column in config.exclude:
        words += ["--exclude", column]
    if config.split.seed:
        words += ["--split-seed", str(config.split.seed)]
    if config.split.order_by:
        words += ["--split-by-time", config.split.order_by]
    if config.repeats > 1:
        words += ["--repeats", str(config.repeats)]
    return shlex.join(words)
