"""Typed definitions that features/ receives from the edge (pipelines/config.py builds them).

Every number in a definition lives here with its default and comes from params.yaml at run time;
docs/definitions.md explains each rule in words.
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

    horizon_days: int = 180  # H: the label window (t, t+H]
    active_window_days: int = 365  # A: a loan originated in (t-A, t] makes a customer active
    new_days: int = 90  # lifecycle new: first loan within this many days
    core_min_loans: int = 2  # core: at least this many loans originated in (t-core_window, t]
    core_window_days: int = 730
    core_min_tenure_days: int = 365  # core: first loan at least this long before t
    vip_top_fraction: float = 0.10  # VIP: core and value in the top fraction at t
    value_window_days: int = 365  # trailing window of the interest-income value
    loyalty_high_on_time: float = 0.95  # loyalty level thresholds (document 002's case study)
    loyalty_high_satisfaction: float = 4.0
    loyalty_low_on_time: float = 0.80
    loyalty_low_satisfaction: float = 2.0
    advocate_window_days: int = 365  # Advocate: a referral within this window
    missed_after_days: int = 30  # an installment unpaid this long after its due date is missed

    def __post_init__(self) -> None:
        if self.horizon_days <= 0 or self.active_window_days <= 0:
            raise ValueError("horizon_days and active_window_days must be positive")
        if not 0 < self.vip_top_fraction < 1:
            raise ValueError("vip_top_fraction must be in (0, 1)")


@dataclass(frozen=True)
class FeatureSpec:
    """Trailing windows and pricing reference used by the feature builder."""

    windows_days: tuple[int, ...] = (90, 180, 365)
    pricing_window_days: int = 90  # the book median rate is taken over this trailing window
    btyd_time_unit_days: float = 30.4375  # BG/NBD time unit (one month)
    chunk_customers: int = 50_000  # build the table this many customers at a time (memory)

    def __post_init__(self) -> None:
        if not self.windows_days or min(self.windows_days) <= 0:
            raise ValueError("windows_days must be a non-empty list of positive day counts")
