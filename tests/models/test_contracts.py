"""The records stages pass to each other: each reads back the committed reports/*.json exactly
(same keys, same values, same bytes once saved), a fresh run's record survives a trip through
JSON, and a file with a missing or unknown key fails where it is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.registry import value_feature
from models.evaluation.evaluation import compute_evaluation
from models.evaluation.records import (
    Conversion,
    EvaluationDetails,
    HeadlineMetrics,
    SnapshotMetrics,
)
from models.explain.customers import (
    ExplainSummary,
    explain_customers,
    explanation_rows,
    global_views,
)
from models.records import RecordError
from models.serving.records import RegistryRecord
from models.strategies.catalog import load_catalog
from models.training.summary import TrainSummary
from pipelines.io import save_json

REPORTS = Path(__file__).resolve().parents[2] / "reports"
COMMITTED = {
    "train.json": TrainSummary,
    "evaluation.json": EvaluationDetails,
    "metrics.json": HeadlineMetrics,
    "metrics_by_snapshot.json": SnapshotMetrics,
    "registry.json": RegistryRecord,
}


def through_json(record) -> dict:
    """``record.to_json()`` as a stage writes it and the next one reads it."""
    return json.loads(json.dumps(record.to_json(), default=str))


def key_tree(value):
    """The nested keys of a JSON value, without the values."""
    if isinstance(value, dict):
        return {k: key_tree(v) for k, v in value.items()}
    return None


@pytest.fixture(scope="module")
def evaluation(trained, small_table, small_world, params_cfg):
    return compute_evaluation(
        trained.predictions, small_table, small_world.customers, small_world.surveys,
        params_cfg.evaluate, params_cfg.kpis, params_cfg.labels.horizon_days,
    )  # fmt: skip


@pytest.fixture(scope="module")
def explain_summary(trained, small_table, params_cfg) -> ExplainSummary:
    rows = explanation_rows(small_table, trained.models.split.test.max())
    models, catalog = trained.models, load_catalog()
    value = value_feature(params_cfg.features.value_window_days)
    k, at_risk = params_cfg.explain.k, params_cfg.explain.at_risk_threshold
    explained = explain_customers(rows, models.churn, models.tier, catalog, k, value)
    return global_views(explained, models.churn, catalog, at_risk).headline


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_a_committed_report_reads_back_to_the_same_file(name, tmp_path):
    text = (REPORTS / name).read_text(encoding="utf-8")
    record = COMMITTED[name].from_json(json.loads(text))
    assert record.to_json() == json.loads(text)
    assert save_json(record.to_json(), tmp_path / name).read_text(encoding="utf-8") == text


def test_a_fresh_train_summary_survives_json_and_has_the_committed_shape(trained):
    summary = trained.summary
    data = through_json(summary)
    assert TrainSummary.from_json(data) == summary
    assert TrainSummary.from_json(data).to_json() == data
    committed = json.loads((REPORTS / "train.json").read_text(encoding="utf-8"))
    assert key_tree(data) == key_tree(committed)
    assert summary.trees == {"churn": summary.churn.trees, "tier": summary.tier.trees}


def test_a_fresh_evaluation_survives_json(evaluation):
    pairs = (
        (EvaluationDetails, evaluation.details),
        (HeadlineMetrics, evaluation.metrics),
        (SnapshotMetrics, evaluation.by_snapshot),
    )
    for cls, record in pairs:
        data = through_json(record)
        assert cls.from_json(data) == record, cls.__name__
        assert cls.from_json(data).to_json() == data, cls.__name__
    committed = json.loads((REPORTS / "metrics.json").read_text(encoding="utf-8"))
    assert key_tree(through_json(evaluation.metrics)) == key_tree(committed)


def test_the_headline_carries_the_details_conversion_and_overall_figures(evaluation):
    details, metrics = evaluation.details, evaluation.metrics
    assert metrics.conversion == details.tier.conversion
    assert (
        metrics.of("churn") == details.churn.overall and metrics.of("tier") == details.tier.overall
    )
    assert evaluation.by_snapshot.of("churn") == details.churn.by_snapshot
    assert set(metrics.conversion.predicted) == set(details.tier.overall)


def test_a_fresh_explain_summary_survives_json(explain_summary):
    data = through_json(explain_summary)
    assert set(data) == {"explained_customers", "at_risk_customers", "value_at_risk"}
    assert ExplainSummary.from_json(data) == explain_summary
    assert ExplainSummary.from_json(data).to_json() == data
    assert 0 < explain_summary.at_risk_customers <= explain_summary.explained_customers


def test_conversion_keeps_each_models_rate_beside_rows_and_actual():
    data = {"actual": 0.03, "lightgbm": 0.04, "markov": None, "rows": 10}
    conversion = Conversion.from_json(data)
    assert conversion.predicted == {"lightgbm": 0.04, "markov": None}
    assert conversion.to_json() == data
    with pytest.raises(RecordError, match="rows and actual"):
        Conversion.from_json({"lightgbm": 0.04})


def test_to_json_gives_a_copy_the_caller_may_change(evaluation, trained):
    data = evaluation.metrics.to_json()
    data["churn"]["lightgbm"]["roc_auc"] = -1.0
    assert evaluation.metrics.churn["lightgbm"]["roc_auc"] != -1.0
    summary = trained.summary.to_json()
    summary["churn"]["calibration_cv"]["platt"] = -1.0
    assert trained.summary.churn.calibration_cv["platt"] != -1.0


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_a_missing_or_unknown_key_fails_where_the_file_is_read(name):
    data = json.loads((REPORTS / name).read_text(encoding="utf-8"))
    first = sorted(data)[0]
    with pytest.raises(RecordError, match=f"missing keys \\['{first}'\\]"):
        COMMITTED[name].from_json({k: v for k, v in data.items() if k != first})
    with pytest.raises(RecordError, match="unknown keys \\['surplus'\\]"):
        COMMITTED[name].from_json({**data, "surplus": 1})


def test_a_nested_key_is_checked_too():
    data = json.loads((REPORTS / "train.json").read_text(encoding="utf-8"))
    data["split"]["test"] = {"snapshots": 6, "first": "2024-01-31"}
    with pytest.raises(RecordError, match="split part: missing keys \\['last'\\]"):
        TrainSummary.from_json(data)
    with pytest.raises(RecordError, match="explain summary: unknown keys"):
        ExplainSummary.from_json(
            {"explained_customers": 1, "at_risk_customers": 0, "value_at_risk": 0.0, "x": 1}
        )
