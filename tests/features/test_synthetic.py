"""The synthetic world: deterministic, true to the input contract, and true to its causal story."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import features.contract as fc
from features.synthetic import (
    INDUSTRIES,
    PRODUCTS,
    REGIONS,
    SEGMENTS,
    World,
    generate_world,
    simulate_world,
)
from pipelines.config import load_defaults

BASE = load_defaults().generate  # params.yaml's world; the tests' worlds are variants of it
SPEC = dataclasses.replace(BASE, customers=600, years=3, start="2021-01-01", seed=11)
START = pd.Timestamp(SPEC.start)
END = START + pd.DateOffset(years=SPEC.years) - pd.Timedelta(days=1)
KINDS = {"str": "object", "date": "datetime64[ns]", "timestamp": "datetime64[ns]",
         "float": "float64", "int": "int64"}  # fmt: skip


@pytest.fixture(scope="module")
def world() -> World:
    return simulate_world(SPEC, keep_monthly=True)


@pytest.fixture(scope="module")
def tables(world: World) -> fc.Tables:
    return world.tables


def _month(s: pd.Series) -> pd.Series:
    return s.dt.to_period("M").dt.to_timestamp()


def _with_loyalty(df: pd.DataFrame, when: str, world: World) -> pd.DataFrame:
    """``df`` joined to each customer's latent loyalty and state in the month of column ``when``."""
    keyed = df.assign(month=_month(df[when]))
    return keyed.merge(world.latent.monthly, on=[fc.CUSTOMER_ID, "month"], how="inner")


def _snapshot_panel(world: World, event: str) -> pd.DataFrame:
    """Active customers every 3 months, flagged when ``event`` happens in the next 6 months."""
    monthly, events = world.latent.monthly, world.latent.events
    panels = []
    for as_of in pd.date_range(START + pd.DateOffset(months=6), END - pd.DateOffset(months=6),
                               freq="3MS"):  # fmt: skip
        active = monthly[(monthly["month"] == as_of) & (monthly["state"] == "active")]
        window = (events["month"] > as_of) & (events["month"] <= as_of + pd.DateOffset(months=6))
        hit = events.loc[window & (events["event"] == event), fc.CUSTOMER_ID]
        panels.append(active.assign(as_of=as_of, y=active[fc.CUSTOMER_ID].isin(hit)))
    return pd.concat(panels, ignore_index=True)


# --- determinism -------------------------------------------------------------------------------


def test_same_spec_gives_identical_tables(tables):
    again = generate_world(SPEC)
    for name, df in tables.present().items():
        pd.testing.assert_frame_equal(df, again.get(name), obj=name)


def test_another_seed_gives_another_world(tables):
    other = generate_world(dataclasses.replace(SPEC, seed=SPEC.seed + 1))
    assert not other.loans.equals(tables.loans)


@pytest.mark.parametrize("bad", [dict(customers=0), dict(years=0), dict(prospect_share=1.5),
                                 dict(survey_response=1.0)])  # fmt: skip
def test_bad_spec_is_refused(bad):
    with pytest.raises(ValueError):
        generate_world(dataclasses.replace(SPEC, **bad))


# --- the contract ------------------------------------------------------------------------------


def _assert_contract(tables: fc.Tables) -> None:
    for name in fc.TABLE_NAMES:
        df, spec = tables.get(name), fc.CONTRACT[name]
        if df is None and name == fc.CAMPAIGNS:
            continue  # campaigns are off in the default world (test_campaigns.py)
        assert list(df.columns) == list(spec.column_names), name
        for col in spec.columns:
            s = df[col.name]
            assert str(s.dtype) == KINDS[col.kind], (name, col.name, s.dtype)
            assert col.nullable or s.notna().all(), (name, col.name)
            assert not col.unique or s.is_unique, (name, col.name)
            if col.kind == "str":
                assert s.dropna().map(type).eq(str).all(), (name, col.name)
            if col.kind == "date":
                assert (s.dropna() == s.dropna().dt.normalize()).all(), (name, col.name)


def test_tables_follow_the_contract(tables):
    _assert_contract(tables)
    assert tables.loans[fc.LOAN_ID].str.fullmatch(r"L\d{8}").all()
    assert tables.customers[fc.CUSTOMER_ID].str.fullmatch(r"C\d{7}").all()
    assert (tables.interactions[fc.TIMESTAMP].dt.hour > 0).all()  # a time of day, not midnight


ODD_WORLDS = [
    dataclasses.replace(BASE, customers=1, years=1, seed=3),
    dataclasses.replace(BASE, customers=40, years=1, start="2023-03-15", seed=5),
]


@pytest.mark.parametrize("spec", ODD_WORLDS)
def test_tiny_and_odd_worlds_follow_the_contract(spec):
    tables = generate_world(spec)
    _assert_contract(tables)
    end = pd.Timestamp(spec.start) + pd.DateOffset(years=spec.years) - pd.Timedelta(days=1)
    for name, df in tables.present().items():
        for col in fc.date_columns(name):
            assert (df[col].dropna().dt.normalize() <= end).all(), (name, col)
            assert (df[col].dropna() >= pd.Timestamp(spec.start)).all(), (name, col)


