"""Relationship tier, lifecycle state, loyalty level and loyalty stage at a date.

Definitions (docs/definitions.md has the prose and the document each comes from):
- tier (001): potential = no loan originated <= t; core = >= core_min_loans loans originated in
  (t - core_window, t] and first loan >= core_min_tenure days before t; vip = core and trailing
  value >= the (1 - vip_top_fraction) quantile of the values of customers with a loan open at t;
  ordinary = any other customer with a loan.
- lifecycle (002): potential; new (first loan in (t - new_days, t]); active; dormant (not active,
  last origination or close within 2A); churned (older).
- loyalty level (002): low when on-time rate < low_on_time or satisfaction <= low_satisfaction;
  high when neither is low, the present ones reach the high thresholds and at least one is present;
  medium otherwise.
- loyalty stage (000): Advocate = has a loan and a referral or promoter score (NPS >= 9) within the
  advocate window; Act = has a loan; Ask = two-way contact (inquiry, complaint, service); Appeal =
  attended an event or came online; Aware = known only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.loans import LoanBook
from features.spec import LIFECYCLE_STATES, LOYALTY_LEVELS, LOYALTY_STAGES, TIERS, Definitions

POTENTIAL, ORDINARY, CORE, VIP = range(4)


def vip_thresholds(book: LoanBook, days: np.ndarray, defs: Definitions) -> dict[int, float]:
    """Per day: the value a core customer must reach to be VIP, over customers with an open loan."""
    out: dict[int, float] = {}
    for day in np.unique(np.asarray(days, dtype=np.int64)):
        open_now = (book.orig_day <= day) & (book.close_day > day)
        codes = np.unique(book.codes[open_now])
        if len(codes) == 0:
            out[int(day)] = np.inf
            continue
        values = book.value(codes, np.full(len(codes), day), defs.value_window_days)
        out[int(day)] = float(np.quantile(values, 1.0 - defs.vip_top_fraction))
    return out


def compute_tier(
    book: LoanBook,
    codes: np.ndarray,
    days: np.ndarray,
    defs: Definitions,
    thresholds: Mapping[int, float],
) -> np.ndarray:
    """Tier code (0 potential .. 3 vip) per (customer code, day)."""
    days = np.asarray(days, dtype=np.int64)
    first = book.first_day_by_code[codes]
    has_loan = first <= days
    recent = book.originations(codes, days, defs.core_window_days)
    core = has_loan & (recent >= defs.core_min_loans) & (first <= days - defs.core_min_tenure_days)
    value = book.value(codes, days, defs.value_window_days)
    bar = pd.Series(days).map(thresholds).to_numpy(dtype="float64")
    vip = core & (value >= bar)
    return np.select([vip, core, has_loan], [VIP, CORE, ORDINARY], POTENTIAL).astype(np.int8)


def compute_lifecycle(
    book: LoanBook, codes: np.ndarray, days: np.ndarray, defs: Definitions
) -> np.ndarray:
    """Lifecycle code, index into LIFECYCLE_STATES."""
    days = np.asarray(days, dtype=np.int64)
    first = book.first_day_by_code[codes]
    has_loan = first <= days
    new = has_loan & (first > days - defs.new_days)
    active = book.is_active(codes, days, defs.active_window_days)
    last = book.last_activity_day(codes, days)
    dormant = ~active & (last > days - 2 * defs.active_window_days)
    return np.select(
        [~has_loan, new, active, dormant], [0, 1, 2, 3], len(LIFECYCLE_STATES) - 1
    ).astype(np.int8)


def compute_loyalty_level(
    on_time_rate: np.ndarray, satisfaction: np.ndarray, defs: Definitions
) -> np.ndarray:
    """Loyalty level code, index into LOYALTY_LEVELS (NaN inputs are 'not known')."""
    rate, sat = np.asarray(on_time_rate, float), np.asarray(satisfaction, float)
    low = (rate < defs.loyalty_low_on_time) | (sat <= defs.loyalty_low_satisfaction)
    rate_ok = np.isnan(rate) | (rate >= defs.loyalty_high_on_time)
    sat_ok = np.isnan(sat) | (sat >= defs.loyalty_high_satisfaction)
    known = ~np.isnan(rate) | ~np.isnan(sat)
    high = ~low & rate_ok & sat_ok & known
    return np.select([low, high], [0, 2], 1).astype(np.int8)


def compute_stage(
    has_loan: np.ndarray,
    recent_referrals: np.ndarray,
    recent_promoter: np.ndarray,
    two_way_contacts: np.ndarray,
    appeal_contacts: np.ndarray,
) -> np.ndarray:
    """Loyalty stage code, index into LOYALTY_STAGES."""
    advocate = has_loan & ((recent_referrals > 0) | recent_promoter)
    return np.select(
        [advocate, has_loan, two_way_contacts > 0, appeal_contacts > 0], [4, 3, 2, 1], 0
    ).astype(np.int8)


def labels_of(codes: np.ndarray, vocabulary: tuple[str, ...]) -> np.ndarray:
    return np.asarray(vocabulary, dtype=object)[np.asarray(codes, dtype=np.int64)]


__all__ = [
    "TIERS",
    "LIFECYCLE_STATES",
    "LOYALTY_LEVELS",
    "LOYALTY_STAGES",
    "vip_thresholds",
    "compute_tier",
    "compute_lifecycle",
    "compute_loyalty_level",
    "compute_stage",
    "labels_of",
]
