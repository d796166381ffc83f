"""Reasons per churn cause (models/explain/causes.py): exact TreeSHAP of the cause's mean
log-odds against staying, and the right feature named for each cause."""

from __future__ import annotations

from dataclasses import replace

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS
from features.spec import CAUSES
from models.explain import causes
from models.explain.causes import cause_contributions, cause_reasons
from models.explain.reasons import BASE_VALUE
from models.survival.hazards import fit_hazard_model

# two real feature names of different groups: one drives run-off, the other refinancing; a third
# (often missing) drives credit exits, and the hazards change with the month
RUNOFF_X, REFI_X, CREDIT_X = "con_open_n_90", "price_gap_now", "pay_late_n_90"


@pytest.fixture(scope="module")
def world(params_cfg):
    rng = np.random.default_rng(4)
    n, K = 4000, 12
    a, b, z = rng.random(n), rng.random(n), rng.random(n)
    z[rng.random(n) < 0.2] = np.nan
    hazard = np.column_stack([0.005 + 0.10 * a, 0.005 + 0.10 * b, 0.04 * np.nan_to_num(z)])
    by_month = np.where(np.arange(1, K + 1) <= 3, 1.6, 0.8)  # early months riskier
    churn = rng.random((n, K)) < hazard.sum(axis=1)[:, None] * by_month
    first = np.where(churn.any(axis=1), churn.argmax(axis=1) + 1, K)
    cause = (rng.random(n)[:, None] < np.cumsum(hazard, 1) / hazard.sum(1, keepdims=True)).argmax(1)
    event = churn.any(axis=1)
    rows = pd.DataFrame({RUNOFF_X: a, REFI_X: b, CREDIT_X: z, SURV_MONTHS: first.astype(float),
                         SURV_EVENT: event * 1.0,
                         SURV_CAUSE: np.where(event, np.array(CAUSES)[cause], None)})  # fmt: skip
    booster = replace(params_cfg.survival.model.booster, n_estimators=150, learning_rate=0.1,
                      early_stopping_rounds=20, min_child_samples=20)  # fmt: skip
    spec = replace(params_cfg.survival.model, booster=booster)
    features = [RUNOFF_X, REFI_X, CREDIT_X]
    model = fit_hazard_model(rows.iloc[:3000], rows.iloc[3000:], features, spec, K)
    return model, rows.iloc[3000:].reset_index(drop=True)


def plain_cause_contributions(
    booster: lgb.Booster, X: pd.DataFrame, months: int, cause_index: np.ndarray
) -> pd.DataFrame:
    """The reference: pred_contrib of the whole booster (every class) on the K stacked
    person-period rows of every customer, then the mean of φ_cause − φ_0 over the months."""
    n, n_features = X.shape
    stacked = np.empty((n * months, n_features + 1))
    stacked[:, :-1] = np.tile(X.to_numpy(dtype=np.float64), (months, 1))
    stacked[:, -1] = np.repeat(np.arange(1, months + 1, dtype=np.float64), n)
    num_iteration = booster.best_iteration or booster.current_iteration()
    raw = booster.predict(stacked, pred_contrib=True, num_iteration=num_iteration)
    raw = np.asarray(raw).reshape(months, n, booster.num_model_per_iteration(), -1).mean(0)
    against = raw[np.arange(n), cause_index + 1] - raw[:, 0]  # (n, features + month + base)
    out = np.column_stack([against[:, :n_features], against[:, n_features:].sum(axis=1)])
    return pd.DataFrame(out, index=X.index, columns=[*X.columns, BASE_VALUE])


def _month_trees(booster: lgb.Booster) -> np.ndarray:
    """Per tree of the best iteration's model: does it split on the month (the last feature)?"""
    month = booster.num_feature() - 1
    dump = booster.dump_model(num_iteration=booster.best_iteration)["tree_info"]
    return np.array([f"'split_feature': {month}," in str(t["tree_structure"]) for t in dump])


def test_the_world_has_trees_with_and_without_month_splits_and_missing_values(world):
    model, rows = world
    splits = _month_trees(model.booster)
    assert 0.1 < splits.mean() < 0.9
    assert rows[CREDIT_X].isna().mean() > 0.1


def test_cause_contributions_equal_the_plain_algorithm_for_every_cause(world):
    model, rows = world
    X = rows[model.features].head(400).set_axis(np.arange(400) * 3 + 7)  # an index of its own
    cause = np.resize(np.arange(len(CAUSES)), len(X))
    expected = plain_cause_contributions(model.booster, X, model.months, cause)
    got = cause_contributions(model.booster, X, model.months, cause)
    pd.testing.assert_index_equal(got.columns, expected.columns)
    pd.testing.assert_index_equal(got.index, X.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    assert (got.loc[X[CREDIT_X].isna(), CREDIT_X] != 0).any()  # missing values: explained too


def test_cause_contributions_equal_the_plain_algorithm_from_the_stored_model_text(world):
    """The registered model is LightGBM's model text of the best iteration, loaded again."""
    model, rows = world
    text = model.booster.model_to_string(num_iteration=model.booster.best_iteration)
    stored = lgb.Booster(model_str=text)
    X = rows[model.features].tail(200)
    cause = np.full(len(X), CAUSES.index("refinanced"))
    expected = plain_cause_contributions(stored, X, model.months, cause)
    got = cause_contributions(stored, X, model.months, cause)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)


def test_the_cause_forest_is_built_once_per_booster(world, monkeypatch):
    model, rows = world
    X = rows[model.features].head(20)
    cause = np.zeros(len(X), int)
    cause_contributions(model.booster, X, model.months, cause)
    built = []
    monkeypatch.setattr(causes, "_build_forest", lambda *args: built.append(args))
    cause_contributions(model.booster, X, model.months, cause)
    assert built == []


def test_cause_contributions_add_up_to_the_mean_log_odds_against_staying(world):
    model, rows = world
    X = rows[model.features].head(300)
    cause = np.resize(np.arange(len(CAUSES)), len(X))
    contribs = cause_contributions(model.booster, X, model.months, cause)
    K = model.months
    stacked = np.column_stack(
        [np.tile(X.to_numpy(), (K, 1)), np.repeat(np.arange(1, K + 1), len(X))]
    )
    raw = model.booster.predict(stacked, raw_score=True, num_iteration=model.booster.best_iteration)
    raw = raw.reshape(K, len(X), -1)
    expected = (raw[:, np.arange(len(X)), cause + 1] - raw[:, :, 0]).mean(axis=0)
    np.testing.assert_allclose(contribs.sum(axis=1).to_numpy(), expected, atol=1e-9)


def test_each_cause_is_explained_by_its_own_driver(world):
    model, rows = world
    groups = {RUNOFF_X: "contract", REFI_X: "pricing", CREDIT_X: "payment"}
    high_a = rows[(rows[RUNOFF_X] > 0.8) & (rows[REFI_X] < 0.5)].head(50)
    high_b = rows[(rows[REFI_X] > 0.8) & (rows[RUNOFF_X] < 0.5)].head(50)
    runoff = cause_reasons(model.booster, high_a, model.features, groups, model.months,
                           np.zeros(len(high_a), int), k=1)  # fmt: skip
    refinanced = cause_reasons(model.booster, high_b, model.features, groups, model.months,
                               np.ones(len(high_b), int), k=1)  # fmt: skip
    assert (runoff["cause_reason_1_group"] == "contract").mean() > 0.9
    assert (refinanced["cause_reason_1_group"] == "pricing").mean() > 0.9
    assert (runoff["cause_reason_1_contribution"] > 0).all()
