"""Stage `survival`: competing-risks time to churn beside the binary churn model.

Reads the feature table and the validated tables (churn time and cause, features/events.py).
Fits the discrete-time cause-specific hazard model, the Aalen–Johansen baseline by tier and the
binary churn model (the baseline at H) on the survival split, whose test snapshots are followed
for the whole window (models/survival/train.py); writes the test rows' outputs, metrics (headline
and per test snapshot), plot data, and logs one MLflow run.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID, data_end
from features.events import compute_events
from features.registry import feature_groups, value_feature
from features.spec import CAUSES, EventSpec
from models.evaluation.champion import (
    ChampionError,
    Decision,
    Holder,
    beats_champion,
    decide_for_task,
)
from models.evaluation.kpis import compute_clv, compute_survival_clv
from models.explain.causes import cause_reasons
from models.explain.customers import explanation_rows
from models.serving import registry
from models.serving.survival import RegisteredSurvivalModel
from models.serving.task import (
    FEATURE_SPEC_HASH,
    TEST_SET_FINGERPRINT,
    TRAIN_DATA_END,
    Task,
    feature_spec_hash,
    fingerprint_test_set,
)
from models.strategies.catalog import load_catalog
from models.survival.evaluation import PROMOTION_RULE, compute_survival_evaluation, rule_metrics
from models.survival.strategies import cause_plans
from models.survival.train import (
    CHURN_CAUSE,
    EXPECTED_MONTHS,
    FittedSurvival,
    attach_binary,
    cause_column,
    churn_column,
    fit_binary_baseline,
    fit_survival,
    outcome_rows,
    predict_survival_rows,
    predict_survival_test,
    survival_column,
    survival_split,
)
from models.training.split import SplitError, split_snapshots
from pipelines.config import Config
from pipelines.io import load_frame, load_tables, save_frame, save_json

log = logging.getLogger(__name__)


def with_events(cfg: Config, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The feature table with each row's churn time and cause (features/events.py), and the
    data's end (where the outcomes are censored)."""
    tables = load_tables(cfg.path(cfg.paths.validated))
    end = pd.Timestamp(cfg.data.end or data_end(tables))
    events = compute_events(
        tables, table[CUSTOMER_ID], table[AS_OF], cfg.defs, cfg.survival.events, end
    )
    return pd.concat([table.reset_index(drop=True), events], axis=1), end


def _plots(cfg: Config, fitted, predictions: pd.DataFrame, confusion: pd.DataFrame) -> Path:
    """CSV plot data: Aalen–Johansen incidence by tier and cause, the cause confusion."""
    folder = cfg.path(cfg.paths.survival_plots)
    curves = [
        {"tier": tier, "month": k + 1, **{c: float(v[k, i]) for i, c in enumerate(CAUSES)}}
        for tier, v in fitted.baseline.curves.items()
        for k in range(v.shape[0])
    ]
    save_frame(pd.DataFrame(curves), folder / "incidence_by_tier.csv")
    save_frame(confusion.reset_index(), folder / "cause_confusion.csv")
    h = max(cfg.survival.model.horizons_months)
    mix = predictions[[cause_column(c, h) for c in CAUSES]].mean().rename("mean_incidence")
    save_frame(mix.rename_axis("cause").reset_index(), folder / "cause_mix.csv")
    return folder


def _rule(cfg: Config, outcomes: pd.DataFrame, answer: pd.DataFrame, month: int) -> dict:
    p, expected = answer[churn_column(month)].to_numpy(), answer[EXPECTED_MONTHS].to_numpy()
    return rule_metrics(outcomes, p, expected, month, cfg.survival.events.months)


