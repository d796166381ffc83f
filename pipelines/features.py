"""Stage `features`: the feature table with labels over the month-end snapshot grid.

``run_as_of`` is the same computation for a single date on any contract directory
(`tierwise features --data DIR --as-of DATE --out FILE`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from features.build import iter_feature_table
from features.contract import Tables, data_end
from features.snapshots import snapshot_dates
from features.summary import FeatureSummary
from pipelines.config import Config
from pipelines.io import OutputExistsError, load_tables, save_frame_chunks, save_json
from pipelines.slices import iter_slice_features, read_contract_sliced

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


def run(cfg: Config) -> Path:
    tables = load_tables(cfg.path(cfg.paths.validated))
    summary = FeatureSummary()
    out = save_frame_chunks(
        summary.watch(iter_snapshot_features(cfg, tables)), cfg.path(cfg.paths.features)
    )
    save_json(summary.to_dict(), cfg.path(cfg.paths.features_summary))
    return out


def run_as_of(cfg: Config, data_dir: Path, as_of: pd.Timestamp, out: Path, overwrite: bool) -> Path:
    """Feature rows of every customer known at ``as_of`` (labels omitted) into ``out``."""
    if Path(out).exists() and not overwrite:  # before any work
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    chunk = cfg.features.chunk_customers
    with read_contract_sliced(data_dir, chunk, end=cfg.data.end) as book:
        rows = iter_slice_features(book, pd.DatetimeIndex([as_of]), cfg.defs, cfg.features)
        return save_frame_chunks(rows, out, overwrite=overwrite)
