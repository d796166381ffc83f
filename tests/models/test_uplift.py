"""models/uplift: the T-learner finds a known effect, Qini ranks targetings, the plan keeps to
its budget. Hand-made data with a planted effect; no world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.strategies.catalog import load_catalog
from models.uplift.learner import NONE, UpliftTLearner
from models.uplift.metrics import compute_auuc, compute_qini_curve
from models.uplift.plan import (
    ACTION,
    COST,
    NO_ACTION,
    RANK,
    SAVED_VALUE,
    compute_net_values,
    plan_actions,
    with_strategy_text,
)

PARAMS = {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 4, "min_child_samples": 20,
          "n_jobs": 1}  # fmt: skip


def planted(n: int = 6000, seed: int = 0):
    """Churn 0.5 untreated; strategy ``a`` prevents 0.3 of it where x1 > 0, ``b`` nothing."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    strategy = rng.choice(["a", "b"], n)
    treated = rng.random(n) < 0.6
    p = 0.5 - 0.3 * (treated & (strategy == "a") & (X["x1"].to_numpy() > 0))
    return X, strategy, treated, (rng.random(n) < p).astype(float)


def test_t_learner_finds_the_planted_effect_and_only_there():
    X, strategy, treated, y = planted()
    model = UpliftTLearner(PARAMS, ["a", "b", "c"]).fit(X, strategy, treated, y)
    assert model.fitted_strategies == ["a", "b"]  # c: never treated, not fitted
    uplift = model.predict_uplift(X)
    assert uplift["c"].isna().all()
    high = X["x1"] > 0.3
    assert uplift.loc[high, "a"].mean() > 0.2
    assert abs(uplift.loc[~high & (X["x1"] < -0.3), "a"].mean()) < 0.08
    assert abs(uplift["b"].mean()) < 0.08
    assert set(model.predict_churn(X).columns) == {NONE, "a", "b"}


def test_t_learner_needs_controls():
    X, strategy, _, y = planted(200)
    with pytest.raises(ValueError, match="control arm"):
        UpliftTLearner(PARAMS, ["a"]).fit(X, strategy, np.ones(200, bool), y)


def test_qini_of_a_hand_made_ranking():
    # ranked: a treated non-churner, a control churner, a treated churner, a control non-churner
    score, treated = np.array([4, 3, 2, 1]), np.array([True, False, True, False])
    x, q = compute_qini_curve(score, treated, np.array([0.0, 1.0, 1.0, 0.0]))
    # k=1: no control yet -> 0; k=2: 1*1/1 - 0 = 1; k=3: 1*2/1 - 1 = 1; k=4: 1*2/2 - 1 = 0
    assert x.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert q.tolist() == [0.0, 0.0, 0.25, 0.25, 0.0]


def test_qini_ranks_the_true_effect_above_random_and_random_near_zero():
    X, strategy, treated, y = planted(20000, seed=1)
    keep = ~treated | (strategy == "a")
    truth = (X["x1"] > 0).to_numpy(float)[keep]
    rng = np.random.default_rng(2)
    good = compute_auuc(truth + rng.normal(0, 0.01, keep.sum()), treated[keep], y[keep])
    noise = compute_auuc(rng.random(keep.sum()), treated[keep], y[keep])
    # perfect ranking: the gain climbs to gain_all over the half with an effect, then stays:
    # qini = 0.75 g - 0.5 g = g / 4, with g = 0.3 x 1/2 x the treated share (3/7)
    assert good["qini"] == pytest.approx(0.3 * 0.5 * 3 / 7 / 4, abs=0.004)
    assert abs(noise["qini"]) < good["qini"] / 3
    assert good["gain_all"] == pytest.approx(noise["gain_all"])


def _plan_inputs(seed: int, n: int):
    rng = np.random.default_rng(seed)
    uplift = pd.DataFrame(rng.uniform(-0.05, 0.3, (n, 3)), columns=["a", "b", "c"])
    cost = pd.DataFrame(rng.uniform(10, 5000, (n, 3)), columns=["a", "b", "c"])
    return uplift, cost, pd.Series(rng.uniform(0.05, 0.9, n)), pd.Series(rng.uniform(0, 1e5, n))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), budget=st.floats(0, 50_000))
def test_the_plan_never_spends_more_than_the_budget(params_cfg, seed, n, budget):
    uplift, cost, p_none, value = _plan_inputs(seed, n)
    net = compute_net_values(uplift, p_none, value, cost, params_cfg.kpis, 180)
    plan = plan_actions(uplift, net, cost, budget)
    taken = plan[ACTION] != NO_ACTION
    assert plan[COST].sum() <= budget + 1e-9
    assert (plan.loc[taken, SAVED_VALUE] > 0).all() and (plan.loc[~taken, COST] == 0).all()
    assert sorted(plan.loc[taken, RANK].tolist()) == list(range(1, taken.sum() + 1))
    chosen = net.to_numpy().argmax(axis=1)[taken.to_numpy()]
    assert (plan.loc[taken, ACTION].to_numpy() == net.columns[chosen]).all()  # the best strategy


def test_the_plan_takes_the_best_value_per_cost_first(params_cfg):
    uplift = pd.DataFrame({"a": [0.2, 0.2, 0.2]})
    cost = pd.DataFrame({"a": [100.0, 100.0, 100.0]})
    value = pd.Series([1e5, 5e4, 100.0])  # saving the third is worth less than its cost
    net = compute_net_values(uplift, pd.Series([0.5] * 3), value, cost, params_cfg.kpis, 180)
    plan = plan_actions(uplift, net, cost, budget=150.0)
    assert plan[ACTION].tolist() == ["a", NO_ACTION, NO_ACTION]
    rank = plan_actions(uplift, net, cost, budget=1e9)[RANK]
    assert rank.iloc[:2].tolist() == [1, 2] and rank.isna().iloc[2]
    with pytest.raises(ValueError, match="budget"):
        plan_actions(uplift, net, cost, budget=-1.0)


def test_plan_rows_carry_the_strategy_name_and_source():
    rank = pd.array([1, None], "Int64")
    plan = pd.DataFrame({ACTION: ["regular_follow_up", NO_ACTION], "expected_churn_reduction": 0.0,
                         SAVED_VALUE: 0.0, COST: 0.0, RANK: rank})  # fmt: skip
    out = with_strategy_text(plan, load_catalog())
    assert out["name"].tolist() == ["Regular follow-up visits and calls", ""]
    assert "003_9a6a44f485bf45de.txt" in out["source"].iloc[0]