def _decision(cfg: Config, rows: pd.DataFrame, ours: dict, month: int, task: Task) -> Decision:
    """The champion rule (docs/models.md) on survival metrics, like with like: only a champion
    of the same survival task is scored on the same test rows, through pyfunc, and compared."""
    name = registry.MODEL_NAMES["survival"]
    held = registry.alias_task(cfg.root, name, registry.CHAMPION)
    holder = None if held is None else Holder(*held)
    alias = registry.CHAMPION
    if holder is not None and holder.task != task.id:
        alias = registry.task_alias(registry.CHAMPION, task.id)

    def decide(_answer) -> Decision:
        champion = registry.score_with_alias(cfg.root, name, alias, rows)
        if champion is None:
            return Decision(True, "no champion yet")
        if champion.output is None:
            why = f"champion v{champion.version} cannot score the current test set "
            why += f"({champion.error})"
            if not cfg.evaluate.replace_broken_champion:
                raise ChampionError(f"{why}; fix it, promote a version by hand (tierwise promote)")
            return Decision(True, f"{why}; replaced as evaluate.replace_broken_champion allows")
        theirs = _rule(cfg, rows, champion.output, month)
        figures = ", ".join(f"{m} {ours[m]} vs {theirs[m]}" for m in PROMOTION_RULE)
        won = beats_champion(ours, theirs, PROMOTION_RULE, cfg.evaluate.promotion_tolerance)
        verdict = "beats" if won else "does not beat"
        return Decision(won, f"{verdict} champion v{champion.version} on the current test set: "
                        f"{figures}")  # fmt: skip

    return decide_for_task(task.id, holder, None, decide)


def _entry(
    cfg: Config,
    fitted: FittedSurvival,
    table: pd.DataFrame,
    predictions: pd.DataFrame,
    month: int,
    end: pd.Timestamp,
) -> registry.ModelEntry:
    """The version to register, with its task, lineage and training end (``train_data_end``:
    the last fit or validation snapshot + the K-month window, at most the data's ``end``; the
    uplift plan uses its curve only for a plan on or after it)."""
    reasons = {
        "groups": feature_groups(cfg.features), "k": cfg.explain.k,
        "threshold": cfg.explain.at_risk_threshold, "currency": cfg.explain.currency,
        "watch_threshold": cfg.explain.watch_threshold,
        "horizon_month": month,
    }  # fmt: skip
    model = RegisteredSurvivalModel(
        fitted.model, cfg.survival.events.month_days, cfg.survival.model.act_lead_days, reasons
    )
    rows = outcome_rows(fitted.split.rows(table, "test")).reset_index(drop=True)
    ours = _rule(cfg, predictions, predictions, month)
    task = Task.of_survival(cfg.defs, cfg.survival.events)
    decision = _decision(cfg, rows, ours, month, task)
    example = rows[model.input_columns()].head(5).reset_index(drop=True)
    tags = task.to_tags() | {
        FEATURE_SPEC_HASH: feature_spec_hash(cfg.features, list(fitted.model.features)),
        TEST_SET_FINGERPRINT: fingerprint_test_set(rows),
        TRAIN_DATA_END: f"{_train_end(fitted, cfg.survival.events, end):%Y-%m-%d}",
    }
    return registry.ModelEntry(
        "survival", model, example, tuple(model.features), decision.promote, decision.reason,
        tags, decision.takes_task_alias,
    )  # fmt: skip


def _train_end(fitted: FittedSurvival, events: EventSpec, end: pd.Timestamp) -> pd.Timestamp:
    """The last day whose outcome the fit saw: its last fit or validation snapshot + K months."""
    learned = fitted.split.fit.union(fitted.split.validation).max()
    return min(learned + pd.Timedelta(days=events.month_ends()[-1]), end)


