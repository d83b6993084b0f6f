"""Hyperparameters as dataclasses. The schema the UI renders and the CLI validates comes from here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from workbench.errors import UserError

P = TypeVar("P")
_UNSET = object()


def param(default: Any, help: str, *, label: str, advanced: bool = False, zero: str | None = None,
          suggested: Any = None, min: float | None = None, max: float | None = None, choices: tuple | None = None,
          kind: str | None = None, placeholder: str | None = None, absent_means: Any = _UNSET) -> Any:
    """A hyperparameter field: its default, a plain `label` and a one-line `help` for non-experts, its range or
    choices, and whether the form tucks it under "Advanced". `zero` names what 0 means where 0 is a switch ("automatic",
    "off"): the form shows it as a toggle, with `suggested` as the value it offers when the toggle is turned off.
    `placeholder`: what an empty text setting means, shown in its empty box. `absent_means`: for a setting whose
    default is not what runs did before the setting existed, that value (a run saved then loads as it trained)."""
    meta = {"help": help, "label": label, "advanced": advanced, "zero": zero, "suggested": suggested, "min": min,
            "max": max, "choices": choices, "kind": kind, "placeholder": placeholder, "absent_means": absent_means}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _kind(f: dataclasses.Field) -> str:
    if f.metadata.get("kind"):
        return f.metadata["kind"]
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    for python_type, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if isinstance(default, python_type):
            return name
    return "int_list"


def schema(params_cls: type) -> list[dict[str, Any]]:
    out = []
    for f in fields(params_cls):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        out.append({
            "name": f.name, "label": f.metadata["label"], "type": _kind(f), "default": default,
            "help": f.metadata.get("help", ""), "advanced": f.metadata["advanced"], "zero": f.metadata["zero"],
            "suggested": f.metadata["suggested"], "min": f.metadata.get("min"), "max": f.metadata.get("max"),
            "choices": list(f.metadata["choices"]) if f.metadata.get("choices") else None,
            "placeholder": f.metadata.get("placeholder"),
        })
    return out


def coerce(name: str, kind: str, value: Any) -> Any:
    """Turn a CLI/form value (often a string) into the field's type, or say plainly what is wrong."""
    try:
        if kind == "bool":
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return lowered in ("true", "1", "yes")
            return bool(value)
        if kind == "int":
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if kind == "float":
            return float(value)
        if kind == "int_list":
            items = value.replace(" ", "").split(",") if isinstance(value, str) else list(value)
            return [int(v) for v in items if str(v) != ""]
        return str(value)
    except (TypeError, ValueError):
        expected = {"int": "a whole number", "float": "a number", "bool": "true or false",
                    "int_list": "whole numbers separated by commas"}.get(kind, "text")
        raise UserError(f"'{name}' must be {expected}, not '{value}'.") from None


