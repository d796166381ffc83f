"""Graceful degradation: when the fit slice cannot train the tier model, its outputs come from
the Markov baseline (same columns, same registered model), the churn model still trains, and
every record says so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.spec import TIERS
from models.columns import NEXT_TIER_COLUMNS
from models.serving.pyfunc import RegisteredTierModel
from models.training.estimators import MarkovBaseline
from models.training.fallback import markov_booster, markov_tier_model, tier_fallback_reason
from models.training.summary import TrainSummary
from models.training.train import MARKOV_COLUMNS, MARKOV_MODEL, train_models

NAMES = ["loan_n_total", "rel_tier_rank", "pay_n_due_90"]


def _rows(ranks, extra: float = 0.0) -> pd.DataFrame:
    ranks = np.asarray(ranks, dtype=float)
    return pd.DataFrame({"loan_n_total": extra, "rel_tier_rank": ranks, "pay_n_due_90": -extra})


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.01, 1.0), min_size=16, max_size=16), st.floats(-5, 5))
def test_the_markov_booster_gives_the_matrix_row_of_the_current_tier(weights, other):
    matrix = np.asarray(weights).reshape(4, 4)
    matrix = matrix / matrix.sum(axis=1, keepdims=True)
    booster = markov_booster(matrix, NAMES)
    rows = _rows([0, 1, 2, 3, 3, 0], extra=other)  # other features change nothing
    proba = booster.predict(rows)
    assert np.allclose(proba, matrix[[0, 1, 2, 3, 3, 0]], atol=1e-12, rtol=0)
    contrib = booster.predict(rows, pred_contrib=True).reshape(len(rows), 4, -1)
    raw = booster.predict(rows, raw_score=True)
    assert np.allclose(contrib.sum(axis=2), raw)  # TreeSHAP (downgrade reasons) still adds up
    assert np.allclose(contrib[:, :, [0, 2]], 0.0)  # only rel_tier_rank carries the prediction


def _labelled(tiers, next_tiers) -> pd.DataFrame:
    return pd.DataFrame({"tier": tiers, "next_tier": next_tiers})


def test_fallback_reasons():
    two = _labelled(["ordinary", "potential"], ["ordinary", "potential"])
    assert "2 next-tier class(es) (potential, ordinary)" in tier_fallback_reason(two, two)
    three = _labelled(["ordinary"] * 3, ["potential", "ordinary", "core"])
    assert tier_fallback_reason(three, three) == ""
    with_vip = pd.concat([three, _labelled(["vip"], ["core"])])
    assert "tier(s) vip occur in the data" in tier_fallback_reason(three, with_vip)


@pytest.fixture(scope="module")
def two_class_table(small_table) -> pd.DataFrame:
    """The small world as a short history gives it: nobody reaches core (hence VIP)."""
    lower = {"core": "ordinary", "vip": "ordinary"}
    return small_table.assign(
        tier=small_table["tier"].replace(lower),
        next_tier=small_table["next_tier"].replace(lower),
        rel_tier_rank=small_table["rel_tier_rank"].clip(upper=1.0),
    )


@pytest.fixture(scope="module")
def degraded(two_class_table, split_spec, train_spec, model_features):
    return train_models(two_class_table, split_spec, train_spec, 180, model_features)


def test_too_few_tier_classes_fall_back_to_markov_and_churn_still_trains(degraded):
    summary, models, predictions = degraded.summary, degraded.models, degraded.predictions
    assert summary.tier.model == MARKOV_MODEL and summary.tier.trees == 0
    assert "next-tier class" in summary.tier.fallback
    assert any("Markov baseline" in w for w in summary.warnings)
    assert summary.churn.trees >= 1 and predictions["churn_probability"].notna().any()
    tier = predictions[list(NEXT_TIER_COLUMNS)].to_numpy()
    assert np.allclose(tier, predictions[list(MARKOV_COLUMNS)].to_numpy(), atol=1e-12)
    assert models.tier.baseline == "markov"
    assert TrainSummary.from_json(summary.to_json()) == summary


def test_the_registered_fallback_says_it_is_the_baseline(degraded, two_class_table):
    registered = RegisteredTierModel(degraded.models.tier)
    assert registered.spec()["baseline"] == "markov"
    rows = two_class_table.head(20)
    expected = MarkovBaseline(1.0)  # the same numbers through the registered model's code path
    expected.matrix_ = degraded.models.markov.matrix_
    served = registered.predict_frame(rows).to_numpy()
    assert np.allclose(served, expected.predict_proba(rows["tier"]), atol=1e-12)


def test_a_trained_tier_model_records_no_fallback(trained):
    assert trained.summary.tier.model == "lightgbm" and trained.summary.tier.fallback == ""
    assert trained.summary.warnings == ()
    assert "baseline" not in RegisteredTierModel(trained.models.tier).spec()


def test_markov_tier_model_needs_the_tier_rank_feature():
    markov = MarkovBaseline(1.0).fit(list(TIERS), list(TIERS))
    with pytest.raises(ValueError, match="rel_tier_rank"):
        markov_tier_model(markov, {"loan_n_total": "recency"})
