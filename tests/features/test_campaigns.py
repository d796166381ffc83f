"""Campaigns: the optional contract table, the synthetic world's campaigns and their oracle.

The contract part reuses test_validation's hand-made five-table world; the world part runs small
seeded worlds (a few hundred customers, three years).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from features.contract import ARMS
from features.synthetic import (
    CAMPAIGN_STRATEGIES,
    generate_world,
    oracle_uplift,
    simulate_policies,
    simulate_world,
)
from features.validation import validate_tables
from models.strategies.catalog import load_catalog

STRATEGY_IDS = tuple(s.id for s in load_catalog().strategies)


# --- the synthetic world's campaigns ------------------------------------------------------------


@pytest.fixture(scope="module")
def on_spec(params_cfg):
    base = replace(params_cfg.generate, customers=900, years=3, seed=5)
    return replace(base, campaigns=replace(base.campaigns, start="2021-01-31"))


@pytest.fixture(scope="module")
def on_world(on_spec):
    return simulate_world(on_spec)


def test_campaigns_are_on_in_the_default_world_and_off_without_a_start(params_cfg):
    assert params_cfg.generate.campaigns.on
    small = replace(params_cfg.generate, customers=200, years=2)
    assert generate_world(small).campaigns is not None
    off = replace(small, campaigns=replace(small.campaigns, start=""))
    assert generate_world(off).campaigns is None


def test_the_world_before_the_first_campaign_is_the_world_without_campaigns(on_spec, on_world):
    off = generate_world(replace(on_spec, campaigns=replace(on_spec.campaigns, start="")))
    first = pd.Timestamp("2021-02-01")
    before = on_world.tables.loans[on_world.tables.loans["origination_date"] < first]
    expected = off.loans[off.loans["origination_date"] < first]
    pd.testing.assert_frame_equal(
        before.drop(columns=["closed_date", "close_reason"]).reset_index(drop=True),
        expected.drop(columns=["closed_date", "close_reason"]).reset_index(drop=True),
    )


def test_campaign_table_follows_the_contract_and_the_design(on_spec, on_world):
    camp = on_world.tables.campaigns
    tables, _ = validate_tables(on_world.tables.present(), strategy_ids=STRATEGY_IDS)
    assert len(tables.campaigns) == len(camp) > 100
    assert set(CAMPAIGN_STRATEGIES) <= set(STRATEGY_IDS)
    assert (camp["date"] + pd.Timedelta(days=1)).dt.is_month_start.all()  # decided at a snapshot
    assert camp["date"].min() == pd.Timestamp("2021-01-31")
    assert set(camp["arm"]) == set(ARMS) and set(camp["strategy_id"]) == set(CAMPAIGN_STRATEGIES)
    control = (camp["arm"] == "control").mean()
    assert abs(control - on_spec.campaigns.control_share) < 0.08
    assert (camp.loc[camp["arm"] == "control", "cost"] == 0).all()
    treated = camp[camp["arm"] == "treated"].groupby("strategy_id")["cost"].median()
    assert (
        treated["enhance_interaction"] < treated["prompt_response"] < treated["regular_follow_up"]
    )
    gap = camp.groupby("customer_id")["date"].diff().dropna().dt.days
    assert (gap > 30 * on_spec.campaigns.cooldown_months).all()  # no one selected in the cooldown


# --- the oracle uplift ----------------------------------------------------------------------------


def _state_rows(on_spec, state: str, month: str) -> pd.DataFrame:
    monthly = simulate_world(on_spec, keep_monthly=True).latent.monthly
    at = monthly[(monthly["month"] == pd.Timestamp(month)) & (monthly["state"] == state)]
    return pd.DataFrame({"customer_id": at["customer_id"].to_numpy(),
                         "as_of": pd.Timestamp(month) + pd.offsets.MonthEnd(0)})  # fmt: skip


def test_no_strategy_keeps_a_customer_already_drifting_away(on_spec):
    rows = _state_rows(on_spec, "drifting", "2021-06-01")
    assert len(rows) >= 5
    grid = pd.concat([rows.assign(strategy_id=s) for s in CAMPAIGN_STRATEGIES], ignore_index=True)
    effect = oracle_uplift(on_spec, grid, 180, replicates=100)
    assert (effect["uplift"] == 0.0).all()  # same state, same numbers: the very same futures


def test_strategies_work_through_the_mechanics_and_are_exactly_inert_where_they_cannot(on_spec):
    rows = _state_rows(on_spec, "active", "2021-06-01")
    grid = pd.concat([rows.assign(strategy_id=s) for s in CAMPAIGN_STRATEGIES], ignore_index=True)
    effect = oracle_uplift(on_spec, grid, 180, replicates=100)
    by = effect.groupby(grid["strategy_id"])["uplift"].mean()
    assert by["regular_follow_up"] > 0.02  # loyalty restored: fewer drift away, more renew
    assert by["regular_follow_up"] > by["enhance_interaction"]
    # one customer at a time: a strategy that changes none of its state changes none of its future
    seen = simulate_world(on_spec).tables.interactions
    complained = seen.loc[(seen["kind"] == "complaint") & (seen["timestamp"] < "2021-07-01"),
                          "customer_id"]  # fmt: skip
    calm = rows[~rows["customer_id"].isin(complained)].head(3)
    assert len(calm) == 3
    inert = oracle_uplift(on_spec, calm.assign(strategy_id="prompt_response"), 180, replicates=50)
    assert (inert["uplift"] == 0.0).all()  # no complaint: service recovery has nothing to do


def test_uplift_rows_must_be_unique_and_strategies_known(on_spec):
    rows = pd.DataFrame({"customer_id": ["C0000001"] * 2, "as_of": pd.Timestamp("2021-06-30"),
                         "strategy_id": ["regular_follow_up"] * 2})  # fmt: skip
    with pytest.raises(ValueError, match="one row per"):
        oracle_uplift(on_spec, rows, 180, replicates=2)
    with pytest.raises(ValueError, match="strategies outside"):
        oracle_uplift(on_spec, rows.iloc[:1].assign(strategy_id="free_lunch"), 180, replicates=2)


def test_policy_simulation_pairs_each_targeted_customer_with_its_untreated_futures(on_spec):
    none = pd.DataFrame({"customer_id": [], "strategy_id": []})
    some = _state_rows(on_spec, "active", "2021-06-01").head(40)
    some = some.assign(strategy_id="regular_follow_up")
    policies = {"empty": none, "rm": some}
    out = simulate_policies(on_spec, pd.Timestamp("2021-06-30"), policies, 180, replicates=40)
    assert (out["empty"] == out["none"]).all()  # nobody targeted: the book's untreated future
    treated = out["customer_id"].isin(some["customer_id"])
    assert (out.loc[~treated, "rm"] == out.loc[~treated, "none"]).all()  # copies do not interact
    assert out.loc[treated, "rm"].mean() < out.loc[treated, "none"].mean() - 0.01
    with pytest.raises(ValueError, match="strategies outside"):
        bad = {"bad": some.assign(strategy_id="free_lunch")}
        simulate_policies(on_spec, pd.Timestamp("2021-06-30"), bad, 180, replicates=2)
