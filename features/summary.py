"""Counts of a feature table gathered while it streams to disk (reports/features_summary.json)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.labels import CHURNED, LABEL_AVAILABLE
from features.registry import TIER


class FeatureSummary:
    """Rows, customers, snapshots, labelled rows, churn rate and tier counts of the chunks that
    ``watch`` passes through unchanged."""

    def __init__(self) -> None:
        self.rows = self.labelled = 0
        self.churned = 0.0
        self.customers: set[str] = set()
        self.snapshots: set[pd.Timestamp] = set()
        self.tiers: Counter[str] = Counter()

    def watch(self, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            labelled = chunk.loc[chunk[LABEL_AVAILABLE] & chunk[CHURNED].notna(), CHURNED]
            self.rows += len(chunk)
            self.labelled += len(labelled)
            self.churned += float(labelled.sum())
            self.customers.update(chunk[CUSTOMER_ID].unique())
            self.snapshots.update(chunk[AS_OF].unique())
            self.tiers.update(chunk[TIER].value_counts().to_dict())
            yield chunk

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "customers": len(self.customers),
            "snapshots": len(self.snapshots),
            "labelled_rows": self.labelled,
            "churn_rate": round(self.churned / self.labelled, 4) if self.labelled else None,
            "tier_counts": dict(sorted(self.tiers.items())),
        }
