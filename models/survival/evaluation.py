"""Survival metrics per test snapshot and cause, for the model and its baselines.

Per test snapshot (censoring differs between snapshots, so G is estimated per snapshot): for each
model (``lightgbm``, ``aalen_johansen``) and each cause and horizon the IPCW AUC, Brier score and
calibration gap of the cumulative incidence, plus all-cause ("churn") figures, the integrated
Brier score and the C-index; the binary churn model's probability as the all-cause incidence at
the binary horizon (``binary``), and the gap between the survival model's all-cause incidence and
the binary model's mean probability. Headline figures are means over the test snapshots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import AS_OF
from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS
from features.spec import CAUSES
from models.survival.metrics import (
    c_index,
    cause_confusion,
    cause_metrics,
    censoring_survival,
    integrated_brier,
)
from models.survival.train import (
    CHURN_CAUSE,
    EXPECTED_MONTHS,
    cause_column,
    churn_column,
    survival_column,
)

MODELS = {"lightgbm": "", "aalen_johansen": "aj_"}
BINARY = "binary_churn_probability"


def _snapshot_metrics(rows: pd.DataFrame, horizons, months: int, binary_month: int, bins: int):
    t = rows[SURV_MONTHS].to_numpy(np.int64)
    event = rows[SURV_EVENT].to_numpy() == 1.0
    G = censoring_survival(t, event, months)
    out: dict = {"rows": len(rows), "censored_before_end": int((~event & (t < months)).sum())}
    for model, prefix in MODELS.items():
        m: dict = {}
        for h in horizons:
            m[f"churn_{h}m"] = cause_metrics(
                t, event, np.ones(len(t), bool), rows[prefix + churn_column(h)].to_numpy(), h, G,
                bins,
            )  # fmt: skip
            for cause in CAUSES:
                is_cause = (rows[SURV_CAUSE] == cause).to_numpy()
                predicted = rows[prefix + cause_column(cause, h)].to_numpy()
                m[f"{cause}_{h}m"] = cause_metrics(t, event, is_cause, predicted, h, G, bins)
        survival = rows[[prefix + survival_column(k) for k in range(1, months + 1)]].to_numpy()
        m["integrated_brier"] = integrated_brier(t, event, survival, G)
        m["c_index"] = c_index(t, event, rows[prefix + EXPECTED_MONTHS].to_numpy())
        out[model] = m
    if BINARY in rows:
        p = rows[BINARY].to_numpy(float)
        ok = ~np.isnan(p)
        out["binary"] = {
            f"churn_{binary_month}m": cause_metrics(
                t[ok], event[ok], np.ones(ok.sum(), bool), p[ok], binary_month,
                censoring_survival(t[ok], event[ok], months), bins,
            ),
            "mean_probability": float(p[ok].mean()) if ok.any() else float("nan"),
        }  # fmt: skip
        survival_mean = float(rows[churn_column(binary_month)].to_numpy()[ok].mean())
        out["calibration_vs_binary"] = {
            "survival_mean": survival_mean,
            "binary_mean": out["binary"]["mean_probability"],
            "gap": survival_mean - out["binary"]["mean_probability"],
        }
    return out


def _mean(snapshots: list[dict]) -> dict:
    """Mean over snapshots of every numeric leaf (NaN ignored; NaN where all are NaN)."""
    first = snapshots[0]
    out = {}
    for key, value in first.items():
        if isinstance(value, dict):
            out[key] = _mean([s[key] for s in snapshots])
        else:
            values = np.array([s[key] for s in snapshots], dtype=float)
            out[key] = float(np.nanmean(values)) if (~np.isnan(values)).any() else None
    return out


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, float) and np.isnan(obj):
        return None
    return obj


def compute_survival_evaluation(
    predictions: pd.DataFrame, horizons: tuple[int, ...], months: int, binary_month: int, bins: int
) -> tuple[dict, dict, pd.DataFrame]:
    """(headline metrics, metrics by test snapshot, cause confusion among churners)."""
    by_snapshot = {
        str(pd.Timestamp(day).date()): _snapshot_metrics(rows, horizons, months, binary_month, bins)
        for day, rows in predictions.groupby(AS_OF)
    }
    headline = _mean(list(by_snapshot.values()))
    churners = predictions[predictions[SURV_EVENT] == 1.0]
    confusion = cause_confusion(churners[SURV_CAUSE], churners[CHURN_CAUSE].to_numpy(), CAUSES)
    agree = float(np.trace(confusion.to_numpy()) / max(confusion.to_numpy().sum(), 1))
    headline["cause_accuracy_among_churners"] = agree
    return _clean(headline), _clean(by_snapshot), confusion


PROMOTION_RULE = {"c_index": 1, "brier_churn": -1}  # +1 higher is better, -1 lower is better


def rule_metrics(
    outcomes: pd.DataFrame, p_churn: np.ndarray, expected_months: np.ndarray, month: int, K: int
) -> dict[str, float | None]:
    """The champion rule's figures of any survival answer on the test rows: the C-index of the
    expected months and the IPCW Brier score of the all-cause churn probability at ``month``,
    each the mean over the test snapshots."""
    per_snapshot = []
    for _, idx in outcomes.groupby(AS_OF).indices.items():
        t = outcomes[SURV_MONTHS].to_numpy(np.int64)[idx]
        event = outcomes[SURV_EVENT].to_numpy()[idx] == 1.0
        G = censoring_survival(t, event, K)
        brier = cause_metrics(t, event, np.ones(len(t), bool), p_churn[idx], month, G, 10)
        per_snapshot.append(
            {"c_index": c_index(t, event, expected_months[idx]), "brier_churn": brier["brier"]}
        )
    return _clean(_mean(per_snapshot))
