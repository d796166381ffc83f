"""Customer-level sampling of the fit and validation slices (``train.sample``, docs/models.md).

A book too large to fit in memory is trained on a share of its customers: every snapshot of a
chosen customer is kept (so a customer's history is never split between kept and dropped), and
customers are drawn within strata of (tier, churn label) so the sample keeps the book's mix of
tiers and of churners. The test slice is never sampled: evaluation reads every test row.

- ``sample_share``: the share to keep, from ``fraction`` and the row cap ``max_rows``;
- ``customer_strata``: one stratum per customer, from their rows in the training slices;
- ``sample_customers``: the customers kept, drawn with the run's seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.labels import CHURNED
from features.registry import TIER
from models.spec import SampleSpec


def sample_share(spec: SampleSpec, training_rows: int) -> float:
    """The share of customers to keep: ``fraction``, lowered so that about ``max_rows`` fit and
    validation rows remain when there are more (``max_rows`` 0: no cap)."""
    share = spec.fraction
    if spec.max_rows and training_rows > spec.max_rows:
        share = min(share, spec.max_rows / training_rows)
    return share


def customer_strata(rows: pd.DataFrame) -> pd.Series:
    """Each customer's stratum, "<tier>|<label>": the tier at their latest training snapshot and
    whether they ever churn in the training slices (1), never do (0) or are never active (-)."""
    latest = rows.sort_values(AS_OF, kind="stable").groupby(CUSTOMER_ID, observed=True)[TIER]
    tier = latest.last().astype(str)
    tier.index = tier.index.astype(object)  # categorical ids (pipelines/train.py): sort by value
    churned = rows.groupby(CUSTOMER_ID, observed=True)[CHURNED].max()
    label = churned.map({0.0: "0", 1.0: "1"}).fillna("-")
    label.index = label.index.astype(object)
    return tier.str.cat(label.reindex(tier.index), sep="|")


def sample_customers(rows: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """The customer ids kept, in sorted order: in every stratum the same ``share`` of its
    customers (rounded, at least one), drawn without replacement by ``seed``."""
    strata = customer_strata(rows).sort_index()
    if share >= 1.0:
        return strata.index.to_numpy()
    rng = np.random.default_rng(seed)
    kept = []
    for _, members in strata.groupby(strata, sort=True):
        ids = members.index.to_numpy()
        n = max(1, round(share * len(ids)))
        kept.append(ids[rng.permutation(len(ids))[:n]])
    return np.sort(np.concatenate(kept))