def test_project_validation_accepts_the_world(tables):
    from features.validation import validate_tables

    typed, report = validate_tables(tables.present(), end=END)
    assert len(typed.loans) == len(tables.loans)
    assert report.warnings == []


def test_keys_are_unique_and_references_resolve(tables):
    loans, customers = tables.loans, tables.customers
    assert loans[fc.LOAN_ID].is_unique and customers[fc.CUSTOMER_ID].is_unique
    assert not tables.repayments.duplicated([fc.LOAN_ID, fc.DUE_DATE]).any()
    assert tables.repayments[fc.LOAN_ID].isin(loans[fc.LOAN_ID]).all()
    for df in (loans, tables.interactions, tables.surveys):
        assert df[fc.CUSTOMER_ID].isin(customers[fc.CUSTOMER_ID]).all()


def test_values_lie_in_their_ranges(tables):
    loans, rep, surveys, inter = (tables.loans, tables.repayments, tables.surveys,
                                  tables.interactions)  # fmt: skip
    assert (loans[fc.PRINCIPAL] > 0).all()
    assert loans[fc.INTEREST_RATE].between(0.005, 0.2).all()
    assert loans[fc.TERM_MONTHS].between(6, 60).all()
    assert set(loans[fc.PRODUCT]) <= set(PRODUCTS)
    assert set(tables.customers[fc.SEGMENT]) == set(SEGMENTS)
    assert set(tables.customers[fc.INDUSTRY]) <= set(INDUSTRIES)
    assert set(tables.customers[fc.REGION]) <= set(REGIONS)
    assert set(inter[fc.CHANNEL]) == set(fc.KNOWN_CHANNELS)
    assert set(inter[fc.KIND]) == set(fc.KNOWN_KINDS)
    assert (rep[fc.AMOUNT_DUE] > 0).all()
    paid = rep[fc.PAID_DATE].notna()
    assert (rep[fc.AMOUNT_PAID].notna() == paid).all()
    assert (rep.loc[paid, fc.AMOUNT_PAID] <= rep.loc[paid, fc.AMOUNT_DUE]).all()
    assert (rep.loc[paid, fc.AMOUNT_PAID] > 0).all()
    for col, (lo, hi) in ((fc.SATISFACTION, fc.SATISFACTION_RANGE), (fc.NPS, fc.NPS_RANGE)):
        answers = surveys[col].dropna()
        assert answers.between(lo, hi).all() and (answers % 1 == 0).all()
        assert answers.nunique() >= 4  # noisy, not constant


def test_nothing_is_dated_outside_the_world(tables):
    for name, df in tables.present().items():
        for col in fc.date_columns(name):
            dates = df[col].dropna()
            assert (dates.dt.normalize() <= END).all(), (name, col)
            assert (dates >= START).all(), (name, col)
    assert fc.data_end(tables) <= END


def test_loans_and_installments_follow_their_lifecycle(tables):
    loans = tables.loans.set_index(fc.LOAN_ID)
    maturity = loans.apply(
        lambda r: r[fc.ORIGINATION_DATE] + pd.DateOffset(months=r[fc.TERM_MONTHS]), axis=1
    )
    closed = loans[fc.CLOSED_DATE]
    assert (closed.dropna() >= loans.loc[closed.notna(), fc.ORIGINATION_DATE]).all()
    assert (closed.dropna() <= maturity[closed.notna()]).all()
    assert (maturity[closed.isna()] > END).all()  # open at the end ⇒ not yet matured
    assert (closed < maturity).any() and (closed == maturity).any()  # prepaid and matured loans
    rep = tables.repayments.join(loans, on=fc.LOAN_ID)
    assert (rep[fc.DUE_DATE] > rep[fc.ORIGINATION_DATE]).all()
    assert (rep[fc.DUE_DATE] <= rep[fc.CLOSED_DATE].fillna(END)).all()
    per_loan = rep.groupby(fc.LOAN_ID).size()
    assert (per_loan <= loans.loc[per_loan.index, fc.TERM_MONTHS]).all()
    paid = rep[fc.PAID_DATE].dropna()
    assert (paid >= rep.loc[paid.index, fc.ORIGINATION_DATE]).all()


def test_activity_starts_at_onboarding(tables):
    onboarded = tables.customers.set_index(fc.CUSTOMER_ID)[fc.ONBOARDING_DATE]
    checks = ((tables.loans, fc.ORIGINATION_DATE), (tables.interactions, fc.TIMESTAMP),
              (tables.surveys, fc.SURVEY_DATE))  # fmt: skip
    for df, col in checks:
        assert (df[col] >= df[fc.CUSTOMER_ID].map(onboarded)).all(), col


# --- the causal story --------------------------------------------------------------------------


