"""The catalog: schemas, validation, and every model beating the trivial baseline with its defaults."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workbench.errors import UserError
from workbench.models.registry import MODELS, catalog, resolve_params
from workbench.runconfig import RunConfig
from workbench.runner import execute

# Models trained from a table (the ensemble is made of other runs: tests/test_ensemble.py)
CLASSIFIERS = [name for name, spec in MODELS.items() if "binary" in spec.tasks and spec.family != "ensemble"]
REGRESSORS = [name for name, spec in MODELS.items() if "regression" in spec.tasks and spec.family != "ensemble"]


def test_catalog_entries_have_a_schema_with_defaults_and_help():
    entries = {e["name"]: e for e in catalog()}
    assert set(entries) == {"linear", "mlp", "cnn", "rnn", "transformer", "tabm", "logistic_regression", "ridge",
                            "random_forest", "gradient_boosting", "ensemble"}
    for entry in entries.values():
        assert entry["family"] in ("neural", "classical", "ensemble") and entry["description"]
        for p in entry["params"]:
            assert p["help"] and p["type"] in ("int", "float", "str", "bool", "int_list")
            # free text: only the ensemble's run ids
            assert p["choices"] or p["type"] in ("bool",) or p["min"] is not None or p["name"] == "members"
    neural = {p["name"] for p in entries["mlp"]["params"]}
    assert {"optimizer", "lr", "batch_size", "epochs", "weight_decay", "l1", "lr_schedule", "patience",
            "weight_averaging", "restore_best", "grad_clip", "seed", "device", "mixed_precision", "hidden_sizes", "activation",
            "dropout", "batch_norm", "init"} <= neural
    assert {"cell", "hidden_size", "num_layers", "bidirectional"} <= {p["name"] for p in entries["rnn"]["params"]}


COUNT_WORDS = ("this many", "how many", "number of")
SHARE_WORDS = ("share of", "fraction of", "percentage")


@pytest.mark.parametrize("entry", catalog(), ids=lambda e: e["name"])
def test_every_param_has_a_plain_label_and_a_help_that_fits_its_type_and_default(entry):
    basic = [p for p in entry["params"] if not p["advanced"]]
    assert 1 <= len(basic) <= 5, "the form shows about five settings up front"
    assert entry["when_to_use"]
    for p in entry["params"]:
        label, about = p["label"], p["help"].lower()
        assert label and label[0].isupper() and "_" not in label, p["name"]
        assert about.endswith(".") and len(about) > 20, p["name"]
        if any(word in about for word in COUNT_WORDS) and p["type"] == "float":
            # a float setting may be a horizon in epochs (0.5 epochs), but then the help says what 0.5 means
            assert f"{p['default']}:" in about, f"{p['name']} is a number described as a count"
        if any(word in about for word in SHARE_WORDS):
            assert p["type"] == "float" and p["max"] is not None and p["max"] <= 1, f"{p['name']}: a share"
        if p["type"] == "int" and p["min"] == 0 and p["name"] != "seed":
            assert p["zero"], f"{p['name']}: a count where 0 is a switch is shown as a toggle"
        if p["zero"]:  # the help says what 0 does, and the toggle offers a real value when turned off
            assert re.search(r"\b0[:)]", about), p["name"]
            assert p["suggested"] not in (None, 0) and p["min"] == 0, p["name"]
        labels = [q["label"] for q in entry["params"]]
        assert len(set(labels)) == len(labels), "two settings with one label"


def test_resolve_params_coerces_strings_from_the_cli():
    params = resolve_params("mlp", {"hidden_sizes": "128, 64", "lr": "0.01", "batch_norm": "true", "epochs": "5"})
    assert params.hidden_sizes == [128, 64] and params.lr == 0.01
    assert params.batch_norm is True and params.epochs == 5
    assert params.optimizer == "adamw"  # defaults filled in


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


# tabm's defaults (32 members of 512 wide) take minutes on a CPU; its own tests (tests/test_tabm.py) check them. Here
# it learns the same tables with fewer, narrower members for at most 40 epochs, the rest at its defaults.
CHEAPER = {"tabm": {"k": 8, "width": 64, "epochs": 40}}


def _config(model, target):
    return RunConfig(dataset_id="test", target=target, model=model, params=CHEAPER.get(model, {}))


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
@pytest.mark.parametrize("relu", [False, True])
def test_cpu_dropout_mask_drops_exactly_its_share_of_the_byte_values(dtype, relu):
    """Element i gets byte i of the words; with each byte value once in each half of the elements, exactly
    round(p * 256) of the 256 are dropped in each half, the rest scale by 256 / (256 - dropped); with relu,
    negative inputs are 0 as well."""
    from workbench.models.layers import dropout_mask

    words = (torch.arange(512) % 256).to(torch.uint8).view(torch.int64)  # 64 words holding bytes 0..255 twice
    x = torch.ones(512, dtype=dtype)
    x[::3] = -1
    x[1::7] = -0.0
    mask = dropout_mask(x, 0.1, words, relu=relu)
    assert mask.dtype == dtype and mask.shape == x.shape
    for half in (mask[:256], mask[256:]):
        assert (half != 0).sum() == 230 or relu
        assert torch.equal(half[half != 0], torch.full(((half != 0).sum(),), 256 / 230, dtype=dtype))
    kept_anyway = dropout_mask(torch.ones(512, dtype=dtype), 0.1, words, relu=False) != 0
    assert torch.equal(mask != 0, kept_anyway & (x > 0) if relu else kept_anyway)


def test_random_words_step_xorshift64_and_follow_torch_manual_seed():
    from workbench.models.layers import RandomWords

    def xorshift64(v: int) -> int:
        v ^= (v << 13) % 2**64
        v ^= v >> 7
        return v ^ (v << 17) % 2**64

    torch.manual_seed(3)
    words = RandomWords()
    first = words.next(1000).clone()
    second = words.next(1000).clone()
    assert [xorshift64(v % 2**64) for v in first.tolist()] == [v % 2**64 for v in second.tolist()]
    assert len(set(second.tolist())) == 1000
    torch.manual_seed(3)
    assert torch.equal(RandomWords().next(1000), first)
    bits = torch.stack([(second >> i) & 1 for i in range(64)]).float().mean(dim=1)
    assert ((bits - 0.5).abs() < 0.08).all(), bits  # each of the 64 bits is a fair coin


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_relu_dropout_is_relu_then_dropout_with_the_gradient_through_kept_positives(dtype):
    from workbench.models.layers import ReLUDropout

    torch.manual_seed(0)
    layer = ReLUDropout(0.2)
    x = torch.randn(300, 257, dtype=dtype)
    x[::5, ::3] = 0.0  # exact zeros, as torch 2.11's bf16 randn gives on AVX-512 CPUs (seen on the device machine)
    x[1::5, ::3] = -0.0
    x.requires_grad_(True)
    y = layer(x)
    kept = y != 0
    assert not kept[x <= 0].any()
    assert abs(kept[x > 0].float().mean().item() - 205 / 256) < 0.01
    scale = torch.tensor(256 / 205, dtype=dtype)
    assert torch.equal(y[kept], (x * scale)[kept])
    y.sum().backward()
    # the gradient: scale where kept, 0 where dropped or negative; at +0 a subgradient (dropout_mask's docstring)
    assert torch.equal(x.grad[x != 0], torch.where(kept, scale, torch.zeros((), dtype=dtype))[x != 0])
    assert set(x.grad[x == 0].tolist()) <= {0.0, scale.item()}
    layer.eval()
    assert torch.equal(layer(x), torch.relu(x))
    assert torch.equal(ReLUDropout(0.0)(x), torch.relu(x))


@settings(max_examples=60, deadline=None)
@given(arrays("float64", st.integers(1, 200), elements=st.floats(-1e4, 1e4, allow_nan=False)))
def test_our_mish_is_torchs_mish_in_value_and_slope(values):
    """The hand-written Mish (its slope included) against torch's, over any finite numbers: equal to rounding in
    float64, to 1e-6 of the scale in float32; bfloat16 inputs (mixed precision) are worked on in float32, and their
    gradient comes back in bfloat16."""
    from workbench.models.layers import Mish

    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-6), (torch.bfloat16, 1e-6)):
        x = torch.tensor(values, dtype=dtype, requires_grad=True)
        reference = x.detach().double().requires_grad_()
        expected = torch.nn.functional.mish(reference)
        expected.sum().backward()
        ours = Mish()(x)
        ours.sum().backward()
        scale = 1 + reference.detach().abs()
        assert ((ours.double() - expected.detach()).abs() <= tolerance * scale).all()
        assert ours.dtype == (torch.float32 if dtype == torch.bfloat16 else dtype) and x.grad.dtype == dtype
        slope_tolerance = 1e-2 if dtype == torch.bfloat16 else tolerance * 10
        assert ((x.grad.double() - reference.grad).abs() <= slope_tolerance * (1 + reference.grad.abs())).all()


@pytest.mark.parametrize("model,params,layers", [
    ("mlp", {"hidden_sizes": [8, 8], "dropout": 0.1, "numeric_embeddings": "none",
             "front_scale": False}, ["body.0", "body.3", "head"]),
    ("mlp", {"hidden_sizes": [8, 8], "dropout": 0.0, "numeric_embeddings": "none",
             "front_scale": False}, ["body.0", "body.2", "head"]),
    ("mlp", {"hidden_sizes": [8], "batch_norm": True, "numeric_embeddings": "none",
             "front_scale": False}, ["body.0", "body.1", "head"]),
    ("mlp", {"hidden_sizes": [8, 8], "activation": "tanh", "dropout": 0.1, "numeric_embeddings": "none",
             "front_scale": False}, ["body.0", "body.3", "head"]),
    ("cnn", {"depth": 2}, ["tokens", "body.0", "body.1", "body.4", "body.5", "head"]),
])
def test_weights_keep_the_names_they_had_when_relu_and_dropout_were_two_modules(model, params, layers):
    """Weights saved before ReLU and dropout became one module must still load into the same architecture."""
    from workbench.models.registry import get_model

    spec = get_model(model)
    built = spec.build(4, [], 1, resolve_params(model, params))
    assert {key.rsplit(".", 1)[0] for key in built.state_dict()} == set(layers)


def test_balanced_classes_find_more_of_a_rare_class():
    """Gradient boosting's balance_classes weighs a 5% class up: balanced accuracy rises on held-out rows (what the
    advisor's imbalance advice relies on); a regression ignores the switch."""
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score

    from workbench.models.classical import build_gradient_boosting

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 4))
    score = x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(0, 0.7, 4000)
    y = (score > np.quantile(score, 0.95)).astype(int)
    scores = {}
    for balanced in (False, True):
        model = build_gradient_boosting("binary", resolve_params("gradient_boosting", {"balance_classes": balanced,
                                                                                        "max_iter": 100}))
        scores[balanced] = balanced_accuracy_score(y[3000:], model.fit(x[:3000], y[:3000]).predict(x[3000:]))
    assert scores[True] > scores[False] + 0.05
    regression = build_gradient_boosting("regression", resolve_params("gradient_boosting", {"balance_classes": True}))
    assert regression.fit(x[:200], score[:200]).predict(x[:5]).shape == (5,)
