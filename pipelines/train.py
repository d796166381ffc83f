"""Stage `train`: fit the churn and tier models and their baselines out of time.

Reads the feature table; writes the fitted models (paths.models, a pickle read by the evaluate
stage, which logs them to MLflow), the test-row predictions and a training summary (split, rows,
trees, calibration choice, seconds, data fingerprint).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

from features.registry import feature_groups
from models.train import FittedModels, TrainResult, train_models
from pipelines.config import Config
from pipelines.io import atomic_path, load_frame, save_frame, save_json

log = logging.getLogger(__name__)


def save_fitted(models: FittedModels, path: Path) -> Path:
    """Pickle the fitted models atomically (tierwise's own output, read back by evaluate)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(models, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load_fitted(path: Path) -> FittedModels:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no fitted models; run the train stage first")
    return pickle.loads(path.read_bytes())


def run(cfg: Config) -> TrainResult:
    table = load_frame(cfg.path(cfg.paths.features))
    features = feature_groups(cfg.features)
    result = train_models(table, cfg.split, cfg.train, cfg.labels.horizon_days, features)
    save_fitted(result.models, cfg.path(cfg.paths.models))
    save_frame(result.predictions, cfg.path(cfg.paths.predictions))
    save_json(result.summary, cfg.path(cfg.paths.train_summary))
    log.info("train: %s seconds", result.summary["seconds"])
    return result
