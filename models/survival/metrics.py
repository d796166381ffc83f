"""Out-of-time metrics of cumulative-incidence predictions under right censoring.

Outcomes are discrete months (features/events.py): ``months`` observed, ``event`` (churned),
``cause``. Censoring weights (IPCW) come from the Kaplan–Meier estimate of the censoring
distribution, G(j) = P(C > j), where a row censored at month m was observed through m. For a
horizon tau, a row's status is known when it churned by tau (weight 1 / G(T - 1)) or was observed
through tau without churning (weight 1 / G(tau - 1)); rows censored earlier get weight 0.

- Brier(tau) for cause c: weighted mean of (1{T <= tau, cause c} - F_c(tau))^2.
- time-dependent AUC (cumulative / dynamic, Blanche et al. 2013, definition 2): cases churned
  by tau of cause c, controls every other row of known status (other causes included), weighted.
- integrated Brier: the mean all-cause Brier over months 1..tau_max (the last month anyone of
  the snapshot was followed to). A horizon nobody was followed to has no metrics (None).
- calibration: per decile of F_c(tau), the weighted observed incidence against the mean
  prediction; the gap is their weighted mean absolute difference.
- C-index (Harrell): from lifelines, with the expected months as the predicted time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines.utils import concordance_index


def censoring_survival(months: np.ndarray, event: np.ndarray, horizon: int) -> np.ndarray:
    """G(j) for j = 0..horizon (G(0) = 1): Kaplan–Meier of the censoring month."""
    months = months.astype(np.int64)
    censored = np.bincount(months[~event & (months < horizon)], minlength=horizon + 1)
    at_risk = np.cumsum(np.bincount(months, minlength=horizon + 1)[::-1])[::-1]
    hazard = np.divide(censored, at_risk, out=np.zeros(horizon + 1), where=at_risk > 0)
    hazard[0] = 0.0
    return np.cumprod(1.0 - hazard[: horizon + 1])


def ipcw_weights(months: np.ndarray, event: np.ndarray, tau: int, G: np.ndarray) -> np.ndarray:
    months = months.astype(np.int64)
    case = event & (months <= tau)
    control = ~case & (months >= tau)
    w = np.zeros(len(months))
    g_case = G[np.clip(months - 1, 0, len(G) - 1)]
    w[case] = 1.0 / np.where(g_case[case] > 0, g_case[case], np.nan)
    w[control] = 1.0 / G[tau - 1] if G[tau - 1] > 0 else np.nan
    return w


def _weighted_auc(score: np.ndarray, case: np.ndarray, w: np.ndarray) -> float:
    pos, neg = case & (w > 0), ~case & (w > 0)
    if not pos.any() or not neg.any():
        return float("nan")
    order = np.argsort(score[neg], kind="stable")
    s_neg, w_neg = score[neg][order], np.cumsum(w[neg][order])
    below = np.searchsorted(s_neg, score[pos], side="left")
    upto = np.searchsorted(s_neg, score[pos], side="right")
    cum = np.concatenate([[0.0], w_neg])
    wins = cum[below] + 0.5 * (cum[upto] - cum[below])
    return float((w[pos] * wins).sum() / (w[pos].sum() * w_neg[-1]))


def cause_metrics(
    months: np.ndarray,
    event: np.ndarray,
    is_cause: np.ndarray,
    predicted: np.ndarray,
    tau: int,
    G: np.ndarray,
    bins: int,
) -> dict[str, float]:
    """AUC, Brier and calibration gap at ``tau`` for one cause's incidence F_c(tau)."""
    w = ipcw_weights(months, event, tau, G)
    if not (months >= tau).any() or np.isnan(w).any() or w.sum() == 0:  # no one followed to tau
        nan = float("nan")
        return {"auc": nan, "brier": nan, "calibration_gap": nan, "observed": nan}
    y = (event & (months <= tau) & is_cause).astype(float)
    brier = float(np.sum(w * (y - predicted) ** 2) / w.sum())
    known = w > 0
    edges = np.unique(np.quantile(predicted[known], np.linspace(0, 1, bins + 1)))
    group = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, len(edges) - 2)
    frame = pd.DataFrame({"g": group[known], "w": w[known], "wy": (w * y)[known],
                          "wp": (w * predicted)[known]})  # fmt: skip
    sums = frame.groupby("g")[["w", "wy", "wp"]].sum()
    gap = float((np.abs(sums["wy"] - sums["wp"])).sum() / sums["w"].sum())
    return {
        "auc": _weighted_auc(predicted, y == 1.0, w),
        "brier": brier,
        "calibration_gap": gap,
        "observed": float(np.sum(w * y) / w.sum()),
    }


def integrated_brier(
    months: np.ndarray, event: np.ndarray, survival: np.ndarray, G: np.ndarray
) -> float:
    """Mean all-cause Brier score over months 1..tau_max, the last month anyone was followed to
    (at most K)."""
    scores = []
    for tau in range(1, min(survival.shape[1], int(months.max(initial=0))) + 1):
        w = ipcw_weights(months, event, tau, G)
        if np.isnan(w).any() or w.sum() == 0:
            return float("nan")
        y = (event & (months <= tau)).astype(float)
        scores.append(np.sum(w * (y - (1.0 - survival[:, tau - 1])) ** 2) / w.sum())
    return float(np.mean(scores)) if scores else float("nan")


def c_index(months: np.ndarray, event: np.ndarray, expected_months: np.ndarray) -> float:
    """Harrell's C for time to churn: longer expected months should mean later churn."""
    if event.sum() == 0:
        return float("nan")
    return float(concordance_index(months, expected_months, event))


def cause_confusion(actual: pd.Series, predicted: np.ndarray, causes) -> pd.DataFrame:
    """Counts of actual (rows) by predicted most likely cause (columns), among churners."""
    table = pd.crosstab(
        pd.Categorical(actual, categories=causes), pd.Categorical(predicted, categories=causes),
        dropna=False,
    )  # fmt: skip
    table.index.name, table.columns.name = "actual", "predicted"
    return table
