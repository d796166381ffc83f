"""The registered churn model's outputs (risk band, reasons, strategies), the explanation policy,
the score table's columns, and both models through a real MLflow registry (SQLite in tmp_path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from features.registry import LIFECYCLE_STATE, STATE_COLUMNS
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS, RISK_BAND
from models.explain.frame import (
    BASE_VALUE,
    explain_frame,
    explanation_columns,
    feature_contributions,
)
from models.serving import registry
from models.serving.artifacts import MODEL_CODE
from models.serving.pyfunc import (
    RegisteredChurnModel,
    RegisteredTierModel,
    explained_rows,
    risk_band,
)
from models.serving.score import (
    LINEAGE_COLUMNS,
    IncompatibleModelError,
    Lineage,
    churn_output_columns,
    score_columns,
    score_features,
)
from models.strategies.catalog import load_catalog, strategy_columns

BANDS = (("low", 0.0), ("medium", 0.15), ("high", 0.30))
REASONS = ("reason_1", "reason_2", "reason_3")
LINEAGE = Lineage("tierwise-churn", "4", "tierwise-tier", "2")


class Direct:
    """The pyfunc calling convention (``predict(frame, params)``) without MLflow."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, data: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.model.predict(None, data, params)


def _active(rows: pd.DataFrame) -> np.ndarray:
    return rows["lifecycle_state"].isin(["new", "active"]).to_numpy()


def test_risk_bands_start_at_their_lower_bound():
    p = np.array([0.0, 0.1499, 0.15, 0.2999, 0.30, 1.0, np.nan])
    assert risk_band(p, BANDS).tolist() == ["low", "low", "medium", "medium", "high", "high", ""]


def test_score_spec_sorts_bands_and_rejects_bad_ones(params_cfg):
    score = params_cfg.score
    spec = replace(score, risk_bands={"high": 0.3, "low": 0, "medium": 0.15})
    assert list(spec.risk_bands.items()) == [("low", 0.0), ("medium", 0.15), ("high", 0.3)]
    for bad in ({"low": 0.1, "high": 0.3}, {"low": 0.0, "high": 0.0}, {"low": 0.0, "high": 1.5}):
        with pytest.raises(ValueError, match="risk_bands"):
            replace(score, risk_bands=bad)
    with pytest.raises(ValueError, match="at_risk_bands"):
        replace(score, at_risk_bands=("severe",))
    with pytest.raises(ValueError, match="explain"):
        replace(score, explain="some")


def test_explained_rows_follow_the_policy():
    band = np.array(["low", "high", "medium", "high", ""], dtype=object)
    active = np.array([True, True, True, False, False])
    assert explained_rows(band, active, "all", ["high"]).tolist() == [1, 1, 1, 0, 0]
    assert explained_rows(band, active, "at_risk", ["high"]).tolist() == [0, 1, 0, 0, 0]
    assert explained_rows(band, active, "at_risk", ["medium", "high"]).tolist() == [0, 1, 1, 0, 0]
    assert not explained_rows(band, active, "none", ["high"]).any()
    with pytest.raises(ValueError, match="explain must be one of"):
        explained_rows(band, active, "most", ["high"])


def _nulls(frame: pd.DataFrame) -> pd.DataFrame:
    """explain_frame's "" for a missing text as the registered model gives it: None."""
    return frame.where(frame.ne(""), None)


def test_churn_outputs_for_every_known_customer(scoring_model, trained, score_rows):
    out = scoring_model.predict_frame(score_rows)
    assert list(out.columns) == churn_output_columns(3)
    assert out.index.equals(score_rows.index)
    active = _active(score_rows)
    assert 0 < active.sum() < len(score_rows)  # prospects, dormant and churned customers too
    expected = trained.models.churn.probability(score_rows)
    assert np.array_equal(out.loc[active, CHURN_PROBABILITY], expected[active])
    assert out.loc[~active, CHURN_PROBABILITY].isna().all()
    assert out.loc[~active, RISK_BAND].isna().all()  # nulls, never "" (issue 11)
    assert set(out.loc[active, RISK_BAND]) == {"low", "medium", "high"}
    assert out.loc[~active, list(REASONS)].isna().all().all()
    assert out["strategy_1"].notna().all()  # every customer gets at least its state's strategy
    ids = {s.id for s in load_catalog().strategies} | {None}
    assert set(out[strategy_columns(3)].to_numpy().ravel()) <= ids
    assert not (out.select_dtypes(object) == "").any().any()


