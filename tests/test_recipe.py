"""The RealMLP recipe's parts (issue 21, item 1), each a switchable option: robust scaling with smooth clipping,
periodic numeric embeddings, one-hot for small categories, label smoothing, Adam's beta2, the flat-then-cosine
schedule and 3 x 256 layers; and the A/B harness that measures them (benchmarks/recipe.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.conftest import make_classification_frame
from workbench.callbacks import flat_cosine
from workbench.cli import build_parser
from workbench.errors import UserError
from workbench.models.layers import CategoricalEmbeddings, OneHot
from workbench.models.mlp import MLP
from workbench.models.registry import resolve_params
from workbench.predict import load_model
from workbench.prepare import RobustSmoothClip
from workbench.runconfig import PrepConfig, RunConfig
from workbench.runner import execute
from workbench.store import RunStatus
from workbench.tasks import Objective, Task
from workbench.training import Tensors, fit, make_optimizer

RECIPE = {"numeric_embeddings": "periodic", "one_hot_small_categories": "true", "label_smoothing": "0.1",
          "adam_beta2": "0.95", "lr_schedule": "flat_cosine", "hidden_sizes": "256,256,256"}


def messy_frame(n: int = 160, seed: int = 0) -> pd.DataFrame:
    """Numbers with gaps, a huge outlier and a constant stretch; a small category with unicode and gaps, a large one
    (12 values); a three-class target."""
    frame = make_classification_frame(n=n, n_classes=3, seed=seed)
    rng = np.random.default_rng(seed)
    frame["colour"] = frame["colour"].replace({"blue": "bleu ciel 🎨"}).astype(object)
    frame.loc[::9, "colour"] = None
    frame["city"] = rng.choice([f"città {i}" for i in range(12)], size=n)
    frame.loc[::7, "x2"] = np.nan
    frame.loc[3, "x1"] = 1e12
    frame["mostly zero"] = np.where(rng.random(n) < 0.8, 0.0, rng.exponential(size=n))
    return frame


# -- robust scaling with smooth clipping ------------------------------------------------------------------------------

finite = st.floats(-1e12, 1e12, allow_nan=False)


@settings(max_examples=30, deadline=None)
@given(arrays("float64", st.tuples(st.integers(2, 40), st.integers(1, 4)), elements=finite),
       arrays("float64", st.tuples(st.integers(1, 20), st.integers(1, 4)), elements=finite))
def test_robust_scaling_is_bounded_ordered_and_centred(fitted_on, new):
    """Whatever the numbers (outliers, ties, a constant column), the output is finite, within +-3 (3 itself only by rounding), keeps each
    column's order, and the median maps to 0."""
    columns = min(fitted_on.shape[1], new.shape[1])
    fitted_on, new = fitted_on[:, :columns], new[:, :columns]
    scaler = RobustSmoothClip().fit(fitted_on)
    out = scaler.transform(np.vstack([fitted_on, new]))
    assert np.isfinite(out).all() and (np.abs(out) <= 3).all()
    for j in range(columns):
        order = np.argsort(np.vstack([fitted_on, new])[:, j], kind="stable")
        assert (np.diff(out[order, j]) >= -1e-12).all()
    assert np.allclose(scaler.transform(np.median(fitted_on, axis=0, keepdims=True)), 0, atol=1e-9)


