"""`tierwise plan` on a small world with campaigns: one row per active customer, the budget kept,
the catalog's names and sources; without campaigns, with a bad budget or an existing output, the
documented exit codes and no file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.synthetic import CAMPAIGN_STRATEGIES, generate_world
from models.uplift.plan import PLAN_COLUMNS
from pipelines.cli import EXIT_EXISTS, EXIT_INVALID, app
from pipelines.io import save_tables

runner = CliRunner()
PARAMS = str(Path(__file__).resolve().parents[2] / "params.yaml")
AS_OF = "2022-12-31"


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory, params_cfg) -> Path:
    base = replace(params_cfg.generate, customers=1500, years=3, seed=11)
    spec = replace(base, campaigns=replace(base.campaigns, start="2021-01-31", monthly_share=0.15))
    folder = tmp_path_factory.mktemp("plan") / "world"
    save_tables(generate_world(spec).present(), folder)
    return folder


def _plan(data: Path, out: Path, budget: str, *extra: str, model: str = "fit"):
    args = ["plan", "--data", str(data), "--as-of", AS_OF, "--budget", budget, "--out", str(out)]
    return runner.invoke(app, [*args, "--params", PARAMS, "--model", model, *extra])


@pytest.fixture(scope="module")
def planned(world_dir, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("out") / "plan.csv"
    result = _plan(world_dir, out, "20000")
    assert result.exit_code == 0, result.output
    return pd.read_csv(out)


def test_plan_has_one_row_per_active_customer_and_keeps_the_budget(planned):
    assert list(planned.columns[-len(PLAN_COLUMNS) :]) == list(PLAN_COLUMNS)
    assert planned["customer_id"].is_unique and (planned["as_of"] == AS_OF).all()
    assert planned["cost"].sum() <= 20000
    taken = planned[planned["action"] != "none"]
    assert len(taken) > 0 and set(taken["action"]) <= set(CAMPAIGN_STRATEGIES)
    assert sorted(taken["rank"].astype(int)) == list(range(1, len(taken) + 1))
    assert (taken["expected_saved_value"] > 0).all() and taken["name"].notna().all()
    assert taken["source"].str.contains(r"\.txt").all()
    assert planned.loc[planned["action"] == "none", "cost"].eq(0).all()


def test_a_bigger_budget_plans_at_least_as_many(world_dir, planned, tmp_path):
    out = tmp_path / "big.parquet"
    assert _plan(world_dir, out, "200000").exit_code == 0
    big = pd.read_parquet(out)
    assert (big["action"] != "none").sum() >= (planned["action"] != "none").sum()
    assert big["cost"].sum() <= 200000


def test_without_campaigns_the_plan_says_so_and_exits_2(world_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in world_dir.iterdir():
        if f.name != "campaigns.parquet":
            (bare / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "plan.csv"
    result = _plan(bare, out, "1000")
    assert result.exit_code == EXIT_INVALID
    assert "no campaigns table" in result.output and not out.exists()


def test_a_campaign_history_too_small_to_fit_exits_2_naming_the_arm(world_dir, tmp_path):
    params = tmp_path / "params.yaml"
    text = Path(PARAMS).read_text(encoding="utf-8")
    params.write_text(text.replace("min_arm_rows: 30 ", "min_arm_rows: 100000 "), encoding="utf-8")
    out = tmp_path / "plan.csv"
    args = ["plan", "--data", str(world_dir), "--as-of", AS_OF, "--budget", "1000", "--out",
            str(out), "--params", str(params), "--model", "fit"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_INVALID, result.output
    assert "the control arm has" in result.output and not out.exists()
    assert "Traceback" not in result.output


def test_a_negative_budget_or_an_existing_output_is_refused(world_dir, tmp_path):
    out = tmp_path / "plan.csv"
    assert _plan(world_dir, out, "-5").exit_code == EXIT_INVALID and not out.exists()
    out.write_text("keep me")
    assert _plan(world_dir, out, "10").exit_code == EXIT_EXISTS
    assert out.read_text() == "keep me"


def test_campaigns_whose_outcome_is_not_known_by_the_date_change_nothing(
    world_dir, planned, tmp_path
):
    """Point in time: a campaign decided after DATE - H has no known outcome at DATE, so
    removing every such row (and everything later) leaves the plan as it was."""
    cut = tmp_path / "cut"
    cut.mkdir()
    for f in world_dir.iterdir():
        (cut / f.name).write_bytes(f.read_bytes())
    campaigns = pd.read_parquet(world_dir / "campaigns.parquet")
    known = pd.Timestamp(AS_OF) - pd.Timedelta(days=180)
    campaigns[campaigns["date"] <= known].to_parquet(cut / "campaigns.parquet", index=False)
    out = tmp_path / "plan.csv"
    assert _plan(cut, out, "20000").exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), planned)


def test_validate_names_a_campaign_of_an_unknown_strategy(world_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in world_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    campaigns = pd.read_parquet(world_dir / "campaigns.parquet")
    campaigns.loc[2, "strategy_id"] = "free_lunch"
    campaigns.to_parquet(bad / "campaigns.parquet", index=False)
    result = runner.invoke(app, ["validate", "--data", str(bad), "--params", PARAMS])
    assert result.exit_code == EXIT_INVALID
    text = " ".join(result.output.split())  # the console wraps long lines
    assert "rule 'strategy_id in the strategy catalog': 1 row fails" in text
    assert "3 free_lunch" in text


@pytest.mark.slow
def test_plan_serves_the_registered_uplift_champion(tmp_path, monkeypatch):
    """End to end with a real MLflow store: the uplift stage registers tierwise-uplift, `plan`
    serves models:/tierwise-uplift@champion (the default) within the budget; without the
    champion, exit 2 naming the alias."""
    import shutil

    from pipelines import features as features_stage
    from pipelines import generate, uplift, validate
    from pipelines import plan as stage
    from pipelines.config import config_with, load_config

    params = tmp_path / "params.yaml"
    shutil.copy(PARAMS, params)
    out = tmp_path / "none.csv"
    args = ["plan", "--data", str(tmp_path), "--as-of", AS_OF, "--budget", "1", "--out", str(out)]
    result = runner.invoke(app, [*args, "--params", str(params)])
    assert result.exit_code == EXIT_INVALID and "tierwise-uplift" in result.output
    assert not out.exists()
    base = load_config(params, root=tmp_path)
    world = {"customers": 1200, "years": 3, "seed": 4,
             "campaigns": {"start": "2021-01-31", "monthly_share": 0.15}}  # fmt: skip
    cfg = config_with(base, data={"dir": tmp_path / "data/world"}, generate=world)
    generate.run(cfg)
    validate.run(cfg)
    features_stage.run(cfg)
    assert uplift.run(cfg)["registry"]["models"]["uplift"]["champion"]
    as_of = pd.Timestamp("2023-06-30")
    for budget in (5000.0, 50000.0):
        plan = stage.run_plan(cfg, cfg.data_dir, as_of, budget, tmp_path / f"{budget}.csv", False)
        assert plan["customer_id"].is_unique and plan["cost"].sum() <= budget
        taken = plan[plan["action"] != "none"]
        assert len(taken) > 0 and set(taken["action"]) <= set(CAMPAIGN_STRATEGIES)
        assert (taken["expected_saved_value"] > 0).all()
    # a DATE before the champion's training end (the outcomes it learned from) is refused,
    # naming the version, the end and DATE, before the data is read; the end itself is served
    from models.serving.registry import version_tags
    from pipelines.io import BadRequestError

    end = pd.Timestamp(version_tags(cfg.root, "tierwise-uplift", "1")["train_data_end"])
    assert end <= as_of
    early = end - pd.Timedelta(days=1)
    missing = tmp_path / "no-such-dir"  # refused before it is read: no error about the data
    with pytest.raises(BadRequestError, match="--model fit") as refused:
        stage.run_plan(cfg, missing, early, 5000.0, tmp_path / "early.csv", False)
    text = str(refused.value)
    assert "tierwise-uplift version 1" in text and f"{end:%Y-%m-%d}" in text
    assert f"--as-of {early:%Y-%m-%d}" in text and not (tmp_path / "early.csv").exists()
    cli = ["plan", "--data", str(cfg.data_dir), "--as-of", f"{early:%Y-%m-%d}", "--budget", "5000",
           "--out", str(tmp_path / "cli.csv"), "--params", str(params)]  # fmt: skip
    monkeypatch.chdir(tmp_path)  # the CLI's root (registry) is the working directory
    result = runner.invoke(app, cli)
    assert result.exit_code == EXIT_INVALID and "train_data_end" in result.output
    at_end = stage.run_plan(cfg, cfg.data_dir, end, 5000.0, tmp_path / "end.csv", False)
    assert at_end["cost"].sum() <= 5000.0 and (at_end["as_of"] == end).all()
    # params of another task (horizon): refused before the data is read, unless --ignore-task
    from models.serving.task import TaskMismatchError

    other = config_with(cfg, labels={"horizon_days": 90})
    with pytest.raises(TaskMismatchError, match="tierwise-uplift version 1"):
        stage.run_plan(other, cfg.data_dir, as_of, 5000.0, tmp_path / "other.csv", False)
    assert not (tmp_path / "other.csv").exists()
