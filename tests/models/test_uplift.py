"""models/uplift: the T-learner finds a known effect, Qini ranks targetings, the plan keeps to
its budget. Hand-made data with a planted effect; no world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.spec import KpiSpec
from models.strategies.catalog import load_catalog
from models.uplift.learner import NONE, UpliftTLearner
from models.uplift.metrics import compute_auuc, compute_qini_curve
from models.uplift.plan import (
    ACTION,
    COST,
    NO_ACTION,
    RANK,
    SAVED_VALUE,
    ValueBasis,
    compute_net_values,
    plan_actions,
    treated_survival,
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


# months of 30 days, two of them in the CLV, no discount, all margin: CLV = 30 x (S(1) + S(2))
# for a yearly value of 365
SHORT = KpiSpec(clv_horizon_days=60, discount_rate=0.0, margin_share=1.0, survey_window_days=90,
                value_window_days=365)  # fmt: skip
CURVE = np.array([[0.9, 0.81]])  # a monthly hazard of 0.1: churn by month 2 is 0.19


def test_the_treated_curve_scales_the_hazard_by_the_arms_hazard_ratio():
    same = treated_survival(CURVE, np.array([0.19]), np.array([0.19]))
    np.testing.assert_allclose(same, CURVE)  # p_s == p_none: the untreated curve
    # 1 - p_s = 0.9 = 0.81^(1/2): half the cumulative hazard, every month
    np.testing.assert_allclose(treated_survival(CURVE, np.array([0.19]), np.array([0.1])),
                               [[0.9**0.5, 0.9]])  # fmt: skip
    np.testing.assert_allclose(treated_survival(CURVE, np.array([0.19]), np.array([0.0])), [[1, 1]])
    # no churn untreated: nothing to scale, the curve stays
    np.testing.assert_allclose(treated_survival(CURVE, np.array([0.0]), np.array([0.0])), CURVE)
    harm = treated_survival(CURVE, np.array([0.19]), np.array([0.3]))  # a strategy that does harm
    assert (harm < CURVE).all()


def test_the_survival_saved_value_by_hand_and_growing_with_the_uplift():
    uplift = pd.DataFrame({"a": [0.0, 0.02, 0.09, 0.15]})
    n = len(uplift)
    basis = ValueBasis(np.repeat(CURVE, n, axis=0), 30.0, "hand-made")
    p_none, value = pd.Series([0.19] * n), pd.Series([365.0] * n)
    cost = pd.DataFrame({"a": [0.0] * n})
    net = compute_net_values(uplift, p_none, value, cost, SHORT, 60, basis)["a"].to_numpy()
    # uplift 0.09: p_s = 0.1, the treated curve (0.9^0.5, 0.9): 30 x (0.9487 + 0.9 - 0.9 - 0.81)
    assert net[0] == pytest.approx(0.0, abs=1e-9)
    assert net[2] == pytest.approx(30.0 * (0.9**0.5 + 0.9 - 0.9 - 0.81))
    assert (np.diff(net) > 0).all() and (net[1:] > 0).all()
    costly = compute_net_values(uplift, p_none, value, cost + 1.5, SHORT, 60, basis)["a"]
    np.testing.assert_allclose(costly.to_numpy(), net - 1.5)  # net of the cost


def test_without_a_curve_the_saved_value_is_the_geometric_clv(params_cfg):
    from models.evaluation.kpis import compute_clv

    uplift, cost, p_none, value = _plan_inputs(3, 40)
    kpis, h = params_cfg.kpis, 180
    net = compute_net_values(uplift, p_none, value, cost, kpis, h)
    assert ValueBasis(reason="none").name == "geometric"
    pd.testing.assert_frame_equal(net, compute_net_values(uplift, p_none, value, cost, kpis, h,
                                                          ValueBasis(reason="none")))  # fmt: skip
    base = compute_clv(p_none.to_numpy(), value.to_numpy(), kpis, h)
    for s in uplift.columns:  # the formula before the survival basis, written out
        treated = np.clip(p_none.to_numpy() - uplift[s].to_numpy(), 0.0, 1.0)
        want = compute_clv(treated, value.to_numpy(), kpis, h) - base - cost[s].to_numpy()
        np.testing.assert_allclose(net[s].to_numpy(), want)


def test_plan_rows_carry_the_strategy_name_and_source():
    rank = pd.array([1, None], "Int64")
    plan = pd.DataFrame({ACTION: ["regular_follow_up", NO_ACTION], "expected_churn_reduction": 0.0,
                         SAVED_VALUE: 0.0, COST: 0.0, RANK: rank})  # fmt: skip
    out = with_strategy_text(plan, load_catalog())
    assert out["name"].tolist() == ["Regular follow-up visits and calls", ""]
    assert "003_9a6a44f485bf45de.txt" in out["source"].iloc[0]
