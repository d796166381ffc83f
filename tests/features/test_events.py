"""Churn time and cause (features/events.py) on hand-made histories, and its time rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.contract import CUSTOMER_ID, Tables
from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS, compute_events
from pipelines.config import load_defaults

CFG = load_defaults()  # module level: hypothesis tests take no function-scoped fixtures
DEFS, SPEC = CFG.defs, CFG.survival.events
END = pd.Timestamp("2025-12-31")
COLUMNS = ["loan_id", "customer_id", "origination_date", "principal", "term_months", "closed_date"]


def _loans(rows: list[tuple], reasons: list | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("origination_date", "closed_date"):
        df[col] = pd.to_datetime(df[col])
    df["term_months"] = df["term_months"].astype("float64")
    return df if reasons is None else df.assign(close_reason=reasons)


def _events(tables: Tables, customers: list[str], as_of: str, end=END) -> pd.DataFrame:
    ids = pd.Series(customers)
    dates = pd.Series(pd.to_datetime([as_of] * len(customers)))
    return compute_events(tables, ids, dates, DEFS, SPEC, end)


def _one(tables: Tables, as_of: str, end=END) -> pd.Series:
    return _events(tables, ["A"], as_of, end).iloc[0]


def _installments(loan: str, dues: list[str], paid: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "loan_id": loan,
            "due_date": pd.to_datetime(dues),
            "amount_due": 1000.0,
            "paid_date": pd.to_datetime(paid),
            "amount_paid": [1000.0 if p else np.nan for p in paid],
        }
    )


def test_a_loan_closing_on_its_maturity_day_runs_off():
    loans = _loans([("L1", "A", "2022-01-15", 1e5, 12, "2023-01-15")])
    row = _one(Tables(loans), "2022-10-31")
    # month k ends on t + round(k * 30.4375): the close on 2023-01-15 falls in month 3
    assert (row[SURV_EVENT], row[SURV_MONTHS], row[SURV_CAUSE]) == (1.0, 3.0, "runoff")


def test_a_loan_prepaid_a_year_early_is_refinanced():
    loans = _loans([("L1", "A", "2021-01-10", 1e5, 36, "2023-01-10")])
    row = _one(Tables(loans), "2022-12-31")
    assert (row[SURV_EVENT], row[SURV_MONTHS], row[SURV_CAUSE]) == (1.0, 1.0, "refinanced")


def test_a_loan_written_off_after_90_days_past_due_is_a_credit_exit():
    loans = _loans([("L1", "A", "2022-01-15", 1e5, 36, "2022-12-15")])
    reps = _installments(
        "L1", ["2022-07-15", "2022-08-15", "2022-09-15"], ["2022-07-15", "2022-08-15", None]
    )
    row = _one(Tables(loans, repayments=reps), "2022-10-31")
    assert (row[SURV_EVENT], row[SURV_MONTHS], row[SURV_CAUSE]) == (1.0, 2.0, "credit_exit")
    # paid on time, the same early close is a refinancing
    paid = reps.assign(paid_date=reps["due_date"], amount_paid=1000.0)
    assert _one(Tables(loans, repayments=paid), "2022-10-31")[SURV_CAUSE] == "refinanced"
    # an installment only 30 days overdue at the close is no credit exit yet
    fresh = _installments("L1", ["2022-11-15"], [None])
    assert _one(Tables(loans, repayments=fresh), "2022-10-31")[SURV_CAUSE] == "refinanced"


def test_a_point_event_borrower_lapses_unless_they_come_back():
    loans = _loans([("P1", "A", "2022-11-10", 500.0, None, "2022-11-10")])
    row = _one(Tables(loans), "2022-12-31")
    assert (row[SURV_EVENT], row[SURV_MONTHS], row[SURV_CAUSE]) == (1.0, 1.0, "lapsed")
    again = _loans(
        [
            ("P1", "A", "2022-11-10", 500.0, None, "2022-11-10"),
            ("P2", "A", "2023-06-02", 500.0, None, "2023-06-02"),
        ]  # fmt: skip
    )
    row = _one(Tables(again), "2022-12-31")
    assert (row[SURV_EVENT], row[SURV_MONTHS], row[SURV_CAUSE]) == (0.0, 12.0, None)


def test_a_renewal_is_no_churn_and_the_data_end_censors():
    loans = _loans(
        [
            ("L1", "A", "2022-01-15", 1e5, 12, "2023-01-15"),
            ("L2", "A", "2023-01-15", 1e5, 12, None),
        ]  # fmt: skip
    )
    assert _one(Tables(loans), "2022-10-31")[SURV_EVENT] == 0.0
    row = _one(Tables(loans), "2022-10-31", end=pd.Timestamp("2023-03-15"))
    assert (row[SURV_EVENT], row[SURV_MONTHS]) == (0.0, 4.0)  # 4 grid months observed


def test_close_reason_overrides_the_inference_and_other_falls_back_to_it():
    rows = [("L1", "A", "2022-01-15", 1e5, 12, "2023-01-15")]
    assert _one(Tables(_loans(rows, ["written_off"])), "2022-10-31")[SURV_CAUSE] == "credit_exit"
    assert _one(Tables(_loans(rows, ["prepaid"])), "2022-10-31")[SURV_CAUSE] == "refinanced"
    assert _one(Tables(_loans(rows, ["other"])), "2022-10-31")[SURV_CAUSE] == "runoff"
    assert _one(Tables(_loans(rows, [None])), "2022-10-31")[SURV_CAUSE] == "runoff"


def test_inactive_customers_and_unknown_ones_have_no_outcome():
    loans = _loans([("L1", "A", "2019-01-15", 1e5, 12, "2020-01-15")])
    out = _events(Tables(loans), ["A", "Z"], "2022-10-31")
    assert out[SURV_EVENT].isna().all() and out[SURV_CAUSE].isna().all()


@st.composite
def _history(draw):
    """Random loans (some prepaid, some point events) and installments of three customers."""
    n = draw(st.integers(1, 8))
    rows, reps, reasons = [], [], []
    for i in range(n):
        orig = pd.Timestamp("2021-01-01") + pd.Timedelta(days=draw(st.integers(0, 1200)))
        term = draw(st.sampled_from([None, 6, 12, 36]))
        length = draw(st.integers(0, 1200)) if term else 0
        closed = orig + pd.Timedelta(days=length) if draw(st.booleans()) or not term else None
        rows.append((f"L{i}", f"C{draw(st.integers(0, 2))}", orig, 1e4, term, closed))
        reasons.append(draw(st.sampled_from([None, "matured", "prepaid", "written_off"])))
        for m in range(1, draw(st.integers(0, 6)) + 1):
            due = orig + pd.DateOffset(months=m)
            late = draw(st.sampled_from([0, 5, 45, 100, None]))
            reps.append((f"L{i}", due, None if late is None else due + pd.Timedelta(days=late)))
    loans = _loans(rows, reasons)
    repayments = pd.DataFrame(reps, columns=["loan_id", "due_date", "paid_date"])
    repayments = repayments.astype({"due_date": "datetime64[ns]", "paid_date": "datetime64[ns]"})
    return Tables(loans, repayments=repayments.assign(amount_due=1.0, amount_paid=1.0))


def _with_future(tables: Tables, cutoff: pd.Timestamp, rng: np.random.Generator) -> Tables:
    """``tables`` plus records dated after ``cutoff``: a new loan per customer, closes and
    payments of the open loans, and installments."""
    loans = tables.loans
    shift = pd.to_timedelta(rng.integers(1, 90, len(loans)), unit="D")
    later = pd.Series(cutoff + shift, index=loans.index)
    loans = loans.assign(closed_date=loans["closed_date"].fillna(later))
    new = _loans([(f"N{c}", c, cutoff + pd.Timedelta(days=int(rng.integers(1, 90))), 1e4, 12,
                   None) for c in ("C0", "C1", "C2")])  # fmt: skip
    loans = pd.concat([loans, new.assign(close_reason="matured")], ignore_index=True)
    reps = tables.repayments
    reps = reps.assign(paid_date=reps["paid_date"].fillna(cutoff + pd.Timedelta(days=1)))
    extra = _installments("N0", [str((cutoff + pd.Timedelta(days=30)).date())], [None])
    return Tables(loans, repayments=pd.concat([reps, extra], ignore_index=True))


def _cut_at(tables: Tables, cutoff: pd.Timestamp) -> Tables:
    """Only what is dated on or before ``cutoff``."""
    loans = tables.loans[tables.loans["origination_date"] <= cutoff]
    loans = loans.assign(closed_date=loans["closed_date"].where(loans["closed_date"] <= cutoff))
    reps = tables.repayments[tables.repayments["due_date"] <= cutoff]
    reps = reps.assign(paid_date=reps["paid_date"].where(reps["paid_date"] <= cutoff))
    return Tables(loans, repayments=reps)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=_history(), month=st.integers(0, 30), seed=st.integers(0, 2**31 - 1))
def test_data_after_the_window_change_nothing(tables: Tables, month: int, seed: int):
    as_of = pd.Timestamp("2021-06-30") + pd.offsets.MonthEnd(month)
    cutoff = as_of + pd.Timedelta(days=SPEC.month_ends()[-1])
    customers = ["C0", "C1", "C2"]
    cut = _cut_at(tables, cutoff)
    full = _with_future(cut, cutoff, np.random.default_rng(seed))
    day = str(as_of.date())
    pd.testing.assert_frame_equal(_events(full, customers, day), _events(cut, customers, day))


def test_the_small_world_has_churn_events_of_the_loan_causes(small_world):
    ids = small_world.loans[CUSTOMER_ID].drop_duplicates()
    dates = pd.Series(pd.Timestamp("2021-06-30"), index=ids.index)
    out = compute_events(small_world, ids, dates, DEFS, SPEC, pd.Timestamp("2022-12-31"))
    churned = out[out[SURV_EVENT] == 1.0]
    assert {"runoff", "refinanced"} <= set(churned[SURV_CAUSE])
    assert churned[SURV_MONTHS].between(1, SPEC.months).all()
    assert out.loc[out[SURV_EVENT] == 0.0, SURV_MONTHS].eq(SPEC.months).all()
