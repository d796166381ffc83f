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
from features.observation import observation_start
from features.snapshots import snapshot_dates
from features.summary import FeatureSummary
from pipelines.config import Config
from pipelines.io import (
    BadRequestError,
    check_output,
    load_json,
    load_tables,
    save_frame_chunks,
    save_json,
)
from pipelines.slices import iter_slice_features, read_contract_sliced

log = logging.getLogger(__name__)


def validated_end(cfg: Config) -> pd.Timestamp | None:
    """The data's end the validate stage decided (future-dated records aside), if recorded."""
    path = cfg.path(cfg.paths.validation_report)
    recorded = load_json(path).get("data_end") if path.exists() else None
    return pd.Timestamp(recorded) if recorded else None


def warmup_warning(cfg: Config, start: pd.Timestamp) -> str:
    """A warning when snapshots.start lies before data.start + warm-up ('' otherwise)."""
    ready = start + pd.Timedelta(days=cfg.warmup_days)
    if cfg.snapshots.start is None or cfg.snapshots.start >= ready:
        return ""
    return (
        f"snapshots.start {cfg.snapshots.start:%Y-%m-%d} is before data.start {start:%Y-%m-%d} "
        f"+ warm-up {cfg.warmup_days} days = {ready:%Y-%m-%d}: windows reaching before "
        "data.start are not observed (NaN) at the first snapshots"
    )


def iter_snapshot_features(
    cfg: Config,
    tables: Tables,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> Iterator[pd.DataFrame]:
    """The feature table's slices: snapshots from ``start`` (the observation start; inferred
    when None) + warm-up to the data's ``end`` (params, else the validate stage's, else the
    latest date in the tables)."""
    end = cfg.data.end or end or data_end(tables)
    start = start if start is not None else observation_start(tables, cfg.data.start)
    first = cfg.snapshots.start or start + pd.Timedelta(days=cfg.warmup_days)
    dates = snapshot_dates(tables, first, cfg.snapshots.end, cfg.warmup_days, end)
    log.info("%d snapshots from %s to %s", len(dates), dates[0].date(), dates[-1].date())
    yield from iter_feature_table(
        tables,
        dates,
        cfg.defs,
        cfg.features,
        data_end=end,
        chunk_customers=cfg.features.chunk_customers,
        observed_from=start,
    )


def run(cfg: Config) -> Path:
    tables = load_tables(cfg.path(cfg.paths.validated))
    start = observation_start(tables, cfg.data.start)
    warnings = [w for w in (warmup_warning(cfg, start),) if w]
    for warning in warnings:
        log.warning(warning)
    summary = FeatureSummary()
    out = save_frame_chunks(
        summary.watch(iter_snapshot_features(cfg, tables, start, validated_end(cfg))),
        cfg.path(cfg.paths.features),
    )
    extra = {"data_start": f"{start:%Y-%m-%d}", "warmup_days": cfg.warmup_days}
    save_json(
        summary.to_dict() | extra | {"warnings": warnings}, cfg.path(cfg.paths.features_summary)
    )
    return out


def run_as_of(cfg: Config, data_dir: Path, as_of: pd.Timestamp, out: Path, overwrite: bool) -> Path:
    """Feature rows of every customer known at ``as_of`` (labels omitted) into ``out``, read,
    validated and built one slice of ``features.chunk_customers`` customers at a time.

    Refused before any work: an --out that exists (without ``overwrite``) or that is not
    .parquet or .csv; after validation, a date at which no customer is known (exit 2).
    """
    check_output(out, overwrite)
    with read_contract_sliced(
        data_dir, cfg.features.chunk_customers, cfg.data.end, cfg.data.future_cutoff()
    ) as book:
        if book.count_known(as_of)[0] == 0:
            raise BadRequestError(f"no customer is known at {as_of:%Y-%m-%d} in {data_dir}")
        start = book.observation_start(cfg.data.start)  # windows before it are NaN, as in training
        rows = iter_slice_features(
            book, pd.DatetimeIndex([as_of]), cfg.defs, cfg.features, observed_from=start
        )
        return save_frame_chunks(rows, out, overwrite=overwrite)
