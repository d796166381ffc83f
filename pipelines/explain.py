"""Stage `explain`: why each customer is at risk, and what to do about it.

For the active customers of the last test snapshot (models/explain/customers.py): calibrated
churn probability, reason codes, up to k catalog strategies and the downgrade reasons; beside them
the survival model's answer (reports/survival_book.parquet, when the survival stage ran): when
and why (the most likely cause, its incidence, ``act_by``), the reasons for that cause and the
play chosen by cause and timing (docs/survival.md); the global views (mean |SHAP| per feature
and group, a beeswarm, strategy coverage). Everything is written
under reports/ and logged into the evaluate stage's MLflow run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.registry import value_feature
from models.explain.causes import CAUSE_REASON_PREFIX
from models.explain.customers import (
    ExplainSummary,
    explain_customers,
    explanation_rows,
    global_views,
)
from models.explain.views import plot_beeswarm, plot_group_importance
from models.serving import registry
from models.serving.records import RegistryRecord
from models.strategies.catalog import load_catalog
from models.survival.strategies import CAUSE_PLAN_COLUMNS
from models.survival.train import SCORE_COLUMNS as SURVIVAL_COLUMNS
from pipelines.config import Config
from pipelines.io import atomic_path, load_frame, load_json, load_pickle, save_frame, save_json

log = logging.getLogger(__name__)


def with_survival(cfg: Config, explanations: pd.DataFrame) -> pd.DataFrame:
    """The explanations with the survival stage's columns for the same rows (its score columns,
    the cause's play and reasons); unchanged, logged, when there is no survival book."""
    path = cfg.path(cfg.paths.survival_book)
    book = load_frame(path) if path.exists() else pd.DataFrame()
    if book.empty:
        log.info("explain: no survival book (%s): no when-and-why columns", path)
        return explanations
    keys = [CUSTOMER_ID, AS_OF]
    columns = [c for c in (*SURVIVAL_COLUMNS, *CAUSE_PLAN_COLUMNS) if c in book.columns]
    columns += [c for c in book.columns if c.startswith(f"{CAUSE_REASON_PREFIX}reason_")]
    return explanations.merge(book[[*keys, *columns]], on=keys, how="left", validate="one_to_one")


def run(cfg: Config) -> ExplainSummary:
    table = load_frame(cfg.path(cfg.paths.features))
    fitted = load_pickle(cfg.path(cfg.paths.models), "train")
    catalog = load_catalog()
    as_of = fitted.split.test.max()
    rows = explanation_rows(table, as_of)
    log.info("explaining %d active customers at %s", len(rows), as_of.date())
    value = value_feature(cfg.features.value_window_days)
    shown = {"min_contribution": cfg.explain.min_contribution, "currency": cfg.explain.currency}
    ex = explain_customers(rows, fitted.churn, fitted.tier, catalog, cfg.explain.k, value, **shown)
    views = global_views(ex, fitted.churn, catalog, cfg.explain.at_risk_threshold)
    folder = cfg.path(cfg.paths.explain)
    save_frame(with_survival(cfg, ex.explanations), cfg.path(cfg.paths.explanations))
    save_frame(views.feature_importance, folder / "feature_importance.csv")
    save_frame(views.group_importance, folder / "group_importance.csv")
    save_frame(views.strategy_coverage, folder / "strategy_coverage.csv")
    with atomic_path(folder / "group_importance.png") as tmp:
        plot_group_importance(views.group_importance, tmp)
    with atomic_path(folder / "shap_beeswarm.png") as tmp:
        plot_beeswarm(ex.contributions, ex.matrix, tmp, max_rows=cfg.explain.beeswarm_rows)
    headline = views.headline.to_json()
    save_json(headline, folder / "summary.json")
    logged = RegistryRecord.from_json(load_json(cfg.path(cfg.paths.registry)))
    outputs: list[Path] = [cfg.path(cfg.paths.explanations), folder]
    metrics = {f"explain.{k}": v for k, v in headline.items()}
    registry.log_to_run(cfg.root, logged.run_id, outputs, metrics)
    return views.headline
