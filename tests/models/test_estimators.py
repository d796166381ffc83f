"""Unfitted estimators, the score calibrator and the Markov baseline on hand-made data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.base import clone

from models.training.estimators import (
    make_calibrator,
    make_churn_classifier,
    make_logistic_baseline,
    make_markov_baseline,
    make_tier_classifier,
    tier_codes,
)
from pipelines.config import load_defaults

TRAIN = load_defaults().train  # module level: the parametrised lambdas below need it


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_churn_classifier(replace(TRAIN.churn, num_leaves=7), seed=1),
        lambda: make_tier_classifier(TRAIN.tier, seed=1),
        lambda: make_logistic_baseline(replace(TRAIN.logistic, C=0.5), seed=1),
        lambda: make_calibrator("isotonic"),
        lambda: make_markov_baseline(0.5),
    ],
)
def test_make_functions_return_unfitted_clonable_estimators(make):
    estimator = make()
    assert not [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]
    assert repr(clone(estimator)) == repr(estimator)


def test_booster_params_reach_lightgbm():
    model = make_churn_classifier(replace(TRAIN.churn, num_leaves=63, num_threads=1), seed=9)
    params = model.get_params()
    assert params["num_leaves"] == 63 and params["n_jobs"] == 1 and params["random_state"] == 9
    assert params["deterministic"] is True


def test_logistic_baseline_imputes_and_standardises():
    X = np.array([[1.0, np.nan], [2.0, 1.0], [3.0, np.nan], [4.0, 0.0]] * 5)
    y = np.array([0, 1, 0, 1] * 5)
    model = make_logistic_baseline(TRAIN.logistic, seed=0).fit(X, y)
    p = model.predict_proba(X)[:, 1]
    assert np.isfinite(p).all()
    assert p[1] > p[0]  # the missing-value indicator carries the signal


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrator_is_monotone_and_bounded(method):
    rng = np.random.default_rng(0)
    score = rng.normal(size=2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-2 * score))).astype(int)
    calibrator = make_calibrator(method).fit(score, y)
    grid = np.linspace(-5, 5, 101)
    p = calibrator.predict(grid)
    assert (np.diff(p) >= -1e-12).all()
    assert p.min() >= 0 and p.max() <= 1
    assert abs(calibrator.predict(np.array([0.0]))[0] - 0.5) < 0.08


def test_platt_recovers_a_logistic_map():
    rng = np.random.default_rng(1)
    score = rng.normal(size=20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(0.5 + 2 * score)))).astype(int)
    mapping = make_calibrator("platt").fit(score, y).mapping_
    assert mapping.coef_[0, 0] == pytest.approx(2.0, abs=0.1)
    assert mapping.intercept_[0] == pytest.approx(0.5, abs=0.1)


def test_unknown_calibration_method_fails():
    with pytest.raises(ValueError, match="calibration method"):
        make_calibrator("beta")


def test_markov_matrix_counts_transitions_by_current_tier():
    current = ["ordinary", "ordinary", "ordinary", "core", "core", "potential"]
    following = ["ordinary", "core", "core", "core", "ordinary", "ordinary"]
    markov = make_markov_baseline(alpha=0.0).fit(current, following)
    m = markov.frame()
    assert m.loc["ordinary"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 0])
    assert m.loc["core"].tolist() == pytest.approx([0, 0.5, 0.5, 0])
    assert m.loc["potential"].tolist() == pytest.approx([0, 1, 0, 0])
    # vip never seen: the overall next-tier distribution
    assert m.loc["vip"].tolist() == pytest.approx([0, 3 / 6, 3 / 6, 0])
    assert markov.predict_proba(["core", "vip"]).shape == (2, 4)


def test_markov_smoothing_gives_every_transition_some_mass():
    markov = make_markov_baseline(alpha=1.0).fit(["core"], ["core"])
    row = markov.frame().loc["core"]
    assert row.tolist() == pytest.approx([0.2, 0.2, 0.4, 0.2])
    assert np.allclose(markov.matrix_.sum(axis=1), 1.0)


def test_tier_codes_follow_tier_order_and_reject_unknown_tiers():
    assert tier_codes(["potential", "vip", "core", "ordinary"]).tolist() == [0, 3, 2, 1]
    with pytest.raises(ValueError, match="unknown tier"):
        tier_codes(["gold"])
