"""Stage `train`: fit the churn and tier models and their baselines out of time.

Reads the feature table; writes the fitted models (paths.models, a pickle read by the evaluate
and explain stages; the evaluate stage registers them in MLflow without any pickle), the
test-row predictions and a training summary (split, rows, trees, calibration choice, seconds,
data fingerprint).
"""

from __future__ import annotations

import logging

from features.registry import feature_groups
from models.training.split import SplitError
from models.training.train import TrainResult, train_models
from pipelines.config import Config
from pipelines.io import load_frame, save_frame, save_json, save_pickle

log = logging.getLogger(__name__)


def run(cfg: Config) -> TrainResult:
    table = load_frame(cfg.path(cfg.paths.features))
    features = feature_groups(cfg.features)
    try:
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