def test_robust_scaling_is_the_realmlp_formula():
    """Median and quartiles; where the quartiles are equal, half the range; then x / sqrt(1 + (x / 3)^2)."""
    values = np.array([[0.0, 5.0], [0.0, 5.0], [0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [4.0, 5.0], [100.0, 5.0]])
    x = RobustSmoothClip().fit(values).transform(np.array([[3.0, 7.0]]))
    scaled = (3.0 - 1.0) / (3.0 - 0.0)
    assert x[0, 0] == pytest.approx(scaled / math.sqrt(1 + (scaled / 3) ** 2))
    assert x[0, 1] == pytest.approx(2.0 / math.sqrt(1 + (2.0 / 3) ** 2))  # constant column: only centred
    zero_quartiles = np.array([[0.0]] * 9 + [[8.0]])
    assert RobustSmoothClip().fit(zero_quartiles).scale_[0] == pytest.approx(4.0)


def test_robust_scaling_never_overflows_to_nan():
    """A spread of a few subnormals makes a large number infinite once divided; the clip still gives +-3."""
    scaler = RobustSmoothClip().fit(np.array([[0.0], [5e-324], [1e-323], [1.5e-323]]))
    out = scaler.transform(np.array([[1e12], [-1e12], [0.0]]))
    assert np.isfinite(out).all() and out[0, 0] == pytest.approx(3.0) and out[1, 0] == pytest.approx(-3.0)


def test_robust_scaling_trains_saves_and_predicts_the_same_after_loading(tmp_path):
    """Through the real path: the robust scaler is chosen by PrepConfig, saved with the run (skops) and loaded again;
    the loaded model predicts what the run predicted, and new messy rows still get finite predictions."""
    frame = messy_frame()
    config = RunConfig("d", "label", "mlp", params={"epochs": 2, "hidden_sizes": [16]},
                       prep=PrepConfig(scaling="robust"))
    outcome = execute(config, frame, tmp_path / "run")
    assert outcome.status == RunStatus.SUCCEEDED
    model = load_model(tmp_path / "run")
    assert type(model.preprocessor.transformer_.named_transformers_["numeric"]["scale"]) is RobustSmoothClip
    x_num, _ = model.preprocessor.transform(frame.drop(columns="label"))
    assert np.isfinite(x_num).all() and np.abs(x_num).max() <= 3
    new = messy_frame(30, seed=1).drop(columns="label")
    new.loc[0, "x1"] = -1e300
    probabilities = model.predict_proba(new)
    assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_cli_offers_the_robust_scaling():
    args = build_parser().parse_args(["train", "--csv", "x.csv", "--target", "y", "--model", "mlp",
                                      "--scaling", "robust"])
    assert args.scaling == "robust"
    with pytest.raises(UserError, match="Scaling must be one of"):
        PrepConfig(scaling="robustish").validate()


# -- the MLP's options -----------------------------------------------------------------------------------------------


def test_every_part_is_a_setting_of_the_mlp():
    params = resolve_params("mlp", RECIPE)
    assert (params.numeric_embeddings, params.one_hot_small_categories, params.label_smoothing, params.adam_beta2,
            params.lr_schedule, params.hidden_sizes) == ("periodic", True, 0.1, 0.95, "flat_cosine", [256, 256, 256])
    with pytest.raises(UserError, match="label_smoothing"):
        resolve_params("mlp", {"label_smoothing": "0.9"})


def test_small_categories_are_one_hot_and_larger_ones_embedded():
    """9 values (code 0 for unknown: 10 codes) is one-hot; 10 values is embedded. One-hot learns nothing."""
    embeddings = CategoricalEmbeddings([3, 10, 11], one_hot_below=11)
    assert [type(t) for t in embeddings.tables] == [OneHot, OneHot, torch.nn.Embedding]
    codes = torch.tensor([[0, 9, 4], [2, 0, 10]])
    out = embeddings(codes)
    assert torch.equal(out[:, :3], torch.eye(3)[[0, 2]]) and torch.equal(out[:, 3:13], torch.eye(10)[[9, 0]])
    assert sum(p.numel() for p in embeddings.parameters()) == embeddings.tables[2].weight.numel()
    assert [type(t) for t in CategoricalEmbeddings([3, 10]).tables] == [torch.nn.Embedding] * 2


def test_periodic_embeddings_feed_the_layers_and_learn():
    params = resolve_params("mlp", {"numeric_embeddings": "periodic", "hidden_sizes": "8"})
    model = MLP(3, [4], 2, params)
    assert model.body[0].in_features == 3 * 24 + model.embeddings.out_dim
    out = model(torch.randn(5, 3), torch.randint(0, 4, (5, 1)))
    out.sum().backward()
    assert out.shape == (5, 2) and model.numeric.periodic.weight.grad.abs().sum() > 0
    plain = MLP(3, [4], 2, resolve_params("mlp", {"hidden_sizes": "8", "numeric_embeddings": "none"}))
    assert model.activation_size().training > plain.activation_size().training


def test_pbld_embeddings_pass_each_number_through_and_learn():
    """RealMLP's PBLD: 4 values a number, the first of them the number itself; its frequencies learn."""
    params = resolve_params("mlp", {"numeric_embeddings": "pbld", "hidden_sizes": "8"})
    model = MLP(3, [4], 2, params)
    assert model.body[0].in_features == 3 * 4 + model.embeddings.out_dim
    x = torch.randn(5, 3)
    embedded = model.numeric(x)
    assert embedded.shape == (5, 3, 4) and torch.equal(embedded[..., 0], x)
    assert torch.equal(model.numeric(x[2:3])[0], embedded[2])  # a row's embedding does not depend on the batch
    out = model(x, torch.randint(0, 4, (5, 1)))
    out.sum().backward()
    assert out.shape == (5, 2) and model.numeric.frequencies.grad.abs().sum() > 0
    plr = MLP(3, [4], 2, resolve_params("mlp", {"numeric_embeddings": "periodic", "hidden_sizes": "8"}))
    assert sum(p.numel() for p in model.numeric.parameters()) < sum(p.numel() for p in plr.numeric.parameters()) / 10


def test_pbld_waves_are_fewer_on_tables_with_many_numbers_and_runs_saved_before_them_load(tmp_path):
    """Automatic waves: 16 a number up to 32 numbers, then 512 in all (at least 4 a number); a chosen count stands.
    A PBLD run saved before the setting existed trained 16 waves whatever the width, and loads as such."""
    def waves(n_numeric: int, **overrides) -> int:
        model = MLP(n_numeric, [], 1, resolve_params("mlp", {"hidden_sizes": "8", **overrides}))
        return model.numeric.frequencies.shape[-1]

    assert [waves(n) for n in (1, 32, 33, 50, 64, 200)] == [16, 16, 15, 10, 8, 4]
    assert waves(50, pbld_frequencies="16") == 16 and waves(3, pbld_frequencies="2") == 2
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 40)), columns=[f"x{i}" for i in range(40)])
    frame.iloc[::7, 3] = np.nan
    frame["label"] = np.where(frame["x0"] > 0, "yes", "no")
    features = frame.drop(columns="label")
    for chosen in ("0", "16"):
        run = tmp_path / chosen
        config = RunConfig("d", "label", "mlp", params={"hidden_sizes": "8", "epochs": 2, "pbld_frequencies": chosen})
        assert execute(config, frame, run).status == RunStatus.SUCCEEDED
        expected = load_model(run).predict_proba(features)
        if chosen == "16":  # as the release before the setting saved it
            saved = json.loads((run / "config.json").read_text())
            del saved["params"]["pbld_frequencies"]
            (run / "config.json").write_text(json.dumps(saved))
        model = load_model(run)
        assert np.array_equal(model.predict_proba(features), expected)


