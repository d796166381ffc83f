"""The pyfunc model classes without MLflow: same answers as the pipeline, strict inputs; and
the plain data a registered version stores reproduces the fitted objects bit for bit."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS
from models.explain.frame import feature_contributions
from models.serving.artifacts import catalog_data
from models.serving.outputs import calibrate
from models.serving.pyfunc import CONTEXT_COLUMNS, RegisteredChurnModel, input_columns
from models.strategies.catalog import load_catalog, parse_catalog
from models.training.estimators import make_calibrator
from models.training.split import churn_rows


@pytest.fixture(scope="module")
def test_rows(trained, small_table) -> pd.DataFrame:
    rows = churn_rows(trained.models.split.rows(small_table, "test"))
    return rows.iloc[:200]


def test_churn_model_reproduces_the_pipeline_predictions(trained, test_rows):
    out = RegisteredChurnModel(trained.models.churn).predict(None, test_rows)
    assert list(out.columns) == [CHURN_PROBABILITY]
    assert out.index.equals(test_rows.index)
    keyed = trained.predictions.set_index(["customer_id", "as_of"])[CHURN_PROBABILITY]
    expected = keyed.loc[list(zip(test_rows["customer_id"], test_rows["as_of"], strict=True))]
    assert np.array_equal(out[CHURN_PROBABILITY].to_numpy(), expected.to_numpy())


def test_tier_model_gives_one_probability_per_tier(trained, test_rows):
    out = trained.models.tier.predict_frame(test_rows)
    assert list(out.columns) == list(NEXT_TIER_COLUMNS)
    assert np.allclose(out.sum(axis=1), 1.0)


def test_models_accept_feature_columns_in_any_order_and_ignore_extras(trained, test_rows):
    model = trained.models.churn
    shuffled = test_rows[list(reversed(test_rows.columns))].assign(extra=1)
    assert np.array_equal(model.probability(shuffled), model.probability(test_rows))


def test_a_missing_feature_column_fails_loudly(trained, test_rows):
    with pytest.raises(KeyError, match="pay_on_time_rate_365"):
        trained.models.churn.predict_frame(test_rows.drop(columns=["pay_on_time_rate_365"]))


def test_raw_score_is_the_calibrator_input(trained, test_rows):
    model = trained.models.churn
    assert np.allclose(
        model.calibrator.predict(model.raw_score(test_rows)), model.probability(test_rows)
    )


def test_input_columns_and_groups(trained, model_features):
    model = trained.models.churn
    assert input_columns(model)[: len(CONTEXT_COLUMNS)] == list(CONTEXT_COLUMNS)
    assert model.features == list(model_features)
    assert model.groups == model_features


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrator_numbers_give_scikit_learns_probabilities_bit_for_bit(
    trained, small_table, test_rows, method
):
    """``calibrate(to_dict())`` (what a stored version computes) against the fitted scikit-learn
    map, on real raw scores, every threshold, points between and beyond them, and no rows."""
    model = trained.models.churn
    validation = churn_rows(trained.models.split.rows(small_table, "validation"))
    fitted = make_calibrator(method).fit(
        model.raw_score(validation), validation["churned"].to_numpy(int)
    )
    plain = json.loads(json.dumps(fitted.to_dict()))  # through JSON, as stored
    raw = model.raw_score(test_rows)
    probe = [raw, model.raw_score(validation), np.linspace(-20.0, 20.0, 4001), np.empty(0)]
    if method == "isotonic":
        x = fitted.mapping_.X_thresholds_
        probe += [x, (x[:-1] + x[1:]) / 2, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)]
    for score in probe:
        assert np.array_equal(calibrate(plain, score), fitted.predict(score), equal_nan=True)


def test_booster_text_reloads_the_same_trees(trained, test_rows):
    """LightGBM's model text (as stored) predicts and explains exactly as the fitted booster."""
    for model in (trained.models.churn, trained.models.tier):
        again = lgb.Booster(model_str=model.model_text())
        x, n = model.matrix(test_rows), model.num_iteration
        for kwargs in ({}, {"raw_score": True}):
            assert np.array_equal(
                again.predict(x, num_iteration=n, **kwargs),
                model._booster_predict(test_rows, **kwargs),
            )
    churn = trained.models.churn
    again = lgb.Booster(model_str=churn.model_text())
    x, n = churn.matrix(test_rows), churn.num_iteration
    assert np.array_equal(
        feature_contributions(again, x, num_iteration=n).to_numpy(),
        feature_contributions(churn.booster, x, num_iteration=n).to_numpy(),
    )
    assert churn.to_dict()["num_iteration"] == n and churn.to_dict()["features"] == churn.features


def test_the_catalog_as_data_is_the_catalog():
    catalog = load_catalog()
    data = json.loads(json.dumps(catalog_data(catalog), ensure_ascii=False))
    assert parse_catalog(data) == catalog
