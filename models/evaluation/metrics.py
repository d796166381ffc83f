"""Evaluation on the test snapshots: churn metrics for the three churn scores, tier metrics for
the tier model and the Markov baseline. Pure: predictions in, records
(``models.evaluation.records``) out.

``predictions`` is the frame ``models.training.train.predict_test`` writes
(reports/predictions.parquet).
Metrics that are undefined on a slice (a single class) are reported as None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from features.contract import AS_OF
from features.labels import CHURNED, NEXT_TIER
from features.registry import LIFECYCLE_STATE, TIER
from features.spec import TIERS
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS
from models.evaluation.records import (
    ChurnDetails,
    Conversion,
    EvaluationDetails,
    HeadlineMetrics,
    SnapshotMetrics,
    TierDetails,
)
from models.spec import EvaluateSpec
from models.training.estimators import tier_codes
from models.training.train import BTYD_PROBABILITY, LOGISTIC_PROBABILITY, MARKOV_COLUMNS

CHURN_MODELS = {"lightgbm": CHURN_PROBABILITY, "logistic": LOGISTIC_PROBABILITY,
                "btyd": BTYD_PROBABILITY}  # fmt: skip
TIER_MODELS = {"lightgbm": NEXT_TIER_COLUMNS, "markov": MARKOV_COLUMNS}


def _clean(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Σ_b (n_b / n) |mean(y_b) - mean(p_b)| over ``bins`` equal-width probability bins."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    gap = np.bincount(which, weights=y - p, minlength=bins)
    return float(np.abs(gap).sum() / len(y))


def top_fraction_lift(y: np.ndarray, p: np.ndarray, fraction: float) -> tuple[float, float]:
    """(lift, capture) of the ceil(fraction * n) highest scores; ties keep row order."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    k = max(1, math.ceil(fraction * len(y)))
    top = np.argsort(-p, kind="stable")[:k]
    base, positives = y.mean(), y.sum()
    lift = y[top].mean() / base if base > 0 else math.nan
    capture = y[top].sum() / positives if positives > 0 else math.nan
    return float(lift), float(capture)


def compute_binary_metrics(y: np.ndarray, p: np.ndarray, spec: EvaluateSpec) -> dict:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    both = len(np.unique(y)) == 2
    lift, capture = top_fraction_lift(y, p, spec.top_fraction)
    values = {
        "rows": len(y),
        "churn_rate": y.mean(),
        "roc_auc": roc_auc_score(y, p) if both else math.nan,
        "pr_auc": average_precision_score(y, p) if both else math.nan,
        "brier": brier_score_loss(y, p),
        "ece": expected_calibration_error(y, p, spec.bins),
        "top_decile_lift": lift,
        "top_decile_capture": capture,
    }
    return {k: v if k == "rows" else _clean(v) for k, v in values.items()}


def compute_multiclass_metrics(next_tier: pd.Series, proba: np.ndarray) -> dict:
    y = tier_codes(next_tier)
    proba = np.clip(proba, 1e-15, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return {
        "rows": len(y),
        "log_loss": _clean(log_loss(y, proba, labels=np.arange(len(TIERS)))),
        "accuracy": _clean(float((proba.argmax(axis=1) == y).mean())),
    }


def _churn_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions[predictions[CHURNED].notna()]


def _by_model(rows: pd.DataFrame, spec: EvaluateSpec) -> dict:
    y = rows[CHURNED].to_numpy()
    return {
        m: compute_binary_metrics(y, rows[col].to_numpy(), spec) for m, col in CHURN_MODELS.items()
    }


def _by_model_tier(rows: pd.DataFrame) -> dict:
    return {
        m: compute_multiclass_metrics(rows[NEXT_TIER], rows[list(cols)].to_numpy())
        for m, cols in TIER_MODELS.items()
    }


def _per_snapshot(rows: pd.DataFrame, metric) -> dict:
    return {str(pd.Timestamp(t).date()): metric(part) for t, part in rows.groupby(AS_OF, sort=True)}


def churn_rate_by(predictions: pd.DataFrame, column: str) -> dict:
    """Actual and mean predicted churn rate of each level of ``column`` (test rows)."""
    rows = _churn_rows(predictions)
    grouped = rows.groupby(column, sort=True, observed=True)
    table = grouped.agg(
        rows=(CHURNED, "size"), churn_rate=(CHURNED, "mean"), predicted=(CHURN_PROBABILITY, "mean")
    )
    return {
        str(level): {
            "rows": int(r.rows),
            "churn_rate": _clean(r.churn_rate),
            "predicted": _clean(r.predicted),
        }
        for level, r in table.iterrows()
    }


def transition_matrices(predictions: pd.DataFrame) -> dict:
    """Current tier x next tier: actual rates and each model's mean predicted probabilities."""
    cur = pd.Categorical(predictions[TIER], categories=TIERS)
    nxt = pd.Categorical(predictions[NEXT_TIER], categories=TIERS)
    counts = pd.crosstab(cur, nxt, dropna=False).reindex(index=TIERS, columns=TIERS, fill_value=0)
    actual = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0)  # no rows: NaN
    out = {"actual": actual}
    for model, cols in TIER_MODELS.items():
        mean = predictions[list(cols)].groupby(cur, observed=False).mean()
        out[model] = mean.set_axis(list(TIERS), axis=1).reindex(index=TIERS)
    return {
        name: {r: {c: _clean(v) for c, v in row.items()} for r, row in frame.iterrows()}
        for name, frame in out.items()
    }