def test_pbld_scale_is_the_spread_of_the_starting_frequencies_chosen_from_the_training_rows(tmp_path):
    """Automatic (0): RealMLP's 0.1 below 8,192 training rows, 1.0 from there; a chosen scale stands; a run records the
    scale it started from; an impossible one is refused."""
    def spread(n_train: int, **overrides) -> float:
        torch.manual_seed(0)
        params = resolve_params("mlp", {"hidden_sizes": "8", "pbld_frequencies": "16", **overrides}).for_rows(n_train)
        return float(MLP(200, [], 1, params).numeric.frequencies.std())

    assert spread(8_191) == pytest.approx(0.1, rel=0.05) and spread(8_192) == pytest.approx(1.0, rel=0.05)
    assert spread(100_000, pbld_scale="0.1") == pytest.approx(0.1, rel=0.05)
    assert spread(100, pbld_scale="2.5") == pytest.approx(2.5, rel=0.05)
    with pytest.raises(UserError, match="pbld_scale"):
        resolve_params("mlp", {"pbld_scale": "-1"})
    outcome = execute(RunConfig("d", "label", "mlp", params={"hidden_sizes": "8", "epochs": 1}),
                      make_classification_frame(n=200), tmp_path)
    assert outcome.params["pbld_scale"] == 0.1