def test_reasons_are_those_of_the_explanation_module(scoring_model, score_rows):
    """The registered model's reasons equal explain_frame with calibrated probability points (the
    explain stage's path) for the explained rows."""
    model, active = scoring_model.model, _active(score_rows)
    rows = score_rows[active]
    expected = explain_frame(
        model.booster, rows, model.features, model.groups, load_catalog(), 3,
        link=model.calibrator.predict,
    )  # fmt: skip
    got = scoring_model.predict_frame(score_rows)[active]
    columns = [c for c in explanation_columns(3)]
    pd.testing.assert_frame_equal(got[columns], _nulls(expected[columns]), check_names=False)


def test_unexplained_rows_get_what_explain_frame_gives_them(scoring_model, score_rows):
    """Rows left unexplained get no reasons and the strategies of their state: explain_frame's
    answers with ``rows=mask``, for every row."""
    model, columns = scoring_model.model, explanation_columns(3)
    for policy in ("at_risk", "none"):
        out = scoring_model.predict_frame(score_rows, explain=policy)
        mask = out["reason_1_contribution"].notna().to_numpy() | (
            (out[RISK_BAND] == "high").to_numpy() & (policy == "at_risk")
        )
        chosen = score_rows[mask]
        contribs = (
            feature_contributions(model.booster, model.matrix(chosen))
            if mask.any()
            else pd.DataFrame(
                columns=[*model.features, BASE_VALUE], index=chosen.index, dtype=float
            )
        )
        link = model.calibrator.predict if mask.any() else None
        expected = explain_frame(
            None, score_rows, model.features, model.groups, load_catalog(), 3,
            rows=mask, contributions=contribs, link=link,
        )  # fmt: skip
        pd.testing.assert_frame_equal(out[columns], _nulls(expected.rename(columns=str)[columns]))


def test_policies_explain_only_the_chosen_rows(scoring_model, score_rows):
    full = scoring_model.predict_frame(score_rows, explain="all")
    at_risk = scoring_model.predict_frame(score_rows, explain="at_risk")
    none = scoring_model.predict_frame(score_rows, explain="none")
    high = (full[RISK_BAND] == "high").to_numpy()
    assert high.any()
    pd.testing.assert_frame_equal(at_risk[high], full[high])
    assert at_risk.loc[~high, list(REASONS)].isna().all().all()
    assert none[list(REASONS)].isna().all().all() and none["reason_1_contribution"].isna().all()
    head = [CHURN_PROBABILITY, RISK_BAND]
    for policy in (at_risk, none):  # probabilities and bands never depend on the policy
        pd.testing.assert_frame_equal(policy[head], full[head])
        assert policy["strategy_1"].notna().all()


def test_any_index_and_feature_only_input(scoring_model, score_rows):
    rows = score_rows.head(60)
    expected = scoring_model.predict_frame(rows)
    odd = rows.set_axis([7] * len(rows))  # a duplicated index comes back as it was
    got = scoring_model.predict_frame(odd)
    assert list(got.index) == [7] * len(rows)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    bare = rows.drop(columns=["customer_id", "as_of", *STATE_COLUMNS])  # states from rank features
    pd.testing.assert_frame_equal(scoring_model.predict_frame(bare), expected)


def load_saved(model, folder: Path, rows: pd.DataFrame):
    """Save ``model`` as a registered version is stored (its files and model_code.py, with a
    signature from ``rows``), and load it."""
    path, example = folder / "model", rows.head(5)[model.input_columns()]
    files = model.write_artifacts(folder / "files")
    signature = infer_signature(example, model.predict_frame(example), model.predict_params())
    mlflow.pyfunc.save_model(
        str(path), python_model=str(MODEL_CODE), artifacts=files, signature=signature
    )
    return mlflow.pyfunc.load_model(str(path))


def test_outputs_are_opt_in_and_the_stored_files_give_the_same_answers(
    scoring_model, trained, score_rows, tmp_path
):
    bare = RegisteredChurnModel(trained.models.churn)
    assert list(bare.predict_frame(score_rows).columns) == [CHURN_PROBABILITY]
    assert bare.predict_params() == {}
    assert scoring_model.predict_params() == {"explain": "all"}
    saved = load_saved(scoring_model, tmp_path / "churn", score_rows)
    for explain in ("all", "at_risk", "none"):
        pd.testing.assert_frame_equal(
            saved.predict(score_rows, params={"explain": explain}),
            scoring_model.predict_frame(score_rows, explain=explain),
            check_exact=True,
        )
    pd.testing.assert_frame_equal(
        load_saved(bare, tmp_path / "bare", score_rows).predict(score_rows),
        bare.predict_frame(score_rows),
        check_exact=True,
    )
    tier = RegisteredTierModel(trained.models.tier)
    pd.testing.assert_frame_equal(
        load_saved(tier, tmp_path / "tier", score_rows).predict(score_rows),
        tier.predict_frame(score_rows),
        check_exact=True,
    )


