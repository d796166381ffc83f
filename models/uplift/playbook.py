"""The two rule-based targetings uplift is measured against, on the feature table's columns.

- ``rule_score``: the bank's historical risk rule, as far as the features show it (recent
  complaints, late payments, price above the book, a maturity ahead) — whom the rule picks;
- ``playbook_strategy``: which strategy the rule's playbook gives a customer, by its most salient
  driver: complaints → service recovery, priced above the book → price review, a maturity within
  H → renewal offer, otherwise an RM follow-up.

A hand rule on the same drivers the explanations name; the explain stage's SHAP-based choice
(models/strategies: ``recommend_frame``) picks from the whole catalog and is not used here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COMPLAINTS, LATE, GAP = "svc_complaints_180", "pay_late_n_180", "price_gap_now"
MATURING = "con_maturing_n_h"
PLAYBOOK = {
    "complaints": "prompt_response",
    "price": "competitor_counter",
    "maturity": "active_dedicated_credit",
    "otherwise": "regular_follow_up",
}
PRICE_GAP_FLOOR = 0.005  # a price gap above this (half a point) is a price driver


def _col(table: pd.DataFrame, name: str) -> np.ndarray:
    return table[name].fillna(0.0).to_numpy(float)


def rule_score(table: pd.DataFrame) -> pd.Series:
    """The bank's risk rule: higher = selected first."""
    complaints, late = np.minimum(_col(table, COMPLAINTS), 3), np.minimum(_col(table, LATE), 3)
    gap, maturing = np.maximum(_col(table, GAP), 0), _col(table, MATURING) > 0
    score = 0.5 * complaints + 0.5 * late + 30 * gap + 0.3 * maturing
    return pd.Series(score, index=table.index)


def playbook_strategy(table: pd.DataFrame) -> pd.Series:
    """The playbook's strategy id for each row, by its first driver in the order above."""
    choice = np.select(
        [
            _col(table, COMPLAINTS) > 0,
            _col(table, GAP) > PRICE_GAP_FLOOR,
            _col(table, MATURING) > 0,
        ],
        [PLAYBOOK["complaints"], PLAYBOOK["price"], PLAYBOOK["maturity"]],
        default=PLAYBOOK["otherwise"],
    )
    return pd.Series(choice, index=table.index, dtype=object)
