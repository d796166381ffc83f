"""The report's inputs: what the page shows, already in its final grain, and where it came from.

Its own module so that the page (``html``), the sections and the assembly (``report``) all import
it and none of them imports another in a circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from features.contract import CUSTOMER_ID
from features.registry import LIFECYCLE_STATE, TIER
from models.columns import CHURN_PROBABILITY
from models.explain.views import STRATEGY

PORTFOLIO = "portfolio"
KPI_COLUMNS = ("customers", "active", "churn_rate", "retention_rate", "predicted_churn_rate",
               "clv_mean", "clv_total", "nps", "csi")  # fmt: skip
RISK_COLUMNS = (CUSTOMER_ID, TIER, LIFECYCLE_STATE, CHURN_PROBABILITY)
DRIVER_COLUMNS = ("group", "mean_abs", "mean", "share_up")
PLAYBOOK_COLUMNS = (STRATEGY, "name_zh", "name_en", "citation", "action", "customers_at_risk",
                    "share_of_at_risk", "first_choice", "value_at_risk")  # fmt: skip
VALUE_AT_RISK = "value_at_risk"
EXAMPLE_COLUMNS = (STRATEGY, "slot", CUSTOMER_ID, TIER, LIFECYCLE_STATE, CHURN_PROBABILITY,
                   VALUE_AT_RISK, "reason_1", "reason_2", "reason_3")  # fmt: skip
REQUIRED = {"kpis": KPI_COLUMNS, "risk": RISK_COLUMNS, "drivers": DRIVER_COLUMNS,
            "playbook": PLAYBOOK_COLUMNS, "examples": EXAMPLE_COLUMNS}  # fmt: skip


@dataclass(frozen=True)
class RunInfo:
    """Where the numbers come from: the MLflow run, the registered model versions (kind ->
    version), the feature table's fingerprint and the date the report was made (ISO); which
    versions are the champion (kind -> bool, from reports/registry.json) and the currency of
    every amount (params explain.currency)."""

    run_id: str
    model_versions: Mapping[str, str]
    data_fingerprint: str
    created: str
    title: str = "tierwise · churn & loyalty report"
    champions: Mapping[str, bool] = field(default_factory=dict)
    currency: str = ""
    warnings: tuple[str, ...] = ()  # the train stage's (reports/train.json), shown at the top


@dataclass(frozen=True, eq=False)
class ReportInputs:
    """Everything the page shows, already in its final grain (see the module docstring).

    kpis: index = tiers then ``portfolio``, columns KPI_COLUMNS. risk: one row per scored
    customer at ``as_of`` (RISK_COLUMNS). transitions: name -> TIERS x TIERS row shares
    (``actual``, ``predicted``); transition_rows: test rows per current tier. drivers: group
    importance (DRIVER_COLUMNS), largest first. playbook: one row per catalog strategy
    (PLAYBOOK_COLUMNS), largest value at risk first. examples: EXAMPLE_COLUMNS. images: caption
    -> PNG bytes of the global plots. value_at_risk_total: over at-risk customers (None when the
    explanations carry no value).
    """

    run: RunInfo
    as_of: str
    kpis: pd.DataFrame
    risk: pd.DataFrame
    transitions: Mapping[str, pd.DataFrame]
    transition_rows: pd.Series
    drivers: pd.DataFrame
    playbook: pd.DataFrame
    examples: pd.DataFrame
    at_risk_threshold: float  # params explain.at_risk_threshold
    watch_threshold: float  # params explain.watch_threshold
    images: Mapping[str, bytes] = field(default_factory=dict)
    snapshots: tuple[str, ...] = ()
    value_at_risk_total: float | None = None
    # "When and why" (survival stage): incidence (tier, month, causes...), mix (cause, customers,
    # mean_incidence_12m), calendar (month, customers to act on); None without the stage
    survival: Mapping[str, pd.DataFrame] | None = None
    # "Action plan" (uplift stage): plan (one row per active customer: tier, action, cost,
    # expected_saved_value...), curve (customers, budget, saved_value); None without a plan
    plan: Mapping[str, pd.DataFrame] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.watch_threshold < self.at_risk_threshold <= 1:
            raise ValueError("need 0 < watch_threshold < at_risk_threshold <= 1")
        for name, columns in REQUIRED.items():
            missing = [c for c in columns if c not in getattr(self, name).columns]
            if missing:
                raise ValueError(f"ReportInputs.{name} lacks column(s): {', '.join(missing)}")
