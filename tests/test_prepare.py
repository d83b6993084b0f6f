"""Task detection, feature choice, a seeded split shared by runs, and preprocessing fitted on training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import workbench.prepare as prepare_module
from workbench.errors import UserError
from workbench.prepare import detect_task, prepare
from workbench.runconfig import PrepConfig, SplitConfig


def run_prepare(frame, target="label", task="auto", exclude=(), split=None, prep=None, family="neural",
                categorical="embedding"):
    return prepare(frame, target, task, list(exclude), split or SplitConfig(), prep or PrepConfig(), family,
                   categorical)


@pytest.mark.parametrize("values,expected", [
    (["a", "b"] * 10, "binary"),
    ([True, False] * 10, "binary"),
    (["a", "b", "c"] * 10, "multiclass"),
    (list(range(5)) * 10, "multiclass"),
    (list(np.linspace(0, 1, 50)), "regression"),
    (list(range(100)), "regression"),
])
def test_task_detection(values, expected):
    assert detect_task(pd.Series(values, name="t")) == expected


@given(hst.integers(20, 300), hst.data(), hst.booleans())
@settings(max_examples=40, deadline=None)
def test_a_target_with_most_values_once_is_refused_as_classes_and_read_as_numbers(rows, data, numeric):
    """A name or an identifier chosen as the target: more classes than half the rows. Text is refused in one
    sentence (gradient boosting grew a tree per class for minutes); whole numbers are a regression."""
    distinct = data.draw(hst.integers(rows // 2 + 1, rows))
    values = [i % distinct for i in range(rows)]
    y = pd.Series(values if numeric else [f"id {v}" for v in values], name="t")
    if numeric:
        assert detect_task(y) == "regression"
    else:
        with pytest.raises(UserError, match=f"has {distinct:,} different values in {rows:,} rows"):
            detect_task(y)
    with pytest.raises(UserError, match="most values appear once"):
        detect_task(y, "multiclass")
    assert detect_task(pd.Series([f"c{i % (rows // 2)}" for i in range(rows)], name="t")) in ("binary", "multiclass")


@pytest.mark.parametrize("requested", ["auto", "binary", "multiclass", "regression"])
@pytest.mark.parametrize("distinct", [2, 5, 80])
def test_a_date_target_is_refused_in_one_sentence_whatever_the_task(requested, distinct):
    y = pd.Series(pd.date_range("2024-01-01", periods=distinct, freq="D").repeat(3), name="when")
    with pytest.raises(UserError, match="^The target 'when' holds dates: Workbench predicts categories and numbers"):
        detect_task(y, requested)


def test_task_override_and_impossible_requests():
    y = pd.Series(list(range(5)) * 10, name="t")
    assert detect_task(y, "regression") == "regression"
    with pytest.raises(UserError, match="Regression needs a numeric target"):
        detect_task(pd.Series(["a", "b"] * 5, name="t"), "regression")
    with pytest.raises(UserError, match="only one value"):
        detect_task(pd.Series(["a"] * 5, name="t"))
    with pytest.raises(UserError, match="exactly 2"):
        detect_task(pd.Series(["a", "b", "c"] * 5, name="t"), "binary")


def test_no_leakage_scaler_statistics_are_those_of_the_training_rows(binary_frame):
    p = run_prepare(binary_frame, prep=PrepConfig(scaling="standard"))
    scaler = p.preprocessor.transformer_.named_transformers_["numeric"].named_steps["scale"]
    train_rows = binary_frame.loc[p.row_ids["train"], ["x1", "x2"]]
    np.testing.assert_allclose(scaler.mean_, train_rows.mean().to_numpy())
    np.testing.assert_allclose(scaler.scale_, train_rows.std(ddof=0).to_numpy())
    everything = binary_frame[["x1", "x2"]]
    assert not np.allclose(scaler.mean_, everything.mean().to_numpy())


def test_same_settings_give_the_same_split_and_fingerprint(binary_frame):
    a, b = run_prepare(binary_frame), run_prepare(binary_frame, family="classical", categorical="onehot")
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(a.row_ids[split], b.row_ids[split])
    assert a.fingerprint == b.fingerprint
    c = run_prepare(binary_frame, split=SplitConfig(seed=1))
    assert c.fingerprint != a.fingerprint
    assert not np.array_equal(c.row_ids["test"], a.row_ids["test"])


def test_split_sizes_are_disjoint_and_stratified(binary_frame):
    p = run_prepare(binary_frame)
    sizes = {s: len(p.row_ids[s]) for s in ("train", "val", "test")}
    assert sizes == {"train": 420, "val": 90, "test": 90}
    assert len(set(np.concatenate(list(p.row_ids.values())))) == 600
    share = (binary_frame["label"] == "yes").mean()
    test_share = (binary_frame.loc[p.row_ids["test"], "label"] == "yes").mean()
    assert abs(test_share - share) < 0.02


def test_missing_targets_dropped_and_counted(binary_frame):
    frame = binary_frame.copy()
    frame.loc[:9, "label"] = None
    p = run_prepare(frame)
    assert p.dropped_target_rows == 10
    assert any("10 rows" in n for n in p.notes)


def test_identifiers_excluded_datetimes_expanded(binary_frame):
    frame = binary_frame.copy()
    frame["customer_id"] = np.arange(len(frame))
    frame["signup"] = pd.date_range("2024-01-01", periods=len(frame), freq="6h")
    p = run_prepare(frame, exclude=["x2"])
    names = p.preprocessor.feature_names_
    assert "customer_id" not in names and "x2" not in names
    assert {"signup_year", "signup_month", "signup_dayofweek", "signup_hour"} <= set(names)
    assert any("identifier" in n for n in p.notes)


def test_categoricals_as_codes_or_one_hot(binary_frame):
    embedded = run_prepare(binary_frame)
    assert embedded.x_cat["train"].shape[1] == 1
    assert embedded.preprocessor.cardinalities_ == [4]  # 3 colours + the unknown code 0
    onehot = run_prepare(binary_frame, family="classical", categorical="onehot")
    assert onehot.x_cat["train"].shape[1] == 0
    assert {"colour_red", "colour_green", "colour_blue"} <= set(onehot.preprocessor.feature_names_)


def test_unseen_category_and_missing_values_at_transform_time(binary_frame):
    p = run_prepare(binary_frame)
    new = binary_frame.head(3).copy()
    new.loc[new.index[0], "colour"] = "purple"
    new.loc[new.index[1], "x1"] = np.nan
    x_num, x_cat = p.preprocessor.transform(new)
    assert x_cat[0, 0] == 0
    assert np.isfinite(x_num).all()


def test_rows_are_transformed_in_chunks_with_the_same_result(binary_frame, monkeypatch):
    whole = run_prepare(binary_frame)
    monkeypatch.setattr(prepare_module, "TRANSFORM_CHUNK_ROWS", 7)
    chunked = run_prepare(binary_frame)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(chunked.x_num[split], whole.x_num[split])
        np.testing.assert_array_equal(chunked.x_cat[split], whole.x_cat[split])
    np.testing.assert_array_equal(chunked.preprocessor.transform(binary_frame)[0],
                                  whole.preprocessor.transform(binary_frame)[0])


def test_a_large_training_set_fits_the_preprocessing_on_a_seeded_sample(binary_frame, monkeypatch):
    monkeypatch.setattr(prepare_module, "FIT_SAMPLE_ROWS", 50)
    p = run_prepare(binary_frame, prep=PrepConfig(scaling="standard"))
    n_train = len(p.row_ids["train"])
    assert f"fitted on a random 50 of the {n_train:,} training rows" in " ".join(p.notes)
    scaler = p.preprocessor.transformer_.named_transformers_["numeric"].named_steps["scale"]
    train_rows = binary_frame.loc[p.row_ids["train"], ["x1", "x2"]]
    assert scaler.n_samples_seen_ == 50 and not np.allclose(scaler.mean_, train_rows.mean().to_numpy())
    again = run_prepare(binary_frame, prep=PrepConfig(scaling="standard"))
    np.testing.assert_array_equal(again.x_num["train"], p.x_num["train"])  # the same sample every time
    assert p.x_num["train"].shape[0] == n_train  # every training row is still transformed and trained on


def test_bad_settings_are_user_errors(binary_frame):
    with pytest.raises(UserError, match="no column called 'nope'"):
        run_prepare(binary_frame, target="nope")
    with pytest.raises(UserError, match="Cannot exclude 'zzz'"):
        run_prepare(binary_frame, exclude=["zzz"])
    with pytest.raises(UserError, match="at least 20"):
        run_prepare(binary_frame.head(10))



def messy_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Missing numbers, rare and missing categories (some only seen outside a fit sample), booleans and dates."""
    rng = np.random.default_rng(seed)
    common = rng.choice(["ä", "b", "c 'd'", "=1+1"], size=n)
    rare = np.where(rng.random(n) < 0.03, [f"rare-{i}" for i in range(n)], common)
    frame = pd.DataFrame({
        "x": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
        "colour": np.where(rng.random(n) < 0.1, None, rare),
        "size": rng.choice(["S", "M", "L", "XL", "XXL"], size=n, p=[0.5, 0.3, 0.15, 0.04, 0.01]),
        "flag": rng.random(n) < 0.5,
        "when": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        "label": rng.choice(["yes", "no"], size=n),
    })
    frame["when"] = frame["when"].astype(str)
    return frame


