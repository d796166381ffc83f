"""Repayment, interaction and survey features at (customer, day) query points.

Each event is dated by the day it becomes known: an installment's on-time status on its due date,
a late settlement on the day it is paid, a miss ``missed_after_days`` after the due date, an
interaction on its day, a survey answer on its survey date. Window figures are differences of
per-customer cumulative sums (features.windows), so nothing dated after the query day is read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import (
    AMOUNT_DUE,
    AMOUNT_PAID,
    CHANNEL,
    DUE_DATE,
    KIND,
    NPS,
    PAID_DATE,
    RM_CHANNELS,
    SATISFACTION,
    SURVEY_DATE,
    TIMESTAMP,
)
from features.spec import Definitions, FeatureSpec
from features.windows import NO_DAY, EventIndex, Window, day_numbers

Columns = dict[str, np.ndarray]


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _since(days: np.ndarray, last: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(last), np.nan, days - last)


def _take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values[idx]`` where idx >= 0, else NaN (safe when ``values`` is empty)."""
    out = np.full(len(idx), np.nan)
    out[idx >= 0] = values[idx[idx >= 0]]
    return out


def build_repayment_features(
    repayments: pd.DataFrame,
    rep_codes: np.ndarray,
    codes,
    days,
    spec: FeatureSpec,
    defs: Definitions,
) -> Columns:
    ws, short = spec.windows_days, min(spec.windows_days)
    due = day_numbers(repayments[DUE_DATE])
    paid = day_numbers(repayments[PAID_DATE])
    is_paid = paid < NO_DAY
    amount_due = repayments[AMOUNT_DUE].to_numpy(dtype="float64")
    amount_paid = repayments[AMOUNT_PAID].to_numpy(dtype="float64")
    settle = np.where(is_paid, np.maximum(due, paid), NO_DAY)
    dpd = np.where(is_paid, np.maximum(paid - due, 0), 0).astype("float64")
    miss_day = due + defs.missed_after_days
    missed = ~is_paid | (paid > miss_day)

    by_due = EventIndex(rep_codes, due)
    by_settle = EventIndex(rep_codes, settle)
    by_miss = EventIndex(rep_codes, np.where(missed, miss_day, NO_DAY))
    wide = tuple(sorted(set(ws) | {2 * short}))
    w_due, w_set = Window(by_due, codes, days, wide), Window(by_settle, codes, days, ws)
    w_miss = Window(by_miss, codes, days, ws)

    n_due, on_time = by_due.cumulative(), by_due.cumulative((is_paid & (paid <= due)) * 1.0)
    n_set, late = by_settle.cumulative(), by_settle.cumulative((dpd > 0) * 1.0)
    dpd_sum, n_miss = by_settle.cumulative(dpd), by_miss.cumulative()
    # A payment is judged partial once it is both due and paid (its settlement day): an early
    # payment cannot be compared with an installment that is not yet due.
    partial = by_settle.cumulative((amount_paid < amount_due * (1 - 1e-9)) * 1.0)
    out: Columns = {}
    for w in ws:
        out[f"pay_n_due_{w}"] = w_due.sum(n_due, w)
        out[f"pay_on_time_rate_{w}"] = _rate(w_due.sum(on_time, w), out[f"pay_n_due_{w}"])
        out[f"pay_late_n_{w}"] = w_set.sum(late, w)
        out[f"pay_dpd_mean_{w}"] = _rate(w_set.sum(dpd_sum, w), w_set.sum(n_set, w))
        out[f"pay_missed_n_{w}"] = w_miss.sum(n_miss, w)
        out[f"pay_partial_n_{w}"] = w_set.sum(partial, w)
    out["pay_overdue_n"] = w_due.total(n_due) - w_set.total(n_set)
    out["pay_overdue_amount"] = w_due.total(by_due.cumulative(amount_due)) - w_set.total(
        by_settle.cumulative(amount_due)
    )
    out["pay_dpd_max_to_date"] = EventIndex.at(
        by_settle.running_max(dpd), w_set.pos, w_set.start, empty=np.nan
    )
    prev_n = w_due.sum(n_due, 2 * short) - w_due.sum(n_due, short)
    prev_rate = _rate(w_due.sum(on_time, 2 * short) - w_due.sum(on_time, short), prev_n)
    out["pay_on_time_trend"] = out[f"pay_on_time_rate_{short}"] - prev_rate
    return out


