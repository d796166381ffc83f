"""Performance without labels: CBPE (confidence-based performance estimation, NannyML's method;
docs/monitoring.md) on calibrated churn probabilities, and the same metrics realised on labels.

If the probabilities are calibrated, a customer with probability p churns with probability p, so
the expected confusion matrix at every threshold, and from it the expected ROC and precision-
recall curves, follow from the probabilities alone. Customers with the same probability form one
group (isotonic calibration gives few distinct values), so every metric here is computed from
per-group counts: ``n`` rows and ``s`` churners per distinct probability ``u`` (ascending).

- point estimate: ``s = n * u`` (the expected churners of each group), CBPE's expected curves;
- interval: labels drawn as ``s ~ Binomial(n, u)`` ``draws`` times, the metric of each draw,
  the central ``interval`` of them: the spread the realised metric would have at this size if the
  model were calibrated;
- realised: ``s`` the observed churners (equal to scikit-learn's roc_auc_score and
  average_precision_score, ties counted half; tests/models/test_monitoring.py checks it).

ECE is the expected calibration error over ``bins`` equal-width bins. Under CBPE's assumption the
true calibration error is 0; its estimate is the error that sampling noise alone gives at this
size, so a realised ECE above its interval says the assumption (and the estimates) broke.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Groups:
    u: np.ndarray  # distinct probabilities, ascending
    n: np.ndarray  # rows per probability
    bin: np.ndarray  # calibration bin of each probability

    @property
    def rows(self) -> int:
        return int(self.n.sum())


def groups_of(p: np.ndarray, bins: int, y: np.ndarray | None = None) -> tuple[Groups, np.ndarray]:
    """The groups of ``p`` (NaN dropped) and the observed churners per group (zeros without y)."""
    p = np.asarray(p, dtype=float)
    keep = ~np.isnan(p)
    u, inverse, n = np.unique(p[keep], return_inverse=True, return_counts=True)
    s = np.zeros(len(u))
    if y is not None:
        s = np.bincount(inverse, weights=np.asarray(y, dtype=float)[keep], minlength=len(u))
    return Groups(u, n.astype(float), np.clip((u * bins).astype(int), 0, bins - 1)), s


def _metrics(g: Groups, s: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """ROC AUC, PR AUC (average precision) and ECE for each row of ``s`` (draws x groups)."""
    s = np.atleast_2d(s)
    neg = g.n - s
    n1, n0 = s.sum(axis=1), neg.sum(axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives with a lower probability
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (s * (below + 0.5 * neg)).sum(axis=1) / (n1 * n0)
        tp = np.cumsum(s[:, ::-1], axis=1)  # thresholds from the highest probability down
        flagged = np.cumsum(g.n[::-1])
        ap = (s[:, ::-1] * (tp / flagged)).sum(axis=1) / n1
    gap = np.zeros((len(s), bins))
    present, starts = np.unique(g.bin, return_index=True)  # u ascending: each bin a column run
    gap[:, present] = np.add.reduceat(s - g.n * g.u, starts, axis=1)
    ece = np.abs(gap).sum(axis=1) / g.rows
    return {"roc_auc": auc, "pr_auc": ap, "ece": ece}


def _draw_churners(rng: np.random.Generator, g: Groups, draws: int) -> np.ndarray:
    """``draws`` rows of churners per group, ``s ~ Binomial(n, u)``. A group of one row (every
    row, with a Platt calibrator) is Binomial(1, u), drawn as ``U < u``: the same distribution,
    about 7x faster than numpy's binomial (at 1M customers, 200 draws of 520,000 groups: 4.4 s
    of the run, serial at its end)."""
    single = g.n == 1
    s = np.empty((draws, len(g.u)))
    s[:, single] = rng.random((draws, int(single.sum()))) < g.u[single]
    many = ~single
    if many.any():
        s[:, many] = rng.binomial(g.n[many].astype(np.int64), g.u[many], (draws, int(many.sum())))
    return s


def _clean(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def realised_metrics(p: np.ndarray, y: np.ndarray, bins: int) -> dict[str, float | None]:
    """ROC AUC, PR AUC and ECE of probabilities ``p`` against labels ``y`` (NaN p dropped)."""
    g, s = groups_of(p, bins, y)
    if g.rows == 0:
        return {"roc_auc": None, "pr_auc": None, "ece": None, "churn_rate": None, "rows": 0}
    out = {k: _clean(v[0]) for k, v in _metrics(g, s, bins).items()}
    return out | {"churn_rate": _clean(s.sum() / g.rows), "rows": g.rows}


def estimate_metrics(
    p: np.ndarray, bins: int, draws: int, interval: float, seed: int
) -> dict[str, dict[str, float | None] | int | float | None]:
    """CBPE estimates of ROC AUC, PR AUC and ECE with their intervals (see the module doc)."""
    g, _ = groups_of(p, bins)
    if g.rows == 0:
        empty = {"value": None, "low": None, "high": None}
        return {"roc_auc": empty, "pr_auc": empty, "ece": empty, "churn_rate": None, "rows": 0}
    point = _metrics(g, g.n * g.u, bins)
    rng = np.random.default_rng(seed)
    drawn: dict[str, list[np.ndarray]] = {k: [] for k in point}
    batch = max(1, min(draws, 2_000_000 // max(len(g.u), 1)))  # bounds memory: ~16 MB a draw block
    for start in range(0, draws, batch):
        size = min(batch, draws - start)
        s = _draw_churners(rng, g, size)
        for k, v in _metrics(g, s, bins).items():
            drawn[k].append(v)
    tail = (1 - interval) / 2
    out: dict = {}
    for k, parts in drawn.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        # CBPE's point for the curves; the mean of the draws for ECE (its CBPE value is 0)
        centre = float(values.mean()) if k == "ece" and len(values) else float(point[k][0])
        low, high = np.quantile(values, [tail, 1 - tail]) if len(values) else (np.nan, np.nan)
        out[k] = {"value": _clean(centre), "low": _clean(low), "high": _clean(high)}
    return out | {"churn_rate": _clean(float((g.n * g.u).sum() / g.rows)), "rows": g.rows}