def _precision_recall(actual: np.ndarray, predicted: np.ndarray) -> dict:
    hits = float((actual & predicted).sum())
    return {
        "support": int(actual.sum()),
        "predicted": int(predicted.sum()),
        "precision": _clean(hits / predicted.sum()) if predicted.any() else None,
        "recall": _clean(hits / actual.sum()) if actual.any() else None,
    }


def tier_moves(predictions: pd.DataFrame, cols: tuple[str, ...], threshold: float) -> dict:
    """Precision and recall of upgrades and downgrades per current tier.

    A move is predicted when the probability of all higher (lower) tiers reaches ``threshold``.
    """
    cur, nxt = tier_codes(predictions[TIER]), tier_codes(predictions[NEXT_TIER])
    proba = predictions[list(cols)].to_numpy()
    ranks = np.arange(len(TIERS))
    p_up = (proba * (ranks[None, :] > cur[:, None])).sum(axis=1)
    p_down = (proba * (ranks[None, :] < cur[:, None])).sum(axis=1)
    out: dict = {}
    for code, tier in enumerate(TIERS):
        here = cur == code
        moves = {}
        if code < len(TIERS) - 1:
            moves["upgrade"] = _precision_recall(nxt[here] > code, p_up[here] >= threshold)
        if code > 0:
            moves["downgrade"] = _precision_recall(nxt[here] < code, p_down[here] >= threshold)
        out[tier] = moves
    return out


def conversion_rate(predictions: pd.DataFrame) -> Conversion:
    """Potential -> any borrowing tier at t+H (document 003's conversion), actual and predicted."""
    rows = predictions[predictions[TIER] == TIERS[0]]
    predicted = {
        model: _clean(1.0 - rows[cols[0]].mean()) if len(rows) else None
        for model, cols in TIER_MODELS.items()
    }
    return Conversion(len(rows), _clean((rows[NEXT_TIER] != TIERS[0]).mean()), predicted)


def evaluate_predictions(predictions: pd.DataFrame, spec: EvaluateSpec) -> EvaluationDetails:
    """Every metric of issue 3 on the test rows, overall and per test snapshot."""
    churn = _churn_rows(predictions)
    moves = {
        m: tier_moves(predictions, c, spec.transition_threshold) for m, c in TIER_MODELS.items()
    }
    return EvaluationDetails(
        churn=ChurnDetails(
            overall=_by_model(churn, spec),
            by_snapshot=_per_snapshot(churn, lambda part: _by_model(part, spec)),
            by_tier=churn_rate_by(predictions, TIER),
            by_lifecycle=churn_rate_by(predictions, LIFECYCLE_STATE),
        ),
        tier=TierDetails(
            overall=_by_model_tier(predictions),
            by_snapshot=_per_snapshot(predictions, _by_model_tier),
            transitions=transition_matrices(predictions),
            moves=moves,
            conversion=conversion_rate(predictions),
        ),
    )


def headline_metrics(details: EvaluationDetails, kpis: Mapping[str, float]) -> HeadlineMetrics:
    """The DVC metrics: overall figures per model, the pooled KPIs and the conversion rate
    (per-snapshot figures go to their own file)."""
    return HeadlineMetrics(
        details.churn.overall, details.tier.overall, kpis, details.tier.conversion
    )


def snapshot_metrics(details: EvaluationDetails) -> SnapshotMetrics:
    return SnapshotMetrics(details.churn.by_snapshot, details.tier.by_snapshot)
