"""Labels at snapshot t over the horizon (t, t+H].

- churned (customers active at t only): 1 when no loan originates in (t, t+H] and no loan is open
  at t+H, else 0; NaN for customers not active at t.
- next_tier: the tier at t+H (the tier-transition target).
Rows whose t+H lies after the data's end have no labels (label_available = False); they are kept
for scoring. A label never reads a record dated after t+H.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.loans import LoanBook
from features.spec import TIERS, Definitions
from features.tiers import compute_tier, labels_of

CHURNED = "churned"
NEXT_TIER = "next_tier"
LABEL_AVAILABLE = "label_available"
ACTIVE = "active"
LABEL_COLUMNS = (ACTIVE, LABEL_AVAILABLE, CHURNED, NEXT_TIER)


def compute_labels(
    book: LoanBook,
    codes: np.ndarray,
    days: np.ndarray,
    defs: Definitions,
    end_day: int,
    thresholds: Mapping[int, float],
) -> pd.DataFrame:
    """Label columns for query rows (customer code, snapshot day), in the rows' order."""
    days = np.asarray(days, dtype=np.int64)
    horizon = days + defs.horizon_days
    available = horizon <= end_day
    active = book.is_active(codes, days, defs.active_window_days)
    renewed = book.originations(codes, horizon, defs.horizon_days) > 0
    open_at_end, _ = book.open_count_and_exposure(codes, horizon)
    churned = np.where(active & available, (~renewed & (open_at_end == 0)).astype(float), np.nan)
    next_tier = labels_of(compute_tier(book, codes, horizon, defs, thresholds), TIERS)
    return pd.DataFrame(
        {
            ACTIVE: active,
            LABEL_AVAILABLE: available,
            CHURNED: churned,
            NEXT_TIER: np.where(available, next_tier, None),
        }
    )
