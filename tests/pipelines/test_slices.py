"""The sliced reader (pipelines/slices.py), which `tierwise score` and `features --as-of` read
with, on the shared small world: features as of a date in slices equal the whole-table
computation, from CSV and Parquet alike; the report (future-dated rule included), the
observation window, the customers known and the monitor's table volumes equal
``read_contract``'s; the per-file problems get ``read_contract``'s errors; bad data in the last
slice stops it before any row is written."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from features.build import build_feature_table
from features.observation import observation_start
from features.snapshots import count_known
from features.validation import ContractError, validate_tables
from models.monitoring.quality import TableVolumes, table_profile
from pipelines import features as features_stage
from pipelines.io import load_raw_tables, read_contract, save_frame_chunks, save_tables
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


def _future_dated(data_dir, cutoff):
    """Two interactions dated after ``cutoff``: future-dated, kept, not in the data's end."""
    path = data_dir / "interactions.parquet"
    interactions = pd.read_parquet(path)
    late = interactions.index[[3, len(interactions) - 2]]
    interactions.loc[late, "timestamp"] = cutoff + pd.Timedelta(days=40)
    interactions.to_parquet(path, index=False)


@pytest.mark.parametrize("start", [None, "2021-03-01"])  # data.start inferred, and set
def test_sliced_read_equals_the_whole_table_read(mixed_dir, params_cfg, tmp_path, start):
    cutoff = pd.Timestamp("2022-09-30")
    _future_dated(mixed_dir, cutoff)
    given = None if start is None else pd.Timestamp(start)
    tables, report = read_contract(mixed_dir, cutoff=cutoff)
    volumes = TableVolumes(AS_OF, params_cfg.monitor.window_days)
    with read_contract_sliced(mixed_dir, CHUNK, cutoff=cutoff) as book:
        assert len(book) == 5  # 500 customers in slices of at most 120
        assert book.report == report
        assert any(w["rule"].startswith("future-dated") for w in report["warnings"])
        assert book.count_known(AS_OF) == count_known(tables, AS_OF)
        observed = book.observation_start(given)
        assert observed == observation_start(tables, given)
        rows = iter_slice_features(
            book, pd.DatetimeIndex([AS_OF]), params_cfg.defs, params_cfg.features,
            observed_from=observed, watch=volumes.add,
        )  # fmt: skip
        sliced = pd.concat(list(rows), ignore_index=True)
    whole = build_feature_table(
        tables, pd.DatetimeIndex([AS_OF]), params_cfg.defs, params_cfg.features,
        observed_from=observed,
    )  # fmt: skip
    pd.testing.assert_frame_equal(sliced, whole, check_exact=True)
    assert volumes.profile() == table_profile(tables, AS_OF, params_cfg.monitor.window_days)


def test_features_as_of_command_reads_in_slices(mixed_dir, params_cfg, tmp_path):
    cfg = replace(params_cfg, features=replace(params_cfg.features, chunk_customers=CHUNK))
    out = features_stage.run_as_of(cfg, mixed_dir, AS_OF, tmp_path / "rows.csv", False)
    tables, _ = read_contract(mixed_dir, cutoff=cfg.data.future_cutoff())
    start = observation_start(tables, cfg.data.start)
    whole = build_feature_table(
        tables, pd.DatetimeIndex([AS_OF]), cfg.defs, cfg.features, observed_from=start
    )
    rows = pd.read_csv(out, parse_dates=["as_of"], dtype={"customer_id": str})
    assert rows["customer_id"].tolist() == whole["customer_id"].tolist()
    pd.testing.assert_frame_equal(rows, whole, check_exact=False, rtol=1e-12, check_dtype=False)


def _errors(data_dir, tmp_path):
    """(read_contract's error, the sliced reader's error) on ``data_dir``."""
    with pytest.raises(ContractError) as whole:
        read_contract(data_dir)
    with pytest.raises(ContractError) as sliced, read_contract_sliced(data_dir, CHUNK):
        pass
    return whole.value, sliced.value


def test_file_problems_get_the_whole_table_readers_errors(mixed_dir, tmp_path):
    loans = mixed_dir / "loans.csv"
    header = loans.read_text(encoding="utf-8").splitlines()[0]
    loans.write_text(header + "\n", encoding="utf-8")  # a required table without rows
    whole, sliced = _errors(mixed_dir, tmp_path)
    assert str(sliced) == str(whole) and sliced.rule == "required table has rows"

    loans.write_bytes(b'\x89PNG\r\n\x1a\n\x00\x00garbage,"unclosed\n1,2,3,4\n')
    whole, sliced = _errors(mixed_dir, tmp_path)
    assert str(sliced) == str(whole)


