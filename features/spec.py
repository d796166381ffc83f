"""Typed definitions that features/ receives from the edge (pipelines/config.py builds them).

No defaults here: every number comes from params.yaml (pipelines/config.py; tests and benchmarks
use ``pipelines.config.load_defaults()``); docs/definitions.md explains each rule in words.
"""

from __future__ import annotations

from dataclasses import dataclass

TIERS = ("potential", "ordinary", "core", "vip")
LIFECYCLE_STATES = ("potential", "new", "active", "dormant", "churned")
LOYALTY_LEVELS = ("low", "medium", "high")
LOYALTY_STAGES = ("Aware", "Appeal", "Ask", "Act", "Advocate")


@dataclass(frozen=True)
class Definitions:
    """Snapshot, label and state definitions (documents 000, 001, 002)."""

    horizon_days: int  # H: the label window (t, t+H]
    active_window_days: int  # A: a loan originated in (t-A, t] makes a customer active
    new_days: int  # lifecycle new: first loan within this many days
    core_min_loans: int  # core: at least this many loans originated in (t-core_window, t]
    core_window_days: int
    core_min_tenure_days: int  # core: first loan at least this long before t
    vip_top_fraction: float  # VIP: core and value in the top fraction at t
    value_window_days: int  # trailing window of the interest-income value
    loyalty_high_on_time: float  # loyalty level thresholds (document 002's case study)
    loyalty_high_satisfaction: float
    loyalty_low_on_time: float
    loyalty_low_satisfaction: float
    advocate_window_days: int  # Advocate: a referral within this window
    missed_after_days: int  # an installment unpaid this long after its due date is missed

    def __post_init__(self) -> None:
        if self.horizon_days <= 0 or self.active_window_days <= 0:
            raise ValueError("horizon_days and active_window_days must be positive")
        if not 0 < self.vip_top_fraction < 1:
            raise ValueError("vip_top_fraction must be in (0, 1)")


@dataclass(frozen=True)
class FeatureSpec:
    """Trailing windows and pricing reference used by the feature builder."""

    windows_days: tuple[int, ...]
    pricing_window_days: int  # the book median rate is taken over this trailing window
    btyd_time_unit_days: float  # BG/NBD time unit (one month)
    chunk_customers: int  # build the table this many customers at a time (memory)
    # The trailing window of the interest-income value (loan_value_<days>): pipelines/config.py
    # fills it from definitions.value_window_days, not from a key of its own.
    value_window_days: int

    def __post_init__(self) -> None:
        if not self.windows_days or min(self.windows_days) <= 0:
            raise ValueError("windows_days must be a non-empty list of positive day counts")
        if self.value_window_days <= 0:
            raise ValueError("value_window_days must be positive")


CAUSES = ("runoff", "refinanced", "credit_exit", "lapsed")  # competing causes of churn


@dataclass(frozen=True)
class EventSpec:
    """Churn time and cause over (t, t + months] (``survival.events``, docs/definitions.md)."""

    months: int  # K: churn time is read over months 1..K after t
    month_days: float  # length of one month of the survival grid, in days
    maturity_tolerance_days: int  # a close this close to (or after) the maturity is a run-off
    arrears_window_days: int  # installments due in this window before the close are looked at
    arrears_dpd_days: int  # days past due (at the close) from which a close is a credit exit
    arrears_missed: int  # ... or this many missed installments in the window

    def __post_init__(self) -> None:
        if self.months < 1 or self.month_days <= 0:
            raise ValueError("survival.months must be >= 1 and survival.month_days > 0")
        if min(self.maturity_tolerance_days, self.arrears_window_days) < 0:
            raise ValueError("maturity_tolerance_days and arrears_window_days must be >= 0")
        if self.arrears_dpd_days < 1 or self.arrears_missed < 1:
            raise ValueError("arrears_dpd_days and arrears_missed must be >= 1")

    def month_ends(self) -> list[int]:
        """Day offsets of the grid's month ends 1..K after t."""
        return [round(k * self.month_days) for k in range(1, self.months + 1)]
