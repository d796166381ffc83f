"""Stage `evaluate`: metrics, KPIs and plots on the test snapshots, then one MLflow run that logs
everything and registers both models (alias challenger; champion by the rule in docs/models.md).

Reads the feature table, the validated customers and surveys, the train stage's predictions,
summary and fitted models. Writes metrics (DVC metrics), the full evaluation, the KPI table, plot
data and PNGs, and reports/registry.json (run id, versions, promotion decisions).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from features.contract import CUSTOMERS, SURVEYS
from features.registry import STATE_COLUMNS, feature_groups, feature_registry
from models.evaluation.champion import (
    ChampionAnswer,
    Decision,
    Holder,
    decide_for_task,
    decide_promotion,
    without_promotion,
)
from models.evaluation.evaluation import Evaluation, compute_evaluation, metric_series
from models.evaluation.kpis import SurvivalCurves
from models.monitoring.reference import reference_profile, with_importance
from models.serving import registry
from models.serving.pyfunc import ChurnOutputs, RegisteredChurnModel, RegisteredTierModel
from models.serving.records import RegistryRecord
from models.serving.task import (
    FEATURE_SPEC_HASH,
    TEST_SET_FINGERPRINT,
    Task,
    feature_spec_hash,
    fingerprint_test_set,
)
from models.strategies.catalog import load_catalog
from models.training.split import churn_rows, tier_rows
from models.training.summary import TrainSummary
from models.training.train import FittedModels
from pipelines.config import Config
from pipelines.io import (
    atomic_path,
    load_frame,
    load_json,
    load_pickle,
    load_tables,
    save_frame,
    save_json,
)

log = logging.getLogger(__name__)
EXAMPLE_ROWS = 5
# What `dvc exp run` sets in the environment of the stages it runs (and `dvc repro` does not).
DVC_EXPERIMENT_ENV = ("DVC_EXP_BASELINE_REV", "DVC_EXP_NAME")


def in_experiment() -> bool:
    """True inside a `dvc exp run` (docs/models.md, "Experiments")."""
    return any(os.environ.get(k) for k in DVC_EXPERIMENT_ENV)


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


def _champion(cfg: Config, kind: str, rows: pd.DataFrame, alias: str) -> ChampionAnswer | None:
    """A champion's answer on the test rows, through pyfunc as a consumer calls it."""
    name = registry.MODEL_NAMES[kind]
    # Only the probabilities are compared: the champion's reasons would cost TreeSHAP for nothing.
    params = {"explain": "none"} if kind == "churn" else None
    scored = registry.score_with_alias(cfg.root, name, alias, rows, params)
    return None if scored is None else ChampionAnswer(scored.version, scored.output, scored.error)


def _monitor_profile(
    cfg: Config, model: RegisteredChurnModel, fitted: FittedModels, table: pd.DataFrame
) -> dict:
    """The monitoring reference stored with the churn model (docs/monitoring.md): drift against
    the book at the training window's latest snapshots (the validation snapshots: the book's age
    is the one the model last saw); performance on the test snapshots, the only rows the model
    neither fitted, stopped on nor calibrated on."""
    split = fitted.split
    rows = split.rows(table, "validation")
    scores = model.predict_frame(rows, explain="none")
    test = split.rows(table, "test")
    held_out = test, model.predict_frame(test, explain="none")
    folder = cfg.path(cfg.paths.validated)
    tables = load_tables(folder) if folder.is_dir() else None
    reference = {"kind": "training window, validation snapshots",
                 "start": str(split.validation.min().date()),
                 "end": str(split.validation.max().date()), "snapshots": len(split.validation),
                 "training_start": str(split.fit.min().date()),
                 "performance": f"test snapshots {split.test.min().date()} to "
                                f"{split.test.max().date()}"}  # fmt: skip
    profile = reference_profile(
        rows, scores, rows, feature_groups(cfg.features), STATE_COLUMNS, tables,
        cfg.monitor, cfg.evaluate.bins, reference, held_out,
    )  # fmt: skip
    churn = fitted.churn
    gain = churn.booster.feature_importance("gain", iteration=churn.num_iteration)
    return with_importance(profile, dict(zip(churn.features, gain, strict=True)))


