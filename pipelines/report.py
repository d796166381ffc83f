"""Stage `report`: one self-contained HTML report of the run (reports/report.html).

Portfolio KPIs by tier, churn risk by tier and lifecycle state, tier transitions, the drivers
of risk and the strategy playbook with value at risk and example customers. No network is
needed to open it; it is also logged into the evaluate stage's MLflow run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.contract import LOANS
from models.columns import CHURN_PROBABILITY
from models.serving import registry
from models.serving.records import RegistryRecord
from models.strategies.catalog import load_catalog
from models.training.summary import TrainSummary
from pipelines.config import Config
from pipelines.io import load_frame, load_json, save_text
from pipelines.reporting.report import (
    render_report,
    report_inputs_from,
    run_info_from,
    survival_view,
)

IMAGES = {
    "SHAP summary (beeswarm) of the churn model": "shap_beeswarm.png",
    "Feature-group importance": "group_importance.png",
}


def _survival(cfg: Config, explanations: pd.DataFrame):
    """The "When and why" tables when the survival stage has run (else None: no section): the
    at-risk book from the explanations (with the survival columns the explain stage added) and
    the maturities of its open loans (the validated loans table)."""
    predictions = cfg.path(cfg.paths.survival_predictions)
    incidence = cfg.path(cfg.paths.survival_plots) / "incidence_by_tier.csv"
    if not (predictions.exists() and incidence.exists()):
        return None
    frame = load_frame(predictions)
    if not len(frame):
        return None
    at_risk = None
    if "churn_cause" in explanations:
        at_risk = explanations[explanations[CHURN_PROBABILITY] >= cfg.explain.at_risk_threshold]
    loans_path = cfg.path(cfg.paths.validated) / f"{LOANS}.parquet"
    loans = load_frame(loans_path) if loans_path.exists() else None
    months = cfg.survival.events.months
    return survival_view(frame, load_frame(incidence), at_risk, loans, months)


def _plan(cfg: Config):
    """The "Action plan" tables when the uplift stage planned (else None: no section)."""
    plan, curve = cfg.path(cfg.paths.uplift_plan), cfg.path(cfg.paths.uplift_curve)
    if not (plan.exists() and curve.exists()):
        return None
    frame = load_frame(plan)
    if not len(frame):
        return None
    details = cfg.path(cfg.paths.uplift_evaluation)
    stage = load_json(details).get("plan", {}) if details.exists() else {}
    basis = {k: stage[k] for k in ("value_basis", "value_basis_reason") if k in stage}
    return {"plan": frame, "curve": load_frame(curve), **basis}


def run(cfg: Config) -> Path:
    p, explain_dir = cfg.paths, cfg.path(cfg.paths.explain)
    logged = RegistryRecord.from_json(load_json(cfg.path(p.registry)))
    summary = TrainSummary.from_json(load_json(cfg.path(p.train_summary)))
    created = f"{pd.Timestamp.now():%Y-%m-%d %H:%M}"
    run_info = run_info_from(
        logged, summary.data_fingerprint, created, cfg.explain.currency, summary.warnings
    )
    explanations = load_frame(cfg.path(p.explanations))
    inputs = report_inputs_from(
        load_frame(cfg.path(p.predictions)),
        explanations,
        load_frame(cfg.path(p.kpis)),
        load_frame(explain_dir / "strategy_coverage.csv"),
        load_frame(explain_dir / "group_importance.csv"),
        load_catalog(),
        run_info,
        images={caption: (explain_dir / name).read_bytes() for caption, name in IMAGES.items()},
        threshold=cfg.explain.at_risk_threshold,
        watch=cfg.explain.watch_threshold,
        survival=_survival(cfg, explanations),
        plan=_plan(cfg),
    )
    out = save_text(render_report(inputs), cfg.path(p.report))
    registry.log_to_run(cfg.root, logged.run_id, [out], {})
    return out
