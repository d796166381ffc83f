"""The monitor's settings (params.yaml ``monitor:``; docs/monitoring.md explains each)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MonitorSpec:
    bins: int  # quantile bins per feature in the reference profile
    psi_warn: float  # PSI from which a feature is "shifting"
    psi_drift: float  # PSI from which a feature is "drifted"
    alpha: float  # level of the chi-square two-sample test, Bonferroni over the features
    size_aware: bool  # a PSI counts only above what sampling noise gives at these sizes
    drift_share_warn: float  # share of drifted model features: warn
    drift_share_retrain: float  # ... retrain
    auc_drop_warn: float  # estimated or realised ROC AUC this far below the reference: warn
    auc_drop_retrain: float  # ... retrain
    missing_change: float  # a feature's missing share this far from the reference's: flagged
    out_of_range_share: float  # share of values outside the reference's [min, max]: flagged
    new_category_share: float  # share of rows with a category the reference never saw: flagged
    volume_tolerance: float  # rows per month of a table off the reference by more than this
    window_days: int  # raw-table categories and volumes: rows dated in (t - window, t]
    draws: int  # Monte Carlo draws of labels for the intervals of the estimates
    interval: float  # central probability of the intervals
    backtest_snapshots: int  # matured month-ends before --as-of in the realised backtest
    seed: int

    def __post_init__(self) -> None:
        if self.bins < 2 or self.draws < 10 or self.window_days < 1:
            raise ValueError("monitor: bins >= 2, draws >= 10 and window_days >= 1 required")
        if not 0 < self.psi_warn <= self.psi_drift:
            raise ValueError("monitor: 0 < psi_warn <= psi_drift required")
        if not 0 < self.drift_share_warn <= self.drift_share_retrain <= 1:
            raise ValueError("monitor: 0 < drift_share_warn <= drift_share_retrain <= 1 required")
        if not 0 < self.auc_drop_warn <= self.auc_drop_retrain:
            raise ValueError("monitor: 0 < auc_drop_warn <= auc_drop_retrain required")
        if not (0 < self.alpha < 1 and 0 < self.interval < 1):
            raise ValueError("monitor: alpha and interval must lie in (0, 1)")
        if self.backtest_snapshots < 0:
            raise ValueError("monitor: backtest_snapshots must be >= 0")