def test_some_prospects_convert_and_some_never(world, tables):
    latent = world.latent.customers
    borrowers = set(tables.loans[fc.CUSTOMER_ID])
    prospects = latent.loc[latent["prospect"], fc.CUSTOMER_ID]
    converted = prospects.isin(borrowers).mean()
    assert 0.1 < converted < 0.8
    assert latent.loc[~latent["prospect"], fc.CUSTOMER_ID].isin(borrowers).all()
    never = prospects[~prospects.isin(borrowers)]
    assert never.isin(tables.interactions[fc.CUSTOMER_ID]).mean() > 0.9  # marketing reached them
    assert set(world.latent.events.loc[lambda e: e["event"] == "convert", fc.CUSTOMER_ID]) <= set(
        prospects
    )


def test_converting_prospects_engaged_more(world, tables):
    latent = world.latent.customers
    prospects = latent.loc[latent["prospect"], fc.CUSTOMER_ID]
    converted = prospects.isin(tables.loans[fc.CUSTOMER_ID])
    inter = tables.interactions
    asked = inter.loc[inter[fc.KIND].isin(["inquiry", "event"]), fc.CUSTOMER_ID].value_counts()
    engagement = prospects.map(asked).fillna(0)
    assert engagement[converted.to_numpy()].mean() > 1.5 * engagement[~converted.to_numpy()].mean()


def test_lower_loyalty_churns_more(world):
    panel = _snapshot_panel(world, "drift")
    low = panel["loyalty"] < panel["loyalty"].median()
    assert 0.03 < panel["y"].mean() < 0.4
    assert panel.loc[low, "y"].mean() > 2 * panel.loc[~low, "y"].mean()


def test_churners_show_signals_before_they_leave(world, tables):
    panel = _snapshot_panel(world, "churn")
    inter = tables.interactions
    rows = []
    for as_of, group in panel.groupby("as_of"):
        recent = inter[
            (inter[fc.TIMESTAMP] < as_of) & (inter[fc.TIMESTAMP] >= as_of - pd.DateOffset(months=6))
        ]
        complaints = recent[recent[fc.KIND] == "complaint"][fc.CUSTOMER_ID].value_counts()
        rm = recent[recent[fc.CHANNEL].isin(fc.RM_CHANNELS)][fc.CUSTOMER_ID].value_counts()
        rows.append(group.assign(complaints=group[fc.CUSTOMER_ID].map(complaints).fillna(0),
                                 rm=group[fc.CUSTOMER_ID].map(rm).fillna(0)))  # fmt: skip
    means = pd.concat(rows).groupby("y")[["complaints", "rm"]].mean()
    assert means.loc[True, "complaints"] > 1.5 * means.loc[False, "complaints"]
    assert means.loc[True, "rm"] < 0.9 * means.loc[False, "rm"]


def test_churned_customers_stop_borrowing(world, tables):
    events = world.latent.events
    churned = events[events["event"] == "churn"].groupby(fc.CUSTOMER_ID)["month"].min()
    back = set(events.loc[events["event"] == "winback", fc.CUSTOMER_ID])
    loans = tables.loans[~tables.loans[fc.CUSTOMER_ID].isin(back)]
    after = loans[fc.ORIGINATION_DATE] >= loans[fc.CUSTOMER_ID].map(churned)
    assert len(churned) > 20 and not after.any()


def test_referrals_come_mostly_from_loyal_customers(world, tables):
    inter = tables.interactions
    referrals = _with_loyalty(inter[inter[fc.KIND] == "referral"], fc.TIMESTAMP, world)
    monthly = world.latent.monthly
    median = monthly[monthly["state"] == "active"].groupby("month")["loyalty"].median()
    above = referrals["loyalty"] > referrals["month"].map(median)
    assert len(referrals) > 30 and above.mean() > 0.7


def test_lateness_falls_with_loyalty(world, tables):
    rep = tables.repayments.merge(tables.loans[[fc.LOAN_ID, fc.CUSTOMER_ID]], on=fc.LOAN_ID)
    rep = _with_loyalty(rep, fc.DUE_DATE, world)
    days_late = (rep[fc.PAID_DATE] - rep[fc.DUE_DATE]).dt.days
    bad = rep[fc.PAID_DATE].isna() | (days_late > 7)
    quartile = pd.qcut(rep["loyalty"], 4, labels=False)
    rate = bad.groupby(quartile).mean()
    assert rate.iloc[0] > 2 * rate.iloc[-1]
    assert np.corrcoef(rep["loyalty"][days_late.notna()], days_late.dropna())[0, 1] < -0.05


def test_survey_answers_follow_loyalty_with_noise(world, tables):
    answers = _with_loyalty(tables.surveys, fc.SURVEY_DATE, world).dropna()
    for col in (fc.SATISFACTION, fc.NPS):
        r = np.corrcoef(answers["loyalty"], answers[col])[0, 1]
        assert 0.3 < r < 0.95, (col, r)


def test_market_rate_moves_within_its_band(world):
    market = world.latent.market["market_rate"]
    assert market.between(0.03, 0.07).all() and market.std() > 0.001
