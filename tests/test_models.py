"""The catalog: schemas, validation, and every model beating the trivial baseline with its defaults."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import UserError
from workbench.models.registry import MODELS, catalog, resolve_params
from workbench.runconfig import RunConfig
from workbench.runner import execute

CLASSIFIERS = [name for name, spec in MODELS.items() if "binary" in spec.tasks]
REGRESSORS = [name for name, spec in MODELS.items() if "regression" in spec.tasks]


def test_catalog_entries_have_a_schema_with_defaults_and_help():
    entries = {e["name"]: e for e in catalog()}
    assert set(entries) == {"linear", "mlp", "cnn", "rnn", "transformer", "logistic_regression", "ridge",
                            "random_forest", "gradient_boosting"}
    for entry in entries.values():
        assert entry["family"] in ("neural", "classical") and entry["description"]
        for p in entry["params"]:
            assert p["help"] and p["type"] in ("int", "float", "str", "bool", "int_list")
            assert p["choices"] or p["type"] in ("bool",) or p["min"] is not None
    neural = {p["name"] for p in entries["mlp"]["params"]}
    assert {"optimizer", "lr", "batch_size", "epochs", "weight_decay", "l1", "lr_schedule", "patience",
            "weight_averaging", "restore_best", "grad_clip", "seed", "device", "mixed_precision", "hidden_sizes", "activation",
            "dropout", "batch_norm", "init"} <= neural
    assert {"cell", "hidden_size", "num_layers", "bidirectional"} <= {p["name"] for p in entries["rnn"]["params"]}


def test_resolve_params_coerces_strings_from_the_cli():
    params = resolve_params("mlp", {"hidden_sizes": "128, 64", "lr": "0.01", "batch_norm": "true", "epochs": "5"})
    assert params["hidden_sizes"] == [128, 64] and params["lr"] == 0.01
    assert params["batch_norm"] is True and params["epochs"] == 5
    assert params["optimizer"] == "adamw"  # defaults filled in


@pytest.mark.parametrize("model,overrides,message", [
    ("nope", {}, "no model called 'nope'"),
    ("mlp", {"learning_rate": "1"}, "no hyperparameter 'learning_rate'"),
    ("mlp", {"lr": "5"}, "'lr' must be at most 1.0"),
    ("mlp", {"dropout": "-0.1"}, "'dropout' must be at least 0.0"),
    ("mlp", {"activation": "swish"}, "'activation' must be one of"),
    ("mlp", {"epochs": "ten"}, "'epochs' must be a whole number"),
    ("mlp", {"hidden_sizes": "0,5"}, "must be at least 1"),
    ("transformer", {"d_model": "30"}, "multiple of n_heads"),
])
def test_resolve_params_rejects_bad_settings(model, overrides, message):
    with pytest.raises(UserError, match=message):
        resolve_params(model, overrides)


def _config(model, target):
    return RunConfig(dataset_id="test", target=target, model=model)


@pytest.mark.parametrize("model", CLASSIFIERS)
def test_every_classifier_beats_the_baseline_with_defaults(model, multiclass_frame, tmp_path):
    outcome = execute(_config(model, "label"), multiclass_frame, tmp_path / model)
    assert outcome.status == "succeeded", outcome.error
    accuracy, baseline = outcome.metrics["test"]["accuracy"], outcome.baseline["test"]["accuracy"]
    assert accuracy > baseline + 0.3, (accuracy, baseline)


@pytest.mark.parametrize("model", REGRESSORS)
def test_every_regressor_beats_the_baseline_with_defaults(model, regression_frame, tmp_path):
    outcome = execute(_config(model, "y"), regression_frame, tmp_path / model)
    assert outcome.status == "succeeded", outcome.error
    rmse, baseline = outcome.metrics["test"]["rmse"], outcome.baseline["test"]["rmse"]
    assert rmse < 0.6 * baseline, (rmse, baseline)


def test_cpu_dropout_drops_the_asked_share_and_masks_the_gradient():
    """The byte-mask dropout of the CPU: the share dropped matches p, kept values are scaled to keep the mean, the
    gradient flows only through kept values, and it does nothing when evaluating."""
    from workbench.models.layers import Dropout

    torch.manual_seed(0)
    layer = Dropout(0.25)
    x = torch.ones(512, 512, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    assert torch.allclose(y[kept], torch.tensor(256 / 192))
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)
    layer.eval()
    assert torch.equal(layer(x), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cpu_dropout_mask_keeps_exactly_the_bytes_at_or_above_the_threshold(dtype):
    from workbench.models.layers import keep_mask

    byte = torch.arange(256, dtype=torch.uint8)
    mask = keep_mask(byte, 26, dtype)
    assert mask.dtype == dtype
    assert torch.equal(mask == 0, byte < 26)
    assert torch.equal(mask[26:], torch.full((230,), 256 / 230, dtype=dtype))