def test_pbld_gradients_are_the_derivatives_and_predicting_computes_the_same():
    """Its backward pass is written by hand (for speed): checked against finite differences, and the plain forward
    that predicting and the ONNX export use gives what training computes."""
    from workbench.models.layers import PeriodicBiasLinearDense, _PeriodicLinear

    torch.manual_seed(0)
    shapes = [(3, 1, 5), (3, 4, 1), (3, 4, 1), (3, 2, 4), (3, 2, 1)]  # x, frequencies, phases, weight, bias
    inputs = tuple(torch.randn(*shape, dtype=torch.double, requires_grad=True) for shape in shapes)
    assert torch.autograd.gradcheck(_PeriodicLinear.apply, inputs)
    embeddings = PeriodicBiasLinearDense(6)
    x = torch.randn(9, 6)
    trained = embeddings(x)
    with torch.no_grad():
        assert torch.allclose(embeddings(x), trained, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert embeddings(x).dtype == torch.float32 and torch.allclose(embeddings(x), trained, atol=1e-6)


@pytest.mark.parametrize("embeddings", ["periodic", "pbld"])
def test_number_embeddings_train_on_messy_data_and_reload_the_same(tmp_path, embeddings):
    frame = messy_frame()
    config = RunConfig("d", "label", "mlp", params={"numeric_embeddings": embeddings, "hidden_sizes": "16",
                                                    "epochs": 3})
    outcome = execute(config, frame, tmp_path / "run")
    assert outcome.status == RunStatus.SUCCEEDED, outcome.error
    model = load_model(tmp_path / "run")
    features = frame.drop(columns="label")
    assert np.isfinite(model.predict_proba(features)).all()
    assert np.array_equal(model.predict_proba(features), load_model(tmp_path / "run").predict_proba(features))


def test_the_input_scaling_layer_learns_faster_trains_on_messy_data_and_reloads_the_same(tmp_path):
    """RealMLP's scaling layer: one weight per first-layer input, starting at 1, in an optimizer group of its own at
    6x the learning rate (which the schedules scale with the rest); a run with it trains, moves the weights, saves and
    predicts the same after reloading."""
    from workbench.models.mlp import FRONT_SCALE_LR_FACTOR

    params = resolve_params("mlp", {"hidden_sizes": "8", "front_scale": "true", "lr": "0.01"})
    model = MLP(3, [4, 13], 1, params)
    width = model.body[0].in_features
    assert torch.equal(model.front_scale, torch.ones(width))
    optimizer = make_optimizer(model, params)
    lrs = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert lrs[id(model.front_scale)] == pytest.approx(0.01 * FRONT_SCALE_LR_FACTOR)
    assert {lr for key, lr in lrs.items() if key != id(model.front_scale)} == {0.01}
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))

    frame = messy_frame()
    config = RunConfig("d", "label", "mlp", params={"front_scale": "true", "hidden_sizes": "16", "epochs": 3})
    outcome = execute(config, frame, tmp_path / "run")
    assert outcome.status == RunStatus.SUCCEEDED, outcome.error
    model = load_model(tmp_path / "run")
    features = frame.drop(columns="label")
    first = model.predict_proba(features)
    assert np.isfinite(first).all() and np.array_equal(first, load_model(tmp_path / "run").predict_proba(features))
    assert not torch.equal(model.model.front_scale.detach(), torch.ones_like(model.model.front_scale))
    assert resolve_params("mlp", {}).front_scale  # on by default (benchmarks/recipe.py's A/B)


@pytest.mark.parametrize("activation", ["selu", "mish"])
def test_realmlp_activations_start_as_they_need_train_on_messy_data_and_reload_the_same(tmp_path, activation):
    """SELU keeps standardised inputs standardised only from LeCun's init (std 1 / sqrt(fan_in)), Mish is ReLU-like
    (He's, sqrt(2) times that); a run with either trains on messy data, saves and predicts the same after reloading."""
    params = resolve_params("mlp", {"hidden_sizes": "512,512", "activation": activation, "front_scale": "false",
                                    "numeric_embeddings": "none"})
    model = MLP(256, [], 1, params)
    gain = 1.0 if activation == "selu" else math.sqrt(2)
    for layer in (model.body[0], model.body[2]):
        assert float(layer.weight.std()) == pytest.approx(gain / math.sqrt(layer.in_features), rel=0.05)
    with torch.no_grad():  # SELU's fixed point: outputs of a deep stack keep about unit variance
        hidden = model.body(torch.randn(4096, 256))
    if activation == "selu":
        assert 0.7 < float(hidden.std()) < 1.3
    relu = MLP(256, [], 1, resolve_params("mlp", {"hidden_sizes": "512,512", "front_scale": "false",
                                                  "numeric_embeddings": "none"}))
    kept = 2 * 1024 if activation == "mish" else 0  # what Mish keeps for its slope: two values a neuron
    assert model.activation_size().training == relu.activation_size().training + kept

    frame = messy_frame()
    config = RunConfig("d", "label", "mlp", params={"activation": activation, "hidden_sizes": "16,16", "epochs": 3})
    outcome = execute(config, frame, tmp_path / "run")
    assert outcome.status == RunStatus.SUCCEEDED, outcome.error
    features = frame.drop(columns="label")
    first = load_model(tmp_path / "run").predict_proba(features)
    assert np.isfinite(first).all() and np.array_equal(first, load_model(tmp_path / "run").predict_proba(features))
    assert resolve_params("mlp", {}).activation == "gelu"  # the default; these are options (benchmarks/recipe.py)


