"""Metrics and the champion rule on hand-made predictions, and the report's shape."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.columns import NEXT_TIER_COLUMNS
from models.evaluation.champion import PROMOTION_METRICS, beats_champion
from models.evaluation.metrics import (
    compute_binary_metrics,
    compute_multiclass_metrics,
    conversion_rate,
    evaluate_predictions,
    expected_calibration_error,
    headline_metrics,
    tier_moves,
    top_fraction_lift,
    transition_matrices,
)


def test_ece_weights_each_bin_gap_by_its_share_of_rows():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.05, 0.95, 0.55, 0.45])
    assert expected_calibration_error(y, p, bins=10) == pytest.approx(
        (0.05 + 0.05 + 0.45 + 0.45) / 4
    )
    assert expected_calibration_error(np.array([1, 0, 0, 0, 0]), np.full(5, 0.2)) == pytest.approx(
        0
    )
    assert expected_calibration_error(np.array([1]), np.array([1.0])) == pytest.approx(0)


def test_top_decile_lift_and_capture():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    p = np.linspace(0.9, 0.0, 10)
    assert top_fraction_lift(y, p, 0.1) == pytest.approx((5.0, 0.5))
    assert top_fraction_lift(y, p, 1.0) == pytest.approx((1.0, 1.0))
    lift, capture = top_fraction_lift(y, p, 0.25)  # ceil(2.5) = 3 rows, one churner
    assert lift == pytest.approx((1 / 3) / 0.2) and capture == pytest.approx(0.5)


def test_binary_metrics_of_a_perfect_ranking_and_of_a_single_class(params_cfg):
    spec = params_cfg.evaluate
    y = np.array([0, 0, 1, 1])
    metrics = compute_binary_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]), spec)
    assert metrics["roc_auc"] == 1.0 and metrics["pr_auc"] == 1.0
    assert metrics["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    assert metrics["rows"] == 4 and metrics["churn_rate"] == 0.5
    single = compute_binary_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]), spec)
    assert single["roc_auc"] is None and single["pr_auc"] is None
    assert single["top_decile_lift"] is None


def test_multiclass_metrics_use_all_four_tiers():
    proba = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]])
    metrics = compute_multiclass_metrics(pd.Series(["ordinary", "core"]), proba)
    assert metrics["accuracy"] == 0.5
    assert metrics["log_loss"] == pytest.approx(-np.log(0.5) / 2, abs=1e-6)


def moves_frame() -> pd.DataFrame:
    rows = [
        ("ordinary", "core", [0, 0.3, 0.6, 0.1]),  # upgrade predicted and real
        ("ordinary", "ordinary", [0, 0.6, 0.4, 0]),
        ("ordinary", "core", [0, 0.8, 0.2, 0]),  # missed upgrade
        ("ordinary", "ordinary", [0, 0.2, 0.5, 0.3]),  # false upgrade
        ("core", "ordinary", [0, 0.7, 0.3, 0]),  # downgrade predicted and real
        ("potential", "ordinary", [0.6, 0.4, 0, 0]),
        ("potential", "potential", [0.9, 0.1, 0, 0]),
    ]
    frame = pd.DataFrame([r[2] for r in rows], columns=list(NEXT_TIER_COLUMNS)).assign(
        tier=[r[0] for r in rows], next_tier=[r[1] for r in rows]
    )
    return frame


def test_upgrade_and_downgrade_precision_recall_per_current_tier():
    moves = tier_moves(moves_frame(), NEXT_TIER_COLUMNS, threshold=0.5)
    assert moves["ordinary"]["upgrade"] == {
        "support": 2, "predicted": 2, "precision": 0.5, "recall": 0.5
    }  # fmt: skip
    assert moves["core"]["downgrade"] == {
        "support": 1, "predicted": 1, "precision": 1.0, "recall": 1.0
    }  # fmt: skip
    assert moves["core"]["upgrade"]["precision"] is None
    assert "downgrade" not in moves["potential"] and "upgrade" not in moves["vip"]


def test_transition_matrices_and_conversion():
    frame = moves_frame()
    matrices = transition_matrices(
        frame.assign(**{f"markov_{c}": frame[c] for c in NEXT_TIER_COLUMNS})
    )
    assert matrices["actual"]["ordinary"] == {
        "potential": 0.0,
        "ordinary": 0.5,
        "core": 0.5,
        "vip": 0.0,
    }
    assert matrices["lightgbm"]["core"]["ordinary"] == pytest.approx(0.7)
    assert matrices["actual"]["vip"]["vip"] is None  # no vip rows
    conversion = conversion_rate(frame.assign(**{f"markov_{c}": 0.25 for c in NEXT_TIER_COLUMNS}))
    assert conversion.actual == 0.5
    assert conversion.predicted["lightgbm"] == pytest.approx(1 - 0.75)
    assert conversion.predicted["markov"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("challenger", "champion", "tolerance", "expected"),
    [
        ({"roc_auc": 0.81, "brier": 0.09}, {"roc_auc": 0.80, "brier": 0.10}, 0.0, True),
        ({"roc_auc": 0.80, "brier": 0.10}, {"roc_auc": 0.80, "brier": 0.10}, 0.0, False),
        ({"roc_auc": 0.81, "brier": 0.10}, {"roc_auc": 0.80, "brier": 0.10}, 0.0, True),
        ({"roc_auc": 0.82, "brier": 0.11}, {"roc_auc": 0.80, "brier": 0.10}, 0.0, False),
        ({"roc_auc": 0.82, "brier": 0.105}, {"roc_auc": 0.80, "brier": 0.10}, 0.01, True),
        ({"roc_auc": 0.82, "brier": 0.09}, {"roc_auc": None, "brier": 0.10}, 0.0, True),
        ({"roc_auc": None, "brier": 0.09}, {"roc_auc": 0.80, "brier": 0.10}, 0.0, False),
    ],
)
def test_champion_rule(challenger, champion, tolerance, expected):
    assert beats_champion(challenger, champion, PROMOTION_METRICS["churn"], tolerance) is expected


def test_tier_rule_prefers_lower_log_loss():
    rule = PROMOTION_METRICS["tier"]
    assert beats_champion(
        {"log_loss": 0.2, "accuracy": 0.9}, {"log_loss": 0.3, "accuracy": 0.9}, rule
    )
    assert not beats_champion(
        {"log_loss": 0.4, "accuracy": 0.95}, {"log_loss": 0.3, "accuracy": 0.9}, rule
    )


def test_evaluation_of_a_training_run(trained, params_cfg):
    evaluation = evaluate_predictions(trained.predictions, params_cfg.evaluate)
    churn, tier = evaluation.churn, evaluation.tier
    assert set(churn.overall) == {"lightgbm", "logistic", "btyd"}
    assert len(churn.by_snapshot) == 3 and len(tier.by_snapshot) == 3
    assert set(tier.overall) == {"lightgbm", "markov"}
    rows = trained.predictions["churned"].notna().sum()
    assert churn.overall["lightgbm"]["rows"] == rows
    assert sum(v["rows"] for v in churn.by_tier.values()) == rows
    assert set(churn.by_lifecycle) <= {"new", "active"}
    for matrix in tier.transitions.values():
        sums = [sum(v for v in row.values() if v is not None) for row in matrix.values()]
        assert all(math.isclose(s, 1.0, abs_tol=1e-5) or s == 0 for s in sums)
    headline = headline_metrics(evaluation, {"nps": 1.0})
    assert (headline.churn, headline.tier) == (churn.overall, tier.overall)
    assert headline.conversion == tier.conversion and headline.kpis == {"nps": 1.0}
