"""The model catalog: one dict. Adding an architecture is one module plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workbench.errors import UserError
from workbench.models import classical
from workbench.models.cnn import CNN, CNNParams
from workbench.models.ensemble import EnsembleParams
from workbench.models.linear import LinearModel, LinearParams
from workbench.models.mlp import MLP, MLPParams
from workbench.models.params import resolve, schema
from workbench.models.rnn import RNN, RNNParams
from workbench.models.tabm import TabM, TabMParams
from workbench.models.transformer import FTTransformer, TransformerParams
from workbench.prepare import resolve_scaling
from workbench.runconfig import PrepConfig

ALL_TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "neural" (PyTorch), "classical" (scikit-learn) or "ensemble" (of finished runs)
    description: str
    when_to_use: str  # one line for a newcomer choosing between models
    params: type
    build: Callable | None  # neural: (n_numeric, cardinalities, n_outputs, params) -> nn.Module; classical: (task,
    # params) (params: an instance of `params`); None for the ensemble, made of other runs (workbench.ensembles)
    categorical: str = "embedding"  # how categories reach the model: "embedding" codes or "onehot" columns
    scaling: str | None = None  # what 'auto' scaling of numbers is for this model; None: by family (prepare.py)
    tasks: tuple[str, ...] = ALL_TASKS


MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("linear", "neural", "Linear or logistic regression trained by gradient descent: fast, a good floor.",
              "A quick floor to beat, or when the answer is a sum of the features' effects.",
              LinearParams, LinearModel, categorical="onehot"),
    ModelSpec("mlp", "neural", "Multi-layer perceptron: layers of neurons; the usual first neural network.",
              "The first neural network to try, once gradient boosting has set the bar.",
              MLPParams, MLP, scaling="robust"),
    ModelSpec("cnn", "neural", "1-D convolutions over per-feature embeddings: looks at neighbouring features.",
              "When neighbouring columns belong together (readings along a spectrum or over time).",
              CNNParams, CNN),
    ModelSpec("rnn", "neural", "Recurrent network (GRU or LSTM) reading the features one after another.",
              "When the columns form a sequence (a value per month); otherwise rarely better than an MLP.",
              RNNParams, RNN),
    ModelSpec("transformer", "neural", "FT-Transformer: attention between per-feature tokens; strong but slower.",
              "The strongest neural model on many tables, when you can wait for it.",
              TransformerParams, FTTransformer),
    ModelSpec("tabm", "neural", "TabM: 32 MLPs sharing most of their weights, trained together and averaged.",
              "The strongest neural model on many tables (on par with tuned boosted trees in its paper); slower "
              "than an MLP.", TabMParams, TabM),
    ModelSpec("logistic_regression", "classical", "scikit-learn logistic regression (classification).",
              "A fast, explainable floor for classification.",
              classical.LogisticRegressionParams, classical.build_logistic_regression, categorical="onehot",
              tasks=("binary", "multiclass")),
    ModelSpec("ridge", "classical", "scikit-learn ridge regression (regression).",
              "A fast, explainable floor for predicting a number.",
              classical.RidgeParams, classical.build_ridge, categorical="onehot", tasks=("regression",)),
    ModelSpec("random_forest", "classical", "Random forest: many decision trees voting; robust with no tuning.",
              "A robust second opinion next to gradient boosting; slower on large tables.",
              classical.RandomForestParams, classical.build_random_forest, categorical="onehot"),
    ModelSpec("gradient_boosting", "classical", "Histogram gradient-boosted trees: the bar to beat on tabular data.",
              "Start here: usually the best score on a table, in seconds.",
              classical.GradientBoostingParams, classical.build_gradient_boosting, categorical="onehot"),
    ModelSpec("ensemble", "ensemble", "A weighted average of finished runs, chosen greedily on the validation rows.",
              "Last: after several models have trained on the same rows, it usually beats the best of them.",
              EnsembleParams, None, categorical="onehot"),
)}
# What the Train form picks first: on tables, boosted trees usually score best and train in seconds (issue 20: on a
# 54,000-row table it beat the default MLP in under a second against a minute).
DEFAULT_MODEL = "gradient_boosting"


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise UserError(f"There is no model called '{name}'; choose one of {', '.join(MODELS)}.")
    return MODELS[name]


def resolve_params(name: str, overrides: dict[str, Any]) -> Any:
    """Defaults filled in, strings coerced, ranges checked: the full hyperparameters of a run, as an instance of the
    model's params dataclass (NeuralParams for the neural models)."""
    return resolve(name, get_model(name).params, overrides)


def catalog() -> list[dict[str, Any]]:
    """Each model's names and schema, and what 'auto' preprocessing is for it (shown next to the 'auto' choices)."""
    return [{"name": s.name, "family": s.family, "description": s.description, "when_to_use": s.when_to_use,
             "tasks": list(s.tasks), "params": schema(s.params),
             "auto_scaling": resolve_scaling(PrepConfig(scaling="auto"), s.family, s.categorical, s.scaling),
             "auto_categorical": s.categorical} for s in MODELS.values()]
