"""The sliced reader (pipelines/slices.py) on the shared small world: features as of a date in
slices equal the whole-table computation, from CSV and Parquet alike, and bad data in the last
slice stops it before any row is written. (`tierwise score` and `features --as-of` still read
whole tables: docs/scoring.md, "Memory".)"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from features.build import build_feature_table
from features.validation import ContractError, validate_tables
from pipelines.io import load_raw_tables, save_frame_chunks, save_tables
from pipelines.slices import iter_slice_features, read_contract_sliced

AS_OF = pd.Timestamp("2022-06-30")
CHUNK = 120


def _sliced_features(cfg, data_dir, out):
    with read_contract_sliced(data_dir, CHUNK) as book:
        rows = iter_slice_features(book, pd.DatetimeIndex([AS_OF]), cfg.defs, cfg.features)
        return save_frame_chunks(rows, out)


@pytest.fixture
def mixed_dir(small_world, tmp_path):
    """The small world on disk: loans and repayments as CSV, the other tables as Parquet."""
    data = save_tables(small_world.present(), tmp_path / "world")
    for name in ("loans", "repayments"):
        pd.read_parquet(data / f"{name}.parquet").to_csv(data / f"{name}.csv", index=False)
        (data / f"{name}.parquet").unlink()
    return data


def test_features_as_of_in_slices_equal_the_whole_book(mixed_dir, params_cfg, tmp_path):
    cfg = replace(params_cfg, features=replace(params_cfg.features, chunk_customers=CHUNK))
    out = _sliced_features(cfg, mixed_dir, tmp_path / "rows.parquet")
    tables, _ = validate_tables(load_raw_tables(mixed_dir))
    whole = build_feature_table(tables, pd.DatetimeIndex([AS_OF]), cfg.defs, cfg.features)
    pd.testing.assert_frame_equal(pd.read_parquet(out), whole, check_exact=True)


def test_bad_row_in_the_last_slice_fails_before_any_row_is_written(mixed_dir, params_cfg, tmp_path):
    cfg = replace(params_cfg, features=replace(params_cfg.features, chunk_customers=CHUNK))
    surveys = pd.read_parquet(mixed_dir / "surveys.parquet")
    last = surveys["customer_id"].astype(str).idxmax()  # the last customer: the last slice
    surveys.loc[last, "nps"] = 11.0
    surveys.to_parquet(mixed_dir / "surveys.parquet", index=False)
    out = tmp_path / "rows.parquet"
    with pytest.raises(ContractError) as info:
        _sliced_features(cfg, mixed_dir, out)
    assert (info.value.table, info.value.column, info.value.rule) == (
        "surveys",
        "nps",
        "in [0, 10]",
    )
    assert info.value.examples["row"].tolist() == [last + 1]
    assert not out.exists()
