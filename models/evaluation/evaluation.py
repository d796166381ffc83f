"""Everything the evaluate stage computes from the test predictions: metrics (overall and per
snapshot), document 004's KPIs, and the plot data and figures. Pure: frames in, an
``Evaluation`` out; pipelines/evaluate.py writes it and logs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from models.evaluation.kpis import SurvivalCurves, compute_kpis, kpi_headline, kpi_rows
from models.evaluation.metrics import evaluate_predictions, headline_metrics, snapshot_metrics
from models.evaluation.plots import compute_figures, compute_plot_data
from models.evaluation.records import KINDS, EvaluationDetails, HeadlineMetrics, SnapshotMetrics
from models.spec import EvaluateSpec, KpiSpec

# Per-snapshot metrics logged to MLflow as steps (step i = the i-th test snapshot).
SERIES = {"churn": ("roc_auc", "brier", "ece"), "tier": ("log_loss", "accuracy")}


@dataclass(frozen=True)
class Evaluation:
    details: EvaluationDetails  # everything (reports/evaluation.json)
    metrics: HeadlineMetrics  # headline figures (DVC metrics, reports/metrics.json)
    by_snapshot: SnapshotMetrics  # per test snapshot (a file, and DVC plots of one metric)
    kpis: pd.DataFrame
    plot_data: dict[str, pd.DataFrame]
    figures: dict[str, Figure]


def compute_evaluation(
    predictions: pd.DataFrame,
    table: pd.DataFrame,
    customers: pd.DataFrame | None,
    surveys: pd.DataFrame | None,
    spec: EvaluateSpec,
    kpi_spec: KpiSpec,
    horizon_days: int,
    survival: SurvivalCurves | None = None,
) -> Evaluation:
    """Metrics, KPIs and plots of the test predictions (``models.training.train.predict_test``);
    CLV survival-weighted for the rows ``survival`` has curves for."""
    details = evaluate_predictions(predictions, spec)
    rows = kpi_rows(predictions, table, customers, surveys, kpi_spec, horizon_days, survival)
    metrics = headline_metrics(details, kpi_headline(rows))
    data = compute_plot_data(predictions, spec.bins)
    figures = compute_figures(data, predictions)
    by_snapshot = snapshot_metrics(details)
    data |= snapshot_plot_data(by_snapshot)
    return Evaluation(details, metrics, by_snapshot, compute_kpis(rows), data, figures)


# The per-snapshot figure each kind plots in `dvc plots` (dvc.yaml: "... by snapshot").
SNAPSHOT_PLOTS = {"churn": "roc_auc", "tier": "log_loss"}


def snapshot_plot_data(by_snapshot: SnapshotMetrics) -> dict[str, pd.DataFrame]:
    """``KIND_by_snapshot``: one row per test snapshot (``as_of``), one column per model, holding
    the kind's SNAPSHOT_PLOTS metric: the per-snapshot tables as DVC plots, not metrics."""
    out = {}
    for kind, metric in SNAPSHOT_PLOTS.items():
        per_date = by_snapshot.of(kind)
        rows = [{"as_of": t, **{m: v[metric] for m, v in per_date[t].items()}} for t in per_date]
        out[f"{kind}_by_snapshot"] = pd.DataFrame(rows).sort_values("as_of", ignore_index=True)
    return out


def metric_series(by_snapshot: SnapshotMetrics) -> dict[str, list]:
    """Per-snapshot metrics as MLflow steps, keyed ``by_snapshot.KIND.MODEL.METRIC``."""
    series = {}
    for kind in KINDS:
        names, per_date = SERIES[kind], by_snapshot.of(kind)
        snapshots = [per_date[t] for t in sorted(per_date)]
        for model in snapshots[0]:
            for metric in names:
                key = f"by_snapshot.{kind}.{model}.{metric}"
                series[key] = [snapshot[model][metric] for snapshot in snapshots]
    return series
