"""The competing-risks model (models/survival/): outputs, person-period rows, IPCW metrics, a fit
that recovers a known hazard, and the `survival` stage end to end on a small world."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS
from features.spec import CAUSES
from models.survival.hazards import SurvivalOutputs, fit_hazard_model, person_periods
from models.survival.metrics import c_index, cause_metrics, censoring_survival, integrated_brier

REPO = Path(__file__).resolve().parents[2]


def test_outputs_from_constant_hazards():
    hazards = np.tile(np.array([0.1, 0.05, 0.0, 0.0]), (1, 3, 1))  # 1 row, K = 3
    out = SurvivalOutputs.from_hazards(hazards)
    np.testing.assert_allclose(out.survival[0], 0.85 ** np.arange(1, 4))
    before = np.r_[1.0, 0.85, 0.85**2]
    np.testing.assert_allclose(out.incidence[0, :, 0], np.cumsum(before * 0.1))
    np.testing.assert_allclose(out.incidence[0].sum(axis=1) + out.survival[0], 1.0)
    assert out.expected_months()[0] == pytest.approx(1 + 0.85 + 0.85**2)
    assert out.likely_cause()[0] == CAUSES[0]


def test_score_columns_and_act_by():
    from models.survival.train import SCORE_COLUMNS, score_columns

    early = np.zeros((1, 12, 4))
    early[0, 0, 1] = 0.3  # refinancing, all of it in month 1: act now
    late = np.zeros((1, 12, 4))
    late[0, 8, 0] = 0.2  # run-off in month 9: act 60 days before day 8 x 30.4375
    out = SurvivalOutputs.from_hazards(np.concatenate([early, late]))
    frame = score_columns(out, pd.Series(pd.to_datetime(["2024-01-31"] * 2)), 30.4375, 60)
    assert tuple(frame.columns) == SCORE_COLUMNS
    assert frame["churn_cause"].tolist() == ["refinanced", "runoff"]
    assert frame["p_churn_12m"].tolist() == pytest.approx([0.3, 0.2])
    expected = [pd.Timestamp("2024-01-31"), pd.Timestamp("2024-01-31") + pd.Timedelta(days=184)]
    assert frame["act_by"].tolist() == expected


def test_person_periods_one_row_per_month_observed():
    rows = pd.DataFrame({"x": [1.0, 2.0], SURV_MONTHS: [3.0, 2.0], SURV_EVENT: [1.0, 0.0],
                         SURV_CAUSE: ["refinanced", None]})  # fmt: skip
    X, y, w = person_periods(rows, ["x"], 1.0, 0)
    assert X["x"].tolist() == [1, 1, 1, 2, 2] and X["surv_month"].tolist() == [1, 2, 3, 1, 2]
    assert y.tolist() == [0, 0, 1 + CAUSES.index("refinanced"), 0, 0]
    assert w.tolist() == [1.0] * 5
    _, y_half, w_half = person_periods(rows, ["x"], 0.5, 0)
    assert (y_half > 0).sum() == 1 and set(w_half[y_half == 0]) <= {2.0}


def _outcomes(rng, n, K=12, censor=False):
    months = rng.integers(1, K + 1, n)
    event = rng.random(n) < 0.4
    if not censor:
        months = np.where(event, months, K)
    return months, event


def test_ipcw_metrics_without_censoring_are_the_plain_ones():
    rng = np.random.default_rng(0)
    months, event = _outcomes(rng, 400)
    G = censoring_survival(months, event, 12)
    np.testing.assert_allclose(G, 1.0)
    y = (event & (months <= 6)).astype(float)
    predicted = np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1)
    m = cause_metrics(months, event, np.ones(400, bool), predicted, 6, G, 10)
    assert m["brier"] == pytest.approx(np.mean((y - predicted) ** 2))
    assert m["auc"] == pytest.approx(roc_auc_score(y, predicted))
    assert m["observed"] == pytest.approx(y.mean())


def test_ipcw_reweights_censored_rows_and_knows_when_nobody_was_followed():
    rng = np.random.default_rng(1)
    months, event = _outcomes(rng, 2000, censor=True)
    G = censoring_survival(months, event, 12)
    assert (np.diff(G) <= 0).all() and G[-1] < 1.0
    predicted = rng.random(2000)
    m = cause_metrics(months, event, np.ones(2000, bool), predicted, 6, G, 10)
    naive = ((event & (months <= 6)) | ~((months >= 6) | event)).mean()
    assert m["observed"] != pytest.approx(naive)  # censored rows are not counted as survivors
    short = np.minimum(months, 5)
    assert np.isnan(cause_metrics(short, event, event, predicted, 6, G, 10)["auc"])
    assert not np.isnan(integrated_brier(short, event, np.ones((2000, 12)) * 0.5, G))
    assert c_index(months, event, -months.astype(float)) < 0.5 < c_index(months, event, months)


def test_the_hazard_model_recovers_a_known_cause_specific_hazard(params_cfg):
    """Customers with a larger x run off faster; the other causes are rare and flat."""
    rng = np.random.default_rng(2)
    n, K = 3000, 12
    x = rng.random(n)
    hazard = np.column_stack([0.01 + 0.12 * x, np.full(n, 0.01)])
    draws = rng.random((n, K))
    cause_draw = rng.random((n, K))
    churn = draws < hazard.sum(axis=1)[:, None]
    first = np.where(churn.any(axis=1), churn.argmax(axis=1) + 1, K)
    cause = np.where(cause_draw[np.arange(n), first - 1] < hazard[:, 0] / hazard.sum(axis=1), 0, 1)
    event = churn.any(axis=1)
    rows = pd.DataFrame({"x": x, SURV_MONTHS: first.astype(float), SURV_EVENT: event * 1.0,
                         SURV_CAUSE: np.where(event, np.array(CAUSES)[cause], None)})  # fmt: skip
    booster = replace(params_cfg.survival.model.booster, n_estimators=200, learning_rate=0.1,
                      early_stopping_rounds=20, min_child_samples=20)  # fmt: skip
    spec = replace(params_cfg.survival.model, booster=booster)
    model = fit_hazard_model(rows.iloc[:2000], rows.iloc[2000:], ["x"], spec, K)
    out = model.predict(rows.iloc[2000:])
    test = rows.iloc[2000:]
    runoff_6 = ((test[SURV_CAUSE] == CAUSES[0]) & (test[SURV_MONTHS] <= 6)).to_numpy()
    true = np.zeros((n - 2000, K, len(CAUSES)))
    true[:, :, :2] = hazard[2000:, None, :]
    oracle = SurvivalOutputs.from_hazards(true).incidence[:, 5, 0]
    attainable = roc_auc_score(runoff_6, oracle)
    assert roc_auc_score(runoff_6, out.incidence[:, 5, 0]) > attainable - 0.02
    assert out.incidence[:, 5, 0].mean() == pytest.approx(runoff_6.mean(), abs=0.03)
    assert np.corrcoef(test["x"], out.expected_months())[0, 1] < -0.8
    # batched prediction (bounded memory for a whole book) gives the same outputs
    np.testing.assert_allclose(model.predict(test, batch_rows=333).incidence, out.incidence)


@pytest.mark.slow
def test_the_survival_stage_end_to_end(tmp_path, monkeypatch):
    from pipelines import features, generate, survival, train, validate
    from pipelines.config import load_config

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["generate"] |= {"customers": 300, "years": 4, "seed": 5}
    params["split"] |= {"test_snapshots": 3, "validation_snapshots": 2}
    params["survival"]["split"] |= {"test_snapshots": 3, "validation_snapshots": 2}
    fast = {"n_estimators": 100, "learning_rate": 0.1, "early_stopping_rounds": 10,
            "min_child_samples": 20}  # fmt: skip
    for model in (params["train"]["churn"], params["train"]["tier"]):
        model |= fast
    params["survival"]["model"]["booster"] |= fast
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(tmp_path / "params.yaml")
    for stage in (generate, validate, features, train):
        stage.run(cfg)
    headline = survival.run(cfg)
    saved = json.loads(cfg.path(cfg.paths.survival_metrics).read_text())
    assert saved == json.loads(json.dumps(headline))
    flat = json.loads(cfg.path(cfg.paths.survival_headline).read_text())  # DVC metrics: flat
    assert flat["lightgbm.c_index"] == round(saved["lightgbm"]["c_index"], 6)
    assert all(not isinstance(v, dict | list) for v in flat.values())
    by_snapshot = json.loads(cfg.path(cfg.paths.survival_by_snapshot).read_text())
    assert len(by_snapshot) == 3
    assert set(saved) >= {"lightgbm", "aalen_johansen", "binary", "calibration_vs_binary"}
    assert saved["lightgbm"]["churn_3m"]["auc"] > saved["aalen_johansen"]["churn_3m"]["auc"]
    # its own test window: followed for 12 months, out of time w.r.t. the fit, all horizons
    window = saved["test_window"]
    assert window["kind"] == "full_follow_up"
    assert all(s["censored_before_end"] == 0 for s in by_snapshot.values())  # followed 12 months
    assert (
        pd.Timestamp(window["fit"]["last"]) + pd.Timedelta(days=365)
        < pd.Timestamp(window["validation"]["first"])
        or not window["validation_purge"]
    )
    assert pd.Timestamp(window["validation"]["last"]) + pd.Timedelta(days=365) < pd.Timestamp(
        window["test"]["first"]
    )
    assert flat["lightgbm.churn_12m.auc"] is not None
    assert flat["aalen_johansen.churn_12m.brier"] is not None
    assert flat["binary.churn_6m.auc"] is not None
    assert all(saved["lightgbm"][f"{c}_12m"]["brier"] is not None for c in CAUSES)
    predictions = pd.read_parquet(cfg.path(cfg.paths.survival_predictions))
    assert predictions["churn_cause"].isin(CAUSES).all()
    assert predictions["cause_strategy"].notna().all()
    assert (predictions["clv_survival"] >= 0).all() and "clv_mean" in saved
    assert predictions["expected_months_to_churn"].between(1, 12).all()
    for name in ("incidence_by_tier", "cause_confusion", "cause_mix"):
        assert (cfg.path(cfg.paths.survival_plots) / f"{name}.csv").exists()

    # registered as tierwise-survival, champion; a fresh process answers identically
    version = saved["registry"]["models"]["survival"]
    assert version["champion"] and version["reason"] == "no champion yet"
    table = pd.read_parquet(cfg.path(cfg.paths.features))
    rows = predictions[["customer_id", "as_of"]].merge(table, on=["customer_id", "as_of"])
    rows.head(200).to_parquet(tmp_path / "rows.parquet")
    code = (
        "import mlflow, pandas as pd, sys;"
        "m = mlflow.pyfunc.load_model('models:/tierwise-survival@champion');"
        "m.predict(pd.read_parquet(sys.argv[1])).to_parquet(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "rows.parquet"),
                    str(tmp_path / "out.parquet")], check=True)  # fmt: skip
    fresh = pd.read_parquet(tmp_path / "out.parquet")
    from models.survival.train import SCORE_COLUMNS

    stage = predictions.head(200).reset_index(drop=True)
    pd.testing.assert_frame_equal(fresh[list(SCORE_COLUMNS)], stage[list(SCORE_COLUMNS)],
                                  check_dtype=False)  # fmt: skip

    # `tierwise score` hands the champion only its signature's columns: the same answer, and no
    # MLflow warning (once per slice) of the state columns a feature row carries besides
    from models.columns import CHURN_PROBABILITY
    from models.serving.registry import load_model
    from models.serving.score import add_survival

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    mlflow_log = logging.getLogger("mlflow.models.utils")
    mlflow_log.addHandler(handler)
    try:
        champion = load_model(cfg.root, "models:/tierwise-survival@champion").model
        scores = rows.head(200)[["customer_id", "as_of"]].assign(**{CHURN_PROBABILITY: 0.5})
        served = add_survival(scores, rows.head(200), champion)
    finally:
        mlflow_log.removeHandler(handler)
    assert not [m for m in seen if "extra inputs" in m], seen
    pd.testing.assert_frame_equal(served[list(SCORE_COLUMNS)], stage[list(SCORE_COLUMNS)],
                                  check_dtype=False)  # fmt: skip

    # the uplift stage's plan takes each customer's most likely cause from this champion, and
    # values on its survival curve (survival-weighted CLV)
    from models.serving.value_basis import survival_basis
    from models.survival.train import survival_column
    from pipelines.uplift import _likely_cause

    book = rows.head(50).reset_index(drop=True)
    plan = book[["customer_id", "as_of"]].iloc[::-1].reset_index(drop=True)
    answer = survival_basis(cfg.root, book, cfg.defs, cfg.survival.events)
    causes = _likely_cause(answer.output, plan)
    want = plan.merge(fresh[["customer_id", "as_of", "churn_cause"]], on=["customer_id", "as_of"])
    assert causes.tolist() == want["churn_cause"].tolist() and causes.notna().all()
    assert answer.basis.name == "survival" and "tierwise-survival version 1" in answer.basis.reason
    curve = fresh.head(50)[[survival_column(k) for k in range(1, 13)]].to_numpy()
    np.testing.assert_allclose(answer.basis.curve, curve)
    assert answer.basis.month_days == cfg.survival.events.month_days
    # a plan dated before the version's training end gets the geometric CLV (point in time)
    from models.serving.registry import version_tags

    end = pd.Timestamp(version_tags(cfg.root, "tierwise-survival", version["version"])[
        "train_data_end"])  # fmt: skip
    # full follow-up: the last validation snapshot's 12 months end before the data's end
    assert end == pd.Timestamp(window["validation"]["last"]) + pd.Timedelta(days=365)
    early = survival_basis(
        cfg.root, book, cfg.defs, cfg.survival.events, end - pd.Timedelta(days=1)
    )
    assert early.basis.name == "geometric" and "trained on data to" in early.basis.reason
    assert early.output is not None  # the causes stay known
    at_end = survival_basis(cfg.root, book, cfg.defs, cfg.survival.events, end)
    assert at_end.basis.name == "survival"
    # params of another survival task: its curve is not this task's months
    other_events = replace(cfg.survival.events, maturity_tolerance_days=30)
    assert survival_basis(cfg.root, book, cfg.defs, other_events).basis.name == "geometric"

    # the version carries its survival task (like the churn models), so the rule is like-with-like
    from models.serving import registry
    from models.serving.task import Task

    task = Task.of_survival(cfg.defs, cfg.survival.events)
    tags = registry.version_tags(cfg.root, "tierwise-survival", version["version"])
    assert tags["task"] == task.id and tags["label.horizon_days"] == "365"
    assert "test_set_fingerprint" in tags and "feature_spec_hash" in tags

    # a second run meets the first as champion and decides by the survival rule
    again = survival.run(cfg)
    assert "champion v1" in again["registry"]["models"]["survival"]["reason"]
    # a run under other event rules is another task: registered, never compared with v1
    other = replace(cfg, survival=replace(cfg.survival, events=replace(
        cfg.survival.events, maturity_tolerance_days=30)))  # fmt: skip
    third = survival.run(other)["registry"]["models"]["survival"]
    assert "not compared" in third["reason"] and not third["champion"]

    # `tierwise score` adds the survival champion's columns, as the registry consumer gets them
    import mlflow

    from features.build import build_feature_table
    from pipelines import evaluate
    from pipelines import score as score_stage
    from pipelines.io import read_contract

    evaluate.run(cfg)  # its KPI CLV reads the survival curves of the binary test snapshots
    book = pd.read_parquet(cfg.path(cfg.paths.survival_book))
    binary_test = pd.read_parquet(cfg.path(cfg.paths.predictions))["as_of"].unique()
    assert set(book["as_of"].unique()) == set(binary_test)
    assert book["churn_cause"].isin(CAUSES).all() and book["act_by"].notna().all()
    # the explain stage: the churn reasons and, beside them, when and why with the cause's reasons
    from pipelines import explain

    explain.run(cfg)
    ex = pd.read_parquet(cfg.path(cfg.paths.explanations))
    assert ex["churn_cause"].isin(CAUSES).all() and ex["act_by"].notna().all()
    watched = ex["p_churn_6m"] >= cfg.explain.watch_threshold  # reasons where they are read
    assert watched.any() and (ex.loc[watched, "cause_reason_1"].str.len() > 0).mean() > 0.9
    assert ex.loc[~watched, "cause_reason_1"].isna().all()
    assert ex["cause_strategy_source"].str.match(r"00[0-4]_").all()
    now = pd.to_datetime(ex["act_by"]) <= pd.to_datetime(ex["as_of"])
    assert (
        set(ex["cause_timing"]) <= {"now", "ahead"} and (ex["cause_timing"] == "now").eq(now).all()
    )
    as_of = pd.Timestamp(predictions["as_of"].max())
    request = score_stage.ScoreRequest(cfg.path(cfg.paths.world), as_of, tmp_path / "s.parquet")
    score_stage.run(cfg, request)
    scored = pd.read_parquet(tmp_path / "s.parquet")
    tables, _ = read_contract(cfg.path(cfg.paths.world))
    feats = build_feature_table(tables, pd.DatetimeIndex([as_of]), cfg.defs, cfg.features)
    consumer = mlflow.pyfunc.load_model("models:/tierwise-survival@champion").predict(feats)
    from models.survival.strategies import CAUSE_PLAN_COLUMNS

    both = [*SCORE_COLUMNS, *CAUSE_PLAN_COLUMNS]
    # the survival model answers for its population, the churn model's (active at t), only
    active = scored["churn_probability"].notna().to_numpy()
    assert active.any() and not active.all()
    assert scored.loc[~active, both].isna().all().all()
    scored, consumer, feats = scored[active], consumer[active], feats[active]
    pd.testing.assert_frame_equal(scored[both].reset_index(drop=True),
                                  consumer[both].reset_index(drop=True))  # fmt: skip
    assert scored["cause_strategy"].notna().all()
    # score's explain policy (watch) gives the reasons per cause where the incidence at H is high
    watched = scored["p_churn_6m"] >= cfg.explain.watch_threshold
    assert watched.any() and (scored.loc[watched, "cause_reason_1"].str.len() > 0).mean() > 0.9
    assert scored.loc[~watched, "cause_reason_1"].isna().all()
    explained = mlflow.pyfunc.load_model("models:/tierwise-survival@champion").predict(
        feats, params={"explain": "watch"}
    )  # the registry consumer asks for the same reasons and gets them
    reasons = [c for c in scored.columns if c.startswith("cause_reason_")]
    pd.testing.assert_frame_equal(scored[reasons].reset_index(drop=True),
                                  explained[reasons].reset_index(drop=True))  # fmt: skip


def test_score_refuses_survival_columns_on_spark_before_any_work(tmp_path):
    from pipelines import score as score_stage

    request = score_stage.ScoreRequest(
        tmp_path, pd.Timestamp("2022-12-31"), tmp_path / "s.parquet", engine="spark",
        survival_model="models:/tierwise-survival/1",
    )  # fmt: skip
    with pytest.raises(score_stage.ScoreError, match="pandas engine only"):
        score_stage.check_request(request)


def test_survival_clv_with_a_constant_hazard_is_the_geometric_clv(params_cfg):
    from models.evaluation.kpis import compute_clv, compute_survival_clv

    spec = params_cfg.kpis
    survival = np.array([[0.98**k for k in range(1, 13)], [0.9**k for k in range(1, 13)]])
    value = np.array([1200.0, 500.0])
    expected = compute_clv(np.array([0.02, 0.1]), value, spec, 30)  # monthly periods
    np.testing.assert_allclose(compute_survival_clv(survival, value, spec, 30.0), expected)
    # a curve that stops falling after month 12 keeps the customer: more value than geometric
    flat = np.array([[0.98**k for k in range(1, 12)] + [0.98**11]])
    assert compute_survival_clv(flat, value[:1], spec, 30.0)[0] > expected[0]


def test_the_survival_task_follows_the_event_rules_not_the_binary_horizon(params_cfg):
    from models.serving.task import Task

    cfg = params_cfg
    task = Task.of_survival(cfg.defs, cfg.survival.events)
    assert task.horizon_days == 365 and task.id != Task.of(cfg.defs).id
    stricter = replace(cfg.survival.events, arrears_dpd_days=90)
    assert Task.of_survival(cfg.defs, stricter).id != task.id
    other_h = replace(cfg.defs, horizon_days=90)  # the binary H is not a survival label
    assert Task.of_survival(other_h, cfg.survival.events).id == task.id


def test_every_cause_has_cited_strategies_in_the_catalog():
    from models.strategies.catalog import load_catalog
    from models.survival.strategies import cause_strategies

    catalog = load_catalog()
    files = {
        cause: {s.source_file[:3] for s in cause_strategies(catalog, cause)} for cause in CAUSES
    }
    assert files == {"runoff": {"003", "000"}, "refinanced": {"003", "002"},
                     "credit_exit": {"001", "004"}, "lapsed": {"002"}}  # fmt: skip


@pytest.mark.slow
def test_a_history_too_short_for_the_survival_window_skips_the_stage(tmp_path, monkeypatch):
    from pipelines import features, generate, survival, train, validate
    from pipelines.config import load_config

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["generate"] |= {"customers": 150, "years": 3, "seed": 5}
    params["split"] |= {"test_snapshots": 3, "validation_snapshots": 2}
    # three years train the binary models (the split adapts to the span, docs/models.md) but
    # leave no fit slice for a 24-month survival window with its purges
    params["survival"]["events"]["months"] = 24
    for model in (params["train"]["churn"], params["train"]["tier"]):
        model |= {"n_estimators": 50, "learning_rate": 0.2, "early_stopping_rounds": 5,
                  "min_child_samples": 10}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    cfg = load_config(tmp_path / "params.yaml")
    for stage in (generate, validate, features, train):
        stage.run(cfg)
    headline = survival.run(cfg)
    assert "survival window is 24 months" in headline["skipped"]
    assert json.loads(cfg.path(cfg.paths.survival_metrics).read_text()) == headline
    assert pd.read_parquet(cfg.path(cfg.paths.survival_predictions)).empty
    assert cfg.path(cfg.paths.survival_plots).is_dir()
