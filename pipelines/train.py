"""Stage `train`: fit the churn and tier models and their baselines out of time.

Reads the feature table; writes the fitted models (paths.models, a pickle read by the evaluate
and explain stages; the evaluate stage registers them in MLflow without any pickle), the
test-row predictions and a training summary (split, rows, trees, calibration choice, seconds,
data fingerprint).
"""

from __future__ import annotations

import logging

from features.registry import feature_groups
from models.training.train import TrainResult, train_models
from pipelines.config import Config
from pipelines.io import load_frame, save_frame, save_json, save_pickle

log = logging.getLogger(__name__)


def run(cfg: Config) -> TrainResult:
    table = load_frame(cfg.path(cfg.paths.features))
    features = feature_groups(cfg.features)
    result = train_models(table, cfg.split, cfg.train, cfg.labels.horizon_days, features)
    save_pickle(result.models, cfg.path(cfg.paths.models))
    save_frame(result.predictions, cfg.path(cfg.paths.predictions))
    save_json(result.summary.to_json(), cfg.path(cfg.paths.train_summary))
    log.info("train: %s", result.summary.seconds)
    return result
