"""The registered churn model's outputs (risk band, reasons, strategies), the explanation policy,
the score table's columns, and both models through a real MLflow registry (SQLite in tmp_path)."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.registry import STATE_COLUMNS
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS, RISK_BAND
from models.explain.frame import (
    BASE_VALUE,
    explain_frame,
    explanation_columns,
    feature_contributions,
)
from models.serving import registry
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


def test_churn_outputs_for_every_known_customer(scoring_model, trained, score_rows):
    out = scoring_model.predict_frame(score_rows)
    assert list(out.columns) == churn_output_columns(3)
    assert out.index.equals(score_rows.index)
    active = _active(score_rows)
    assert 0 < active.sum() < len(score_rows)  # prospects, dormant and churned customers too
    expected = trained.models.churn.probability(score_rows)
    assert np.array_equal(out.loc[active, CHURN_PROBABILITY], expected[active])
    assert out.loc[~active, CHURN_PROBABILITY].isna().all()
    assert (out.loc[~active, RISK_BAND] == "").all()
    assert set(out.loc[active, RISK_BAND]) == {"low", "medium", "high"}
    assert (out.loc[~active, list(REASONS)] == "").all().all()
    assert (out["strategy_1"] != "").all()  # every customer gets at least its state's strategy
    ids = {s.id for s in load_catalog().strategies} | {""}
    assert set(out[strategy_columns(3)].to_numpy().ravel()) <= ids


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
    columns = [c for c in churn_output_columns(3) if c.startswith(("reason_", "strategy_"))]
    pd.testing.assert_frame_equal(got[columns], expected[columns], check_names=False)


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
        pd.testing.assert_frame_equal(out[columns], expected.rename(columns=str)[columns])


def test_policies_explain_only_the_chosen_rows(scoring_model, score_rows):
    full = scoring_model.predict_frame(score_rows, explain="all")
    at_risk = scoring_model.predict_frame(score_rows, explain="at_risk")
    none = scoring_model.predict_frame(score_rows, explain="none")
    high = (full[RISK_BAND] == "high").to_numpy()
    assert high.any()
    pd.testing.assert_frame_equal(at_risk[high], full[high])
    assert (at_risk.loc[~high, list(REASONS)] == "").all().all()
    assert (none[list(REASONS)] == "").all().all() and none["reason_1_contribution"].isna().all()
    head = [CHURN_PROBABILITY, RISK_BAND]
    for policy in (at_risk, none):  # probabilities and bands never depend on the policy
        pd.testing.assert_frame_equal(policy[head], full[head])
        assert (policy["strategy_1"] != "").all()


def test_any_index_and_feature_only_input(scoring_model, score_rows):
    rows = score_rows.head(60)
    expected = scoring_model.predict_frame(rows)
    odd = rows.set_axis([7] * len(rows))  # a duplicated index comes back as it was
    got = scoring_model.predict_frame(odd)
    assert list(got.index) == [7] * len(rows)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    bare = rows.drop(columns=["customer_id", "as_of", *STATE_COLUMNS])  # states from rank features
    pd.testing.assert_frame_equal(scoring_model.predict_frame(bare), expected)


def test_outputs_are_opt_in_and_survive_pickling(scoring_model, trained, score_rows):
    bare = RegisteredChurnModel(trained.models.churn)
    assert list(bare.predict_frame(score_rows).columns) == [CHURN_PROBABILITY]
    assert bare.predict_params() == {}
    assert scoring_model.predict_params() == {"explain": "all"}
    again = pickle.loads(pickle.dumps(scoring_model))
    pd.testing.assert_frame_equal(
        again.predict_frame(score_rows), scoring_model.predict_frame(score_rows)
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
    assert np.allclose(scores[list(NEXT_TIER_COLUMNS)].sum(axis=1), 1.0)
    at_risk = scoring_model.predict_frame(score_rows, explain="at_risk")
    pd.testing.assert_frame_equal(scores[list(at_risk.columns)], at_risk)


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
        churn.model.predict(score_rows), scoring_model.predict_frame(score_rows)
    )
    cheap = churn.model.predict(score_rows, params={"explain": "none"})
    pd.testing.assert_frame_equal(cheap, scoring_model.predict_frame(score_rows, explain="none"))
    pd.testing.assert_frame_equal(
        tier.model.predict(score_rows), trained.models.tier.predict_frame(score_rows)
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