def test_an_optional_table_without_rows_is_read_as_absent(mixed_dir, params_cfg):
    surveys = pd.read_parquet(mixed_dir / "surveys.parquet")
    surveys.head(0).to_parquet(mixed_dir / "surveys.parquet", index=False)
    tables, report = read_contract(mixed_dir)
    with read_contract_sliced(mixed_dir, CHUNK) as book:
        assert book.report == report and "surveys" not in book.report["tables"]
        assert book.slice(0).surveys is None


def test_a_csv_pyarrow_refuses_but_pandas_reads_is_read_as_pandas_reads_it(mixed_dir, tmp_path):
    """A row with fewer cells than the header: pandas fills it with empty cells, pyarrow's
    streaming reader refuses it; the sliced reader falls back to pandas for that file."""
    path = mixed_dir / "repayments.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[7] = lines[7].rsplit(",", 1)[0]  # the last cell (amount_paid, nullable) left out
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tables, report = read_contract(mixed_dir)
    with read_contract_sliced(mixed_dir, CHUNK) as book:
        assert book.report == report
        sliced = pd.concat([book.slice(k).repayments for k in range(len(book))])
    key = ["loan_id", "due_date"]
    pd.testing.assert_frame_equal(
        sliced.sort_values(key, ignore_index=True),
        tables.repayments.sort_values(key, ignore_index=True),
    )


def test_the_cache_files_read_back_what_was_written(tmp_path):
    """The slices' temporary Parquet (no dictionary pages, no statistics) gives back the typed
    frame exactly: text with missing cells, dates, integers, floats, booleans."""
    from pipelines.slices import _read_typed, _save_frame

    frame = pd.DataFrame(
        {
            "customer_id": ["C1", None, "C3", "C1"],
            "day": pd.to_datetime(["2021-01-02", None, "2022-12-31", "2020-01-01"]),
            "count": pd.array([1, 2, 3, 4], dtype="int64"),
            "amount": [1.5, float("nan"), -2.25, 1e300],
            "flag": [True, False, True, False],
        }
    )
    _save_frame(frame, tmp_path / "part")
    back = _read_typed(tmp_path / "part.parquet")
    pd.testing.assert_frame_equal(back, frame)
    assert back["customer_id"].isna().tolist() == [False, True, False, False]


@pytest.mark.parametrize(
    "cells",
    [
        [" C1", "C1 ", None, "", "  ", "C2", "\x1fC3", "C2"],  # \x1f: whitespace to str.strip()
        ["Ünï ", " x", None, "x", "\u3000y"],  # not ASCII: Python's own strip
        [1, 2, None, 2],  # numeric ids are text to the contract
        [None, None],
    ],
)
def test_a_tables_customer_ids_are_the_validated_ones(tmp_path, cells):
    """The ids the slices are cut by (distinct in Arrow, then stripped) are those validation
    gives the table's customer_id column: stripped, empty and missing dropped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.validation import stripped_text
    from pipelines.slices import _table_ids

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"customer_id": pa.array(cells), "n": range(len(cells))}), path)
    validated = stripped_text(pd.Series(cells, dtype=object)).dropna().unique()
    assert sorted(_table_ids(path).to_pylist()) == sorted(validated)


def test_worker_processes_give_the_same_book_report_and_error(mixed_dir, params_cfg):
    """`tierwise score --workers 2`: the tables split and the slices validated in two worker
    processes give the one-process book, report and warnings; a rule broken in two slices gives
    the whole-table reader's error (counts added, the file's first rows), in slice order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    cutoff = pd.Timestamp("2022-09-30")
    _future_dated(mixed_dir, cutoff)
    dates = pd.DatetimeIndex([AS_OF])
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        with read_contract_sliced(mixed_dir, CHUNK, cutoff=cutoff) as one:
            rows = iter_slice_features(one, dates, params_cfg.defs, params_cfg.features)
            expected = pd.concat(list(rows), ignore_index=True)
            report = one.report
        with read_contract_sliced(mixed_dir, CHUNK, cutoff=cutoff, pool=pool) as two:
            assert two.report == report and len(two) == 5
            rows = iter_slice_features(two, dates, params_cfg.defs, params_cfg.features)
            pd.testing.assert_frame_equal(pd.concat(list(rows), ignore_index=True), expected)

        surveys = pd.read_parquet(mixed_dir / "surveys.parquet")
        ids = surveys["customer_id"].astype(str)
        bad = [ids.idxmax(), ids.idxmin(), ids.idxmax() - 1]  # the last slice, the first, ...
        surveys.loc[bad, "nps"] = 11.0
        surveys.to_parquet(mixed_dir / "surveys.parquet", index=False)
        with pytest.raises(ContractError) as whole:
            read_contract(mixed_dir, cutoff=cutoff)
        reader = read_contract_sliced(mixed_dir, CHUNK, cutoff=cutoff, pool=pool)
        with pytest.raises(ContractError) as sliced, reader:
            pass
    assert str(sliced.value) == str(whole.value) and "nps" in str(whole.value)
    assert sliced.value.examples.equals(whole.value.examples)
