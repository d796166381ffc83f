"""The MLflow registry against a real SQLite store in tmp_path (no mocks)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.serving import registry
from models.serving.pyfunc import RegisteredChurnModel, RegisteredTierModel
from models.training.split import churn_rows


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    return tmp_path


@pytest.fixture(scope="module")
def rows(trained, small_table) -> pd.DataFrame:
    return churn_rows(trained.models.split.rows(small_table, "test")).iloc[:50]


REGISTERED = {"churn": RegisteredChurnModel, "tier": RegisteredTierModel}


def entries(trained, rows, promote: bool) -> list[registry.ModelEntry]:
    out = []
    for kind in ("churn", "tier"):
        model = REGISTERED[kind](getattr(trained.models, kind))
        example = rows[model.input_columns()].head(3).reset_index(drop=True)
        reason = "test: promoted" if promote else "test: kept"
        out.append(
            registry.ModelEntry(kind, model, example, tuple(model.features), promote, reason)
        )
    return out


def record(tmp: Path) -> registry.RunRecord:
    report = tmp / "metrics.json"
    report.write_text('{"churn": 1}')
    return registry.RunRecord(
        experiment="tierwise-test",
        params={"train": {"seed": 3, "churn": {"num_leaves": 31}}},
        tags={"git_commit": "abc", "data_fingerprint": "f00"},
        metrics={"churn": {"lightgbm": {"roc_auc": 0.8, "rows": 10, "skip": None}}},
        series={"by_snapshot.churn.lightgbm.roc_auc": [0.7, None, 0.9]},
        artifacts=(report,),
        dicts={"features.json": [{"name": "loan_n_total", "group": "recency"}]},
    )


def test_log_register_alias_and_load(store, trained, rows):
    logged = registry.log_run(store, record(store), entries(trained, rows, promote=True))
    assert logged.models["churn"].to_json() == {
        "name": "tierwise-churn", "version": "1", "champion": True, "reason": "test: promoted"
    }  # fmt: skip
    assert (store / "mlruns.db").exists()
    assert any((store / "mlartifacts").iterdir())  # the experiment's artifact_location

    version, model = registry.load_alias(store, "tierwise-churn", registry.CHAMPION)
    assert version == "1"
    out = model.predict(rows)
    assert np.array_equal(
        out["churn_probability"].to_numpy(), trained.models.churn.probability(rows)
    )
    schema = model.metadata.get_input_schema()
    required = {c.name for c in schema.inputs if c.required}
    assert required == set(trained.models.churn.features)
    _, tier = registry.load_alias(store, "tierwise-tier", registry.CHALLENGER)
    assert list(tier.predict(rows).columns) == [
        "p_next_potential", "p_next_ordinary", "p_next_core", "p_next_vip"
    ]  # fmt: skip


def test_run_contents(store, trained, rows):
    from mlflow import MlflowClient

    logged = registry.log_run(store, record(store), entries(trained, rows, promote=True))
    client = MlflowClient(tracking_uri=registry.tracking_uri(store))
    run = client.get_run(logged.run_id)
    assert run.data.params["train.churn.num_leaves"] == "31"
    assert run.data.tags["data_fingerprint"] == "f00"
    assert run.data.metrics["churn.lightgbm.roc_auc"] == 0.8
    history = client.get_metric_history(run.info.run_id, "by_snapshot.churn.lightgbm.roc_auc")
    assert [(m.step, m.value) for m in history] == [(0, 0.7), (2, 0.9)]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "features.json"} <= artifacts
    version = client.get_model_version("tierwise-churn", "1")
    assert version.tags["git_commit"] == "abc" and version.tags["promotion"] == "test: promoted"


def test_challenger_moves_champion_stays_until_promoted(store, trained, rows):
    registry.log_run(store, record(store), entries(trained, rows, promote=True))
    registry.log_run(store, record(store), entries(trained, rows, promote=False))
    assert registry.load_alias(store, "tierwise-churn", registry.CHAMPION)[0] == "1"
    assert registry.load_alias(store, "tierwise-churn", registry.CHALLENGER)[0] == "2"
    registry.promote(store, "tierwise-churn", "2")
    assert registry.load_alias(store, "tierwise-churn", registry.CHAMPION)[0] == "2"
    with pytest.raises(registry.RegistryError, match="no version 9"):
        registry.promote(store, "tierwise-churn", "9")
    with pytest.raises(registry.RegistryError):
        registry.promote(store, "tierwise-nothing", "1")


def test_score_with_alias(store, trained, rows):
    assert registry.score_with_alias(store, "tierwise-churn", registry.CHAMPION, rows) is None
    registry.log_run(store, record(store), entries(trained, rows, promote=True))
    scored = registry.score_with_alias(store, "tierwise-churn", registry.CHAMPION, rows)
    assert scored.version == "1" and len(scored.output) == len(rows)
    broken = registry.score_with_alias(
        store, "tierwise-churn", registry.CHAMPION, rows.drop(columns=["loan_n_total"])
    )
    assert broken.output is None and "loan_n_total" in broken.error


def test_tracking_uri_defaults_to_sqlite_in_the_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert registry.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlruns.db'}"
    # using one root's store does not pin the process to it
    assert registry.load_alias(tmp_path / "a", "tierwise-churn", registry.CHAMPION) is None
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    assert registry.tracking_uri(tmp_path / "b").endswith("b/mlruns.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert registry.tracking_uri(tmp_path) == "sqlite:///elsewhere.db"


def test_helpers(tmp_path):
    assert registry.git_commit(tmp_path) == "unknown"
    assert registry.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {
        "a.b": 1,
        "a.c.d": 2,
        "e": 3,
    }
    assert any(r.startswith("lightgbm==") for r in registry.pip_requirements())


def version_folder(root: Path, name: str, version: str) -> Path:
    """Where the artifact store keeps the files of a registered version."""
    from urllib.parse import urlparse

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.tracking_uri(root))
    return Path(urlparse(client.get_model_version_download_uri(name, version)).path)


LEGACY = """
import mlflow


class LegacyChurnModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input.iloc[:, :1]
"""


def register_pickled_champion(store: Path, code: Path, rows: pd.DataFrame) -> None:
    """Version 1 of tierwise-churn as versions were stored before: a pickled PythonModel whose
    class lives in a module that then goes away (a refactor moved it)."""
    import sys

    import mlflow

    (code / "legacy_tierwise_model.py").write_text(LEGACY)
    sys.path.insert(0, str(code))
    try:
        from legacy_tierwise_model import LegacyChurnModel

        client = registry._connect(store)
        experiment = registry._experiment_id(client, "legacy", store)
        with mlflow.start_run(experiment_id=experiment):
            mlflow.pyfunc.log_model(
                name="churn-model", python_model=LegacyChurnModel(),
                input_example=rows.head(2), registered_model_name="tierwise-churn",
            )  # fmt: skip
        client.set_registered_model_alias("tierwise-churn", registry.CHAMPION, "1")
    finally:
        sys.path.remove(str(code))
        sys.modules.pop("legacy_tierwise_model", None)


def test_an_unloadable_champion_is_reported_with_its_version_and_the_cause(
    store, trained, rows, tmp_path
):
    code = tmp_path / "legacy"
    code.mkdir()
    register_pickled_champion(store, code, rows)
    assert any(version_folder(store, "tierwise-churn", "1").glob("*.pkl"))
    scored = registry.score_with_alias(store, "tierwise-churn", registry.CHAMPION, rows)
    assert scored.version == "1" and scored.output is None
    assert "cannot load models:/tierwise-churn/1" in scored.error
    assert "ModuleNotFoundError" in scored.error and "legacy_tierwise_model" in scored.error
    with pytest.raises(registry.RegistryError, match="legacy_tierwise_model"):
        registry.load_model(store, "models:/tierwise-churn@champion")

    # a version stored from code whose trees were deleted from the artifact store
    registry.log_run(store, record(store), entries(trained, rows, promote=True))
    (version_folder(store, "tierwise-churn", "2") / "artifacts" / "booster.txt").unlink()
    scored = registry.score_with_alias(store, "tierwise-churn", registry.CHAMPION, rows)
    assert scored.version == "2" and scored.output is None
    assert "cannot load models:/tierwise-churn/2" in scored.error
    assert "FileNotFoundError" in scored.error and "booster.txt" in scored.error


def test_a_version_of_another_task_takes_only_its_tasks_aliases(store, trained, rows, defs):
    """Task tags on every version; promote=False with task_champion: champion-<task> moves,
    champion does not; load_model reads the task back (tags, and the MLmodel's model_config)."""
    import dataclasses

    from models.serving.task import Task

    first = registry.log_run(store, record(store), entries(trained, rows, promote=True)[:1])
    task = Task.of(dataclasses.replace(defs, horizon_days=90))
    churn = entries(trained, rows, promote=False)[0]  # the churn model only: tier works alike
    other = [dataclasses.replace(churn, promote=False, tags=task.to_tags(), task_champion=True)]
    second = registry.log_run(store, record(store), other)
    assert first.models["churn"].version == "1" and second.models["churn"].version == "2"
    assert registry.alias_task(store, "tierwise-churn", registry.CHAMPION) == ("1", None)
    assert registry.alias_task(store, "tierwise-churn", f"champion-{task.id}") == ("2", task.id)
    assert registry.alias_task(store, "tierwise-churn", f"challenger-{task.id}") == ("2", task.id)
    loaded = registry.load_model(store, f"models:/tierwise-churn@champion-{task.id}")
    assert loaded.version == "2" and loaded.task == task
    run_uri = registry.load_model(store, f"runs:/{second.run_id}/churn-model")
    assert run_uri.version == "" and run_uri.task == task  # from model_config, no registry
    registry.promote(store, "tierwise-churn", "2")  # by hand: champion, and its task's champion
    assert registry.alias_task(store, "tierwise-churn", registry.CHAMPION) == ("2", task.id)
    assert registry.alias_task(store, "tierwise-churn", f"champion-{task.id}") == ("2", task.id)


def test_the_run_params_keep_the_task_and_each_version_its_own_lineage(
    store, trained, rows, defs, caplog
):
    """Churn and tier of one run differ in their test-set fingerprint: each version keeps its
    own (tags), the MLmodel's model_config holds the task only, and MLflow (which logs a
    model_config as the run's params too) finds no param changed between the two."""
    import dataclasses

    import mlflow

    from models.serving.task import Task

    tags = Task.of(defs).to_tags()
    logged = [
        dataclasses.replace(e, tags={**tags, "test_set_fingerprint": f"{e.kind}-rows"})
        for e in entries(trained, rows, promote=True)
    ]
    with caplog.at_level(logging.WARNING, logger="mlflow"):
        run = registry.log_run(store, record(store), logged)
    assert "Failed to log model config" not in caplog.text
    for kind in ("churn", "tier"):
        name = f"tierwise-{kind}"
        assert registry.version_tags(store, name, "1")["test_set_fingerprint"] == f"{kind}-rows"
        loaded = registry.load_model(store, f"models:/{name}/1")
        assert loaded.model.model_config == {"task": tags}
    params = mlflow.get_run(run.run_id).data.params
    assert params["task/task"] == tags["task"] and "task/test_set_fingerprint" not in params
