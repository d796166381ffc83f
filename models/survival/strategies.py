"""Strategies by churn cause, from the strategy catalog (each entry cites its document).

The survival model's most likely cause picks the play; ``act_by`` (score_columns) says by when:

- runoff: renewal and upgrade offers ahead of the maturity (003 upgrade selling; 000 flexible
  financing plans at the Act stage);
- refinanced: counter-competitor moves and a price review (003; 002 preferential rates for
  long-standing clients);
- credit_exit: risk monitoring and early warning, advisory service (001; 004) — a case for the
  risk team, not a marketing target;
- lapsed: wake-up calls and visits (002).
"""

from __future__ import annotations

from models.strategies.catalog import Catalog, Strategy

CAUSE_STRATEGIES = {
    "runoff": ("customer_upgrade", "act_flexible_financing"),
    "refinanced": ("competitor_counter", "high_loyalty_preferential_rate"),
    "credit_exit": ("risk_early_warning", "advisory_service"),
    "lapsed": ("dormant_wake_up",),
}


def cause_strategies(catalog: Catalog, cause: str) -> tuple[Strategy, ...]:
    """The catalog's strategies for one churn cause, first choice first."""
    return tuple(catalog.by_id(strategy_id) for strategy_id in CAUSE_STRATEGIES[cause])