def test_score_rows_have_ids_outputs_and_lineage(scoring_model, trained, score_rows):
    scores = score_features(
        score_rows,
        Direct(scoring_model),
        Direct(RegisteredTierModel(trained.models.tier)),
        LINEAGE,
        "at_risk",
    )
    assert list(scores.columns) == score_columns(3)
    assert scores["customer_id"].tolist() == score_rows["customer_id"].tolist()
    assert scores[list(LINEAGE_COLUMNS)].drop_duplicates().values.tolist() == [
        ["tierwise-churn", "4", "tierwise-tier", "2"]
    ]
    gone = (scores[LIFECYCLE_STATE] == "churned").to_numpy()
    assert gone.any() and (~gone).any()
    assert np.allclose(scores.loc[~gone, list(NEXT_TIER_COLUMNS)].sum(axis=1), 1.0)
    # a churned customer gets no tier transition (docs/definitions.md), and no churn risk
    assert scores.loc[gone, list(NEXT_TIER_COLUMNS)].isna().all().all()
    assert scores.loc[gone, [CHURN_PROBABILITY, RISK_BAND]].isna().all().all()
    assert (scores.loc[gone, "strategy_1"] == "churned_win_back").all()
    at_risk = scoring_model.predict_frame(score_rows, explain="at_risk")
    pd.testing.assert_frame_equal(scores[list(at_risk.columns)], pd.DataFrame(at_risk))


def test_a_model_without_scoring_outputs_is_refused(trained, score_rows):
    with pytest.raises(IncompatibleModelError, match="tierwise-churn 4 does not output risk_band"):
        score_features(
            score_rows,
            Direct(RegisteredChurnModel(trained.models.churn)),
            Direct(RegisteredTierModel(trained.models.tier)),
            LINEAGE,
            "all",
        )


# --- through the registry ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory, trained, scoring_model, score_rows):
    """A SQLite registry with version 1 of each model (churn with its scoring outputs)."""
    root = tmp_path_factory.mktemp("registry")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns.db'}")
    example = score_rows[_active(score_rows)].head(5).reset_index(drop=True)
    entries = [
        registry.ModelEntry(kind, model, example[model.input_columns()],
                            tuple(model.features), True, "test")
        for kind, model in (
            ("churn", scoring_model), ("tier", RegisteredTierModel(trained.models.tier))
        )
    ]  # fmt: skip
    record = registry.RunRecord("tierwise-test", {}, {"git_commit": "x"}, {})
    registry.log_run(root, record, entries)
    yield root
    mp.undo()


def test_registry_models_give_the_pipeline_answers(store: Path, scoring_model, trained, score_rows):
    churn = registry.load_model(store, "models:/tierwise-churn@champion")
    tier = registry.load_model(store, "models:/tierwise-tier/1")
    assert (churn.name, churn.version, tier.name, tier.version) == (
        "tierwise-churn", "1", "tierwise-tier", "1",
    )  # fmt: skip
    assert churn.pinned_uri == "models:/tierwise-churn/1"
    pd.testing.assert_frame_equal(
        churn.model.predict(score_rows), scoring_model.predict_frame(score_rows), check_exact=True
    )
    cheap = churn.model.predict(score_rows, params={"explain": "none"})
    pd.testing.assert_frame_equal(
        cheap, scoring_model.predict_frame(score_rows, explain="none"), check_exact=True
    )
    pd.testing.assert_frame_equal(
        tier.model.predict(score_rows),
        trained.models.tier.predict_frame(score_rows),
        check_exact=True,
    )
    signature = churn.model.metadata.signature
    assert [p.name for p in signature.params.params] == ["explain"]
    assert signature.outputs.input_names() == churn_output_columns(3)


def test_unknown_models_raise_registry_errors(store: Path):
    for uri, message in (
        ("models:/tierwise-churn@gone", "has no alias 'gone'"),
        ("models:/tierwise-churn/9", "no version 9"),
        ("models:/tierwise-nothing@champion", "has no alias"),
        ("models:/tierwise-churn", "expected models:/NAME@ALIAS"),
        (str(store / "no-such-model"), "cannot load model"),
    ):
        with pytest.raises(registry.RegistryError, match=message):
            registry.load_model(store, uri)


