"""Stage `uplift`: uplift per strategy from randomised campaigns, evaluated out of time.

Reads the validated tables and the feature table; without a ``campaigns`` table it writes its
outputs with ``skipped`` saying why (the pipeline goes on: docs/uplift.md). Otherwise it joins
each campaign to its day's features, holds out the last ``uplift.test_months`` campaign dates,
fits the T-learner on the earlier ones and writes the Qini coefficients of four targetings
(uplift model, churn risk, rule playbook, random) per strategy (paths.uplift_evaluation) and
overall (paths.uplift, the DVC metric), and logs them to MLflow (experiment mlflow.experiment,
tag task=uplift) with the model registered as ``tierwise-uplift``: it takes the champion alias
when its overall Qini on the current held-out campaigns is not worse than the champion's
answer on the same rows (the champion rule of docs/models.md, one metric).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.labels import ACTIVE
from features.registry import feature_names
from models.evaluation.champion import ChampionAnswer, decide_on
from models.serving.task import TRAIN_DATA_END, Task
from models.strategies.catalog import load_catalog
from models.survival.train import CHURN_CAUSE
from models.uplift.data import IS_TREATED, build_uplift_rows, labelled
from models.uplift.evaluation import (
    compute_uplift_table,
    split_campaigns,
    targeting_scores,
    uplift_headline,
)
from models.uplift.learner import UpliftFitError, UpliftTLearner
from models.uplift.metrics import compute_auuc
from models.uplift.plan import (
    ACTION,
    COST,
    NO_ACTION,
    PLAN_COLUMNS,
    SAVED_VALUE,
    with_strategy_text,
)
from models.uplift.planning import build_plan
from pipelines.config import Config
from pipelines.io import load_frame, load_tables, save_frame, save_json

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict:
    tables = load_tables(cfg.path(cfg.paths.validated))
    if tables.campaigns is None:
        return _save(cfg, {}, {"skipped": "no campaigns table: nothing to learn uplift from"})
    feature_table = load_frame(cfg.path(cfg.paths.features))
    rows = labelled(build_uplift_rows(tables.campaigns, feature_table))
    if rows.empty or rows[IS_TREATED].all():
        return _save(cfg, {}, {"skipped": "no labelled campaign row with a control group"})
    spec, features = cfg.uplift, feature_names(cfg.features)
    dates = rows[AS_OF].nunique()
    if dates <= spec.test_months:
        why = f"{dates} labelled campaign dates, {spec.test_months} held out: none to fit on"
        return _save(cfg, {}, {"skipped": why})
    train, test = split_campaigns(rows, spec.test_months)
    strategies = sorted(rows["strategy_id"].unique())
    model = UpliftTLearner(spec.lightgbm_params(), strategies, spec.seed, spec.min_arm_rows)
    try:
        model.fit(train[features], train["strategy_id"], train[IS_TREATED], train["churned"])
    except UpliftFitError as err:  # a small campaign history: the pipeline goes on without it
        return _save(cfg, {}, {"skipped": f"{len(train)} campaign rows to fit on: {err}"})
    table = compute_uplift_table(test, targeting_scores(model, test, features), strategies)
    details = {
        "skipped": "", "train_rows": len(train), "test_rows": len(test),
        "train_end": f"{train[AS_OF].max():%Y-%m-%d}",
        "test_start": f"{test[AS_OF].min():%Y-%m-%d}",
        "fitted_strategies": model.fitted_strategies, "by_strategy": table,
    }  # fmt: skip
    headline = uplift_headline(table)
    entry = _entry(cfg, model, train, test, headline)
    details["registry"] = _log(cfg, headline, details, entry)
    details["plan"] = _plan(cfg, rows, feature_table, strategies)
    return _save(cfg, headline, details)


def _likely_cause(output: pd.DataFrame | None, plan: pd.DataFrame) -> pd.Series:
    """Each plan row's most likely churn cause from the ``tierwise-survival`` champion's answer
    (``output``: one row per book row, keyed; the report's plan mix by cause); None for every row
    when there is no answer (the reason is logged by ``survival_basis``)."""
    if output is None:
        return pd.Series([None] * len(plan), index=plan.index, dtype=object)
    keys = [CUSTOMER_ID, AS_OF]
    causes = output[[*keys, CHURN_CAUSE]].drop_duplicates(keys)
    return plan[keys].merge(causes, on=keys, how="left")[CHURN_CAUSE].set_axis(plan.index)


def _plan(cfg: Config, rows: pd.DataFrame, table: pd.DataFrame, strategies: list[str]) -> dict:
    """The action plan at the feature table's latest snapshot, within ``uplift.budget``, from
    every labelled campaign (the report's "Action plan" section), and its profit curve. The
    saved value is on the survival champion's curve when it answers (``value_basis``:
    survival), else on the geometric CLV (models/serving/value_basis.py)."""
    from models.serving.value_basis import survival_basis

    latest = table[AS_OF].max()
    book = table[(table[AS_OF] == latest) & table[ACTIVE].fillna(False).astype(bool)]
    book = book.reset_index(drop=True)
    survival = survival_basis(cfg.root, book, cfg.defs, cfg.survival.events)
    plan, curve = build_plan(rows, book, feature_names(cfg.features), strategies, cfg.uplift,
                             cfg.kpis, cfg.labels.horizon_days, cfg.uplift.budget,
                             survival.basis)  # fmt: skip
    plan = plan.assign(**{CHURN_CAUSE: _likely_cause(survival.output, plan)})
    save_frame(with_strategy_text(plan, load_catalog()), cfg.path(cfg.paths.uplift_plan))
    save_frame(curve, cfg.path(cfg.paths.uplift_curve))
    taken, basis = plan[plan[ACTION] != NO_ACTION], survival.basis
    return {"as_of": f"{latest:%Y-%m-%d}", "budget": cfg.uplift.budget,
            "customers": len(taken), "cost": float(taken[COST].sum()),
            "saved_value": float(taken[SAVED_VALUE].sum()),
            "value_basis": basis.name, "value_basis_reason": basis.reason}  # fmt: skip


def _entry(cfg: Config, model: UpliftTLearner, train: pd.DataFrame, test: pd.DataFrame,
           headline: dict):  # fmt: skip
    """The version to register, and whether it takes the champion alias (the champion rule on
    the overall Qini of the current held-out campaigns, the champion scoring them through
    pyfunc). Its tags: the task, the last training campaign and the last day of the outcomes it
    learned from (that campaign + H), which `tierwise plan` checks its DATE against."""
    from models.serving import registry
    from models.serving.uplift import TRAIN_LAST_CAMPAIGN, RegisteredUpliftModel

    registered = RegisteredUpliftModel(model)
    rows = test[registered.input_columns()].reset_index(drop=True)
    promote, reason = _decision(cfg, rows, test, headline["qini_uplift_model"])
    example = rows.head(5)
    # the task (horizon, definitions) its churn labels answer: `tierwise plan` checks it
    last = train[AS_OF].max()
    end = last + pd.Timedelta(days=cfg.labels.horizon_days)
    tags = Task.of(cfg.defs).to_tags() | {
        TRAIN_LAST_CAMPAIGN: f"{last:%Y-%m-%d}", TRAIN_DATA_END: f"{end:%Y-%m-%d}"
    }  # fmt: skip
    return registry.ModelEntry("uplift", registered, example, tuple(registered.features),
                               promote, reason, tags)  # fmt: skip


def _decision(cfg: Config, rows: pd.DataFrame, test: pd.DataFrame, ours: float):
    from models.serving import registry

    name = registry.MODEL_NAMES["uplift"]
    found = registry.score_with_alias(cfg.root, name, registry.CHAMPION, rows)
    answer = None if found is None else ChampionAnswer(found.version, found.output, found.error)
    measure = lambda output: {"qini": round(own_strategy_qini(output, test), 6)}  # noqa: E731
    decision = decide_on({"qini": ours}, answer, measure, {"qini": 1}, cfg.evaluate)
    return decision.promote, decision.reason


def own_strategy_qini(output: pd.DataFrame, test: pd.DataFrame) -> float:
    """The overall Qini of a registered model's answer: each row by its own strategy's uplift."""
    from models.serving.uplift import UPLIFT_PREFIX

    columns = [UPLIFT_PREFIX + s for s in test["strategy_id"]]
    known = output.columns.get_indexer(columns)
    values = output.to_numpy()[np.arange(len(test)), np.maximum(known, 0)].astype(float)
    score = np.where(known >= 0, np.nan_to_num(values, nan=-np.inf), -np.inf)
    return compute_auuc(score, test[IS_TREATED].to_numpy(), test["churned"].to_numpy(float))["qini"]


def _log(cfg: Config, headline: dict, details: dict, entry) -> dict:
    """One MLflow run (task uplift): the settings, the overall Qini of each targeting, the
    per-strategy table as a JSON artefact, and the model registered as tierwise-uplift."""
    from models.serving import registry  # mlflow: imported only when there is a run to log

    record = registry.RunRecord(
        experiment=cfg.mlflow.experiment,
        params={"uplift": dataclasses.asdict(cfg.uplift)},
        tags={"task": "uplift", "git_commit": registry.git_commit(cfg.root)},
        metrics=headline,
        dicts={"uplift_evaluation.json": details},
    )
    return registry.log_run(cfg.root, record, [entry]).to_json()


def _save(cfg: Config, headline: dict, details: dict) -> dict:
    if details["skipped"]:
        log.warning("uplift skipped: %s", details["skipped"])
        # every output is written (DVC needs them): an empty plan, which the report omits
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in ("customer_id", *PLAN_COLUMNS)})
        save_frame(empty, cfg.path(cfg.paths.uplift_plan))
        save_frame(pd.DataFrame(columns=["customers", "budget", "saved_value"]),
                   cfg.path(cfg.paths.uplift_curve))  # fmt: skip
    save_json(details, cfg.path(cfg.paths.uplift_evaluation))
    save_json({**headline, "skipped": details["skipped"]}, cfg.path(cfg.paths.uplift))
    return details
