"""Stage `train`: fit the churn and tier models and their baselines out of time.

Reads the feature table; writes the fitted models (paths.models, a pickle read by the evaluate
and explain stages; the evaluate stage registers them in MLflow without any pickle), the
test-row predictions and a training summary (split, rows, trees, calibration choice, seconds,
data fingerprint).

A Parquet table is read in batches of ``train.batch_rows`` rows and never whole: its key
columns first (the split and the customer sample), then the sampled training rows as float32,
then every batch once more for the fingerprint and the test predictions (docs/models.md,
"Training large books"). A CSV table is loaded whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import AS_OF, CUSTOMER_ID
from features.labels import LABEL_AVAILABLE
from features.registry import TIER, feature_groups
from models.training.split import SplitError
from models.training.train import (
    KEY_COLUMNS,
    TRAINING_COLUMNS,
    TrainResult,
    train_in_batches,
    train_models,
)
from pipelines.config import Config
from pipelines.io import load_frame, save_frame, save_json, save_pickle

log = logging.getLogger(__name__)


def _batches(
    path: Path, batch_rows: int, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The Parquet file's rows in order, ``batch_rows`` at a time, as pandas frames."""
    source = pq.ParquetFile(path)
    for batch in source.iter_batches(batch_size=batch_rows, columns=columns):
        yield pa.Table.from_batches([batch]).to_pandas()


def read_keys(path: Path) -> pd.DataFrame:
    """KEY_COLUMNS of every row (the split and the sample need nothing else); the ids and tiers
    as categories, so that a million customers' keys take a few hundred MB, not gigabytes."""
    text = [c for c in (CUSTOMER_ID, TIER) if c in KEY_COLUMNS]
    return pq.read_table(path, columns=list(KEY_COLUMNS), read_dictionary=text).to_pandas()


def train_parquet(cfg: Config, path: Path) -> TrainResult:
    features = feature_groups(cfg.features)
    columns = pq.ParquetFile(path).schema_arrow.names
    wanted = [c for c in columns if c in features or c in TRAINING_COLUMNS]
    batch_rows = cfg.train.batch_rows

    def read_training(dates: pd.DatetimeIndex, customers: np.ndarray | None):
        for batch in _batches(path, batch_rows, wanted):
            rows = batch[batch[AS_OF].isin(dates) & batch[LABEL_AVAILABLE].astype(bool)]
            if customers is not None:
                rows = rows[rows[CUSTOMER_ID].isin(customers)]
            yield rows

    return train_in_batches(
        read_keys(path),
        read_training,
        lambda: _batches(path, batch_rows),
        columns,
        cfg.split,
        cfg.train,
        cfg.labels.horizon_days,
        features,
    )


def run(cfg: Config) -> TrainResult:
    path = cfg.path(cfg.paths.features)
    try:
        if path.suffix.lower() == ".parquet":
            result = train_parquet(cfg, path)
        else:
            table = load_frame(path)
            features = feature_groups(cfg.features)
            result = train_models(table, cfg.split, cfg.train, cfg.labels.horizon_days, features)
    except SplitError as err:  # say what the minimum span is with these params
        raise SplitError(f"{err}. {minimum_span(cfg)}") from err
    save_pickle(result.models, cfg.path(cfg.paths.models))
    save_frame(result.predictions, cfg.path(cfg.paths.predictions))
    save_json(result.summary.to_json(), cfg.path(cfg.paths.train_summary))
    log.info("train: %s", result.summary.seconds)
    return result


def minimum_span(cfg: Config) -> str:
    """The smallest data span the split can use with ``cfg``, in days and months."""
    h, warm = cfg.labels.horizon_days, cfg.warmup_days
    parts = 1 + (cfg.split.validation_snapshots or 1) + (cfg.split.test_snapshots or 1)
    days = warm + 31 * (parts - 1) + 2 * h
    return (
        f"With these params: warm-up {warm} days + {parts} month-ends + 2 x H ({h} days): at "
        f"least ~{days} days (~{days / 30.44:.0f} months) from data.start to data.end"
    )