def test_a_version_holds_no_pickle(store: Path, tmp_path):
    """A version's files: MLmodel, the model code, LightGBM's text and JSON; nothing pickled."""
    for name in ("tierwise-churn", "tierwise-tier"):
        folder = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=tmp_path))
        files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
        assert {"MLmodel", "model_code.py", "artifacts/booster.txt", "artifacts/model.json"} <= set(
            files
        )
        for relative, path in files.items():
            assert path.suffix not in (".pkl", ".pickle"), relative
            assert not path.read_bytes().startswith(b"\x80"), f"{relative} is a pickle"
        assert "cloudpickle" not in files["requirements.txt"].read_text()
        spec = json.loads(files["artifacts/model.json"].read_text())
        assert (spec["format_version"], spec["kind"]) == (1, name.removeprefix("tierwise-"))
        assert files["artifacts/booster.txt"].read_text().startswith("tree")
        tmp_path = tmp_path / "next"


LEGACY_MODULE = """
import mlflow


class LegacyChurnModel(mlflow.pyfunc.PythonModel):
    def __init__(self, model):
        self.model = model

    def predict(self, context, model_input, params=None):
        return self.model.predict_frame(model_input)
"""
AFTER_A_REFACTOR = """
import importlib
import sys

import mlflow
import pandas as pd

MOVED = ("models.training.boosters", "models.training.estimators", "models.serving.pyfunc")
RENAMED = {"models.training.boosters": ("ChurnModel", "TierModel"),
           "models.training.estimators": ("ScoreCalibrator",),
           "models.serving.pyfunc": ("RegisteredChurnModel", "RegisteredTierModel")}
if sys.argv[4] == "moved":  # the modules are gone: importing them fails
    sys.modules.update(dict.fromkeys(MOVED))
else:  # the classes have new names
    modules = {name: importlib.import_module(name) for name in RENAMED}
    for module, names in RENAMED.items():
        module = modules[module]
        for name in names:
            setattr(module, name + "Renamed", getattr(module, name))
            delattr(module, name)
rows = pd.read_parquet(sys.argv[1])
churn = mlflow.pyfunc.load_model("models:/tierwise-churn/1").predict(rows)
tier = mlflow.pyfunc.load_model("models:/tierwise-tier/1").predict(rows)
pd.concat([churn, tier], axis=1).to_parquet(sys.argv[2])
try:
    mlflow.pyfunc.load_model(sys.argv[3])
    print("pickled: loaded")
except Exception as err:
    print(f"pickled: {type(err).__name__}: {err}")
"""


@pytest.mark.parametrize("refactor", ["renamed", "moved"])
def test_a_version_loads_and_scores_the_same_after_a_refactor(
    store: Path, scoring_model, trained, score_rows, tmp_path, refactor
):
    """A fresh interpreter renames (or removes the modules of) ChurnModel, TierModel,
    ScoreCalibrator, RegisteredChurnModel and RegisteredTierModel, then loads version 1 of each
    registered model: identical answers. The same refactor breaks a model pickled the way
    versions were stored before (``log_model(python_model=<object>)``): unpickling needs
    ``models.training.boosters.ChurnModel`` under that name."""
    sys.path.insert(0, str(tmp_path))
    try:
        (tmp_path / "legacy_tierwise.py").write_text(LEGACY_MODULE)
        from legacy_tierwise import LegacyChurnModel  # pickled by reference, like the old ones

        pickled = tmp_path / "pickled"
        mlflow.pyfunc.save_model(str(pickled), python_model=LegacyChurnModel(trained.models.churn))
    finally:
        sys.path.remove(str(tmp_path))
    assert any(pickled.glob("*.pkl"))
    rows, answers = tmp_path / "rows.parquet", tmp_path / "answers.parquet"
    score_rows.to_parquet(rows)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", AFTER_A_REFACTOR, str(rows), str(answers), str(pickled), refactor],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    expected = pd.concat(
        [scoring_model.predict_frame(score_rows), trained.models.tier.predict_frame(score_rows)],
        axis=1,
    )
    expected.to_parquet(tmp_path / "expected.parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(answers), pd.read_parquet(tmp_path / "expected.parquet"), check_exact=True
    )
    verdict = done.stdout.strip().splitlines()[-1]
    expected_failure = {"renamed": ("AttributeError", "ChurnModel"),
                        "moved": ("ModuleNotFoundError", "models.training")}[refactor]  # fmt: skip
    assert verdict.startswith("pickled: ") and all(w in verdict for w in expected_failure), verdict


def test_a_version_of_another_format_says_register_again(trained, tmp_path):
    model = RegisteredTierModel(trained.models.tier)
    files = model.write_artifacts(tmp_path / "files")
    spec = Path(files["spec"])
    spec.write_text(spec.read_text().replace('"format_version": 1', '"format_version": 99'))
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=str(MODEL_CODE), artifacts=files)
    with pytest.raises(ValueError, match="model format 99; the installed tierwise reads format 1"):
        mlflow.pyfunc.load_model(str(tmp_path / "model"))
