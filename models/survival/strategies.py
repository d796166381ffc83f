"""Strategies by churn cause, from the strategy catalog (each entry cites its document).

The survival model's most likely cause picks the play; ``act_by`` (score_columns) says by when:

- runoff: renewal and upgrade offers ahead of the maturity (003 upgrade selling; 000 flexible
  financing plans at the Act stage);
- refinanced: counter-competitor moves and a price review (003; 002 preferential rates for
  long-standing clients);
- credit_exit: risk monitoring and early warning, advisory service (001; 004) — a case for the
  risk team, not a marketing target;
- lapsed: wake-up calls and visits (002).

**Timing** picks among a cause's plays (``cause_plans``): when there is time before the latest
useful date (``act_by`` after the snapshot: the cause's likely month is more than
``act_lead_days`` away) the play made *ahead* of it; when ``act_by`` is the snapshot itself
(act now) the *urgent* one:

| cause | ahead | now |
|---|---|---|
| runoff | upgrade / renewal offer (003) | flexible financing plan (000) |
| refinanced | preferential rate review (002) | counter-competitor move (003) |
| credit_exit | advisory service (004) | risk monitoring and early warning (001) |
| lapsed | wake-up call and visit (002) | wake-up call and visit (002) |
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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


TIMED = {  # cause -> (ahead of act_by, act now)
    "runoff": ("customer_upgrade", "act_flexible_financing"),
    "refinanced": ("high_loyalty_preferential_rate", "competitor_counter"),
    "credit_exit": ("advisory_service", "risk_early_warning"),
    "lapsed": ("dormant_wake_up", "dormant_wake_up"),
}
CAUSE_STRATEGY, CAUSE_STRATEGY_SOURCE, CAUSE_TIMING = (
    "cause_strategy", "cause_strategy_source", "cause_timing",
)  # fmt: skip
CAUSE_PLAN_COLUMNS = (CAUSE_STRATEGY, CAUSE_STRATEGY_SOURCE, CAUSE_TIMING)


def cause_plans(catalog: Catalog, causes: pd.Series, act_now: np.ndarray) -> pd.DataFrame:
    """Per row: the play for its most likely cause and timing (``cause_strategy``), the document
    it cites (``cause_strategy_source``: file, section) and ``cause_timing`` (ahead / now)."""
    now = np.asarray(act_now, dtype=bool)
    cause = causes.to_numpy(dtype=object)
    ids = np.full(len(cause), None, dtype=object)
    for name, (ahead, urgent) in TIMED.items():
        ids[(cause == name) & ~now], ids[(cause == name) & now] = ahead, urgent
    source = {i: f"{catalog.by_id(i).source_file} {catalog.by_id(i).section}".strip()
              for pair in TIMED.values() for i in pair}  # fmt: skip
    known = pd.notna(ids)
    return pd.DataFrame(
        {CAUSE_STRATEGY: ids, CAUSE_STRATEGY_SOURCE: pd.Series(ids).map(source).to_numpy(),
         CAUSE_TIMING: np.where(known, np.where(now, "now", "ahead"), None)},
        index=causes.index,
    )  # fmt: skip
