"""Per-row explanations: how much each original column moved one prediction away from a typical row's.

For every explained row and every input column of the model, a contribution in the model's output space: for a
binary target the probability of the second (positive) class, for a multiclass target the probability of the
predicted class, for regression the target's units. Contributions are Shapley values of the original columns, so
they add up exactly to the row's prediction minus a baseline:

- random forests (every task) and boosted regression trees: shap's TreeExplainer, path-dependent; the baseline is
  the trees' average prediction over the rows they were grown on (nothing beyond the saved model is needed).
- every other model: captum's ShapleyValueSampling over the original columns against the *typical row* (each
  number and date at its median, each category and true/false at its most common value, over up to BACKGROUND_ROWS
  rows of the run's dataset); the baseline is the model's prediction for that row. For linear and logistic models
  the sampled values are exact (every order of the columns gives the same contributions).

shap 0.51's TreeExplainer does not add up on scikit-learn 1.9's trees when given a background row (interventional:
off by up to 0.3 in probability and 0.06 in regression units in our check), and on boosted classifiers it explains
log-odds only, so boosted classifiers are sampled too.

Columns are explained as the user knows them: a one-hot group, a category's embedding code and a date's parts
(year, month, day, weekday, hour) each count as their one original column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.devices import one_thread
from workbench.errors import UserError
from workbench.ingest import ingest_bytes
from workbench.models.ensemble import Ensemble
from workbench.predict import Prediction, TrainedModel, load_model_for_run
from workbench.prepare import DATE_PARTS
from workbench.tasks import Task

MAX_EXPLAINED_ROWS = 2_000
BACKGROUND_ROWS = 2_000  # rows of the dataset the typical row is read from
SHAPLEY_ORDERS = 25  # random orders of the columns that captum's Shapley sampling averages over
CONTRIBUTION_PREFIX = "contribution: "
SENTENCE_COLUMN = "explanation"
TOP_REASONS = 2  # columns named in a sentence
MIN_NAMED_SHARE = 0.02


@dataclass
class Explanation:
    contributions: pd.DataFrame  # one row per explained row, one column per input column of the model
    predicted: np.ndarray  # the explained value of each row (a probability, or the target's units)
    baseline: np.ndarray  # per row, the reference's value of the same output (the class may differ by row)
    explained_class: list[str | None]  # per row: whose probability is explained (None for regression)
    sentences: list[str]
    typical: pd.DataFrame  # the typical row (the reference of the sampled explanations)
    method: str  # in words, for help texts
    baseline_words: str  # what the baseline is: "a typical row", or the trees' "average" over their training rows

    @property
    def output(self) -> str:
        """What the contributions are in, in words."""
        classes = {c for c in self.explained_class if c is not None}
        if not classes:
            return "the predicted value, in the target's units"
        return "the predicted probability of " + ("the predicted class" if len(classes) > 1 else f"'{classes.pop()}'")


def column_groups(model: TrainedModel) -> tuple[np.ndarray, np.ndarray]:
    """For each column of the preprocessed numeric matrix and each category-code column, the position of the input
    column (in `model.input_columns`) it was made from."""
    preprocessor = model.preprocessor
    features = preprocessor.features
    position = {name: i for i, name in enumerate(model.input_columns)}
    numeric = [position[name] for name in features.numeric]
    for name in features.datetime:
        numeric += [position[name]] * (len(DATE_PARTS) + (name in features.datetime_hour))
    numeric += [position[name] for name in features.boolean]
    codes = []
    if preprocessor.categorical_mode == "onehot":
        if features.categorical:
            encoder = preprocessor.transformer_.named_transformers_["categorical"].named_steps["encode"]
            for name, categories, rare in zip(features.categorical, encoder.categories_,
                                              encoder.infrequent_categories_, strict=True):
                width = len(categories) if rare is None else len(categories) - len(rare) + 1  # rare ones: one column
                numeric += [position[name]] * width
    else:
        codes = [position[name] for name in features.categorical]
    if len(numeric) != preprocessor.n_numeric_out_ or len(codes) != len(preprocessor.cardinalities_):
        raise UserError("This model's preprocessing cannot be traced back to its columns, so it cannot be explained.")
    return np.asarray(numeric, dtype="int64"), np.asarray(codes, dtype="int64")


def typical_row(model: TrainedModel, reference: pd.DataFrame) -> pd.DataFrame:
    """One row: each number and date at its median, each category and true/false at its most common value, over
    `reference` (rows of the training data; a seeded sample of BACKGROUND_ROWS when there are more)."""
    if len(reference) > BACKGROUND_ROWS:
        reference = reference.sample(BACKGROUND_ROWS, random_state=0)
    frame = model.check_schema(reference).frame
    features = model.preprocessor.features
    values: dict[str, object] = {}
    for name in model.input_columns:
        column = frame[name]
        if name in features.numeric or name in features.datetime:
            values[name] = column.median()
        else:
            common = column.dropna().astype(str if name in features.categorical else column.dtype).mode()
            values[name] = common.iloc[0] if len(common) else None
    return pd.DataFrame({name: pd.Series([value], dtype=frame[name].dtype if name not in features.categorical
                                         else object) for name, value in values.items()})


def explain(model: TrainedModel, frame: pd.DataFrame, typical: pd.DataFrame) -> Explanation:
    """Contributions of each input column to each row's prediction (see the module's docstring).
    `frame`: rows already checked against the training schema (`TrainedModel.check_schema(...).frame`);
    `typical`: `typical_row`'s row, the reference of every model the trees' own average is not."""
    _check_size(len(frame))
    # One thread: the many small predictions spend more time waking OpenMP's threads than predicting (a boosted
    # model's 200 rows took 50 ms with every core, 3 ms with one, on a busy machine).
    with one_thread():
        return _explain(model, frame, typical)


def _check_size(n_rows: int) -> None:
    if n_rows > MAX_EXPLAINED_ROWS:
        raise UserError(f"At most {MAX_EXPLAINED_ROWS:,} rows can be explained at once, and this has {n_rows:,}; "
                        "explain a smaller part of the file.")


def explained_classes(model: TrainedModel, predictions: np.ndarray) -> np.ndarray | None:
    """Per row, the class whose probability is explained: binary, always the positive class, so a column's sign
    means the same on every row; multiclass, the predicted one. None for regression."""
    if model.task == Task.REGRESSION:
        return None
    return np.ones(len(predictions), dtype="int64") if model.task == Task.BINARY else predictions.argmax(axis=1)


def _explain(model: TrainedModel, frame: pd.DataFrame, typical: pd.DataFrame,
             target: np.ndarray | None = None) -> Explanation:
    """`target`: the explained class of each row (an ensemble's, for its members), else `explained_classes`."""
    if isinstance(model.model, Ensemble):
        return _explain_ensemble(model, frame, typical)
    x_num, x_cat = model.preprocessor.transform(frame.reset_index(drop=True))
    predictions = model.predict_arrays(x_num, x_cat)
    rows = np.arange(len(frame))
    target = explained_classes(model, predictions) if target is None else target
    predicted = predictions if target is None else predictions[rows, target]
    numeric_groups, code_groups = column_groups(model)
    if _tree_explained(model):
        per_numeric, baseline = _tree_values(model, x_num, target)
        per_code = np.zeros((len(frame), 0))
        method, baseline_words = "exact Shapley values of the trees (shap's TreeExplainer)", "average"
    else:
        base_num, base_cat = model.preprocessor.transform(typical.reset_index(drop=True))
        typical_prediction = model.predict_arrays(base_num, base_cat)
        baseline = np.full(len(frame), typical_prediction[0]) if target is None else typical_prediction[0, target]
        per_numeric, per_code = _sampled_values(model, x_num, x_cat, base_num, base_cat, target, numeric_groups,
                                                code_groups)
        method = f"Shapley values sampled over {SHAPLEY_ORDERS} orders of the columns (captum)"
        baseline_words = "a typical row"
    values = np.zeros((len(model.input_columns), len(frame)))
    np.add.at(values, numeric_groups, per_numeric.T)
    np.add.at(values, code_groups, per_code.T)
    contributions = pd.DataFrame(values.T, columns=model.input_columns)
    return _explanation(model, frame, typical, contributions, predicted, baseline, target, method, baseline_words)


def _explanation(model: TrainedModel, frame: pd.DataFrame, typical: pd.DataFrame, contributions: pd.DataFrame,
                 predicted: np.ndarray, baseline: np.ndarray, target: np.ndarray | None, method: str,
                 baseline_words: str) -> Explanation:
    """The explanation with a sentence per row."""
    classes = [None] * len(frame) if target is None else [model.classes[k] for k in target]
    sentences = [sentence(model, frame.iloc[i], typical.iloc[0], contributions.iloc[i], predicted[i], baseline[i],
                          classes[i], baseline_words) for i in range(len(frame))]
    return Explanation(contributions, predicted, baseline, classes, sentences, typical, method, baseline_words)


def _explain_ensemble(model: TrainedModel, frame: pd.DataFrame, typical: pd.DataFrame) -> Explanation:
    """Shapley values add up over a weighted sum of models: an ensemble's contributions are its runs'
    contributions (each run explaining the ensemble's class of the row) weighed as the ensemble weighs their
    predictions, and they add up to the ensemble's prediction minus the runs' baselines weighed the same way."""
    target = explained_classes(model, model.predict_proba(frame))
    weights = model.model.weights
    parts = [_explain(member, frame[member.input_columns], typical[member.input_columns], target)
             for member in model.members]
    contributions = sum(w * p.contributions.reindex(columns=model.input_columns, fill_value=0.0)
                        for p, w in zip(parts, weights, strict=True))
    predicted = sum(w * p.predicted for p, w in zip(parts, weights, strict=True))
    baseline = sum(w * p.baseline for p, w in zip(parts, weights, strict=True))
    words = {p.baseline_words for p in parts}
    baseline_words = words.pop() if len(words) == 1 else "its runs' references"
    methods = "; ".join(sorted({p.method for p in parts}))
    return _explanation(model, frame, typical, contributions, predicted, baseline, target,
                        f"its runs' explanations, weighed as the ensemble weighs them ({methods})", baseline_words)


def _tree_explained(model: TrainedModel) -> bool:
    """Forests (their leaves hold class frequencies or values) and boosted regression trees, whose outputs shap's
    TreeExplainer explains exactly in the explained space; boosted classifiers' trees add up log-odds instead."""
    name = model.config["model"]
    return name == "random_forest" or (name == "gradient_boosting" and model.task == Task.REGRESSION)


def _tree_values(model: TrainedModel, x_num: np.ndarray,
                 target: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """shap's exact Shapley values per preprocessed column (path-dependent: against the average over the rows the
    trees were grown on), and that average per row. In probabilities (a forest's leaves hold class frequencies)
    or the target's units."""
    import shap  # not at the top: slow to import, and only explanations need it

    explainer = shap.TreeExplainer(model.model, feature_perturbation="tree_path_dependent", model_output="raw")
    values = np.asarray(explainer.shap_values(x_num, check_additivity=False))
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype="float64"))
    if target is None:
        return values, np.full(len(x_num), expected[0])
    rows = np.arange(len(x_num))
    return values[rows, :, target], expected[target]  # (rows, features, classes): the explained class of each row