def test_label_smoothing_moves_the_targets_of_classification_only():
    """Binary: the loss is lowest at p = 1 - eps / 2, not at certainty; multiclass: torch's smoothed cross-entropy;
    regression: unchanged."""
    eps = 0.1
    logit = torch.tensor([[math.log((1 - eps / 2) / (eps / 2))]], requires_grad=True)
    Objective(Task.BINARY).loss(logit, torch.tensor([1]), eps).backward()
    assert abs(logit.grad.item()) < 1e-6
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    assert Objective(Task.MULTICLASS, 4).loss(logits, y, eps) == pytest.approx(
        torch.nn.functional.cross_entropy(logits, y, label_smoothing=eps).item())
    output, target = torch.randn(6, 1), torch.randn(6)
    regression = Objective(Task.REGRESSION, 0, 0.5, 2.0)
    assert regression.loss(output, target, eps) == regression.loss(output, target)


def test_validation_loss_is_not_smoothed():
    """Training learns smoothed targets; the validation loss the history reports is the plain one."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype("float32")
    data = Tensors.from_arrays(x, np.zeros((200, 0), "int64"), (x[:, 0] > 0).astype("int64"), torch.device("cpu"))
    params = resolve_params("mlp", {"epochs": 3, "hidden_sizes": "8", "label_smoothing": "0.2",
                                    "weight_averaging": "0", "mixed_precision": "off"})
    model = MLP(3, [], 1, params)
    result = fit(model, data, data, Objective(Task.BINARY), params)
    with torch.no_grad():
        plain = Objective(Task.BINARY).loss(model(data.x_num, data.x_cat), data.y).item()
    # restore_best put back the weights of the best epoch
    assert result.history[result.best_epoch - 1].val_loss == pytest.approx(plain, rel=1e-4)


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_adam_beta2_reaches_the_optimizer(optimizer):
    params = resolve_params("mlp", {"optimizer": optimizer, "adam_beta2": "0.95", "hidden_sizes": "4"})
    assert make_optimizer(MLP(2, [], 1, params), params).param_groups[0]["betas"] == (0.9, 0.95)


def test_flat_cosine_keeps_the_rate_for_half_the_epochs_then_decays_it_to_zero():
    factors = [flat_cosine(epoch, 12) for epoch in range(13)]
    assert factors[:7] == [1.0] * 7 and factors[9] == pytest.approx(0.5) and factors[12] == pytest.approx(0.0)
    assert all(b <= a for a, b in zip(factors, factors[1:], strict=False))
    rng = np.random.default_rng(0)
    noise = Tensors.from_arrays(rng.normal(size=(300, 4)).astype("float32"), np.zeros((300, 0), "int64"),
                                rng.integers(0, 2, 300), torch.device("cpu"))
    params = resolve_params("mlp", {"epochs": 12, "patience": 0, "lr_schedule": "flat_cosine", "lr": 0.01,
                                    "hidden_sizes": "8"})
    result = fit(MLP(4, [], 1, params), noise, noise, Objective(Task.BINARY), params)
    assert [r.lr for r in result.history] == pytest.approx([0.01 * f for f in factors[:12]])


def test_the_whole_recipe_trains_on_messy_data_and_reloads_the_same(tmp_path):
    """All parts at once (small layers, few epochs), through the real path: trained, saved, loaded, and the loaded
    model predicts the test rows as the run scored them."""
    frame = messy_frame()
    config = RunConfig("d", "label", "mlp", params={**RECIPE, "hidden_sizes": "16,16", "epochs": 3},
                       prep=PrepConfig(scaling="robust"))
    outcome = execute(config, frame, tmp_path / "run")
    assert outcome.status == RunStatus.SUCCEEDED, outcome.error
    model = load_model(tmp_path / "run")
    assert model.model.embeddings.tables[0].__class__ is OneHot  # colour: 3 values and missing
    assert isinstance(model.model.embeddings.tables[1], torch.nn.Embedding)  # city: 12 values
    probabilities = model.predict_proba(frame.drop(columns="label"))
    assert np.isfinite(probabilities).all()


# -- the A/B harness --------------------------------------------------------------------------------------------------


def test_the_ab_summary_counts_ranks_changes_and_the_rule_for_helping():
    from benchmarks.recipe import lines, summary

    def row(rank_default, gain, outcome, ratio=1.0):
        return {"rank_default": rank_default, "rank_switched": 3 - rank_default, "outcome": outcome,
                "relative_gain_pct": gain, "time_ratio": ratio, "epochs_ratio": 1.0, "switched": {"mean": 0.9},
                "gain": gain, "difference_ci": [-0.1, 0.1]}

    tables = {"a": {"rows": 150, "metric": "accuracy", "default": {"mean": 0.9, "run_s": 1.0},
                    "parts": {"p": row(2, 2.0, "win"), "slow": row(2, 1.0, "tie", 3.0)}},
              "b": {"rows": 300, "metric": "rmse", "default": {"mean": 10.0, "run_s": 1.0},
                    "parts": {"p": row(2, 1.0, "tie"), "slow": row(2, 1.0, "tie", 3.0)}},
              "c": {"rows": 500, "metric": "rmse", "default": {"mean": 10.0, "run_s": 1.0},
                    "parts": {"p": row(1, -0.5, "tie"), "slow": row(2, 1.0, "tie", 3.0)}}}
    result = summary(tables, ["p", "slow"])
    p = result["p"]
    assert (p["tables"], p["wins"], p["ties"], p["losses"]) == (3, 1, 2, 0)
    assert (p["mean_rank_default"], p["mean_rank_switched"]) == (1.67, 1.33)
    assert p["mean_change_pct"] == pytest.approx(2.5 / 3, abs=1e-3) and p["ci_pct"][0] < p["mean_change_pct"] < p["ci_pct"][1]
    assert p["helps"] and not result["slow"]["helps"]  # slower than the time rule allows
    text = "\n".join(lines({"tables": tables, "repeats": 3, "summary": result}))
    assert "1/2/0" in text and "x3.00" in text


@given(st.floats(0.01, 1e6), st.floats(0.01, 1e6), st.sampled_from([1.0, -1.0]))
def test_the_ab_ranks_the_better_mean_first_and_equal_means_alike(default, switched, sign):
    """Equal means share rank 1.5 (a shorter patience often ends at the very same weights); otherwise the better
    mean, higher or lower by the metric's direction, is 1."""
    from benchmarks.recipe import ranks

    assert ranks(default, default, sign) == {"rank_default": 1.5, "rank_switched": 1.5}
    ranked = ranks(default, switched, sign)
    assert ranked["rank_default"] + ranked["rank_switched"] == 3
    if sign * (switched - default) > 1e-6 * default:
        assert ranked["rank_switched"] == 1
    elif sign * (default - switched) > 1e-6 * default:
        assert ranked["rank_default"] == 1


