"""Each definition pinned on tiny hand-made histories (tests/conftest.py: tiny_tables)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.build import build_feature_table
from features.contract import Tables
from features.registry import GROUPS, STATE_COLUMNS, feature_names, feature_registry, value_feature

D = pd.Timestamp


def at(tables, day, defs, spec, end=None) -> pd.DataFrame:
    out = build_feature_table(tables, pd.DatetimeIndex([D(day)]), defs, spec, data_end=end)
    return out.set_index("customer_id")


def test_feature_table_has_exactly_the_registered_columns(tiny_tables, defs, spec):
    out = at(tiny_tables, "2022-06-30", defs, spec, end=D("2023-06-30"))
    registered = [f.name for f in feature_registry(spec)]
    assert list(out.columns) == [
        "as_of",
        *STATE_COLUMNS,
        *registered,
        "active",
        "label_available",
        "churned",
        "next_tier",
    ]
    assert {f.group for f in feature_registry(spec)} == set(GROUPS)
    assert len(registered) == len(set(registered))


def test_a_loan_closing_exactly_at_t_is_no_longer_open(tiny_tables, defs, spec):
    # A's only loan: 2022-01-15 .. 2023-01-15, open on [origination, close).
    day_before = at(tiny_tables, "2023-01-14", defs, spec).loc["A"]
    on_close = at(tiny_tables, "2023-01-15", defs, spec).loc["A"]
    assert day_before["loan_open_n"] == 1 and day_before["loan_exposure"] == 100_000
    assert on_close["loan_open_n"] == 0 and on_close["loan_exposure"] == 0
    # originated exactly A = 365 days before: outside (t - A, t], so no longer active
    assert on_close["lifecycle_state"] == "dormant"


def test_value_is_interest_income_over_the_trailing_window(tiny_tables, defs, spec):
    row = at(tiny_tables, "2022-06-30", defs, spec).loc["A"]
    days_open = (D("2022-06-30") - D("2022-01-15")).days + 1  # both ends inside the window
    assert row["loan_value_365"] == pytest.approx(100_000 * 0.06 * days_open / 365)


def test_the_value_feature_follows_the_value_window(tiny_tables, defs, spec):
    """definitions.value_window_days names and sizes the value feature (FeatureSpec carries it)."""
    short = dataclasses.replace(spec, value_window_days=180)
    row = at(
        tiny_tables, "2022-12-31", dataclasses.replace(defs, value_window_days=180), short
    ).loc["A"]
    assert "loan_value_365" not in row.index
    assert row["loan_value_180"] == pytest.approx(100_000 * 0.06 * 180 / 365)
    assert value_feature(short.value_window_days) in feature_names(short)


def test_tiers_core_vip_ordinary_potential(tiny_tables, defs, spec):
    out = at(tiny_tables, "2022-06-30", defs, spec)
    assert out.loc["B", "tier"] == "vip"  # 3 loans in 730 d, first > 365 d ago, top value
    assert out.loc["A", "tier"] == "ordinary"
    assert out.loc["D", "tier"] == "potential" and out.loc["E", "tier"] == "potential"
    early = at(tiny_tables, "2021-12-31", defs, spec)
    assert early.loc["B", "tier"] == "ordinary"  # one loan only
    strict = dataclasses.replace(defs, vip_top_fraction=0.01)
    assert at(tiny_tables, "2022-06-30", strict, spec).loc["B", "tier"] == "vip"


def test_a_prospect_converting(tiny_tables, defs, spec):
    before = at(tiny_tables, "2022-06-30", defs, spec, end=D("2023-12-31")).loc["D"]
    assert (before["tier"], before["lifecycle_state"], before["loyalty_stage"]) == (
        "potential",
        "potential",
        "Ask",
    )
    assert before["next_tier"] == "ordinary"  # first loan 2022-09-15 within (t, t+180]
    assert np.isnan(before["churned"])  # prospects are not active: no churn label
    after = at(tiny_tables, "2022-09-30", defs, spec).loc["D"]
    assert (after["tier"], after["lifecycle_state"], after["loyalty_stage"]) == (
        "ordinary",
        "new",
        "Act",
    )
    assert at(tiny_tables, "2022-06-30", defs, spec).loc["E", "loyalty_stage"] == "Aware"


def test_lifecycle_dormant_then_churned(tiny_tables, defs, spec):
    assert at(tiny_tables, "2021-06-30", defs, spec).loc["C", "lifecycle_state"] == "dormant"
    assert at(tiny_tables, "2022-12-31", defs, spec).loc["C", "lifecycle_state"] == "churned"


def test_loyalty_level_and_advocate_stage(tiny_tables, defs, spec):
    out = at(tiny_tables, "2022-06-30", defs, spec)
    assert out.loc["A", "loyalty_level"] == "low"  # 1 of 3 installments on time, satisfaction 2
    assert out.loc["B", "loyalty_level"] == "high"
    assert out.loc["C", "loyalty_level"] == "medium"  # nothing known
    assert out.loc["B", "loyalty_stage"] == "Advocate"  # referral in the last 365 days


def _one_customer(loans_frame, rows, t, end, defs, spec):
    tables = Tables(loans_frame(rows))
    return at(tables, t, defs, spec, end=D(end)).loc["X"]


def test_a_renewal_on_day_t_plus_h_is_not_churn(make_loans, defs, spec):
    t = D("2022-03-31")
    h = t + pd.Timedelta(days=defs.horizon_days)
    base = ("L1", "X", "2021-06-01", 1000.0, "p", 0.05, 6, "2021-12-01")
    on_h = _one_customer(
        make_loans,
        [base, ("L2", "X", f"{h:%Y-%m-%d}", 10.0, "p", 0.05, 6, None)],
        "2022-03-31",
        "2024-01-01",
        defs,
        spec,
    )
    after_h = _one_customer(
        make_loans,
        [base, ("L2", "X", f"{h + pd.Timedelta(days=1):%Y-%m-%d}", 10.0, "p", 0.05, 6, None)],
        "2022-03-31",
        "2024-01-01",
        defs,
        spec,
    )
    assert on_h["active"] and on_h["churned"] == 0.0
    assert after_h["churned"] == 1.0


def test_no_label_when_the_horizon_passes_the_data_end(make_loans, defs, spec):
    row = _one_customer(
        make_loans,
        [("L1", "X", "2022-01-01", 1.0, "p", 0.05, 6, None)],
        "2022-03-31",
        "2022-06-30",
        defs,
        spec,
    )
    assert not row["label_available"] and np.isnan(row["churned"]) and row["next_tier"] is None


def test_loans_alone_run_and_optional_features_are_nan(tiny_tables, defs, spec):
    out = at(Tables(tiny_tables.loans), "2022-06-30", defs, spec, end=D("2023-06-30"))
    assert set(out.index) == {"A", "B", "C"}  # D (first loan later) and E: not yet known
    assert out.filter(like="pay_").isna().all().all()
    assert out.filter(like="sat_").isna().all().all()
    assert out.loc["B", "tier"] == "vip"


def test_without_closed_date_loans_run_for_their_term_or_are_point_events(make_loans, defs, spec):
    loans = make_loans([("L1", "X", "2022-01-31", 1000.0, "p", 0.05, 1, None)])
    with_term = loans.drop(columns="closed_date")
    assert at(Tables(with_term), "2022-02-27", defs, spec).loc["X", "loan_open_n"] == 1
    assert at(Tables(with_term), "2022-02-28", defs, spec).loc["X", "loan_open_n"] == 0
    point = loans.drop(columns=["closed_date", "term_months", "interest_rate"])
    row = at(Tables(point), "2022-03-31", defs, spec).loc["X"]
    assert row["loan_open_n"] == 0 and row["loan_value_365"] == 1000.0