def check(name: str, spec: dict[str, Any], value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    if spec["type"] == "int_list" and not values:
        raise UserError(f"'{name}' needs at least one number.")
    for v in values:
        if spec["choices"] and v not in spec["choices"]:
            raise UserError(f"'{name}' must be one of {', '.join(map(str, spec['choices']))}, not '{v}'.")
        if spec["min"] is not None and v < spec["min"]:
            raise UserError(f"'{name}' must be at least {spec['min']}, not {v}.")
        if spec["max"] is not None and v > spec["max"]:
            raise UserError(f"'{name}' must be at most {spec['max']}, not {v}.")


def resolve(model_name: str, params_cls: type[P], overrides: dict[str, Any]) -> P:
    """The hyperparameters of a run as an instance of the model's dataclass: defaults filled in, values coerced to
    their types and checked against their ranges."""
    specs = {s["name"]: s for s in schema(params_cls)}
    unknown = [k for k in overrides if k not in specs]
    if unknown:
        raise UserError(f"'{model_name}' has no hyperparameter '{unknown[0]}'; it has {', '.join(specs)}.")
    values = {}
    for name, spec in specs.items():
        value = coerce(name, spec["type"], overrides[name]) if name in overrides else spec["default"]
        check(name, spec, value)
        values[name] = value
    return params_cls(**values)


def saved(params_cls: type[P], values: dict[str, Any]) -> P:
    """The hyperparameters a saved run trained with, as its dataclass. Settings that a later release added take
    what they mean when absent (`param`'s `absent_means`), else their defaults; settings it removed are dropped (the
    saved values are not checked again: they already ran)."""
    absent = {f.name: f.metadata["absent_means"] for f in fields(params_cls)
              if f.metadata.get("absent_means", _UNSET) is not _UNSET}
    known = {f.name for f in fields(params_cls)}
    return params_cls(**{**absent, **{k: v for k, v in values.items() if k in known}})


def as_dict(params: Any) -> dict[str, Any]:
    """A plain JSON-able copy, for the store and the saved config."""
    return dataclasses.asdict(params)


# -- shared by every neural model ------------------------------------------------------------------

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("none", "cosine", "flat_cosine", "plateau")
DEVICES = ("auto", "cpu", "cuda", "mps")


PATIENCE_HELP = "Training stops after this many epochs in a row without a better validation score (0: never stop early)."
PATIENCE_LABEL = "Stop after N epochs without improvement"
LEARNING_RATE_HELP = "Step size of each update: too high and training diverges, too low and it crawls."


@dataclass(frozen=True)
class NeuralParams:
    optimizer: str = param("adamw", "How weights are updated: AdamW is a safe default; SGD uses momentum 0.9.",
                           label="Optimizer", advanced=True, choices=OPTIMIZERS)
    lr: float = param(1e-3, LEARNING_RATE_HELP, label="Learning rate", min=1e-6, max=1.0)
    batch_size: int = param(0, "Rows per update; larger is faster per epoch. Automatic (0) picks 256 (fewer on "
                            "tables under 4,096 rows, for 16 updates per epoch), 512 from 8,192 and 1024 from "
                            "200,000 training rows, at twice the learning rate.",
                            label="Batch size", advanced=True, zero="automatic", suggested=256, min=0, max=65536)
    epochs: int = param(200, "The most passes over the training rows; early stopping usually ends sooner.",
                        label="Most epochs", min=1, max=100_000)
    weight_decay: float = param(1e-4, "L2 penalty that keeps weights small, against overfitting.",
                                label="Weight decay (L2)", advanced=True, min=0.0, max=1.0)
    adam_beta2: float = param(0.999, "How long Adam's memory of squared gradients is (AdamW and Adam only): "
                              "lower forgets sooner and reacts faster to changes.", label="Adam beta2", advanced=True,
                              min=0.5, max=0.9999)
    label_smoothing: float = param(0.0, "Classification only: train towards this much less certain targets, "
                                   "against overconfidence (0: off).", label="Label smoothing", advanced=True,
                                   min=0.0, max=0.5)
    l1: float = param(0.0, "L1 penalty that pushes unhelpful weights to zero (0: off).", label="L1 penalty",
                      advanced=True, min=0.0, max=1.0)
    lr_schedule: str = param("none", "How the learning rate changes: cosine decays it, flat_cosine keeps it for "
                             "the first half of the epochs and then decays it, plateau cuts it when validation stops "
                             "improving.", label="Learning-rate schedule", advanced=True, choices=SCHEDULES)
    patience: int = param(16, PATIENCE_HELP, label=PATIENCE_LABEL, zero="never", suggested=16, min=0, max=100_000)
    weight_averaging: float = param(0.5, "Validate and keep a running average of the weights, which forgets updates "
                                    "older than about this many epochs (0.5: the last half epoch; 0: off): steadier "
                                    "scores, usually reached sooner.", label="Weight averaging horizon (epochs)",
                                    advanced=True, zero="off", suggested=0.5, min=0.0, max=100.0)
    restore_best: bool = param(True, "Keep the weights of the best validation epoch, not the last one.",
                               label="Keep the best epoch's weights", advanced=True)
    grad_clip: float = param(1.0, "Largest allowed gradient norm, to keep training stable (0: no clipping).",
                             label="Gradient clipping", advanced=True, zero="off", suggested=1.0, min=0.0, max=1000.0)
    seed: int = param(0, "Random seed: the same seed gives the same run on a CPU.", label="Random seed",
                      advanced=True, min=0, max=2**31 - 1)
    device: str = param("auto", "Where to train: auto picks a GPU when there is one.", label="Device", advanced=True,
                        choices=DEVICES)
    mixed_precision: str = param("auto", "Faster bf16 arithmetic (auto: on for a CUDA GPU and for CPUs that do bf16 "
                                 "in hardware).", label="Mixed precision", advanced=True, choices=("auto", "on", "off"))

    def for_rows(self, n_train: int) -> NeuralParams:
        """These settings with the automatic values that the model's build takes from the training rows chosen (the
        batch size and learning rate are chosen by the training loop, `training.batch_and_lr`)."""
        return self
