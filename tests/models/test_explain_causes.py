"""Reasons per churn cause (models/explain/causes.py): exact TreeSHAP of the cause's mean
log-odds against staying, and the right feature named for each cause."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS
from features.spec import CAUSES
from models.explain.causes import cause_contributions, cause_reasons
from models.survival.hazards import fit_hazard_model

# two real feature names of different groups: one drives run-off, the other refinancing
RUNOFF_X, REFI_X = "con_open_n_90", "price_gap_now"


def _world(params_cfg):
    rng = np.random.default_rng(4)
    n, K = 4000, 12
    a, b = rng.random(n), rng.random(n)
    hazard = np.column_stack([0.005 + 0.10 * a, 0.005 + 0.10 * b])
    churn = rng.random((n, K)) < hazard.sum(axis=1)[:, None]
    first = np.where(churn.any(axis=1), churn.argmax(axis=1) + 1, K)
    cause = np.where(rng.random(n) < hazard[:, 0] / hazard.sum(axis=1), 0, 1)
    event = churn.any(axis=1)
    rows = pd.DataFrame({RUNOFF_X: a, REFI_X: b, SURV_MONTHS: first.astype(float),
                         SURV_EVENT: event * 1.0,
                         SURV_CAUSE: np.where(event, np.array(CAUSES)[cause], None)})  # fmt: skip
    booster = replace(params_cfg.survival.model.booster, n_estimators=150, learning_rate=0.1,
                      early_stopping_rounds=20, min_child_samples=20)  # fmt: skip
    spec = replace(params_cfg.survival.model, booster=booster)
    model = fit_hazard_model(rows.iloc[:3000], rows.iloc[3000:], [RUNOFF_X, REFI_X], spec, K)
    return model, rows.iloc[3000:].reset_index(drop=True)


def test_cause_contributions_add_up_to_the_mean_log_odds_against_staying(params_cfg):
    model, rows = _world(params_cfg)
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


def test_each_cause_is_explained_by_its_own_driver(params_cfg):
    model, rows = _world(params_cfg)
    groups = {RUNOFF_X: "contract", REFI_X: "pricing"}
    high_a = rows[(rows[RUNOFF_X] > 0.8) & (rows[REFI_X] < 0.5)].head(50)
    high_b = rows[(rows[REFI_X] > 0.8) & (rows[RUNOFF_X] < 0.5)].head(50)
    runoff = cause_reasons(model.booster, high_a, model.features, groups, model.months,
                           np.zeros(len(high_a), int), k=1)  # fmt: skip
    refinanced = cause_reasons(model.booster, high_b, model.features, groups, model.months,
                               np.ones(len(high_b), int), k=1)  # fmt: skip
    assert (runoff["cause_reason_1_group"] == "contract").mean() > 0.9
    assert (refinanced["cause_reason_1_group"] == "pricing").mean() > 0.9
    assert (runoff["cause_reason_1_contribution"] > 0).all()
