"""Stage `features`: the feature table with labels over the month-end snapshot grid.

``run_as_of`` is the same computation for a single date on any contract directory
(`tierwise features --data DIR --as-of DATE --out FILE`); scoring reuses ``build_as_of``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from features.build import build_feature_table, iter_feature_table
from features.contract import AS_OF, CUSTOMER_ID, Tables, data_end
from features.labels import CHURNED, LABEL_AVAILABLE
from features.registry import TIER
from features.snapshots import snapshot_dates
from pipelines.config import Config
from pipelines.io import load_tables, save_frame, save_frame_chunks, save_json
from pipelines.validate import validated_tables

log = logging.getLogger(__name__)


def iter_snapshot_features(cfg: Config, tables: Tables) -> Iterator[pd.DataFrame]:
    end = cfg.data.end or data_end(tables)
    dates = snapshot_dates(
        tables, cfg.snapshots.start, cfg.snapshots.end, cfg.labels.active_window_days, end
    )
    log.info("%d snapshots from %s to %s", len(dates), dates[0].date(), dates[-1].date())
    yield from iter_feature_table(
        tables,
        dates,
        cfg.defs,
        cfg.features,
        data_end=end,
        chunk_customers=cfg.features.chunk_customers,
    )


class Summary:
    """Counts gathered while the feature table streams to disk."""

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


def run(cfg: Config) -> Path:
    tables = load_tables(cfg.path(cfg.paths.validated))
    summary = Summary()
    out = save_frame_chunks(
        summary.watch(iter_snapshot_features(cfg, tables)), cfg.path(cfg.paths.features)
    )
    save_json(summary.to_dict(), cfg.path(cfg.paths.features_summary))
    return out


def build_as_of(cfg: Config, tables: Tables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Feature rows of every customer known at ``as_of`` (labels omitted)."""
    return build_feature_table(tables, pd.DatetimeIndex([as_of]), cfg.defs, cfg.features)


def run_as_of(cfg: Config, data_dir: Path, as_of: pd.Timestamp, out: Path, overwrite: bool) -> Path:
    tables, _ = validated_tables(cfg, data_dir)
    return save_frame(build_as_of(cfg, tables, as_of), out, overwrite=overwrite)
