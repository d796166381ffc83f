"""Stage `evaluate`: metrics, KPIs and plots on the test snapshots, then one MLflow run that logs
everything and registers both models (alias challenger; champion by the rule in docs/models.md).

Reads the feature table, the validated customers and surveys, the train stage's predictions,
summary and fitted models. Writes metrics (DVC metrics), the full evaluation, the KPI table, plot
data and PNGs, and reports/registry.json (run id, versions, promotion decisions).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from features.contract import CUSTOMERS, SURVEYS
from features.registry import feature_registry
from models.evaluation.champion import ChampionAnswer, decide_promotion
from models.evaluation.evaluation import Evaluation, compute_evaluation, metric_series
from models.serving import registry
from models.serving.pyfunc import ChurnOutputs, RegisteredChurnModel, RegisteredTierModel
from models.serving.records import RegistryRecord
from models.strategies.catalog import load_catalog
from models.training.split import churn_rows, tier_rows
from models.training.summary import TrainSummary
from models.training.train import FittedModels
from pipelines.config import Config
from pipelines.io import atomic_path, load_frame, load_json, load_pickle, save_frame, save_json

log = logging.getLogger(__name__)
EXAMPLE_ROWS = 5


def _save_figure(figure: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def save_evaluation(cfg: Config, ev: Evaluation) -> list[Path]:
    """Write every evaluation output; return the files and folders to log to MLflow."""
    p, plots = cfg.paths, cfg.path(cfg.paths.plots)
    save_json(ev.metrics.to_json(), cfg.path(p.metrics))
    save_json(ev.by_snapshot.to_json(), cfg.path(p.metrics_by_snapshot))
    save_json(ev.details.to_json(), cfg.path(p.evaluation))
    save_frame(ev.kpis, cfg.path(p.kpis))
    for name, frame in ev.plot_data.items():
        save_frame(frame, plots / f"{name}.csv")
        if name in ev.figures:
            _save_figure(ev.figures[name], plots / f"{name}.png")
    reports = (p.metrics, p.metrics_by_snapshot, p.evaluation, p.kpis, p.train_summary)
    return [plots, *(cfg.path(x) for x in reports)]


def _champion(cfg: Config, kind: str, rows: pd.DataFrame) -> ChampionAnswer | None:
    """The current champion's answer on the test rows, through pyfunc as a consumer calls it."""
    name = registry.MODEL_NAMES[kind]
    # Only the probabilities are compared: the champion's reasons would cost TreeSHAP for nothing.
    params = {"explain": "none"} if kind == "churn" else None
    scored = registry.score_with_alias(cfg.root, name, registry.CHAMPION, rows, params)
    return None if scored is None else ChampionAnswer(scored.version, scored.output, scored.error)


def _entries(
    cfg: Config, fitted: FittedModels, table: pd.DataFrame, ev: Evaluation
) -> list[registry.ModelEntry]:
    outputs = ChurnOutputs.from_spec(cfg.score, load_catalog(), cfg.explain.k)
    test = fitted.split.rows(table, "test")
    models = {
        "churn": (RegisteredChurnModel(fitted.churn, outputs), churn_rows(test)),
        "tier": (RegisteredTierModel(fitted.tier), tier_rows(test)),
    }
    entries = []
    for kind, (model, rows) in models.items():
        champion = _champion(cfg, kind, rows)
        decision = decide_promotion(
            kind, rows, ev.metrics.of(kind)["lightgbm"], champion, cfg.evaluate
        )
        example = rows[model.input_columns()].head(EXAMPLE_ROWS).reset_index(drop=True)
        required = tuple(model.features)
        tags = _version_tags(model.model)
        entries.append(
            registry.ModelEntry(
                kind, model, example, required, decision.promote, decision.reason, tags
            )
        )
    return entries


def _version_tags(model) -> dict[str, str]:
    """A version that is the Markov baseline standing in for the tier model says so."""
    baseline = getattr(model, "baseline", "")
    return {"baseline": baseline, "model": f"{baseline} baseline"} if baseline else {}


def _warning_tags(summary: TrainSummary) -> dict[str, str]:
    """The train stage's warnings and the tier model used, as run tags."""
    tags = {"tier_model": summary.tier.model}
    return tags | ({"warnings": " | ".join(summary.warnings)} if summary.warnings else {})


def _record(
    cfg: Config, ev: Evaluation, summary: TrainSummary, artifacts: list[Path]
) -> registry.RunRecord:
    params = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("root", "paths")}
    features = [dataclasses.asdict(f) for f in feature_registry(cfg.features)]
    tags = {
        "git_commit": registry.git_commit(cfg.root),
        "data_fingerprint": summary.data_fingerprint,
        **_warning_tags(summary),
    }
    trained = {"train_seconds": summary.seconds.to_json(), "trees": summary.trees}
    return registry.RunRecord(
        experiment=cfg.mlflow.experiment,
        params=params,
        tags=tags,
        metrics=ev.metrics.to_json() | trained,
        series=metric_series(ev.by_snapshot),
        artifacts=tuple(artifacts),
        dicts={"features.json": features, "split.json": summary.split.to_json()},
    )


def _optional_table(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / f"{name}.parquet"
    return load_frame(path) if path.exists() else None


def run(cfg: Config) -> RegistryRecord:
    summary = TrainSummary.from_json(load_json(cfg.path(cfg.paths.train_summary)))
    table = load_frame(cfg.path(cfg.paths.features))
    predictions = load_frame(cfg.path(cfg.paths.predictions))
    fitted = load_pickle(cfg.path(cfg.paths.models), "train")
    folder = cfg.path(cfg.paths.validated)
    customers, surveys = _optional_table(folder, CUSTOMERS), _optional_table(folder, SURVEYS)
    ev = compute_evaluation(
        predictions, table, customers, surveys, cfg.evaluate, cfg.kpis, cfg.labels.horizon_days
    )
    artifacts = save_evaluation(cfg, ev)
    record = _record(cfg, ev, summary, artifacts)
    logged = registry.log_run(cfg.root, record, _entries(cfg, fitted, table, ev))
    save_json(logged.to_json(), cfg.path(cfg.paths.registry))
    return logged
