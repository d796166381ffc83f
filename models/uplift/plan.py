"""The budgeted action plan: uplift decides whom and which, the budget how many.

For each customer and fitted strategy s, with p_none the churn probability untreated and u_s
the uplift (churn prevented):

    saved_s = CLV(p_none - u_s) - CLV(p_none)          (models/evaluation/kpis.py: compute_clv)
    net_s   = saved_s - cost_s                          (expected_saved_value)

Each customer gets the strategy with the highest net, if positive. Selection is greedy: the
customers are ranked by net value per unit of cost, and the plan takes the longest prefix of that
ranking whose total cost fits the budget (the classic greedy for a knapsack; it can leave a
little budget unused, never more than the next customer's cost). The total cost never exceeds
the budget. Customers outside the plan get ``action = none`` and no rank.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.evaluation.kpis import compute_clv
from models.spec import KpiSpec
from models.strategies.catalog import Catalog, source_text

ACTION, NAME, SOURCE, RANK = "action", "name", "source", "rank"
CHURN_REDUCTION, SAVED_VALUE, COST = "expected_churn_reduction", "expected_saved_value", "cost"
NO_ACTION = "none"
PLAN_COLUMNS = (ACTION, NAME, SOURCE, CHURN_REDUCTION, SAVED_VALUE, COST, RANK)


PRICE_REVIEW = "competitor_counter"  # the strategy whose cost is the interest it gives up
PRICE_CUT = 0.75  # a price review gives back this share of the price gap, for a year
EXPOSURE, PRICE_GAP = "loan_exposure", "price_gap_now"


def estimate_costs(
    table: pd.DataFrame, history: pd.DataFrame, strategies: list[str]
) -> pd.DataFrame:
    """Expected cost of each strategy for each row of the feature ``table``.

    A strategy costs what it cost on average when treated in the campaign ``history`` (rows
    with strategy_id, treated, cost); a price review costs at least that and otherwise the
    interest it gives up: ``PRICE_CUT`` x the price gap above the book (``price_gap_now``) x
    the open exposure, over a year. A strategy never treated in the history costs NaN.
    """
    treated = history[history["treated"]]
    flat = treated.groupby("strategy_id")["cost"].median().reindex(strategies)
    out = pd.DataFrame({s: np.full(len(table), flat[s]) for s in strategies}, index=table.index)
    if PRICE_REVIEW in strategies and {EXPOSURE, PRICE_GAP} <= set(table.columns):
        gap = table[PRICE_GAP].fillna(0.0).clip(lower=0.0)
        given_up = PRICE_CUT * gap * table[EXPOSURE].fillna(0.0)
        out[PRICE_REVIEW] = np.maximum(given_up.to_numpy(), flat[PRICE_REVIEW])
    return out


def compute_net_values(
    uplift: pd.DataFrame,
    p_none: pd.Series,
    yearly_value: pd.Series,
    cost: pd.DataFrame,
    kpis: KpiSpec,
    horizon_days: int,
) -> pd.DataFrame:
    """expected_saved_value (saved CLV minus cost) per customer (rows) and strategy (columns)."""
    base = compute_clv(p_none.to_numpy(), yearly_value.to_numpy(), kpis, horizon_days)
    out = {}
    for s in uplift.columns:
        treated = np.clip(p_none.to_numpy() - uplift[s].to_numpy(), 0.0, 1.0)
        saved = compute_clv(treated, yearly_value.to_numpy(), kpis, horizon_days) - base
        out[s] = saved - cost[s].to_numpy()
    return pd.DataFrame(out, index=uplift.index)


def plan_actions(
    uplift: pd.DataFrame, net: pd.DataFrame, cost: pd.DataFrame, budget: float
) -> pd.DataFrame:
    """One row per customer (the input's index): action, churn reduction, net value, cost, rank."""
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    filled = net.fillna(-np.inf)
    best = filled.to_numpy().argmax(axis=1)
    rows = np.arange(len(net))
    best_net = filled.to_numpy()[rows, best]
    best_cost = cost[net.columns].to_numpy()[rows, best]
    wanted = np.isfinite(best_net) & (best_net > 0)
    ratio = np.where(wanted, best_net / np.maximum(best_cost, 1e-9), -np.inf)
    order = np.argsort(-ratio, kind="stable")
    spent = np.cumsum(np.where(wanted[order], best_cost[order], 0.0))
    take = np.zeros(len(net), bool)
    take[order] = wanted[order] & (spent <= budget)
    rank = np.full(len(net), np.nan)
    rank[order[take[order]]] = np.arange(1, take.sum() + 1)
    strategy = np.asarray(net.columns, dtype=object)[best]
    return pd.DataFrame(
        {
            ACTION: np.where(take, strategy, NO_ACTION),
            CHURN_REDUCTION: np.where(take, uplift[net.columns].to_numpy()[rows, best], 0.0),
            SAVED_VALUE: np.where(take, best_net, 0.0),
            COST: np.where(take, best_cost, 0.0),
            RANK: pd.array(rank, dtype="Int64"),
        },
        index=net.index,
    )


def with_strategy_text(plan: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """The plan with each action's name and source (document and section) from the catalog."""
    known = {s.id: s for s in catalog.strategies}
    names = {k: s.name_en for k, s in known.items()}
    sources = {k: source_text(s) for k, s in known.items()}
    out = plan.assign(
        **{NAME: plan[ACTION].map(names).fillna(""), SOURCE: plan[ACTION].map(sources).fillna("")}
    )
    return out[[c for c in out.columns if c not in PLAN_COLUMNS] + list(PLAN_COLUMNS)]


def profit_curve(uplift: pd.DataFrame, net: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """The incremental-profit curve: down the plan's ranking with no budget limit, the
    cumulative cost (``budget``) against the cumulative expected saved value net of cost
    (``saved_value``) and the customers treated; row 0 is the empty plan."""
    ranked = plan_actions(uplift, net, cost, budget=float("inf"))
    taken = ranked[ranked[ACTION] != NO_ACTION].sort_values(RANK)
    return pd.DataFrame({
        "customers": np.arange(len(taken) + 1),
        "budget": np.concatenate([[0.0], taken[COST].cumsum().to_numpy()]),
        "saved_value": np.concatenate([[0.0], taken[SAVED_VALUE].cumsum().to_numpy()]),
    })  # fmt: skip
