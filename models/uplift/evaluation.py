"""Out-of-time evaluation of uplift targeting on held-out randomised campaigns (docs/uplift.md).

The campaign rows (``models/uplift/data.py``) are split by date: the last ``test_months``
campaign dates are held out, the model is fitted on the earlier ones. Each held-out row is
scored by each targeting, for the strategy it was given (or held back from); the Qini
coefficient and AUUC (``metrics.py``) are computed per strategy and over all rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.contract import AS_OF
from features.labels import CHURNED
from models.uplift.data import IS_TREATED
from models.uplift.learner import NONE, UpliftTLearner
from models.uplift.metrics import compute_auuc
from models.uplift.playbook import playbook_strategy, rule_score

OVERALL = "overall"
TARGETINGS = ("uplift_model", "churn_risk", "rule_playbook", "random")


def split_campaigns(rows: pd.DataFrame, test_months: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows before the last ``test_months`` campaign dates, and those dates' rows."""
    dates = np.sort(rows[AS_OF].unique())
    if len(dates) <= test_months:
        raise ValueError(
            f"uplift: {len(dates)} labelled campaign dates, {test_months} held out: none to fit on"
        )
    split = dates[-test_months - 1]
    train = rows[rows[AS_OF] <= split].reset_index(drop=True)
    return train, rows[rows[AS_OF] > split].reset_index(drop=True)


def targeting_scores(
    model: UpliftTLearner, test: pd.DataFrame, features: Sequence[str], seed: int = 1
) -> dict[str, np.ndarray]:
    """Each targeting's score of each row, for the row's own strategy (higher = first)."""
    uplift, churn = model.predict_uplift(test[features]), model.predict_churn(test[features])
    column = uplift.columns.get_indexer(test["strategy_id"])
    own = uplift.to_numpy()[np.arange(len(test)), np.maximum(column, 0)]
    own = np.where(column >= 0, own, np.nan)
    playbook = (playbook_strategy(test) == test["strategy_id"]).to_numpy(float)
    return {
        "uplift_model": np.nan_to_num(own, nan=-np.inf),
        "churn_risk": churn[NONE].to_numpy(),
        "rule_playbook": 10.0 * playbook + rule_score(test).to_numpy(),
        "random": np.random.default_rng(seed).random(len(test)),
    }


def compute_uplift_table(
    test: pd.DataFrame, scores: Mapping[str, np.ndarray], strategies: Sequence[str]
) -> list[dict]:
    """One row per strategy and one ``overall``: rows, treated, the gain of treating everyone
    and each targeting's Qini coefficient."""
    out = []
    treated, churned = test[IS_TREATED].to_numpy(bool), test[CHURNED].to_numpy(float)
    subsets = [(OVERALL, np.ones(len(test), bool))]
    subsets += [(s, (test["strategy_id"] == s).to_numpy()) for s in strategies]
    for name, rows in subsets:
        if rows.sum() == 0 or treated[rows].all() or not treated[rows].any():
            continue
        t, y = treated[rows], churned[rows]
        row = {"strategy": name, "rows": int(rows.sum()), "treated": int(t.sum()),
               "gain_all": compute_auuc(np.zeros(rows.sum()), t, y)["gain_all"]}  # fmt: skip
        row |= {k: compute_auuc(score[rows], t, y)["qini"] for k, score in scores.items()}
        out.append(row)
    return out


def uplift_headline(table: list[dict]) -> dict[str, float]:
    """The overall Qini coefficient of each targeting (the DVC metric)."""
    overall = next((r for r in table if r["strategy"] == OVERALL), None)
    if overall is None:
        return {}
    return {f"qini_{k}": round(float(overall[k]), 6) for k in overall if k in TARGETINGS}
