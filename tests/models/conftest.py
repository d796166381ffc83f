"""A small synthetic world, its feature table and one training run, built once per session."""

from __future__ import annotations

import pandas as pd
import pytest

from features.build import build_feature_table
from features.contract import Tables, data_end
from features.registry import feature_groups
from features.snapshots import snapshot_dates
from features.spec import Definitions, FeatureSpec
from features.synthetic import WorldSpec, generate_world
from models.spec import BoosterParams, SplitSpec, TrainSpec
from models.train import TrainResult, train_models

FAST_BOOSTER = BoosterParams(
    n_estimators=300, learning_rate=0.1, early_stopping_rounds=30, min_child_samples=20
)


@pytest.fixture(scope="session")
def small_world() -> Tables:
    return generate_world(WorldSpec(customers=500, years=3, seed=11))


@pytest.fixture(scope="session")
def small_table(small_world: Tables) -> pd.DataFrame:
    defs, end = Definitions(), data_end(small_world)
    dates = snapshot_dates(small_world, None, None, defs.active_window_days, end)
    return build_feature_table(small_world, dates, defs, FeatureSpec(), data_end=end)


@pytest.fixture(scope="session")
def split_spec() -> SplitSpec:
    return SplitSpec(test_snapshots=3, validation_snapshots=2)


@pytest.fixture(scope="session")
def train_spec() -> TrainSpec:
    return TrainSpec(seed=3, churn=FAST_BOOSTER, tier=FAST_BOOSTER)


@pytest.fixture(scope="session")
def model_features() -> dict[str, str]:
    return feature_groups(FeatureSpec())


@pytest.fixture(scope="session")
def trained(small_table, split_spec, train_spec, model_features) -> TrainResult:
    return train_models(small_table, split_spec, train_spec, 180, model_features)