def with_clv(cfg: Config, predictions: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Survival-weighted CLV (``clv_survival``) beside today's geometric one from the binary
    model's probability (``clv_geometric``), for the same customers and value."""
    column = value_feature(cfg.kpis.value_window_days)
    value = predictions[[CUSTOMER_ID, AS_OF]].merge(
        table[[CUSTOMER_ID, AS_OF, column]], on=[CUSTOMER_ID, AS_OF], how="left"
    )[column]
    yearly = value.fillna(0.0).to_numpy() * 365.0 / cfg.kpis.value_window_days
    months = [survival_column(k) for k in range(1, cfg.survival.events.months + 1)]
    curve = predictions[months].to_numpy()
    binary = predictions["binary_churn_probability"].fillna(1.0).to_numpy()
    month_days = cfg.survival.events.month_days
    return predictions.assign(
        clv_survival=compute_survival_clv(curve, yearly, cfg.kpis, month_days),
        clv_geometric=compute_clv(binary, yearly, cfg.kpis, cfg.labels.horizon_days),
    )


def survival_book(cfg: Config, fitted: FittedSurvival, table: pd.DataFrame) -> pd.DataFrame:
    """The survival model's outputs on the binary models' test snapshots (every row there), out
    of time for it too (they follow its test window): the evaluate stage's survival-weighted
    CLV, the explain stage and the report read them (reports/survival_book.parquet). The active
    customers of the last of them (the explain stage's rows) whose survival incidence at H
    reaches ``explain.watch_threshold`` (the watch band and above) also get the reasons for their
    most likely cause (models/explain/causes.py: K person-period rows of TreeSHAP each, so only
    where someone will read them)."""
    try:
        dates = split_snapshots(table, cfg.split, cfg.labels.horizon_days).test
    except SplitError:
        return pd.DataFrame()
    rows = table[table[AS_OF].isin(dates)].reset_index(drop=True)
    spec, model = cfg.survival.model, fitted.model
    book = _with_strategy(predict_survival_rows(model, rows, spec, cfg.survival.events.month_days))
    explained = explanation_rows(rows, dates.max())
    keys = [CUSTOMER_ID, AS_OF]
    h = max(1, round(cfg.labels.horizon_days / cfg.survival.events.month_days))
    likely = explained[keys].merge(book[[*keys, CHURN_CAUSE, churn_column(h)]], on=keys, how="left")
    watched = (likely[churn_column(h)] >= cfg.explain.watch_threshold).to_numpy()
    explained, likely = explained[watched], likely[watched]
    log.info("survival: reasons per cause for %d watched customers at %s", len(explained),
             dates.max().date())  # fmt: skip
    index = pd.Categorical(likely[CHURN_CAUSE], categories=CAUSES).codes
    groups = feature_groups(cfg.features)
    reasons = cause_reasons(model.booster, explained, model.features, groups, model.months,
                            index, cfg.explain.k, currency=cfg.explain.currency)  # fmt: skip
    reasons = pd.concat([explained[keys].reset_index(drop=True), reasons.reset_index(drop=True)],
                        axis=1)  # fmt: skip
    return book.merge(reasons, on=keys, how="left")


def _with_strategy(predictions: pd.DataFrame) -> pd.DataFrame:
    """The play for the most likely cause and its timing, citing its document (cause_plans)."""
    act_now = pd.to_datetime(predictions["act_by"]) <= pd.to_datetime(predictions[AS_OF])
    plans = cause_plans(load_catalog(), predictions[CHURN_CAUSE], act_now.to_numpy())
    return pd.concat([predictions, plans], axis=1)


def _skipped(cfg: Config, why: str) -> dict:
    """Too short a history for the survival split: every output written, empty, with the reason
    (the pipeline goes on; the report has no "When and why" section)."""
    log.warning("survival: skipped: %s", why)
    headline = {"skipped": why}
    save_frame(pd.DataFrame(), cfg.path(cfg.paths.survival_predictions))
    save_frame(pd.DataFrame(), cfg.path(cfg.paths.survival_book))
    save_json(headline, cfg.path(cfg.paths.survival_metrics))
    save_json(headline, cfg.path(cfg.paths.survival_headline))
    save_json({}, cfg.path(cfg.paths.survival_by_snapshot))
    cfg.path(cfg.paths.survival_plots).mkdir(parents=True, exist_ok=True)
    return headline


def run(cfg: Config) -> dict:
    spec, events = cfg.survival.model, cfg.survival.events
    table, end = with_events(cfg, load_frame(cfg.path(cfg.paths.features)))
    features = feature_groups(cfg.features)
    try:
        split = survival_split(table, cfg.survival.split, cfg.split, events, end)
    except SplitError as err:
        return _skipped(cfg, f"{err} (the survival window is {events.months} months)")
    fitted = fit_survival(table, split, spec, events, features)
    log.info("survival: fitted on %d rows in %.1f s", fitted.fit_rows, fitted.seconds)
    binary, binary_seconds = fit_binary_baseline(table, fitted.split, features, cfg.train)
    log.info("survival: binary baseline fitted on the same split in %.1f s", binary_seconds)
    predictions = predict_survival_test(fitted, table, spec, events.month_days)
    predictions = attach_binary(predictions, table, binary)
    binary_month = max(1, round(cfg.labels.horizon_days / events.month_days))
    headline, by_snapshot, confusion = compute_survival_evaluation(
        predictions, spec.horizons_months, events.months, binary_month, cfg.evaluate.bins
    )
    predictions = with_clv(cfg, predictions, table)
    predictions = _with_strategy(predictions)
    headline["clv_mean"] = {
        "survival": float(predictions["clv_survival"].mean()),
        "geometric": float(predictions["clv_geometric"].mean()),
    }
    headline["train"] = {
        "fit_rows": fitted.fit_rows,
        "seconds": fitted.seconds,
        "trees": int(fitted.model.booster.best_iteration),
        "binary_seconds": binary_seconds,  # the binary baseline's fit on the same split
    }
    headline["test_window"] = {"kind": fitted.window, **fitted.split.describe()}
    save_frame(predictions, cfg.path(cfg.paths.survival_predictions))
    save_frame(survival_book(cfg, fitted, table), cfg.path(cfg.paths.survival_book))
    log.info("survival: book of the binary test snapshots written")
    save_json(headline, cfg.path(cfg.paths.survival_metrics))
    save_json(by_snapshot, cfg.path(cfg.paths.survival_by_snapshot))
    plots = _plots(cfg, fitted, predictions, confusion)
    params = {"survival": dataclasses.asdict(cfg.survival), "split": dataclasses.asdict(cfg.split)}
    record = registry.RunRecord(
        experiment=cfg.mlflow.experiment,
        params=params,
        tags={"task": "survival", "git_commit": registry.git_commit(cfg.root)},
        metrics=headline,
        artifacts=(
            plots,
            cfg.path(cfg.paths.survival_metrics),
            cfg.path(cfg.paths.survival_by_snapshot),
        ),  # fmt: skip
    )
    entry = _entry(cfg, fitted, table, predictions, binary_month, end)
    logged = registry.log_run(cfg.root, record, [entry])
    headline["registry"] = logged.to_json()
    save_json(headline, cfg.path(cfg.paths.survival_metrics))
    save_json(flat_headline(headline), cfg.path(cfg.paths.survival_headline))
    return headline


def flat_headline(headline: dict) -> dict:
    """The figures `dvc metrics show` prints for the survival stage: one flat level (the model's
    and the Aalen-Johansen baseline's C-index, integrated Brier, all-cause AUC and Brier per
    horizon; the binary baseline's at H and the gap to it; the cause accuracy among churners).
    The rest is in survival_metrics.json."""
    flat = {}
    for model in ("lightgbm", "aalen_johansen", "binary"):
        figures = headline.get(model, {})
        for key in ("c_index", "integrated_brier"):
            if key in figures:
                flat[f"{model}.{key}"] = figures[key]
        for key, value in figures.items():
            if key.startswith("churn_") and isinstance(value, dict):
                flat[f"{model}.{key}.auc"] = value.get("auc")
                flat[f"{model}.{key}.brier"] = value.get("brier")
    flat["calibration_vs_binary.gap"] = headline.get("calibration_vs_binary", {}).get("gap")
    flat["cause_accuracy_among_churners"] = headline.get("cause_accuracy_among_churners")
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in flat.items()}
