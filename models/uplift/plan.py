"""The budgeted action plan: uplift decides whom and which, the budget how many.

For each customer and fitted strategy s, with p_none the churn probability untreated and u_s
the uplift (churn prevented):

    saved_s = CLV(treated by s) - CLV(untreated)
    net_s   = saved_s - cost_s                          (expected_saved_value)

on one of two bases (``ValueBasis``). **survival**: the survival-weighted CLV
(models/evaluation/kpis.py: compute_survival_clv) of the survival model's monthly all-cause
curve S(k) untreated, and of S(k)^theta treated, theta = ln(1 - p_s) / ln(1 - p_none) the hazard
ratio that the uplift model's two arms imply at H (proportional hazards, ``treated_survival``).
**geometric**, when there is no survival curve: the geometric CLV of the arm probabilities,
CLV(p_none - u_s) - CLV(p_none) (compute_clv).

Each customer gets the strategy with the highest net, if positive. Selection is greedy: the
customers are ranked by net value per unit of cost, and the plan takes the longest prefix of that
ranking whose total cost fits the budget (the classic greedy for a knapsack; it can leave a
little budget unused, never more than the next customer's cost). The total cost never exceeds
the budget. Customers outside the plan get ``action = none`` and no rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.evaluation.kpis import compute_clv, compute_survival_clv
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


SURVIVAL_BASIS, GEOMETRIC_BASIS = "survival", "geometric"
_SURE = 1e-12  # churn probabilities are kept inside (0, 1 - _SURE] for the log-survival


@dataclass(frozen=True)
class ValueBasis:
    """How a plan values a customer kept: the survival model's monthly all-cause survival
    ``curve`` (rows: the book's, columns: months 1..K of ``month_days``) or, without one, the
    geometric CLV; ``reason`` says where the curve comes from, or why there is none."""

    curve: np.ndarray | None = None
    month_days: float = 0.0
    reason: str = ""

    @property
    def name(self) -> str:
        return SURVIVAL_BASIS if self.curve is not None else GEOMETRIC_BASIS


GEOMETRIC = ValueBasis(reason="no survival curve given")


def treated_survival(survival: np.ndarray, p_none: np.ndarray, p_treated: np.ndarray) -> np.ndarray:
    """The treated arm's monthly survival curve from the untreated one, under proportional
    hazards: the treatment multiplies the hazard at every month by the same theta, so
    S_treated(k) = S(k)^theta, with theta = ln(1 - p_treated) / ln(1 - p_none) the hazard ratio
    of the uplift model's two arms at H. theta = 1 (the curve unchanged) where p_treated equals
    p_none or p_none is 0 (no churn to prevent); theta = 0 (no churn) where p_treated is 0."""
    untreated = np.log1p(-np.clip(np.asarray(p_none, float), 0.0, 1.0 - _SURE))
    treated = np.log1p(-np.clip(np.asarray(p_treated, float), 0.0, 1.0 - _SURE))
    safe = np.where(untreated < 0, untreated, -1.0)
    theta = np.where(untreated < 0, treated / safe, 1.0)
    return np.clip(np.asarray(survival, float), 0.0, 1.0) ** theta[:, None]


def compute_net_values(
    uplift: pd.DataFrame,
    p_none: pd.Series,
    yearly_value: pd.Series,
    cost: pd.DataFrame,
    kpis: KpiSpec,
    horizon_days: int,
    basis: ValueBasis = GEOMETRIC,
) -> pd.DataFrame:
    """expected_saved_value (saved CLV minus cost) per customer (rows) and strategy (columns),
    on ``basis`` (the module docstring)."""
    untreated, value = p_none.to_numpy(float), yearly_value.to_numpy(float)

    def clv(p_treated: np.ndarray) -> np.ndarray:
        if basis.curve is None:
            return compute_clv(p_treated, value, kpis, horizon_days)
        curve = treated_survival(basis.curve, untreated, p_treated)
        return compute_survival_clv(curve, value, kpis, basis.month_days)

    base = clv(untreated)
    out = {}
    for s in uplift.columns:
        saved = clv(np.clip(untreated - uplift[s].to_numpy(float), 0.0, 1.0)) - base
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
