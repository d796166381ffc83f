"""Campaign rows for the uplift model: each decision joined to the features of its day.

Grain: one row per campaigns row (customer_id, as_of = campaigns.date, strategy_id, arm), with
the feature table's columns at that (customer_id, as_of): the features read nothing after the
decision day, the churn label reads (as_of, as_of + H] (features/labels.py). A campaign dated on
a day that is not a snapshot of the feature table, or whose label is not yet known, is dropped
(counted by the caller).
"""

from __future__ import annotations

import pandas as pd

from features.contract import ARM, AS_OF, CAMPAIGN_DATE, COST, CUSTOMER_ID, STRATEGY_ID, TREATED
from features.labels import CHURNED, LABEL_AVAILABLE

IS_TREATED = "treated"


def build_uplift_rows(campaigns: pd.DataFrame, feature_table: pd.DataFrame) -> pd.DataFrame:
    """The campaigns joined to the feature rows of their day; ``treated`` a bool."""
    keys = campaigns.rename(columns={CAMPAIGN_DATE: AS_OF})
    keys = keys.assign(**{IS_TREATED: keys[ARM] == TREATED})
    if COST not in keys.columns:
        keys = keys.assign(**{COST: float("nan")})
    extra = [c for c in feature_table.columns if c in (ARM, STRATEGY_ID, COST, IS_TREATED)]
    rows = keys[[CUSTOMER_ID, AS_OF, STRATEGY_ID, IS_TREATED, COST]].merge(
        feature_table.drop(columns=extra), on=[CUSTOMER_ID, AS_OF], how="inner"
    )
    return rows.reset_index(drop=True)


def labelled(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows whose churn label is known."""
    known = rows[LABEL_AVAILABLE].fillna(False).astype(bool) & rows[CHURNED].notna()
    return rows[known].reset_index(drop=True)