@pytest.mark.parametrize("categorical", ["embedding", "onehot"])
@pytest.mark.parametrize("sample_rows", [50, 10_000])
def test_the_preprocessor_is_a_scikit_learn_estimator(categorical, sample_rows, monkeypatch):
    """Settings in __init__, fitted state in trailing-underscore attributes, and a saved config that gives back the
    same transform. The embedding tables are sized by the codes of the rows fitted on, which bound the codes of every
    training row even when the fit saw only a sample."""
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    from workbench.prepare import Preprocessor

    monkeypatch.setattr(prepare_module, "FIT_SAMPLE_ROWS", sample_rows)
    frame = messy_frame()
    p = run_prepare(frame, family="neural" if categorical == "embedding" else "classical", categorical=categorical)
    fitted = p.preprocessor
    assert fitted.get_params()["categorical_mode"] == categorical
    unfitted = clone(fitted)
    assert not hasattr(unfitted, "transformer_")
    with pytest.raises(NotFittedError):
        unfitted.transform(frame)
    widths = p.x_num["train"].shape[1], p.x_cat["train"].shape[1]
    assert widths == (fitted.n_numeric_out_, len(fitted.cardinalities_))
    if categorical == "embedding":
        assert fitted.cardinalities_ == [int(c) + 1 for c in p.x_cat["train"].max(axis=0)]
        assert len(fitted.feature_names_) == fitted.n_numeric_out_ + len(fitted.cardinalities_)
    else:
        assert fitted.cardinalities_ == [] and len(fitted.feature_names_) == fitted.n_numeric_out_
    again = Preprocessor.from_config(fitted.to_config(), fitted.transformer_)
    assert again.get_params() == fitted.get_params()
    new_rows = frame.drop(columns=["label"]).assign(colour="never seen")
    for a, b in zip(again.transform(new_rows), fitted.transform(new_rows), strict=True):
        np.testing.assert_array_equal(a, b)


