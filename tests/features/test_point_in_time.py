"""Point-in-time properties, proven on random histories with hypothesis.

Features at t: changing, adding or deleting any record dated after t leaves every feature at t
unchanged (bit for bit). Labels at t: the same for records dated after t + H, and they agree with a
brute-force reading of the definitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_feature_table
from features.contract import Tables
from pipelines.config import load_defaults

# Module level, not a fixture: hypothesis's @given tests do not take function-scoped fixtures
# well, and the params never change during a run.
PARAMS = load_defaults()

START = pd.Timestamp("2020-01-01")
DAYS = 4 * 365
KINDS = np.array(["inquiry", "complaint", "referral", "service", "marketing", "event"])
CHANNELS = np.array(["visit", "call", "email", "event", "online"])
PRODUCTS = np.array(["term_loan", "working_capital", "trade_finance"])


def _dates(rng, n, lo=0, hi=DAYS):
    return START + pd.to_timedelta(rng.integers(lo, hi, n), unit="D")


def random_tables(seed: int, n_customers: int) -> Tables:
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i}" for i in range(n_customers)])
    n_loans = int(rng.integers(n_customers, 4 * n_customers))
    orig = _dates(rng, n_loans)
    length = rng.integers(0, 700, n_loans)
    closed = orig + pd.to_timedelta(length, unit="D")
    closed = closed.where(rng.random(n_loans) > 0.2)  # some still open
    loans = pd.DataFrame(
        {
            "loan_id": [f"L{i}" for i in range(n_loans)],
            "customer_id": rng.choice(ids, n_loans),
            "origination_date": orig,
            "principal": rng.lognormal(11, 1, n_loans),
            "product": rng.choice(PRODUCTS, n_loans),
            "interest_rate": rng.uniform(0.02, 0.1, n_loans),
            "term_months": rng.integers(1, 36, n_loans).astype(float),
            "closed_date": closed,
        }
    )
    n_rep = 6 * n_loans
    loan_idx = rng.integers(0, n_loans, n_rep)
    due = (
        loans["origination_date"].to_numpy()[loan_idx]
        + pd.to_timedelta(rng.integers(1, 400, n_rep), unit="D").to_numpy()
    )
    paid = pd.Series(due + pd.to_timedelta(rng.integers(-5, 60, n_rep), unit="D").to_numpy())
    unpaid = rng.random(n_rep) < 0.1
    amount = rng.uniform(100, 5000, n_rep)
    repayments = pd.DataFrame(
        {
            "loan_id": loans["loan_id"].to_numpy()[loan_idx],
            "due_date": due,
            "amount_due": amount,
            "paid_date": paid.where(~unpaid),
            "amount_paid": np.where(
                unpaid, np.nan, amount * rng.choice([1.0, 0.5], n_rep, p=[0.9, 0.1])
            ),
        }
    )
    n_int = 8 * n_customers
    interactions = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, n_int),
            "timestamp": _dates(rng, n_int)
            + pd.to_timedelta(rng.integers(0, 86400, n_int), unit="s"),
            "channel": rng.choice(CHANNELS, n_int),
            "kind": rng.choice(KINDS, n_int),
        }
    )
    n_sur = 2 * n_customers
    surveys = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, n_sur),
            "survey_date": _dates(rng, n_sur),
            "satisfaction": rng.integers(1, 6, n_sur).astype(float),
            "nps": rng.integers(0, 11, n_sur).astype(float),
        }
    )
    customers = pd.DataFrame(
        {"customer_id": ids, "onboarding_date": _dates(rng, n_customers, 0, 300)}
    )
    return Tables(loans, customers, repayments, interactions, surveys)


def perturb_after(tables: Tables, cut: pd.Timestamp, seed: int) -> Tables:
    """Delete, change and add records dated after ``cut``; leave everything <= cut as it was."""
    rng = np.random.default_rng(seed)
    later = lambda n: cut + pd.to_timedelta(rng.integers(1, 500, n), unit="D")  # noqa: E731

    loans = tables.loans.copy()
    after = loans["origination_date"] > cut
    loans = loans[~after | (rng.random(len(loans)) < 0.5)]  # delete half of the later loans
    after = loans["origination_date"] > cut
    loans.loc[after, "principal"] *= 3.0
    open_later = loans["closed_date"].isna() | (loans["closed_date"] > cut)
    loans.loc[open_later, "closed_date"] = later(int(open_later.sum()))  # closes move, still > cut
    new = tables.loans.sample(5, random_state=seed, replace=True).assign(
        loan_id=[f"NEW{i}" for i in range(5)], origination_date=later(5), closed_date=pd.NaT
    )
    loans = pd.concat([loans, new], ignore_index=True)

    reps = tables.repayments[tables.repayments["loan_id"].isin(loans["loan_id"])].copy()
    late_due = reps["due_date"] > cut
    reps.loc[late_due, "amount_due"] *= 2
    paid_later = reps["paid_date"] > cut
    reps.loc[paid_later, "paid_date"] = later(int(paid_later.sum()))
    reps.loc[paid_later, "amount_paid"] = 1.0

    inter = tables.interactions
    inter = inter[(inter["timestamp"].dt.normalize() <= cut) | (rng.random(len(inter)) < 0.3)]
    extra = inter.sample(10, random_state=seed, replace=True).assign(timestamp=later(10))
    inter = pd.concat([inter, extra], ignore_index=True)

    surveys = tables.surveys.copy()
    surveys.loc[surveys["survey_date"] > cut, "satisfaction"] = 1.0
    customers = pd.concat(
        [tables.customers, pd.DataFrame({"customer_id": ["LATE"], "onboarding_date": later(1)})],
        ignore_index=True,
    )
    return Tables(loans, customers, reps, inter, surveys)


def _features_at(tables: Tables, cut: pd.Timestamp, defs, spec) -> pd.DataFrame:
    out = build_feature_table(tables, pd.DatetimeIndex([cut]), defs, spec)
    return out.sort_values("customer_id").reset_index(drop=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n_customers=st.integers(2, 12),
    cut_month=st.integers(6, 40),
)
def test_features_ignore_everything_after_the_snapshot(seed, n_customers, cut_month):
    defs, spec = PARAMS.defs, PARAMS.features
    tables = random_tables(seed, n_customers)
    cut = (START + pd.offsets.MonthEnd(cut_month)).normalize()
    before = _features_at(tables, cut, defs, spec)
    after = _features_at(perturb_after(tables, cut, seed + 1), cut, defs, spec)
    pd.testing.assert_frame_equal(before, after, check_exact=True)


def test_perturbation_does_change_features_when_the_cut_is_later():
    """The property above is not vacuous: the same perturbation seen from later moves features."""
    defs, spec = PARAMS.defs, PARAMS.features
    tables = random_tables(3, 8)
    cut = pd.Timestamp("2021-06-30")
    later = pd.Timestamp("2023-06-30")
    changed = perturb_after(tables, cut, 4)
    a, b = _features_at(tables, later, defs, spec), _features_at(changed, later, defs, spec)
    common = a["customer_id"].isin(b["customer_id"])
    assert (
        not a[common]
        .reset_index(drop=True)
        .equals(b[b["customer_id"].isin(a["customer_id"])].reset_index(drop=True))
    )


def _labels(tables: Tables, cut, end, defs) -> pd.DataFrame:
    out = build_feature_table(tables, pd.DatetimeIndex([cut]), defs, PARAMS.features, data_end=end)
    cols = ["customer_id", "active", "label_available", "churned", "next_tier"]
    return out[cols].sort_values("customer_id").reset_index(drop=True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1), n_customers=st.integers(2, 10), cut_month=st.integers(12, 30)
)
def test_labels_ignore_everything_after_the_horizon(seed, n_customers, cut_month):
    defs = PARAMS.defs
    tables = random_tables(seed, n_customers)
    cut = (START + pd.offsets.MonthEnd(cut_month)).normalize()
    horizon_end = cut + pd.Timedelta(days=defs.horizon_days)
    end = pd.Timestamp("2030-01-01")
    before = _labels(tables, cut, end, defs)
    after = _labels(perturb_after(tables, horizon_end, seed + 7), cut, end, defs)
    pd.testing.assert_frame_equal(before, after, check_exact=True)


def _brute_force_churn(loans: pd.DataFrame, customer: str, t: pd.Timestamp, defs) -> float:
    mine = loans[loans["customer_id"] == customer]
    o, c = mine["origination_date"], mine["closed_date"].fillna(pd.Timestamp.max)
    h = t + pd.Timedelta(days=defs.horizon_days)
    a = t - pd.Timedelta(days=defs.active_window_days)
    active = ((o <= t) & (c > t)).any() or ((o > a) & (o <= t)).any()
    if not active:
        return np.nan
    renewed = ((o > t) & (o <= h)).any()
    open_at_h = ((o <= h) & (c > h)).any()
    return float(not renewed and not open_at_h)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cut_month=st.integers(12, 30))
def test_churn_label_matches_the_definition(seed, cut_month):
    defs = PARAMS.defs
    tables = random_tables(seed, 8)
    cut = (START + pd.offsets.MonthEnd(cut_month)).normalize()
    labels = _labels(tables, cut, pd.Timestamp("2030-01-01"), defs)
    expected = [_brute_force_churn(tables.loans, c, cut, defs) for c in labels["customer_id"]]
    np.testing.assert_array_equal(labels["churned"].to_numpy(), np.array(expected))
