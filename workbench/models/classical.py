"""scikit-learn baselines. They see the same preprocessed rows (one-hot categoricals) as the linear model."""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge

from workbench.models.params import param
from workbench.tasks import Task


@dataclass(frozen=True)
class LogisticRegressionParams:
    C: float = param(1.0, "Inverse strength of the L2 penalty: smaller keeps the model simpler.",
                      label="Regularisation C", min=1e-6, max=1e6)
    max_iter: int = param(2000, "The most solver iterations.", label="Most iterations", advanced=True,
                          min=10, max=100_000)
    seed: int = param(0, "Random seed: the same seed gives the same model.", label="Random seed", advanced=True,
                      min=0, max=2**31 - 1)


@dataclass(frozen=True)
class RidgeParams:
    alpha: float = param(1.0, "Strength of the L2 penalty: larger keeps the model simpler.",
                         label="Regularisation alpha", min=0.0, max=1e6)
    seed: int = param(0, "Random seed: the same seed gives the same model.", label="Random seed", advanced=True,
                      min=0, max=2**31 - 1)


@dataclass(frozen=True)
class RandomForestParams:
    n_estimators: int = param(300, "Number of trees; more is steadier and slower.", label="Trees",
                                min=1, max=5000)
    max_depth: int = param(0, "Deepest a tree may grow (0: no limit).", label="Deepest tree",
                           zero="no limit", suggested=12, min=0, max=200)
    min_samples_leaf: int = param(1, "Fewest rows in a leaf; larger smooths predictions.",
                                  label="Fewest rows per leaf", min=1, max=10_000)
    max_features: float = param(0.5, "Share of features each split may consider.",
                                label="Share of features per split", min=0.01, max=1.0)
    seed: int = param(0, "Random seed: the same seed gives the same model.", label="Random seed", advanced=True,
                      min=0, max=2**31 - 1)


@dataclass(frozen=True)
class GradientBoostingParams:
    learning_rate: float = param(0.1, "How much each new tree corrects the previous ones.",
                                  label="Learning rate", min=1e-4, max=1.0)
    max_iter: int = param(500, "The most boosting rounds (trees); early stopping usually ends sooner.",
                          label="Most trees", min=1, max=10_000)
    max_leaf_nodes: int = param(31, "Leaves per tree; more captures finer interactions.",
                                label="Leaves per tree", min=2, max=4096)
    min_samples_leaf: int = param(20, "Fewest rows in a leaf; larger smooths predictions.",
                                  label="Fewest rows per leaf", min=1, max=10_000)
    l2_regularization: float = param(0.0, "L2 penalty on leaf values (0: off).",
                                       label="L2 regularisation", advanced=True, min=0.0, max=1e3)
    early_stopping: bool = param(True, "Stop adding trees when an internal validation score stops improving.",
                                label="Early stopping", advanced=True)
    balance_classes: bool = param(False, "Weigh each class by the inverse of its share, so a rare class counts as "
                                  "much as a common one (classification; raises balanced accuracy and recall of a "
                                  "rare class, at some cost in plain accuracy).", label="Balance classes",
                                  advanced=True)
    seed: int = param(0, "Random seed: the same seed gives the same model.", label="Random seed", advanced=True,
                      min=0, max=2**31 - 1)


def build_logistic_regression(task: str, p: LogisticRegressionParams):
    return LogisticRegression(C=p.C, max_iter=p.max_iter, random_state=p.seed)


def build_ridge(task: str, p: RidgeParams):
    return Ridge(alpha=p.alpha, random_state=p.seed)


def build_random_forest(task: str, p: RandomForestParams):
    cls = RandomForestRegressor if task == Task.REGRESSION else RandomForestClassifier
    return cls(n_estimators=p.n_estimators, max_depth=p.max_depth or None, min_samples_leaf=p.min_samples_leaf,
               max_features=p.max_features, random_state=p.seed, n_jobs=-1)


def build_gradient_boosting(task: str, p: GradientBoostingParams):
    common = {"learning_rate": p.learning_rate, "max_iter": p.max_iter, "max_leaf_nodes": p.max_leaf_nodes,
              "min_samples_leaf": p.min_samples_leaf, "l2_regularization": p.l2_regularization,
              "early_stopping": p.early_stopping, "random_state": p.seed}
    if task == Task.REGRESSION:
        return HistGradientBoostingRegressor(**common)
    return HistGradientBoostingClassifier(**common, class_weight="balanced" if p.balance_classes else None)
