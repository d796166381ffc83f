"""Stage `explain`: why each customer is at risk, and what to do about it.

For the active customers of the last test snapshot: calibrated churn probability, the three
feature groups pushing churn risk up (reason codes), up to three catalog strategies, and the
same reasons for the tier model's downgrade probability. Global views: mean |SHAP| per feature
and group, a beeswarm, and strategy coverage (at-risk customers and value at risk per
strategy). Everything is written under reports/ and logged into the evaluate stage's MLflow run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from features.contract import AS_OF, CUSTOMER_ID
from features.labels import ACTIVE
from features.registry import STATE_COLUMNS, TIER
from features.spec import TIERS
from models import registry
from models.explain import downgrade_contributions, explain_frame, feature_contributions
from models.explain_views import (
    feature_importance,
    group_importance,
    plot_beeswarm,
    plot_group_importance,
    strategy_coverage,
)
from models.pyfunc import CHURN_PROBABILITY, ChurnModel, TierModel
from models.reasons import reason_column_names
from models.strategies import Catalog, load_catalog
from models.train import FittedModels
from pipelines.config import Config
from pipelines.io import atomic_path, load_frame, load_json, save_frame, save_json
from pipelines.train import load_fitted

log = logging.getLogger(__name__)
VALUE_AT_RISK = "value_at_risk"
P_DOWNGRADE = "p_downgrade"
DOWNGRADE_PREFIX = "downgrade_"


@dataclass(frozen=True)
class Explained:
    explanations: pd.DataFrame  # one row per explained customer
    contributions: pd.DataFrame  # churn model, log-odds per feature (+ base_value)
    matrix: pd.DataFrame  # the churn model's feature values, same rows


def explanation_rows(table: pd.DataFrame, fitted: FittedModels) -> pd.DataFrame:
    """Active customers at the last test snapshot: the churn model's population."""
    last = fitted.split.test.max()
    rows = table[(table[AS_OF] == last) & table[ACTIVE].astype(bool)]
    return rows.reset_index(drop=True)


def p_downgrade(tier_model: TierModel, rows: pd.DataFrame) -> np.ndarray:
    """Probability that the next tier is below the current one."""
    proba = tier_model.probabilities(rows)
    current = pd.Categorical(rows[TIER], categories=TIERS).codes
    below = np.arange(len(TIERS))[None, :] < current[:, None]
    return (proba * below).sum(axis=1)


def _downgrade_reasons(tier_model: TierModel, rows, catalog: Catalog, k: int) -> pd.DataFrame:
    contribs = downgrade_contributions(
        tier_model.booster,
        tier_model.matrix(rows),
        rows[TIER],
        tier_model.class_codes,
        num_iteration=tier_model.num_iteration,
    )
    reasons = explain_frame(
        None,
        rows,
        tier_model.features,
        tier_model.groups,
        catalog,
        k,
        contributions=contribs,
        link=expit,
    )[reason_column_names(k)]
    return reasons.add_prefix(DOWNGRADE_PREFIX)


def explain_customers(
    rows: pd.DataFrame, churn: ChurnModel, tier_model: TierModel, catalog: Catalog, k: int
) -> Explained:
    X = churn.matrix(rows)
    contribs = feature_contributions(churn.booster, X, num_iteration=churn.num_iteration)
    reasons = explain_frame(
        None,
        rows,
        churn.features,
        churn.groups,
        catalog,
        k,
        contributions=contribs,
        link=churn.calibrator.predict,
    )
    probability = churn.probability(rows)
    head = rows[[CUSTOMER_ID, AS_OF, *STATE_COLUMNS]].assign(
        **{
            CHURN_PROBABILITY: probability,
            VALUE_AT_RISK: probability * rows["loan_value_365"].fillna(0.0),
            P_DOWNGRADE: p_downgrade(tier_model, rows),
        }
    )
    body = reasons.drop(columns=[c for c in (CUSTOMER_ID, AS_OF) if c in reasons.columns])
    downgrade = _downgrade_reasons(tier_model, rows, catalog, k)
    return Explained(pd.concat([head, body, downgrade], axis=1), contribs, X)


def global_views(cfg: Config, ex: Explained, churn: ChurnModel, catalog: Catalog) -> dict:
    """Write the global views under paths.explain; return headline figures."""
    folder = cfg.path(cfg.paths.explain)
    save_frame(
        feature_importance(ex.contributions, churn.groups), folder / "feature_importance.csv"
    )
    groups = group_importance(ex.contributions, churn.groups)
    save_frame(groups, folder / "group_importance.csv")
    coverage = strategy_coverage(
        ex.explanations,
        CHURN_PROBABILITY,
        VALUE_AT_RISK,
        threshold=cfg.explain.at_risk_threshold,
        catalog=catalog,
    )
    save_frame(coverage, folder / "strategy_coverage.csv")
    with atomic_path(folder / "group_importance.png") as tmp:
        plot_group_importance(groups, tmp)
    with atomic_path(folder / "shap_beeswarm.png") as tmp:
        plot_beeswarm(ex.contributions, ex.matrix, tmp, max_rows=cfg.explain.beeswarm_rows)
    at_risk = ex.explanations[CHURN_PROBABILITY] >= cfg.explain.at_risk_threshold
    return {
        "explained_customers": len(ex.explanations),
        "at_risk_customers": int(at_risk.sum()),
        "value_at_risk": round(float(ex.explanations.loc[at_risk, VALUE_AT_RISK].sum()), 2),
    }


def run(cfg: Config) -> dict:
    table = load_frame(cfg.path(cfg.paths.features))
    fitted = load_fitted(cfg.path(cfg.paths.models))
    catalog = load_catalog()
    rows = explanation_rows(table, fitted)
    log.info("explaining %d active customers at %s", len(rows), fitted.split.test.max().date())
    explained = explain_customers(rows, fitted.churn, fitted.tier, catalog, cfg.explain.k)
    save_frame(explained.explanations, cfg.path(cfg.paths.explanations))
    headline = global_views(cfg, explained, fitted.churn, catalog)
    save_json(headline, cfg.path(cfg.paths.explain) / "summary.json")
    logged = load_json(cfg.path(cfg.paths.registry))
    outputs: list[Path] = [cfg.path(cfg.paths.explanations), cfg.path(cfg.paths.explain)]
    registry.log_to_run(
        cfg.root, logged["run_id"], outputs, {f"explain.{k}": v for k, v in headline.items()}
    )
    return headline
