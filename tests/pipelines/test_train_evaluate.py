"""Stages train and evaluate end to end on a small world, with MLflow's SQLite store in tmp_path:
train -> evaluate -> register -> load by alias, the champion rule, and `tierwise promote`."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from models.serving import registry
from pipelines import evaluate, features, generate, train, validate
from pipelines.cli import EXIT_INVALID, app
from pipelines.config import Config, config_with, load_config

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
FAST = {"n_estimators": 200, "learning_rate": 0.1, "early_stopping_rounds": 20,
        "min_child_samples": 20, "num_threads": 2}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A project root with params.yaml for a small world, its validated data and features."""
    root = tmp_path_factory.mktemp("project")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["generate"] |= {"customers": 400, "years": 3, "seed": 5}
    params["split"] |= {"test_snapshots": 3, "validation_snapshots": 2}
    params["train"]["churn"] |= FAST
    params["train"]["tier"] |= FAST
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    cfg = load_config(root / "params.yaml")
    for stage in (generate, validate, features):
        stage.run(cfg)
    return root


@pytest.fixture
def cfg(world: Path, tmp_path: Path, monkeypatch) -> Config:
    """The small world's config with a fresh MLflow store for each test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.chdir(world)
    return load_config(world / "params.yaml")


def read_json(cfg: Config, path: Path) -> dict:
    return json.loads(cfg.path(path).read_text())


def test_train_evaluate_register_and_load_by_alias(cfg):
    train.run(cfg)
    logged = evaluate.run(cfg)
    p = cfg.paths
    for path in (p.models, p.predictions, p.train_summary, p.metrics, p.metrics_by_snapshot,
                 p.evaluation, p.kpis, p.registry):  # fmt: skip
        assert cfg.path(path).exists(), path
    for name in ("roc", "pr", "calibration", "lift", "transitions"):
        assert (cfg.path(p.plots) / f"{name}.csv").exists()
        assert (cfg.path(p.plots) / f"{name}.png").exists()
    metrics = read_json(cfg, p.metrics)
    assert set(metrics["churn"]) == {"lightgbm", "logistic", "btyd"}
    assert set(metrics["tier"]) == {"lightgbm", "markov"}
    assert {"nps", "csi", "clv_mean", "retention_rate"} <= set(metrics["kpis"])
    assert read_json(cfg, p.registry) == logged.to_json()
    assert logged.models["churn"].version == "1" and logged.models["churn"].champion

    # a consumer loads the champion by alias and gets the pipeline's answers
    predictions = pd.read_parquet(cfg.path(p.predictions))
    table = pd.read_parquet(cfg.path(p.features))
    active = predictions[predictions["churned"].notna()]
    rows = active[["customer_id", "as_of"]].merge(table, on=["customer_id", "as_of"])
    version, churn = registry.load_alias(cfg.root, "tierwise-churn", registry.CHAMPION)
    out = churn.predict(rows)
    assert version == "1"
    assert np.array_equal(
        out["churn_probability"].to_numpy(), active["churn_probability"].to_numpy()
    )
    _, tier = registry.load_alias(cfg.root, "tierwise-tier", registry.CHAMPION)
    expected = active[["p_next_potential", "p_next_ordinary", "p_next_core", "p_next_vip"]]
    assert np.allclose(tier.predict(rows).to_numpy(), expected.to_numpy())

    # same data and seed: identical metrics; an equal challenger does not take over
    first = cfg.path(p.metrics).read_text()
    train.run(cfg)
    again = evaluate.run(cfg)
    assert cfg.path(p.metrics).read_text() == first
    assert again.models["churn"].version == "2"
    assert not again.models["churn"].champion
    assert again.models["churn"].reason.startswith("does not beat champion v1")
    assert registry.load_alias(cfg.root, "tierwise-churn", registry.CHAMPION)[0] == "1"
    assert registry.load_alias(cfg.root, "tierwise-churn", registry.CHALLENGER)[0] == "2"


def test_a_weaker_model_is_not_promoted_and_promote_sets_the_champion_by_hand(cfg):
    train.run(cfg)
    evaluate.run(cfg)
    weak = config_with(cfg, train={"churn": {**FAST, "n_estimators": 1, "num_leaves": 2}})
    train.run(weak)
    logged = evaluate.run(weak)
    assert not logged.models["churn"].champion
    assert registry.load_alias(cfg.root, "tierwise-churn", registry.CHAMPION)[0] == "1"

    runner = CliRunner()
    result = runner.invoke(app, ["promote", "tierwise-churn", "2", "-p", "params.yaml"])
    assert result.exit_code == 0, result.output
    assert registry.load_alias(cfg.root, "tierwise-churn", registry.CHAMPION)[0] == "2"
    missing = runner.invoke(app, ["promote", "tierwise-churn", "7", "-p", "params.yaml"])
    assert missing.exit_code == EXIT_INVALID


def test_cli_exit_codes_for_an_impossible_split_and_missing_models(cfg, world):
    params = yaml.safe_load((world / "params.yaml").read_text())
    params["split"]["test_snapshots"] = 40
    params["paths"] |= {"predictions": "reports/other/predictions.parquet",
                        "models": "data/other/fitted.pkl"}  # fmt: skip
    (world / "bad.yaml").write_text(yaml.safe_dump(params))
    runner = CliRunner()
    result = runner.invoke(app, ["train", "-p", "bad.yaml"])
    assert result.exit_code == EXIT_INVALID
    assert not (world / "reports/other/predictions.parquet").exists()
    result = runner.invoke(app, ["evaluate", "-p", "bad.yaml"])
    assert result.exit_code == EXIT_INVALID


def test_evaluate_rejects_a_train_summary_it_cannot_read(cfg):
    """reports/train.json is read through TrainSummary.from_json: an unknown key (an old or
    hand-edited file) is exit code 2 naming the key, before anything is computed or logged."""
    train.run(cfg)
    path = cfg.path(cfg.paths.train_summary)
    path.write_text(json.dumps({**json.loads(path.read_text()), "surplus": 1}))
    result = CliRunner().invoke(app, ["evaluate", "-p", "params.yaml"])
    assert result.exit_code == EXIT_INVALID
    assert "train summary: unknown keys ['surplus']" in result.output


def version_folder(cfg: Config, name: str, version: str) -> Path:
    """Where the artifact store keeps the files of a registered version."""
    client = MlflowClient(tracking_uri=registry.tracking_uri(cfg.root))
    return Path(urlparse(client.get_model_version_download_uri(name, version)).path)


def test_an_unloadable_champion_stops_evaluate_unless_replacing_it_is_allowed(cfg, world):
    """A champion that cannot be loaded (its trees deleted from the artifact store) is never
    beaten silently: `tierwise evaluate` exits 2 naming the version and the cause, registers
    nothing and moves no alias; with evaluate.replace_broken_champion the new version takes the
    alias and its promotion tag says why."""
    train.run(cfg)
    evaluate.run(cfg)
    (version_folder(cfg, "tierwise-churn", "1") / "artifacts" / "booster.txt").unlink()
    client = MlflowClient(tracking_uri=registry.tracking_uri(cfg.root))
    runner = CliRunner()

    result = runner.invoke(app, ["evaluate", "-p", "params.yaml"])
    said = " ".join(result.output.split())
    assert result.exit_code == EXIT_INVALID, result.output
    assert "champion not replaced" in said and "champion v1 cannot score" in said, said
    assert "FileNotFoundError" in said and "replace_broken_champion: true" in said, said
    for name in ("tierwise-churn", "tierwise-tier"):
        assert [str(v.version) for v in client.search_model_versions(f"name='{name}'")] == ["1"]
        assert str(client.get_model_version_by_alias(name, registry.CHAMPION).version) == "1"

    params = yaml.safe_load((world / "params.yaml").read_text())
    params["evaluate"]["replace_broken_champion"] = True
    (world / "replace.yaml").write_text(yaml.safe_dump(params))
    result = runner.invoke(app, ["evaluate", "-p", "replace.yaml"])
    assert result.exit_code == 0, result.output
    assert (
        str(client.get_model_version_by_alias("tierwise-churn", registry.CHAMPION).version) == "2"
    )
    why = client.get_model_version("tierwise-churn", "2").tags["promotion"]
    assert why.startswith("champion v1 cannot score the current test set (cannot load models:/")
    assert "FileNotFoundError" in why and "replace_broken_champion allows" in why
    logged = read_json(cfg, cfg.paths.registry)
    assert logged["models"]["churn"] == {
        "name": "tierwise-churn", "version": "2", "champion": True, "reason": why
    }  # fmt: skip
    # the tier champion loads and scores: the ordinary rule applies (same data: not beaten)
    assert not logged["models"]["tier"]["champion"]
    assert str(client.get_model_version_by_alias("tierwise-tier", registry.CHAMPION).version) == "1"
