"""Benchmark: uplift per strategy on the synthetic world's randomised campaigns, and the proof by
simulation of the budgeted plan (issue 14; docs/uplift.md).

1. A world with campaigns (params.yaml's ``generate`` with ``campaigns.start`` set) is simulated
   and validated; the feature table is built at every campaign date (a month-end snapshot).
2. Out of time: the T-learner (models/uplift) fits on the campaigns decided up to the split and
   is scored on the later, held-out randomised campaigns: Qini coefficient and AUUC per strategy
   and overall, against targeting by churn risk (the control arm's churn probability), by the
   rule playbook (the bank's rule score, higher for rows given the playbook's strategy), at
   random, and by the oracle's true uplift (the ceiling); the model's uplift is correlated with
   the oracle's per strategy.
3. Policies: on the first held-out campaign date every active customer is planned for, at the
   budget the bank spent that month: the plan (uplift × value - cost, greedy), the top-k by
   churn risk with the playbook's strategy, the rule playbook (the bank's rule score with the
   playbook's strategy), and no campaign. The world is re-run forward from that day under each
   policy with the same random numbers (``simulate_policies``); churn among the targeted, book
   churn, and saved value (CLV of the simulated churn probabilities, minus the planned cost).

    .venv/bin/python benchmarks/uplift.py --customers 3000 --replicates 50     # a dry run
    flock /work/heavy.lock nice -n 5 .venv/bin/python benchmarks/uplift.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from features.build import build_feature_table
from features.contract import AS_OF, CUSTOMER_ID, data_end
from features.labels import ACTIVE, CHURNED
from features.observation import observation_start
from features.registry import feature_names, value_feature
from features.synthetic import CAMPAIGN_STRATEGIES, oracle_uplift, simulate_policies, simulate_world
from features.validation import validate_tables
from models.evaluation.kpis import compute_clv
from models.strategies.catalog import load_catalog
from models.uplift.data import IS_TREATED, build_uplift_rows, labelled
from models.uplift.evaluation import (
    OVERALL,
    compute_uplift_table,
    split_campaigns,
    targeting_scores,
)
from models.uplift.learner import NONE, UpliftTLearner
from models.uplift.plan import (
    ACTION,
    CHURN_REDUCTION,
    NO_ACTION,
    SAVED_VALUE,
    compute_net_values,
    estimate_costs,
    plan_actions,
)
from models.uplift.playbook import playbook_strategy, rule_score
from pipelines.config import load_defaults

console = Console(width=200)


def build(args):
    cfg = load_defaults()
    base = replace(cfg.generate, customers=args.customers, years=args.years, seed=args.seed)
    campaigns = replace(base.campaigns, start=args.campaigns_start, monthly_share=args.share)
    spec = replace(base, campaigns=campaigns)
    start = time.perf_counter()
    world = simulate_world(spec)
    ids = [s.id for s in load_catalog().strategies]
    tables, _ = validate_tables(world.tables.present(), strategy_ids=ids)
    dates = pd.DatetimeIndex(sorted(tables.campaigns["date"].unique()))
    start_day = observation_start(tables, cfg.data.start)
    table = build_feature_table(tables, dates, cfg.defs, cfg.features, data_end=data_end(tables),
                                observed_from=start_day)  # fmt: skip
    console.log(
        f"world, validation and {len(dates)} snapshots: {time.perf_counter() - start:.0f} s"
    )
    return cfg, spec, tables, table


def evaluate(args, cfg, spec, tables, table):
    rows = labelled(build_uplift_rows(tables.campaigns, table))
    train, test = split_campaigns(rows, args.test_months)
    features = feature_names(cfg.features)
    spec_u = cfg.uplift  # params.yaml's uplift: section, as `tierwise plan` and the stage use it
    model = UpliftTLearner(spec_u.lightgbm_params(), CAMPAIGN_STRATEGIES, spec_u.seed,
                           spec_u.min_arm_rows)  # fmt: skip
    model.fit(train[features], train["strategy_id"], train[IS_TREATED], train[CHURNED])
    console.log(f"train {len(train)} rows to {train[AS_OF].max().date()}, test {len(test)} rows")
    start = time.perf_counter()
    oracle = oracle_uplift(spec, test[[CUSTOMER_ID, AS_OF, "strategy_id"]],
                           cfg.labels.horizon_days, replicates=args.replicates)  # fmt: skip
    console.log(f"oracle uplift for {len(test)} rows: {time.perf_counter() - start:.0f} s")
    scores = targeting_scores(model, test, features) | {"oracle": oracle["uplift"].to_numpy()}
    results = compute_uplift_table(test, scores, CAMPAIGN_STRATEGIES)
    own = scores["uplift_model"]
    for row in results:
        subset = np.ones(len(test), bool) if row["strategy"] == OVERALL else (
            test["strategy_id"] == row["strategy"]).to_numpy()  # fmt: skip
        row["corr_oracle"] = float(np.corrcoef(own[subset], oracle["uplift"][subset])[0, 1])
        row["model_mean"], row["oracle_mean"] = own[subset].mean(), oracle["uplift"][subset].mean()
    show(results, "held-out campaigns: Qini coefficient by targeting (higher is better)")
    return model, train, test


def policies(args, cfg, spec, tables, table, model, train, test):
    day = pd.Timestamp(test[AS_OF].min())
    book = table[(table[AS_OF] == day) & table[ACTIVE].fillna(False).astype(bool)]
    book = book.reset_index(drop=True)
    features = feature_names(cfg.features)
    spent = tables.campaigns[(tables.campaigns["date"] == day)]["cost"].sum()
    budget = args.budget or float(spent)
    cost = estimate_costs(book, train, list(CAMPAIGN_STRATEGIES))
    uplift, churn = model.predict_uplift(book[features]), model.predict_churn(book[features])
    yearly = book[value_feature(cfg.kpis.value_window_days)].fillna(0.0)
    yearly = yearly * 365.0 / cfg.kpis.value_window_days
    H = cfg.labels.horizon_days
    fitted = model.fitted_strategies
    net = compute_net_values(uplift[fitted], churn[NONE], yearly, cost[fitted], cfg.kpis, H)
    plan = plan_actions(uplift[fitted], net, cost[fitted], budget)
    playbook = playbook_strategy(book)
    chosen = {
        "plan": plan[ACTION],
        "risk top-k": _by_rank(churn[NONE], playbook, cost, budget),
        "rule playbook": _by_rank(rule_score(book), playbook, cost, budget),
        "no campaign": pd.Series(NO_ACTION, index=book.index),
    }
    frames = {
        name: pd.DataFrame({CUSTOMER_ID: book[CUSTOMER_ID], "strategy_id": a})[a != NO_ACTION]
        for name, a in chosen.items()
    }
    start = time.perf_counter()
    runs = [
        _outcomes(
            simulate_policies(spec, day, frames, H, replicates=args.policy_replicates, seed=seed),
            book,
            chosen,
            cost,
            yearly,
            cfg,
        )  # fmt: skip
        for seed in range(args.seeds)
    ]
    console.log(f"policy simulation from {day.date()}, {args.seeds} seeds: "
                f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    runs = pd.DataFrame([r for run in runs for r in run])
    means = runs.groupby("policy", sort=False).mean()
    spread = runs.groupby("policy", sort=False)[["churners_saved", "saved_value"]].std()
    rows = [
        {"policy": name, **means.loc[name].to_dict(),
         "churners_saved_sd": spread.loc[name, "churners_saved"],
         "saved_value_sd": spread.loc[name, "saved_value"]}
        for name in means.index
    ]  # fmt: skip
    futures = f"{args.policy_replicates} futures x {args.seeds} seeds (sd: across seeds)"
    title = f"policies from {day.date()}: {len(book)} active, budget {budget:,.0f}, {futures}"
    show(rows, title)
    mix = plan.loc[plan[ACTION] != NO_ACTION, ACTION].value_counts()
    console.print(f"plan mix: {mix.to_dict()}")
    console.print(f"the plan's own estimate: churners saved {plan[CHURN_REDUCTION].sum():.2f}, "
                  f"saved value {plan[SAVED_VALUE].sum():,.0f} net of cost (simulated above: "
                  f"{means.loc['plan', 'churners_saved']:.2f}, "
                  f"{means.loc['plan', 'saved_value']:,.0f})")  # fmt: skip


def _outcomes(sim, book, chosen, cost, yearly, cfg) -> list[dict]:
    """Per policy: targeted, planned cost, churn among the targeted (and the same customers
    untreated), book churn, churners saved and saved value (CLV gained minus planned cost)."""
    H = cfg.labels.horizon_days
    sim = book[[CUSTOMER_ID]].merge(sim, on=CUSTOMER_ID, how="left")
    base_clv = compute_clv(sim["none"].to_numpy(), yearly.to_numpy(), cfg.kpis, H)
    rows = []
    for name, action in chosen.items():
        target = (action != NO_ACTION).to_numpy()
        planned = float(np.nansum(np.where(target, _cost_of(action, cost), 0.0)))
        clv = compute_clv(sim[name].to_numpy(), yearly.to_numpy(), cfg.kpis, H)
        rows.append({
            "policy": name, "targeted": float(target.sum()), "planned_cost": planned,
            "churn_targeted": float(sim.loc[target, name].mean()) if target.any() else np.nan,
            "same_untreated": (float(sim.loc[target, "none"].mean())
                               if target.any() else np.nan),
            "book_churn": float(sim[name].mean()),
            "churners_saved": float((sim["none"] - sim[name]).sum()),
            "saved_value": float((clv - base_clv).sum()) - planned,
        })  # fmt: skip
    return rows


def _cost_of(action: pd.Series, cost: pd.DataFrame) -> np.ndarray:
    """Each row's cost of its action (0 for none)."""
    column = cost.columns.get_indexer(action)
    picked = cost.to_numpy()[np.arange(len(action)), np.maximum(column, 0)]
    return np.where(column >= 0, np.nan_to_num(picked), 0.0)