def test_the_mlp_defaults_hold_the_parts_the_ab_kept_and_no_other_model_changes():
    from benchmarks.recipe import PARTS
    from workbench.models.mlp import MLPParams
    from workbench.models.registry import MODELS
    from workbench.prepare import resolve_scaling

    def auto_scaling(name):
        spec = MODELS[name]
        return resolve_scaling(PrepConfig(), spec.family, spec.categorical, spec.scaling)

    assert auto_scaling("mlp") == "robust" and auto_scaling("tabm") == "quantile" == auto_scaling("transformer")
    assert auto_scaling("linear") == "standard" and resolve_scaling(PrepConfig(scaling="minmax"), "neural",
                                                                     "embedding", "robust") == "minmax"
    assert MLPParams().hidden_sizes == [256, 256] and MLPParams().label_smoothing == 0.0
    assert MLPParams().dropout == 0.0 and resolve_params("tabm", {}).dropout == 0.1
    assert MLPParams().numeric_embeddings == "pbld" and resolve_params("tabm", {}).numeric_embeddings == "none"
    assert {name for name, part in PARTS.items() if part.is_default()} == {"robust_scaling", "no_dropout",
                                                                             "robust_no_dropout", "pbld_embeddings",
                                                                             "front_scale", "patience_8", "gelu"}
    assert MLPParams().patience == 8 and resolve_params("tabm", {}).patience == 16
    assert resolve_params("tabm", {}).label_smoothing == 0.0 and resolve_params("tabm", {}).adam_beta2 == 0.999