def build_interaction_features(
    interactions: pd.DataFrame,
    int_codes: np.ndarray,
    codes,
    days,
    spec: FeatureSpec,
    defs: Definitions,
) -> Columns:
    """Engagement, service and referral features, plus the stage inputs (``_``-prefixed)."""
    ws, short = spec.windows_days, min(spec.windows_days)
    kind = interactions[KIND].to_numpy(dtype=object)
    channel = interactions[CHANNEL].to_numpy(dtype=object)
    index = EventIndex(int_codes, day_numbers(interactions[TIMESTAMP]))
    wide = tuple(sorted(set(ws) | {2 * short, defs.advocate_window_days}))
    win = Window(index, codes, days, wide)
    flags = {
        "eng_n": np.ones(len(kind), dtype=bool),
        "eng_rm_contacts": np.isin(channel, RM_CHANNELS),
        "eng_inquiries": kind == "inquiry",
        "eng_events": (kind == "event") | (channel == "event"),
        "eng_online": channel == "online",
        "eng_marketing": kind == "marketing",
        "svc_complaints": kind == "complaint",
        "svc_service": kind == "service",
        "rel_referrals": kind == "referral",
        "_two_way": np.isin(kind, ("inquiry", "complaint", "service")),
    }
    cums = {name: index.cumulative(flag * 1.0) for name, flag in flags.items()}
    out: Columns = {}
    for name, cum in cums.items():
        if name.startswith("_"):
            continue
        for w in ws:
            out[f"{name}_{w}"] = win.sum(cum, w)
    out["eng_trend"] = 2 * win.sum(cums["eng_n"], short) - win.sum(cums["eng_n"], 2 * short)
    out["_two_way_ever"] = win.total(cums["_two_way"])
    out["_appeal_ever"] = win.total(cums["eng_events"]) + win.total(cums["eng_online"])
    out["_referrals_recent"] = win.sum(cums["rel_referrals"], defs.advocate_window_days)
    for name, flag in [
        ("eng_days_since_rm_contact", flags["eng_rm_contacts"]),
        ("svc_days_since_complaint", flags["svc_complaints"]),
    ]:
        sub = EventIndex(int_codes, np.where(flag, day_numbers(interactions[TIMESTAMP]), NO_DAY))
        w = Window(sub, codes, days)
        out[name] = _since(np.asarray(days, float), sub.last_day(w.pos, w.start))
    return out


def build_survey_features(
    surveys: pd.DataFrame,
    sur_codes: np.ndarray,
    codes,
    days,
    spec: FeatureSpec,
    defs: Definitions,
) -> Columns:
    """Satisfaction and NPS features, plus ``_promoter_recent`` for the Advocate stage."""
    survey_day = day_numbers(surveys[SURVEY_DATE])
    out: Columns = {}
    days = np.asarray(days, dtype=np.int64)
    for col, prefix in [(SATISFACTION, "sat"), (NPS, "sat_nps")]:
        values = surveys[col].to_numpy(dtype="float64")
        answered = ~np.isnan(values)
        index = EventIndex(sur_codes[answered], survey_day[answered])
        sorted_vals = index.sorted_values(values[answered])
        w = Window(index, codes, days, (365,))
        latest, prev = (index.last_index(w.pos, w.start, back) for back in (0, 1))
        out[f"{prefix}_latest"] = _take(sorted_vals, latest)
        out[f"{prefix}_change"] = out[f"{prefix}_latest"] - _take(sorted_vals, prev)
        out[f"{prefix}_mean_365"] = _rate(
            w.sum(index.cumulative(values[answered]), 365), w.sum(index.cumulative(), 365)
        )
        last_day = index.last_day(w.pos, w.start)
        if prefix == "sat_nps":
            recent = ~np.isnan(last_day) & (last_day > days - defs.advocate_window_days)
            out["_promoter_recent"] = recent & (out["sat_nps_latest"] >= 9)
    all_index = EventIndex(sur_codes, survey_day)
    w = Window(all_index, codes, days)
    out["sat_days_since_survey"] = _since(days.astype(float), all_index.last_day(w.pos, w.start))
    return out