def _by_rank(score: pd.Series, strategy: pd.Series, cost: pd.DataFrame, budget: float) -> pd.Series:
    """Down the ranking of ``score``, each customer with its ``strategy`` if its cost still fits
    in what is left of ``budget`` (one that does not is skipped; the next may fit)."""
    order = np.argsort(-score.to_numpy(), kind="stable")
    each = _cost_of(strategy, cost)
    keep, left = np.zeros(len(score), bool), budget
    for i in order:  # a benchmark's policy, a few thousand rows: a plain loop
        if each[i] <= left:
            keep[i], left = True, left - each[i]
    return strategy.where(keep, NO_ACTION)


def show(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col, justify="left" if col in ("strategy", "policy") else "right")
    for row in rows:
        table.add_row(*(f"{v:,.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--campaigns-start", default="2021-06-30")
    parser.add_argument("--share", type=float, default=0.1, help="campaigns.monthly_share")
    parser.add_argument("--test-months", type=int, default=6, help="held-out campaign months")
    parser.add_argument("--replicates", type=int, default=200, help="oracle futures per row")
    parser.add_argument("--policy-replicates", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3, help="policy simulations, seeds 0..k-1")
    parser.add_argument("--budget", type=float, default=0.0, help="0 = the bank's spend that day")
    args = parser.parse_args()
    cfg, spec, tables, table = build(args)
    model, train, test = evaluate(args, cfg, spec, tables, table)
    policies(args, cfg, spec, tables, table, model, train, test)


if __name__ == "__main__":
    main()