def _decide(cfg: Config, kind: str, rows: pd.DataFrame, metrics: dict, task: Task) -> Decision:
    """The champion rule, like with like: only a champion of ``task`` is scored and compared."""
    name = registry.MODEL_NAMES[kind]
    held = registry.alias_task(cfg.root, name, registry.CHAMPION)
    holder = None if held is None else Holder(*held)
    alias = registry.CHAMPION
    if holder is not None and holder.task != task.id:
        alias = registry.task_alias(registry.CHAMPION, task.id)
    answer = None if holder is None else _champion(cfg, kind, rows, alias)

    def decide(champion: ChampionAnswer | None) -> Decision:
        return decide_promotion(kind, rows, metrics, champion, cfg.evaluate)

    decision = decide_for_task(task.id, holder, answer, decide)
    if in_experiment() and not cfg.evaluate.promote_in_experiments:
        why = "a dvc exp run experiment (evaluate.promote_in_experiments is false)"
        decision = without_promotion(decision, why)
    return decision


def _entries(
    cfg: Config, fitted: FittedModels, table: pd.DataFrame, ev: Evaluation
) -> list[registry.ModelEntry]:
    outputs = ChurnOutputs.from_spec(cfg.score, load_catalog(), cfg.explain.k, cfg.explain)
    test = fitted.split.rows(table, "test")
    churn_model = RegisteredChurnModel(fitted.churn, outputs)
    churn_model.profile = _monitor_profile(cfg, churn_model, fitted, table)
    models = {
        "churn": (churn_model, churn_rows(test)),
        "tier": (RegisteredTierModel(fitted.tier), tier_rows(test)),
    }
    task, entries = Task.of(cfg.defs), []
    for kind, (model, rows) in models.items():
        decision = _decide(cfg, kind, rows, ev.metrics.of(kind)["lightgbm"], task)
        example = rows[model.input_columns()].head(EXAMPLE_ROWS).reset_index(drop=True)
        # No input is marked required in the signature: MLflow's own check of a missing required
        # column answers a served request with the whole input frame; the model's check
        # (models.serving.outputs.request_problem) answers with one line naming the columns.
        required: tuple[str, ...] = ()
        tags = (
            task.to_tags()
            | {
                FEATURE_SPEC_HASH: feature_spec_hash(cfg.features, model.features),
                TEST_SET_FINGERPRINT: fingerprint_test_set(rows),
            }
            | _version_tags(model.model)
        )
        entries.append(
            registry.ModelEntry(
                kind,
                model,
                example,
                required,
                decision.promote,
                decision.reason,
                tags,
                decision.takes_task_alias,
            )  # fmt: skip
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


def survival_curves(cfg: Config) -> SurvivalCurves | None:
    """The survival stage's curves on these test snapshots (reports/survival_book.parquet), for
    the KPI table's survival-weighted CLV; None (geometric CLV, logged) when the stage has not
    run or was skipped."""
    path = cfg.path(cfg.paths.survival_book)
    book = load_frame(path) if path.exists() else pd.DataFrame()
    if book.empty:
        log.info("evaluate: no survival curves (%s): CLV by the geometric formula", path)
        return None
    return SurvivalCurves(book, cfg.survival.events.month_days)


def run(cfg: Config) -> RegistryRecord:
    summary = TrainSummary.from_json(load_json(cfg.path(cfg.paths.train_summary)))
    table = load_frame(cfg.path(cfg.paths.features))
    predictions = load_frame(cfg.path(cfg.paths.predictions))
    fitted = load_pickle(cfg.path(cfg.paths.models), "train")
    folder = cfg.path(cfg.paths.validated)
    customers, surveys = _optional_table(folder, CUSTOMERS), _optional_table(folder, SURVEYS)
    ev = compute_evaluation(
        predictions, table, customers, surveys, cfg.evaluate, cfg.kpis, cfg.labels.horizon_days,
        survival_curves(cfg),
    )  # fmt: skip
    artifacts = save_evaluation(cfg, ev)
    record = _record(cfg, ev, summary, artifacts)
    logged = registry.log_run(cfg.root, record, _entries(cfg, fitted, table, ev))
    save_json(logged.portable(cfg.root).to_json(), cfg.path(cfg.paths.registry))
    return logged
