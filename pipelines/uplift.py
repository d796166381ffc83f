"""Stage `uplift`: uplift per strategy from randomised campaigns, evaluated out of time.

Reads the validated tables and the feature table; without a ``campaigns`` table it writes its
outputs with ``skipped`` saying why (the pipeline goes on: docs/uplift.md). Otherwise it joins
each campaign to its day's features, holds out the last ``uplift.test_months`` campaign dates,
fits the T-learner on the earlier ones and writes the Qini coefficients of four targetings
(uplift model, churn risk, rule playbook, random) per strategy (paths.uplift_evaluation) and
overall (paths.uplift, the DVC metric), and logs them to MLflow (experiment mlflow.experiment,
tag task=uplift). Registration of the model is not done (docs/uplift.md).
"""

from __future__ import annotations

import dataclasses
import logging

from features.contract import AS_OF
from features.registry import feature_names
from models.uplift.data import IS_TREATED, build_uplift_rows, labelled
from models.uplift.evaluation import (
    compute_uplift_table,
    split_campaigns,
    targeting_scores,
    uplift_headline,
)
from models.uplift.learner import UpliftTLearner
from pipelines.config import Config
from pipelines.io import load_frame, load_tables, save_json

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict:
    tables = load_tables(cfg.path(cfg.paths.validated))
    if tables.campaigns is None:
        return _save(cfg, {}, {"skipped": "no campaigns table: nothing to learn uplift from"})
    rows = labelled(build_uplift_rows(tables.campaigns, load_frame(cfg.path(cfg.paths.features))))
    if rows.empty or rows[IS_TREATED].all():
        return _save(cfg, {}, {"skipped": "no labelled campaign row with a control group"})
    spec, features = cfg.uplift, feature_names(cfg.features)
    train, test = split_campaigns(rows, spec.test_months)
    strategies = sorted(rows["strategy_id"].unique())
    model = UpliftTLearner(spec.lightgbm_params(), strategies, spec.seed, spec.min_arm_rows)
    model.fit(train[features], train["strategy_id"], train[IS_TREATED], train["churned"])
    table = compute_uplift_table(test, targeting_scores(model, test, features), strategies)
    details = {
        "skipped": "", "train_rows": len(train), "test_rows": len(test),
        "train_end": f"{train[AS_OF].max():%Y-%m-%d}",
        "test_start": f"{test[AS_OF].min():%Y-%m-%d}",
        "fitted_strategies": model.fitted_strategies, "by_strategy": table,
    }  # fmt: skip
    headline = uplift_headline(table)
    _log(cfg, headline, details)
    return _save(cfg, headline, details)


def _log(cfg: Config, headline: dict, details: dict) -> None:
    """One MLflow run (task uplift): the settings, the overall Qini of each targeting and the
    per-strategy table as a JSON artefact. No model is registered (docs/uplift.md)."""
    from models.serving import registry  # mlflow: imported only when there is a run to log

    record = registry.RunRecord(
        experiment=cfg.mlflow.experiment,
        params={"uplift": dataclasses.asdict(cfg.uplift)},
        tags={"task": "uplift", "git_commit": registry.git_commit(cfg.root)},
        metrics=headline,
        dicts={"uplift_evaluation.json": details},
    )
    registry.log_run(cfg.root, record, [])


def _save(cfg: Config, headline: dict, details: dict) -> dict:
    if details["skipped"]:
        log.warning("uplift skipped: %s", details["skipped"])
    save_json(details, cfg.path(cfg.paths.uplift_evaluation))
    save_json({**headline, "skipped": details["skipped"]}, cfg.path(cfg.paths.uplift))
    return details
