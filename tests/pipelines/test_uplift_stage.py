"""Stage `uplift` through run(cfg) in tmp_path: on a world with campaigns it writes the Qini of
each targeting per strategy and overall; without campaigns it writes a documented skip."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from features.synthetic import CAMPAIGN_STRATEGIES
from models.uplift.evaluation import TARGETINGS
from pipelines import features as features_stage
from pipelines import generate, uplift, validate
from pipelines.config import config_with, load_config
from pipelines.io import load_json, load_tables
from pipelines.reporting.sections import plan_section

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _built(root: Path, campaigns: dict):
    base = load_config(PARAMS, root=root)
    world = {"customers": 1200, "years": 3, "seed": 4, "campaigns": campaigns}
    cfg = config_with(base, data={"dir": root / "data/world"}, generate=world)
    generate.run(cfg)
    validate.run(cfg)
    features_stage.run(cfg)
    return cfg


@pytest.mark.slow
def test_uplift_stage_scores_each_targeting_per_strategy(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    cfg = _built(tmp_path, {"start": "2021-01-31", "monthly_share": 0.15})
    details = uplift.run(cfg)
    headline = load_json(cfg.path(cfg.paths.uplift))
    assert headline["skipped"] == "" and set(headline) == {f"qini_{t}" for t in TARGETINGS} | {
        "skipped"
    }
    saved = load_json(cfg.path(cfg.paths.uplift_evaluation))
    assert saved["test_start"] > saved["train_end"]  # out of time
    names = {row["strategy"] for row in saved["by_strategy"]}
    assert names <= {"overall", *CAMPAIGN_STRATEGIES} and "overall" in names
    assert details["train_rows"] > details["test_rows"] > 0
    import mlflow

    runs = mlflow.search_runs(experiment_names=[cfg.mlflow.experiment],
                              filter_string="tags.task = 'uplift'")  # fmt: skip
    assert len(runs) == 1 and "metrics.qini_uplift_model" in runs.columns
    first = details["registry"]["models"]["uplift"]
    assert first["name"] == "tierwise-uplift" and first["champion"]
    # the stored version answers like the fitted model, through pyfunc
    model = mlflow.pyfunc.load_model("models:/tierwise-uplift@champion")
    table = pd.read_parquet(cfg.path(cfg.paths.features))
    rows = table[table["as_of"] == table["as_of"].max()].head(50)
    answer = model.predict(rows)
    assert list(answer.columns[:3]) == ["customer_id", "as_of", "p_none"]
    assert answer["p_none"].between(0, 1).all()
    # the report's plan: within the budget, one row per active customer of the latest snapshot
    plan = pd.read_parquet(cfg.path(cfg.paths.uplift_plan))
    latest = table[(table["as_of"] == table["as_of"].max()) & table["active"].astype(bool)]
    assert len(plan) == len(latest) and plan["cost"].sum() <= cfg.uplift.budget
    curve = pd.read_csv(cfg.path(cfg.paths.uplift_curve))
    assert curve["budget"].is_monotonic_increasing and curve["customers"].iloc[0] == 0
    html = plan_section(SimpleNamespace(plan={"plan": plan, "curve": curve},
                                        run=SimpleNamespace(currency="CNY")))  # fmt: skip
    assert '<section id="plan"><h2>Action plan</h2>' in html and "Expected saved value" in html
    # no survival champion in this registry: the causes are unknown and said to be
    assert plan["churn_cause"].isna().all() and "no survival champion answered" in html
    # nor a survival curve: the saved value is on the geometric CLV, and the stage says so
    assert saved["plan"]["value_basis"] == "geometric"
    assert saved["plan"]["value_basis_reason"] == "no tierwise-survival champion"
    # the version records its last training campaign and the end of the outcomes it learned
    from models.serving.registry import version_tags

    tags = version_tags(cfg.root, "tierwise-uplift", first["version"])
    assert tags["train_last_campaign"] == saved["train_end"]
    horizon = pd.Timedelta(days=cfg.labels.horizon_days)
    assert pd.Timestamp(tags["train_data_end"]) == pd.Timestamp(saved["train_end"]) + horizon
    assert "Strategy by likely churn cause" not in html
    # the same data again: an equal Qini does not take the champion alias
    second = uplift.run(cfg)["registry"]["models"]["uplift"]
    assert not second["champion"] and "does not beat champion v1" in second["reason"]


def test_the_plan_mix_shows_strategies_by_tier_and_by_cause():
    plan = pd.DataFrame({
        "action": ["price_review", "price_review", "rm_visit", "none"],
        "tier": ["core", "vip", "core", "core"],
        "churn_cause": ["refinanced", "refinanced", "runoff", "lapsed"],
        "cost": [100.0, 100.0, 300.0, 0.0], "expected_saved_value": [50.0, 40.0, 10.0, 0.0],
    })  # fmt: skip
    curve = pd.DataFrame({"customers": [0, 3], "budget": [0.0, 500.0], "saved_value": [0.0, 100.0]})
    html = plan_section(SimpleNamespace(plan={"plan": plan, "curve": curve},
                                        run=SimpleNamespace(currency="CNY")))  # fmt: skip
    assert "Strategy by tier" in html and "Strategy by likely churn cause" in html
    cause_table = html.split("Strategy by likely churn cause")[1]
    assert "refinanced" in cause_table and "runoff" in cause_table
    assert "lapsed" not in cause_table  # a customer with no action is not in the mix
    assert "a ranking, not a forecast" in html  # the expected values are the model's own
    assert "survival-weighted" not in html and "geometric CLV" not in html  # basis not given
    with_basis = {"plan": plan, "curve": curve, "value_basis": "survival",
                  "value_basis_reason": "the curve of tierwise-survival version 3"}  # fmt: skip
    html = plan_section(SimpleNamespace(plan=with_basis, run=SimpleNamespace(currency="CNY")))
    assert "on the survival-weighted CLV (the curve of tierwise-survival version 3)" in html


def test_uplift_stage_without_campaigns_writes_a_skip(tmp_path):
    base = load_config(PARAMS, root=tmp_path)
    world = {"customers": 200, "years": 2, "campaigns": {"start": ""}}
    cfg = config_with(base, data={"dir": tmp_path / "data/world"}, generate=world)
    generate.run(cfg)
    validate.run(cfg)
    uplift.run(cfg)  # reads no feature table: nothing to join it with
    assert load_json(cfg.path(cfg.paths.uplift))["skipped"].startswith("no campaigns table")
    assert load_json(cfg.path(cfg.paths.uplift_evaluation))["skipped"]
    assert pd.read_parquet(cfg.path(cfg.paths.uplift_plan)).empty  # written, empty: no section


def test_uplift_stage_with_too_short_a_campaign_history_writes_a_skip(tmp_path):
    cfg = _built(tmp_path, {"start": "2022-03-31", "monthly_share": 0.1})  # 3 labelled months
    uplift.run(config_with(cfg, uplift={"test_months": 6}))
    assert "none to fit on" in load_json(cfg.path(cfg.paths.uplift))["skipped"]
    # 2 months held out of the 3: too small a control arm to fit (a small bank's first campaigns)
    uplift.run(config_with(cfg, uplift={"test_months": 2, "min_arm_rows": 10_000}))
    skipped = load_json(cfg.path(cfg.paths.uplift))["skipped"]
    assert "the control arm has" in skipped and "uplift.min_arm_rows" in skipped
    assert pd.read_parquet(cfg.path(cfg.paths.uplift_plan)).empty


@pytest.mark.slow
def test_with_a_survival_champion_the_plans_value_on_its_curve(tmp_path, monkeypatch, caplog):
    """A world long enough for the survival stage: its champion's curve gives the saved value of
    the stage's plan and of `tierwise plan` (both paths), unless the plan is dated before the
    version's training end (point in time), where the geometric CLV stands in."""
    import logging

    from models.serving.registry import version_tags
    from models.uplift.plan import ACTION, GEOMETRIC, NO_ACTION
    from models.uplift.planning import build_plan
    from pipelines import plan as plan_cli
    from pipelines import survival

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    base = load_config(PARAMS, root=tmp_path)
    world = {"customers": 1200, "years": 4, "seed": 4,
             "campaigns": {"start": "2021-01-31", "monthly_share": 0.15}}  # fmt: skip
    small = {"test_snapshots": 3, "validation_snapshots": 2}
    fast = {"n_estimators": 100, "learning_rate": 0.1, "early_stopping_rounds": 10}
    cfg = config_with(base, data={"dir": tmp_path / "data/world"}, generate=world, split=small,
                      survival={"split": small, "model": {"booster": fast}})  # fmt: skip
    for stage in (generate, validate, features_stage, survival):
        stage.run(cfg)
    details = uplift.run(cfg)
    assert details["plan"]["value_basis"] == "survival"
    assert details["plan"]["value_basis_reason"] == "the curve of tierwise-survival version 1"
    plan = pd.read_parquet(cfg.path(cfg.paths.uplift_plan))
    assert plan["churn_cause"].notna().all() and plan["cost"].sum() <= cfg.uplift.budget
    # the survival basis changes the figures: the geometric plan of the same book differs
    table = pd.read_parquet(cfg.path(cfg.paths.features))
    from features.registry import feature_names
    from models.uplift.data import build_uplift_rows, labelled

    rows = labelled(build_uplift_rows(load_tables(cfg.path(cfg.paths.validated)).campaigns, table))
    book = plan[["customer_id", "as_of"]].merge(table, on=["customer_id", "as_of"])
    strategies = sorted(rows["strategy_id"].unique())
    h, budget = cfg.labels.horizon_days, cfg.uplift.budget
    geometric, _ = build_plan(rows, book, feature_names(cfg.features), strategies, cfg.uplift,
                              cfg.kpis, h, budget, GEOMETRIC)  # fmt: skip
    taken = plan[ACTION] != NO_ACTION
    ours = plan.loc[taken, "expected_saved_value"].sum()
    assert geometric["expected_saved_value"].sum() != pytest.approx(ours, rel=1e-3)
    # `tierwise plan`, both paths, at the data's end: the survival curve; before the survival
    # version's training end: the geometric CLV (the reason logged)
    end = pd.Timestamp(version_tags(cfg.root, "tierwise-survival", "1")["train_data_end"])
    as_of = table["as_of"].max()
    assert end <= as_of
    for model in (plan_cli.CHAMPION_URI, plan_cli.FIT):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            plan_cli.run_plan(cfg, cfg.data_dir, as_of, 5000.0, tmp_path / "p.csv", True, model)
        assert "value basis survival" in caplog.text, model
    early = end - pd.Timedelta(days=31)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        plan_cli.run_plan(cfg, cfg.data_dir, early, 5000.0, tmp_path / "e.csv", True, plan_cli.FIT)
    assert "value basis geometric" in caplog.text and "not a point-in-time curve" in caplog.text
