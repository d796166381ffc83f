"""Customer sampling of the training slices, and the bounded train path (Parquet in batches,
float32 rows, test rows evaluated batch by batch) against the in-memory one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.contract import AS_OF, CUSTOMER_ID
from features.registry import feature_names
from models.spec import SampleSpec
from models.training.sampling import customer_strata, sample_customers, sample_share
from models.training.split import split_snapshots, tier_rows
from models.training.train import (
    data_fingerprint,
    sampled_rows,
    train_models,
    training_customers,
    training_dates,
)
from pipelines.train import train_parquet


def test_the_share_is_the_fraction_lowered_to_the_row_cap():
    assert sample_share(SampleSpec(fraction=1.0, max_rows=0), 10**9) == 1.0
    assert sample_share(SampleSpec(fraction=0.3, max_rows=0), 10) == 0.3
    assert sample_share(SampleSpec(fraction=1.0, max_rows=1000), 4000) == 0.25
    assert sample_share(SampleSpec(fraction=0.1, max_rows=1000), 4000) == 0.1
    assert sample_share(SampleSpec(fraction=1.0, max_rows=1000), 999) == 1.0
    with pytest.raises(ValueError):
        SampleSpec(fraction=0.0, max_rows=0)


@pytest.fixture(scope="module")
def training_rows(small_table, split_spec):
    split = split_snapshots(small_table, split_spec, 180)
    return split, tier_rows(small_table[small_table[AS_OF].isin(training_dates(split))])


def test_sampling_keeps_whole_customers_in_every_stratum(training_rows, small_table, train_spec):
    split, rows = training_rows
    strata = customer_strata(rows)
    kept = sample_customers(rows, 0.3, seed=5)
    assert len(set(kept)) == len(kept) and set(kept) <= set(strata.index)
    for stratum, members in strata.groupby(strata):
        n_kept = members.index.isin(kept).sum()
        assert n_kept == max(1, round(0.3 * len(members))), stratum
    sampled = sampled_rows(small_table, split, kept)
    chosen = rows[rows[CUSTOMER_ID].isin(kept)]  # every snapshot of a kept customer stays
    pd.testing.assert_frame_equal(sampled, chosen)
    np.testing.assert_array_equal(kept, sample_customers(rows, 0.3, seed=5))
    assert not np.array_equal(kept, sample_customers(rows, 0.3, seed=6))
    assert training_customers(small_table, split, train_spec) is None  # params.yaml: all


def _float32(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    return table.astype({name: "float32" for name in names})


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_the_bounded_path_fits_the_in_memory_models(
    fraction, small_table, split_spec, train_spec, model_features, params_cfg, tmp_path, trained
):
    """Whole book: float64, the very models of the in-memory path (``trained``); a sampled book
    (float32: "auto"): the in-memory models on the float32 table with the same sample."""
    spec = dataclasses.replace(train_spec, sample=SampleSpec(fraction, 0), batch_rows=997)
    cfg = dataclasses.replace(params_cfg, split=split_spec, train=spec)
    path = tmp_path / "features.parquet"
    small_table.to_parquet(path, index=False)
    bounded = train_parquet(cfg, path)
    if fraction == 1.0:
        memory = trained
    else:
        table = _float32(small_table, feature_names(params_cfg.features))
        memory = train_models(table, split_spec, spec, 180, model_features)
    pd.testing.assert_frame_equal(bounded.predictions, memory.predictions)
    # the fingerprint the stage took of the whole table read back (pipelines.io.load_frame)
    assert bounded.summary.data_fingerprint == data_fingerprint(pd.read_parquet(path))
    assert bounded.summary.test_rows == trained.summary.test_rows  # the test set is never sampled
    assert bounded.summary.churn == memory.summary.churn
    full = trained.summary.churn.fit_rows
    if fraction == 1.0:
        assert bounded.summary.churn.fit_rows == full
    else:
        assert 0.4 * full < bounded.summary.churn.fit_rows < 0.6 * full
