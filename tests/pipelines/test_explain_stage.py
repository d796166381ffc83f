"""Stage explain end to end on a small world: every active customer of the last test snapshot
gets reasons and strategies from the catalog, and the views land in the MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from models.explain.customers import ExplainSummary
from models.strategies.catalog import load_catalog
from pipelines import evaluate, explain, features, generate, train, validate
from pipelines.config import Config, load_config

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
FAST = {"n_estimators": 150, "learning_rate": 0.1, "early_stopping_rounds": 20,
        "min_child_samples": 20}  # fmt: skip


@pytest.fixture(scope="module")
def explained(tmp_path_factory) -> tuple[Config, ExplainSummary]:
    root = tmp_path_factory.mktemp("explain")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["generate"] |= {"customers": 400, "years": 3, "seed": 3}
    params["split"] |= {"test_snapshots": 3, "validation_snapshots": 2}
    params["train"]["churn"] |= FAST
    params["train"]["tier"] |= FAST
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    cfg = load_config(root / "params.yaml")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns.db'}")
    try:
        for stage in (generate, validate, features, train, evaluate):
            stage.run(cfg)
        headline = explain.run(cfg)
        yield cfg, headline
    finally:
        mp.undo()


def test_every_active_customer_gets_reasons_and_catalog_strategies(explained):
    cfg, headline = explained
    out = pd.read_parquet(cfg.path(cfg.paths.explanations))
    table = pd.read_parquet(cfg.path(cfg.paths.features))
    last = out["as_of"].max()
    active = table[(table["as_of"] == last) & table["active"]]
    assert set(out["customer_id"]) == set(active["customer_id"])
    assert headline.explained_customers == len(out)
    ids = {s.id for s in load_catalog().strategies}
    chosen = set(out[["strategy_1", "strategy_2", "strategy_3"]].to_numpy().ravel()) - {""}
    assert chosen and chosen <= ids
    assert out["churn_probability"].between(0, 1).all() and out["p_downgrade"].between(0, 1).all()
    risky = out.sort_values("churn_probability").iloc[-1]
    assert risky["reason_1"] and risky["reason_1_contribution"] > 0
    assert (out["value_at_risk"] >= 0).all()


def test_global_views_are_written_and_logged_to_the_evaluate_run(explained):
    cfg, headline = explained
    folder = cfg.path(cfg.paths.explain)
    for name in ("feature_importance.csv", "group_importance.csv", "strategy_coverage.csv",
                 "group_importance.png", "shap_beeswarm.png", "summary.json"):  # fmt: skip
        assert (folder / name).stat().st_size > 0, name
    written = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert ExplainSummary.from_json(written) == headline and headline.to_json() == written
    coverage = pd.read_csv(folder / "strategy_coverage.csv")
    assert len(coverage) == len(load_catalog().strategies)
    run_id = yaml.safe_load(cfg.path(cfg.paths.registry).read_text())["run_id"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{cfg.root / 'mlruns.db'}")
    run = client.get_run(run_id)
    assert run.data.metrics["explain.explained_customers"] == headline.explained_customers
    logged = {a.path for a in client.list_artifacts(run_id, "explain")}
    assert "explain/shap_beeswarm.png" in logged


def test_the_notebook_runs_on_the_small_world(explained):
    """notebooks/01-explore.ipynb executes top to bottom against this run, so it never rots."""
    import nbformat
    from nbclient import NotebookClient

    cfg, _ = explained
    notebook = nbformat.read(REPO / "notebooks" / "01-explore.ipynb", as_version=4)
    mp = pytest.MonkeyPatch()
    mp.setenv("TIERWISE_ROOT", str(cfg.root))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{cfg.root / 'mlruns.db'}")
    try:
        NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(REPO / "notebooks")}},
        ).execute()
    finally:
        mp.undo()
    printed = "".join(
        out.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    assert "What to do:" in printed and "source:" in printed


def test_the_report_stage_writes_a_self_contained_page(explained):
    from pipelines import report

    cfg, _ = explained
    out = report.run(cfg)
    page = out.read_text(encoding="utf-8")
    for section in ("kpis", "risk", "transitions", "drivers", "playbook"):
        assert f'id="{section}"' in page
    assert "http://" not in page and "https://" not in page and "<svg" in page
    run_id = yaml.safe_load(cfg.path(cfg.paths.registry).read_text())["run_id"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{cfg.root / 'mlruns.db'}")
    assert "report.html" in {a.path for a in client.list_artifacts(run_id)}
