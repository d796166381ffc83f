"""Qini curves and AUUC for a targeting score on randomised rows (treated vs control).

The outcome is churn, so the gain is churners prevented. Rows are ranked by the score (high
first); after the top k rows,

    Q(k) = C(k) · T_n(k) / C_n(k) - T(k)

where T(k), C(k) count churners among the treated and control rows in the top k and T_n, C_n
count those rows: the churners the treatment prevented among the treated so far, the control
rate standing in for what they would have done untreated. The curve is reported per row of the
whole set (Q(k) / n). AUUC is the area under it over the targeted fraction (0..1); the Qini
coefficient is that area minus the random targeting's (the straight line to Q(n)), so 0 is
random and higher is better. Ties in the score are broken by row order after a fixed shuffle.
"""

from __future__ import annotations

import numpy as np


def compute_qini_curve(
    score: np.ndarray, treated: np.ndarray, churned: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Fractions targeted (0, 1/n, ..., 1) and the Qini gain per row at each."""
    score, treated = np.asarray(score, float), np.asarray(treated, bool)
    churned = np.asarray(churned, float)
    n = len(score)
    shuffle = np.random.default_rng(seed).permutation(n)
    order = shuffle[np.argsort(-score[shuffle], kind="stable")]
    t, y = treated[order], churned[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    scaled = np.divide(y_c * n_t, n_c, out=np.zeros(n), where=n_c > 0)
    gain = np.concatenate([[0.0], (scaled - y_t) / max(n, 1)])
    return np.arange(n + 1) / max(n, 1), gain


def compute_auuc(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> dict[str, float]:
    """AUUC, the Qini coefficient and the gain of targeting everyone (``gain_all``)."""
    x, q = compute_qini_curve(score, treated, churned)
    area = float(np.trapezoid(q, x))
    return {"auuc": area, "qini": area - q[-1] / 2.0, "gain_all": float(q[-1])}
