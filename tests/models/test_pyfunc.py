"""The pyfunc model classes without MLflow: same answers as the pipeline, strict inputs."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS
from models.serving.pyfunc import CONTEXT_COLUMNS, RegisteredChurnModel, input_columns
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


def test_models_survive_pickling(trained, test_rows):
    for model in (trained.models.churn, trained.models.tier):
        again = pickle.loads(pickle.dumps(model))
        pd.testing.assert_frame_equal(
            again.predict_frame(test_rows), model.predict_frame(test_rows)
        )