def test_dates_are_left_out_when_date_parts_are_off():
    frame = messy_frame()
    on = run_prepare(frame)
    assert "when" in on.preprocessor.features.datetime and "when_year" in on.preprocessor.feature_names_
    off = run_prepare(frame, prep=PrepConfig(datetime_parts=False))
    assert off.preprocessor.features.datetime == [] and not any(n.startswith("when") for n in
                                                               off.preprocessor.feature_names_)
    assert "'when' holds dates and was left out (splitting dates into parts is off)." in off.notes


# -- time-ordered split -------------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, derandomize=True)
@given(n=hst.integers(min_value=40, max_value=300), missing=hst.floats(min_value=0.0, max_value=0.3),
       as_text=hst.booleans(), ties=hst.booleans(), seed=hst.integers(min_value=0, max_value=2**32 - 1))
def test_time_split_tests_on_exactly_the_latest_rows(n, missing, as_text, ties, seed):
    """Messy dates (shuffled, repeated, missing, as text): the test rows are exactly the latest dated rows,
    validation the ones before them, training the earliest; rows with no date are in no split."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 40 if ties else 30_000, size=n)
    when = pd.Series(pd.to_datetime("2000-01-01") + pd.to_timedelta(days, unit="D"))
    frame = pd.DataFrame({"x": rng.normal(size=n), "label": np.where(np.arange(n) % 3 == 0, "a", "b")})
    frame["when"] = when.dt.strftime("%Y-%m-%d").astype(object) if as_text else when
    undated = list(np.flatnonzero(rng.random(n) < missing))
    frame.loc[undated, "when"] = None
    p = run_prepare(frame, split=SplitConfig(order_by="when"))
    dated = frame.index.difference(undated)
    assert sorted(np.concatenate(list(p.row_ids.values()))) == sorted(dated)
    order = pd.to_datetime(frame["when"])
    train, val, test = (order.loc[p.row_ids[s]] for s in ("train", "val", "test"))
    assert train.max() <= val.min() and val.max() <= test.min()
    latest = frame.loc[dated].assign(when=order).sort_values(["when"], kind="stable")
    assert len(p.row_ids["test"]) == int(np.ceil(0.15 * len(dated)))
    assert set(p.row_ids["test"]) >= set(latest.index[latest["when"] > test.min()])
    if undated:
        assert any("no value in 'when'" in note for note in p.notes)
    again = run_prepare(frame.sample(frac=1, random_state=1).sort_index(), split=SplitConfig(order_by="when", seed=9))
    assert again.fingerprint == p.fingerprint  # the split seed plays no part in a time split


def test_time_split_refuses_a_column_that_holds_no_dates(binary_frame):
    with pytest.raises(UserError, match="no such column"):
        run_prepare(binary_frame, split=SplitConfig(order_by="nope"))
    frame = binary_frame.assign(word=["w"] * len(binary_frame))
    with pytest.raises(UserError, match="not dates"):
        run_prepare(frame, split=SplitConfig(order_by="word"))


def test_a_random_split_keeps_its_fingerprint_and_old_configs_load():
    from workbench.runconfig import RunConfig

    old = {"dataset_id": "d", "target": "t", "model": "mlp", "split": {"train": 0.7, "val": 0.15, "test": 0.15,
                                                                       "seed": 3}}
    config = RunConfig.from_dict(old)
    assert config.split.order_by is None and config.split.seed == 3
    assert RunConfig.from_dict(config.to_dict()) == config


SMALL_BATCH_SETTINGS = [(scaling, categorical) for scaling in ("standard", "minmax", "quantile")
                        for categorical in ("embedding", "onehot")]


@pytest.fixture(scope="module")
def fitted_preprocessors():
    """A preprocessor per scaling and categorical encoding, fitted on messy rows (rare, missing and '=1+1'
    categories, booleans, dates)."""
    return {(scaling, categorical): run_prepare(messy_frame(), prep=PrepConfig(scaling=scaling),
                                                family="neural" if categorical == "embedding" else "classical",
                                                categorical=categorical).preprocessor
            for scaling, categorical in SMALL_BATCH_SETTINGS}


MESSY_ROW = hst.fixed_dictionaries({
    "x": hst.one_of(hst.none(), hst.floats(allow_nan=True, allow_infinity=True), hst.integers(-10**12, 10**12),
                    hst.sampled_from([1e200, -1e300, 0.0, -0.0])),
    "colour": hst.one_of(hst.none(), hst.sampled_from(["ä", "b", "c 'd'", "=1+1", "rare-3", "(missing)"]),
                         hst.text(max_size=4), hst.integers(-3, 3)),
    "size": hst.one_of(hst.none(), hst.sampled_from(["S", "M", "L", "XL", "XXL", "xs"])),
    "flag": hst.one_of(hst.none(), hst.booleans(), hst.sampled_from([0.0, 1.0])),
    "when": hst.one_of(hst.none(), hst.sampled_from(["2020-03-01", "2021-12-31 23:59:00", "2022-02-30", "soon"])),
})


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e200 in float32
@pytest.mark.parametrize("settings_key", SMALL_BATCH_SETTINGS, ids=lambda key: "-".join(key))
@given(rows=hst.lists(MESSY_ROW, min_size=1, max_size=5))
@settings(max_examples=40, deadline=None)
def test_a_small_batch_is_transformed_in_numpy_to_the_bit(fitted_preprocessors, settings_key, rows):
    """A few rows (a served request) skip the column transformer; what they get is exactly its output: missing,
    huge and infinite numbers, unseen, rare and missing categories, numbers as categories, impossible dates."""
    from workbench.prepare import SMALL_BATCH_ROWS, model_frame

    preprocessor = fitted_preprocessors[settings_key]
    assert preprocessor._small_batch() is not None  # the numpy form is used for this transformer
    frame = pd.DataFrame(rows)
    assert len(frame) <= SMALL_BATCH_ROWS
    x_num, x_cat = preprocessor.transform(frame)
    expected = np.asarray(preprocessor.transformer_.transform(model_frame(frame, preprocessor.features)))
    n_numeric = preprocessor.n_numeric_out_
    np.testing.assert_array_equal(x_num, expected[:, :n_numeric].astype("float32"))
    np.testing.assert_array_equal(x_cat, (expected[:, n_numeric:] + 1).astype("int64"))
    assert x_num.dtype == np.float32 and x_cat.dtype == np.int64


@pytest.mark.parametrize("categorical", ["embedding", "onehot"])
def test_a_small_batch_at_the_quantile_edges_is_transformed_to_the_bit(fitted_preprocessors, categorical):
    """Numbers within the quantile transformer's margin of its lowest and highest quantile, and on a quantile."""
    from workbench.prepare import model_frame

    preprocessor = fitted_preprocessors["quantile", categorical]
    quantiles = preprocessor.transformer_.named_transformers_["numeric"].named_steps["scale"].quantiles_[:, 0]
    frame = messy_frame(6, seed=1).drop(columns=["label"])
    frame["x"] = [quantiles[0] + 5e-8, quantiles[-1] - 5e-8, quantiles[0] - 5e-8, quantiles[-1] + 5e-8,
                  quantiles[len(quantiles) // 2], np.nan]
    x_num, _ = preprocessor.transform(frame)
    expected = np.asarray(preprocessor.transformer_.transform(model_frame(frame, preprocessor.features)))
    np.testing.assert_array_equal(x_num, expected[:, :preprocessor.n_numeric_out_].astype("float32"))
