"""Stage `features`: the feature table with labels over the month-end snapshot grid.

``run_as_of`` is the same computation for a single date on any contract directory
(`tierwise features --data DIR --as-of DATE --out FILE`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from features.build import build_feature_table, iter_feature_table
from features.contract import Tables, data_end
from features.snapshots import count_known, snapshot_dates
from features.summary import FeatureSummary
from pipelines.config import Config
from pipelines.io import (
    BadRequestError,
    check_output,
    load_json,
    load_tables,
    read_contract,
    save_frame,
    save_frame_chunks,
    save_json,
)

log = logging.getLogger(__name__)


def validated_end(cfg: Config) -> pd.Timestamp | None:
    """The data's end the validate stage decided (future-dated records aside), if recorded."""
    path = cfg.path(cfg.paths.validation_report)
    recorded = load_json(path).get("data_end") if path.exists() else None
    return pd.Timestamp(recorded) if recorded else None


def iter_snapshot_features(
    cfg: Config, tables: Tables, end: pd.Timestamp | None = None
) -> Iterator[pd.DataFrame]:
    end = cfg.data.end or end or data_end(tables)
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


def run(cfg: Config) -> Path:
    tables = load_tables(cfg.path(cfg.paths.validated))
    summary = FeatureSummary()
    out = save_frame_chunks(
        summary.watch(iter_snapshot_features(cfg, tables, validated_end(cfg))),
        cfg.path(cfg.paths.features),
    )
    save_json(summary.to_dict(), cfg.path(cfg.paths.features_summary))
    return out


def run_as_of(cfg: Config, data_dir: Path, as_of: pd.Timestamp, out: Path, overwrite: bool) -> Path:
    """Feature rows of every customer known at ``as_of`` (labels omitted) into ``out``.

    Refused before any work: an --out that exists (without ``overwrite``) or that is not
    .parquet or .csv; after validation, a date at which no customer is known (exit 2).
    """
    check_output(out, overwrite)
    tables, _ = read_contract(data_dir, end=cfg.data.end, cutoff=cfg.data.future_cutoff())
    if count_known(tables, as_of)[0] == 0:
        raise BadRequestError(f"no customer is known at {as_of:%Y-%m-%d} in {data_dir}")
    rows = build_feature_table(tables, pd.DatetimeIndex([as_of]), cfg.defs, cfg.features)
    return save_frame(rows, out, overwrite=overwrite)