def _sampled_values(model: TrainedModel, x_num: np.ndarray, x_cat: np.ndarray, base_num: np.ndarray,
                    base_cat: np.ndarray, target: np.ndarray | None, numeric_groups: np.ndarray,
                    code_groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """captum's Shapley value sampling with the input columns as players: each preprocessed column moves from the
    typical row's value to the row's value together with the other columns made from the same input column."""
    from captum.attr import ShapleyValueSampling  # not at the top: slow to import

    has_codes = x_cat.shape[1] > 0

    def forward(num: torch.Tensor, *cat: torch.Tensor) -> torch.Tensor:
        codes = cat[0] if has_codes else torch.zeros((len(num), 0), dtype=torch.int64)
        return torch.as_tensor(model.predict_arrays(num.numpy(), codes.numpy()), dtype=torch.float64)

    inputs = (torch.as_tensor(x_num),) + ((torch.as_tensor(x_cat),) if has_codes else ())
    baselines = (torch.as_tensor(base_num),) + ((torch.as_tensor(base_cat),) if has_codes else ())
    masks = (torch.as_tensor(numeric_groups)[None, :],) + ((torch.as_tensor(code_groups)[None, :],) if has_codes
                                                            else ())
    n_players = int(max(numeric_groups.max(initial=-1), code_groups.max(initial=-1))) + 1
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)  # the same file gets the same explanation
        attributions = ShapleyValueSampling(forward).attribute(
            inputs, baselines=baselines, target=None if target is None else torch.as_tensor(target).tolist(),
            feature_mask=masks, n_samples=SHAPLEY_ORDERS,
            perturbations_per_eval=max(1, min(n_players, 4096 // max(1, len(x_num)))))
    numeric = attributions[0].numpy()
    codes = attributions[1].numpy() if has_codes else np.zeros((len(x_num), 0))
    # captum gives each preprocessed column its group's whole value; keep it once per group (on its first column)
    return _once_per_group(numeric, numeric_groups), _once_per_group(codes, code_groups)


def _once_per_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    first = np.zeros(len(groups), dtype=bool)
    first[np.unique(groups, return_index=True)[1]] = True
    return np.where(first[None, :], values, 0.0)


def sentence(model: TrainedModel, row: pd.Series, typical: pd.Series, contributions: pd.Series, predicted: float,
             baseline: float, explained_class: str | None, baseline_words: str = "a typical row") -> str:
    """'Predicted 'churns' (probability of 'churns' 0.81; a typical row 0.35) mostly because 'months_active' is
    low (+0.22) and 'plan' is 'basic' (+0.15).' A column is named when it moved the prediction by at least
    MIN_NAMED_SHARE of all the columns' moves together (and, for a probability, at least 0.005)."""
    if explained_class is None:
        start = f"Predicted {_number(predicted)} ({baseline_words} {_number(baseline)})"
    elif model.task == Task.BINARY:
        label = model.classes[1] if predicted > 0.5 else model.classes[0]  # as argmax: a tie is the first class
        start = f"Predicted '{label}' (probability of '{explained_class}' {predicted:.2f}; {baseline_words} {baseline:.2f})"
    else:
        start = f"Predicted '{explained_class}' ({predicted:.2f}; {baseline_words} {baseline:.2f})"
    sizes = contributions.abs()
    least = max(MIN_NAMED_SHARE * float(sizes.sum()), 0.0 if explained_class is None else 0.005)
    named = [name for name in sizes.sort_values(ascending=False, kind="stable").index[:TOP_REASONS]
             if sizes[name] > 0 and sizes[name] >= least]
    if not named:
        return f"{start}: about the same as {baseline_words}." if baseline_words == "a typical row" else \
            f"{start}: no column moved it much."
    signed = _signed_probability if explained_class is not None else _signed
    reasons = [f"{_describe(model, name, row[name], typical[name])} ({signed(contributions[name])})"
               for name in named]
    return f"{start} mostly because {' and '.join(reasons)}."


def _describe(model: TrainedModel, name: str, value: object, typical: object) -> str:
    features = model.preprocessor.features
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return f"'{name}' is missing"
    if name in features.numeric or name in features.datetime:
        if pd.isna(typical) or value == typical:
            shown = value.date().isoformat() if isinstance(value, pd.Timestamp) else _number(value)
            return f"'{name}' is {shown}"
        if name in features.datetime:
            return f"'{name}' is {'late' if value > typical else 'early'}"
        return f"'{name}' is {'high' if value > typical else 'low'}"
    if name in features.boolean:
        return f"'{name}' is {'true' if value else 'false'}"
    return f"'{name}' is '{value}'"


def _number(value: float) -> str:
    value = float(value)
    return f"{value:,.3g}" if abs(value) < 1e6 or not math.isfinite(value) else f"{value:.3g}"


def _signed(value: float) -> str:
    return f"{float(value):+,.3g}"


def _signed_probability(value: float) -> str:
    return f"{float(value):+.2f}"


def with_contributions(table: pd.DataFrame, explanation: Explanation) -> pd.DataFrame:
    """`table` (a prediction's rows, in order) with a `contribution: <column>` column per input column and the
    sentence in `explanation`."""
    out = table.copy()
    for name in explanation.contributions.columns:
        out[CONTRIBUTION_PREFIX + name] = explanation.contributions[name].to_numpy()
    out[SENTENCE_COLUMN] = explanation.sentences
    return out


def explain_csv(store, run_id: str, data: bytes) -> tuple[Prediction, Explanation]:
    """Predict and explain a CSV file's rows (at most MAX_EXPLAINED_ROWS) with a finished run, against the typical
    row of the run's dataset."""
    model = load_model_for_run(store, run_id)
    ingested = ingest_bytes(data)
    _check_size(len(ingested.table))
    prediction = model.predict_rows(ingested.table, ingested.unread)
    checked = model.check_schema(ingested.table, ingested.unread).frame
    return prediction, explain(model, checked, run_typical_row(store, run_id, model))


def explain_rows(store, run_id: str, frame: pd.DataFrame) -> Explanation:
    """Explain rows given as the user's columns (a "what if" row, or rows picked from a predicted file)."""
    model = load_model_for_run(store, run_id)
    _check_size(len(frame))
    return explain(model, model.check_schema(frame).frame, run_typical_row(store, run_id, model))


def explain_file_rows(store, run_id: str, data: bytes, rows: list[int]) -> Explanation:
    """Explain some rows (0-based positions) of a CSV file the run predicted."""
    table = ingest_bytes(data).table
    if any(not 0 <= i < len(table) for i in rows):
        raise UserError(f"The file has rows 1 to {len(table):,}; choose one of them.")
    return explain_rows(store, run_id, table.iloc[rows])


def run_typical_row(store, run_id: str, model: TrainedModel) -> pd.DataFrame:
    """`typical_row` over the rows of the dataset the run was trained on."""
    from workbench.datasets import load_table

    return typical_row(model, load_table(store, store.get_run(run_id, with_epochs=False).dataset_id))
