"""The contract group (features/runway.py) on hand-made books of the shapes real lenders have:
bullet loans, 10-15-year project finance, revolving lines renewed yearly, point events; and the
point-in-time property: a prepayment, renewal or close after t changes nothing at t."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.loans import LoanBook
from features.runway import build_runway_features

H, WINDOWS = 180, (90, 180, 365)
T = pd.Timestamp("2024-06-30")


def _features(loans: pd.DataFrame, repayments=None, at=T) -> pd.DataFrame:
    ids = pd.Index(sorted(loans["customer_id"].unique()))
    book = LoanBook(loans, ids)
    days = np.full(len(ids), (at - pd.Timestamp("1970-01-01")).days)
    out = build_runway_features(book, repayments, np.arange(len(ids)), days, WINDOWS, H)
    return pd.DataFrame(out, index=ids)


@pytest.fixture
def book(make_loans) -> pd.DataFrame:
    return make_loans(
        [
            # B: a 10-year bullet loan, interest-only installments (repayments below)
            ("B1", "B", "2020-01-15", 1_000_000.0, "bullet", 0.06, 120, None),
            # P: 15-year project finance, amortising, no repayment rows
            ("P1", "P", "2015-03-01", 5_000_000.0, "project", 0.05, 180, None),
            # R: a credit line renewed every year at its maturity
            ("R1", "R", "2021-07-01", 200_000.0, "revolving", 0.07, 12, "2022-07-01"),
            ("R2", "R", "2022-07-01", 200_000.0, "revolving", 0.07, 12, "2023-07-01"),
            ("R3", "R", "2023-07-01", 250_000.0, "revolving", 0.07, 12, None),
            # E: a 12-month amortising loan, matures inside H
            ("E1", "E", "2023-09-30", 120_000.0, "term", 0.0, 12, None),
            # X: point events only (a purchase log)
            ("X1", "X", "2024-05-01", 300.0, None, None, None, "2024-05-01"),
        ]
    )


@pytest.fixture
def bullet_repayments() -> pd.DataFrame:
    due = pd.date_range("2020-02-15", "2024-06-15", freq="MS") + pd.Timedelta(days=14)
    return pd.DataFrame(
        {
            "loan_id": "B1",
            "due_date": due,
            "amount_due": 5_000.0,  # 1,000,000 x 6 % / 12: interest only
            "paid_date": due,
            "amount_paid": 5_000.0,
        }
    )


def test_runway_of_each_loan_shape(book, bullet_repayments):
    f = _features(book, bullet_repayments)
    days = lambda d: (pd.Timestamp(d) - T).days  # noqa: E731
    assert f.loc["B", "con_days_to_last_maturity"] == days("2030-01-15")
    assert f.loc["B", "con_scheduled_outstanding_h"] == 1_000_000.0  # bullet: all until maturity
    assert f.loc["P", "con_days_to_last_maturity"] == days("2030-03-01")
    assert f.loc["P", "con_open_n_h"] == 1 and f.loc["P", "con_maturing_n_h"] == 0
    assert 0 < f.loc["P", "con_scheduled_outstanding_h"] < 5_000_000.0  # amortising by annuity
    assert f.loc["R", "con_open_n_h"] == 0 and f.loc["R", "con_maturing_n_h"] == 1
    assert f.loc["R", "con_maturing_share_h"] == 1.0
    assert f.loc["R", "con_renewal_rate"] == 1.0  # both past lines were renewed at maturity
    assert f.loc["E", "con_days_to_first_maturity"] == days("2024-09-30")
    assert f.loc["E", "con_open_n_90"] == 1 and f.loc["E", "con_open_n_h"] == 0
    assert f.loc["E", "con_scheduled_outstanding_h"] == 0.0  # matured by t+H
    assert np.isnan(f.loc["X", "con_days_to_last_maturity"])  # nothing open
    assert f.loc["X", "con_open_n_h"] == 0 and np.isnan(f.loc["X", "con_renewal_rate"])


def test_linear_and_annuity_balances(make_loans):
    loans = make_loans(
        [
            ("A", "A", "2024-01-31", 120_000.0, "term", 0.0, 24, None),
            ("B", "B", "2024-01-31", 120_000.0, "term", 0.12, 24, None),
        ]
    )
    f = _features(loans)
    months = ((T + pd.Timedelta(days=H)) - pd.Timestamp("2024-01-31")).days / 30.4375
    assert f.loc["A", "con_scheduled_outstanding_h"] == pytest.approx(120_000 * (1 - months / 24))
    r = 0.01
    annuity = 120_000 * ((1 + r) ** 24 - (1 + r) ** months) / ((1 + r) ** 24 - 1)
    assert f.loc["B", "con_scheduled_outstanding_h"] == pytest.approx(annuity)


def test_without_repayments_a_bullet_loan_amortises_by_its_terms(book):
    f = _features(book)  # no schedule to read: term and rate decide
    assert f.loc["B", "con_scheduled_outstanding_h"] < 1_000_000.0


def _random_book(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 25))
    orig = pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.integers(0, 4500, n), unit="D")
    term = rng.choice([6, 12, 36, 120, 180], n).astype(float)
    length = pd.to_timedelta((term * 30.4 * rng.uniform(0.2, 1.3, n)).astype(int), unit="D")
    closed = pd.Series(orig + length).where(rng.random(n) > 0.3)
    loans = pd.DataFrame(
        {
            "loan_id": [f"L{i}" for i in range(n)],
            "customer_id": rng.choice(["A", "B", "C"], n),
            "origination_date": orig,
            "principal": rng.lognormal(12, 1, n),
            "interest_rate": rng.uniform(0.0, 0.1, n),
            "term_months": term,
            "closed_date": closed,
        }
    )
    k = 8 * n
    which = rng.integers(0, n, k)
    due = orig.to_numpy()[which] + pd.to_timedelta(rng.integers(1, 1500, k), unit="D").to_numpy()
    reps = pd.DataFrame(
        {
            "loan_id": loans["loan_id"].to_numpy()[which],
            "due_date": due,
            "amount_due": rng.uniform(100, 20_000, k),
            "paid_date": due,
            "amount_paid": 1.0,
        }
    )
    return loans, reps


def _after(loans, reps, cut: pd.Timestamp, seed: int):
    """Prepay, close or renew after ``cut``: nothing dated <= cut changes."""
    rng = np.random.default_rng(seed)
    later = lambda n: cut + pd.to_timedelta(rng.integers(1, 900, n), unit="D")  # noqa: E731
    loans = loans.copy()
    open_later = loans["closed_date"].isna() | (loans["closed_date"] > cut)
    loans.loc[open_later, "closed_date"] = later(int(open_later.sum()))  # prepayment or close
    loans = loans[(loans["origination_date"] <= cut) | (rng.random(len(loans)) < 0.5)]
    renewals = loans.sample(3, random_state=seed, replace=True).assign(
        loan_id=[f"RENEW{i}" for i in range(3)], origination_date=later(3), closed_date=pd.NaT
    )
    loans = pd.concat([loans, renewals], ignore_index=True)
    reps = reps[reps["loan_id"].isin(loans["loan_id"])]
    reps = reps[(reps["due_date"] <= cut) | (rng.random(len(reps)) < 0.3)].copy()
    reps.loc[reps["due_date"] > cut, "amount_due"] = 1e7  # a prepayment row
    return loans, reps


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cut_days=st.integers(200, 5000))
def test_a_prepayment_renewal_or_close_after_t_changes_nothing_at_t(seed, cut_days):
    loans, reps = _random_book(seed)
    cut = pd.Timestamp("2012-01-01") + pd.Timedelta(days=cut_days)
    known = loans["origination_date"] <= cut
    if not known.any():
        return
    seen = sorted(loans.loc[known, "customer_id"].unique())  # customers with a loan by t
    before = _features(loans, reps, cut).loc[seen]
    changed, changed_reps = _after(loans, reps, cut, seed + 1)
    after = _features(changed, changed_reps, cut).loc[seen]
    pd.testing.assert_frame_equal(before, after, check_exact=True)


def test_the_same_changes_are_seen_later(book, bullet_repayments):
    """Not vacuous: a renewal after t moves the features at a later date."""
    cut = pd.Timestamp("2023-12-31")
    changed, _ = _after(book, bullet_repayments, cut, 5)
    later = pd.Timestamp("2026-06-30")
    a = _features(book, bullet_repayments, later)
    b = _features(changed, bullet_repayments, later).reindex(a.index)
    assert not a.equals(b)
