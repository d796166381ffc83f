"""Stage `evaluate`: metrics, KPIs and plots on the test snapshots, then one MLflow run that logs
everything and registers both models (alias challenger; champion by the rule in docs/models.md).

Reads the feature table, the validated customers and surveys, the train stage's predictions,
summary and fitted models. Writes metrics (DVC metrics), the full evaluation, the KPI table, plot
data and PNGs, and reports/registry.json (run id, versions, promotion decisions).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from features.contract import CUSTOMERS, SURVEYS
from features.labels import CHURNED, NEXT_TIER
from features.registry import feature_registry
from models import registry
from models.evaluate import (
    PROMOTION_METRICS,
    beats_champion,
    compute_binary_metrics,
    compute_multiclass_metrics,
    evaluate_predictions,
    headline_metrics,
    snapshot_metrics,
)
from models.kpis import compute_kpis, kpi_headline, kpi_rows
from models.plots import compute_figures, compute_plot_data
from models.pyfunc import CHURN_PROBABILITY, NEXT_TIER_COLUMNS, ChurnOutputs
from models.split import churn_rows, tier_rows
from models.strategies import load_catalog
from models.train import FittedModels
from pipelines.config import Config
from pipelines.io import atomic_path, load_frame, load_json, save_frame, save_json
from pipelines.train import load_fitted

log = logging.getLogger(__name__)
EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class Evaluation:
    details: dict  # everything (reports/evaluation.json)
    metrics: dict  # headline figures (DVC metrics)
    by_snapshot: dict  # per test snapshot (DVC metrics)
    kpis: pd.DataFrame
    plot_data: dict[str, pd.DataFrame]
    figures: dict[str, Figure]


def compute_evaluation(
    cfg: Config,
    predictions: pd.DataFrame,
    table: pd.DataFrame,
    customers: pd.DataFrame | None,
    surveys: pd.DataFrame | None,
) -> Evaluation:
    details = evaluate_predictions(predictions, cfg.evaluate)
    rows = kpi_rows(predictions, table, customers, surveys, cfg.kpis, cfg.labels.horizon_days)
    conversion = details["tier"]["conversion"]
    metrics = {**headline_metrics(details), "kpis": kpi_headline(rows), "conversion": conversion}
    data = compute_plot_data(predictions, cfg.evaluate.bins)
    figures = compute_figures(data, predictions)
    return Evaluation(
        details, metrics, snapshot_metrics(details), compute_kpis(rows), data, figures
    )


def _save_figure(figure: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def save_evaluation(cfg: Config, ev: Evaluation) -> list[Path]:
    """Write every evaluation output; return the files and folders to log to MLflow."""
    p, plots = cfg.paths, cfg.path(cfg.paths.plots)
    save_json(ev.metrics, cfg.path(p.metrics))
    save_json(ev.by_snapshot, cfg.path(p.metrics_by_snapshot))
    save_json(ev.details, cfg.path(p.evaluation))
    save_frame(ev.kpis, cfg.path(p.kpis))
    for name, frame in ev.plot_data.items():
        save_frame(frame, plots / f"{name}.csv")
        if name in ev.figures:
            _save_figure(ev.figures[name], plots / f"{name}.png")
    reports = (p.metrics, p.metrics_by_snapshot, p.evaluation, p.kpis, p.train_summary)
    return [plots, *(cfg.path(x) for x in reports)]


def _test_rows(fitted: FittedModels, table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    test = fitted.split.rows(table, "test")
    return {"churn": churn_rows(test), "tier": tier_rows(test)}


def _champion_metrics(cfg: Config, kind: str, rows: pd.DataFrame, output: pd.DataFrame) -> dict:
    if kind == "churn":
        return compute_binary_metrics(rows[CHURNED], output[CHURN_PROBABILITY], cfg.evaluate)
    return compute_multiclass_metrics(rows[NEXT_TIER], output[list(NEXT_TIER_COLUMNS)].to_numpy())


def decide(cfg: Config, kind: str, rows: pd.DataFrame, challenger: dict) -> tuple[bool, str]:
    """Whether the new version becomes champion, and why (docs/models.md, "Promotion")."""
    name = registry.MODEL_NAMES[kind]
    # Only the probabilities are compared: the champion's reasons would cost TreeSHAP for nothing.
    params = {"explain": "none"} if kind == "churn" else None
    scored = registry.score_with_alias(cfg.root, name, registry.CHAMPION, rows, params)
    if scored is None:
        return True, "no champion yet"
    if scored.output is None:
        why = f"champion v{scored.version} cannot score the current test set ({scored.error})"
        return True, why
    champion = _champion_metrics(cfg, kind, rows, scored.output)
    rule = PROMOTION_METRICS[kind]
    figures = ", ".join(f"{m} {challenger[m]} vs {champion[m]}" for m in rule)
    if beats_champion(challenger, champion, rule, cfg.evaluate.promotion_tolerance):
        return True, f"beats champion v{scored.version} on the current test set: {figures}"
    return False, f"does not beat champion v{scored.version} on the current test set: {figures}"


def _entries(
    cfg: Config, fitted: FittedModels, table: pd.DataFrame, ev: Evaluation
) -> list[registry.ModelEntry]:
    entries = []
    outputs = ChurnOutputs.from_spec(cfg.score, load_catalog(), cfg.explain.k)
    for kind, rows in _test_rows(fitted, table).items():
        model = fitted.churn.with_outputs(outputs) if kind == "churn" else fitted.tier
        promote, reason = decide(cfg, kind, rows, ev.metrics[kind]["lightgbm"])
        example = rows[model.input_columns()].head(EXAMPLE_ROWS).reset_index(drop=True)
        required = tuple(model.features)
        entries.append(registry.ModelEntry(kind, model, example, required, promote, reason))
    return entries


SERIES = {"churn": ("roc_auc", "brier", "ece"), "tier": ("log_loss", "accuracy")}


def _series(by_snapshot: dict) -> dict[str, list]:
    """Per-snapshot metrics as MLflow steps (step i = the i-th test snapshot)."""
    series = {}
    for kind, names in SERIES.items():
        snapshots = [by_snapshot[kind][t] for t in sorted(by_snapshot[kind])]
        for model in snapshots[0]:
            for metric in names:
                key = f"by_snapshot.{kind}.{model}.{metric}"
                series[key] = [snapshot[model][metric] for snapshot in snapshots]
    return series


def _record(
    cfg: Config, ev: Evaluation, summary: dict, artifacts: list[Path]
) -> registry.RunRecord:
    params = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("root", "paths")}
    features = [dataclasses.asdict(f) for f in feature_registry(cfg.features)]
    commit, fingerprint = registry.git_commit(cfg.root), summary["data_fingerprint"]
    tags = {"git_commit": commit, "data_fingerprint": fingerprint}
    trees = {k: summary[k]["trees"] for k in ("churn", "tier")}
    return registry.RunRecord(
        experiment=cfg.mlflow.experiment,
        params=params,
        tags=tags,
        metrics={**ev.metrics, "train_seconds": summary["seconds"], "trees": trees},
        series=_series(ev.by_snapshot),
        artifacts=tuple(artifacts),
        dicts={"features.json": features, "split.json": summary["split"]},
    )


def _optional_table(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / f"{name}.parquet"
    return load_frame(path) if path.exists() else None


def run(cfg: Config) -> dict:
    table = load_frame(cfg.path(cfg.paths.features))
    predictions = load_frame(cfg.path(cfg.paths.predictions))
    fitted = load_fitted(cfg.path(cfg.paths.models))
    summary = load_json(cfg.path(cfg.paths.train_summary))
    folder = cfg.path(cfg.paths.validated)
    customers, surveys = _optional_table(folder, CUSTOMERS), _optional_table(folder, SURVEYS)
    ev = compute_evaluation(cfg, predictions, table, customers, surveys)
    artifacts = save_evaluation(cfg, ev)
    record = _record(cfg, ev, summary, artifacts)
    logged = registry.log_run(cfg.root, record, _entries(cfg, fitted, table, ev))
    save_json(logged, cfg.path(cfg.paths.registry))
    return logged
