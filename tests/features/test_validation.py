"""The input contract: every hard rule raises its ContractError, soft problems are reported.

Tables are tiny and hand-made; they go through CSV (or Parquet) files and
``pipelines.io.load_raw_tables`` so the reading path is covered too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.contract import KNOWN_KINDS, Tables
from features.validation import ContractError, ValidationReport, _lower, validate_tables
from pipelines.io import load_raw_tables

COLUMNS = {
    "loans": [
        "loan_id", "customer_id", "origination_date", "principal", "product", "interest_rate",
        "term_months", "closed_date",
    ],
    "customers": ["customer_id", "onboarding_date", "segment", "industry", "region"],
    "repayments": ["loan_id", "due_date", "amount_due", "paid_date", "amount_paid"],
    "interactions": ["customer_id", "timestamp", "channel", "kind"],
    "surveys": ["customer_id", "survey_date", "satisfaction", "nps"],
}  # fmt: skip
ROWS = {
    "loans": [
        ["L1", "C1", "2023-01-05", "100000", "term_loan", "0.065", "24", "2024-01-05"],
        ["L2", "C2", "2023-03-01", "50000.5", "overdraft", "0.09", "12", ""],
        ["L3", "C1", "2023-06-15", "25000", "", "", "", ""],
    ],
    "customers": [
        ["C1", "2022-01-10", "SME", "retail", "north"],
        ["C2", "2022-11-02", "corporate", "", "south"],
        ["C3", "2023-04-01", "", "", ""],
    ],
    "repayments": [
        ["L1", "2023-02-05", "4500", "2023-02-04", "4500"],
        ["L1", "2023-03-05", "4500", "", ""],
        ["L2", "2023-04-01", "4300.25", "2023-04-03", "4300.25"],
    ],
    "interactions": [
        ["C1", "2023-02-01T10:30:00", "visit", "inquiry"],
        ["C4", "2023-05-01T09:00:00", "call", "referral"],
        ["C2", "2023-05-02T16:45:10", "email", "complaint"],
    ],
    "surveys": [
        ["C1", "2023-06-30", "4", "9"],
        ["C2", "2023-07-01", "5", ""],
    ],
}


def world(**changes: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """The valid five-table world as text frames; a keyword replaces (or, with None, drops) one."""
    frames = {name: pd.DataFrame(ROWS[name], columns=COLUMNS[name]) for name in ROWS}
    frames.update(changes)
    return {name: df for name, df in frames.items() if df is not None}


def with_cell(table: str, row: int, column: str, value: str) -> pd.DataFrame:
    """The valid ``table`` with one cell changed; ``row`` counts data rows from 1."""
    df = world()[table].copy()
    df.loc[row - 1, column] = value
    return df


def write_csv(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> Path:
    for name, df in frames.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    return tmp_path


def load(tmp_path: Path, end: str | None = None, **changes) -> tuple[Tables, ValidationReport]:
    raw = load_raw_tables(write_csv(tmp_path, world(**changes)))
    return validate_tables(raw, end=None if end is None else pd.Timestamp(end))


def contract_error(tmp_path: Path, **changes) -> ContractError:
    with pytest.raises(ContractError) as info:
        load(tmp_path, **changes)
    return info.value


def assert_names(err: ContractError, table: str, column: str, rule: str, row: int, value: str):
    """The message names table, column and rule, and shows the row with its value."""
    message = str(err)
    header = f"table '{table}', column '{column}', rule '{rule}'"
    assert header in message, message
    block = message.split(header, 1)[1].split("\n- ", 1)[0]
    assert re.search(rf"^\s+{row}\s+{re.escape(value)}\s*$", block, re.MULTILINE), message
    failure = next(f for f in err.failures if (f.table, f.column, f.rule) == (table, column, rule))
    assert row in failure.examples["row"].tolist()


# --- the valid world -----------------------------------------------------------------------------


def test_valid_directory_is_typed(tmp_path):
    tables, report = load(tmp_path)
    loans = tables.loans
    assert list(loans.columns) == COLUMNS["loans"]
    assert loans["loan_id"].tolist() == ["L1", "L2", "L3"]
    assert loans["loan_id"].dtype == object and isinstance(loans["loan_id"].iloc[0], str)
    assert loans["origination_date"].dtype == "datetime64[ns]"
    assert loans["principal"].tolist() == [100000.0, 50000.5, 25000.0]
    assert loans["term_months"].dtype == "float64" and np.isnan(loans["term_months"].iloc[2])
    assert loans["product"].isna().tolist() == [False, False, True]
    assert loans["closed_date"].isna().tolist() == [False, True, True]
    assert tables.interactions["timestamp"].iloc[2] == pd.Timestamp("2023-05-02 16:45:10")
    assert tables.repayments["paid_date"].isna().sum() == 1
    assert report.warnings == []
    assert report.tables["loans"] == {"rows_in": 3, "rows_out": 3, "ignored_columns": []}
    assert loans.index.equals(pd.RangeIndex(3))


def test_loans_only_with_required_columns_works(tmp_path):
    loans = world()["loans"][["loan_id", "customer_id", "origination_date", "principal"]]
    raw = load_raw_tables(write_csv(tmp_path, {"loans": loans}))
    tables, report = validate_tables(raw)
    assert tables.customers is None and tables.repayments is None and tables.surveys is None
    assert list(tables.loans.columns) == ["loan_id", "customer_id", "origination_date", "principal"]
    assert list(report.tables) == ["loans"]


def test_term_without_closed_date_does_not_invent_closed_date(tmp_path):
    tables, _ = load(tmp_path, loans=world()["loans"].drop(columns="closed_date"))
    assert "closed_date" not in tables.loans.columns
    assert tables.loans["term_months"].tolist()[:2] == [24.0, 12.0]


def test_extra_columns_are_dropped_and_reported(tmp_path):
    loans = world()["loans"].assign(branch="Leeds", score="n/a")
    tables, report = load(tmp_path, loans=loans)
    assert "branch" not in tables.loans.columns and "score" not in tables.loans.columns
    assert report.tables["loans"]["ignored_columns"] == ["branch", "score"]


def test_strings_are_stripped_and_vocabulary_lower_cased(tmp_path):
    loans = with_cell("loans", 1, "loan_id", "  L1 ")
    interactions = with_cell("interactions", 1, "kind", " Complaint ")
    tables, report = load(tmp_path, loans=loans, interactions=interactions)
    assert tables.loans["loan_id"].iloc[0] == "L1"
    assert tables.interactions["kind"].iloc[0] == "complaint"
    assert report.warnings == []


def test_text_is_stripped_once_per_distinct_value_with_the_same_result():
    from features.validation import _as_text, _strip

    cells = ["  L1 ", "L1", " L1", "", "   ", None, np.nan, "L2", "  L1 ", "\tL3\n", "L2"]
    strings = pd.Series(cells, index=range(10, 21), dtype=object)
    mixed = pd.Series([" 7 ", 7, 7.0, None, "x "], dtype=object)  # not all text: per cell
    for column in (strings, mixed, strings.iloc[:0]):
        fast, plain = _as_text(column), _strip(column)
        pd.testing.assert_series_equal(fast, plain, check_names=False)
    text = _as_text(strings)
    assert text.tolist()[:3] == ["L1", "L1", "L1"] and text.iloc[3:7].isna().all()
    assert text.tolist()[7:] == ["L2", "L1", "L3", "L2"]


def test_timestamps_keep_time_and_offsets_become_utc(tmp_path):
    interactions = with_cell("interactions", 1, "timestamp", "2023-02-01T10:30:00+02:00")
    interactions.loc[1, "timestamp"] = "2023-05-01"
    tables, _ = load(tmp_path, interactions=interactions)
    stamps = tables.interactions["timestamp"]
    assert stamps.dtype == "datetime64[ns]"
    assert stamps.tolist()[:2] == [pd.Timestamp("2023-02-01 08:30"), pd.Timestamp("2023-05-01")]


def test_parquet_typed_input_gives_the_same_tables(tmp_path):
    (tmp_path / "csv").mkdir()
    csv_tables, _ = load(tmp_path / "csv")
    typed = {name: df.copy() for name, df in csv_tables.present().items()}
    loans = typed["loans"]
    typed["loans"] = loans.assign(
        origination_date=loans["origination_date"] + pd.Timedelta(hours=13),  # time is dropped
        closed_date=loans["closed_date"].dt.date,  # Parquet date32 reads back as datetime.date
        term_months=loans["term_months"].astype("Int64"),
    )
    parquet_dir = tmp_path / "parquet"
    parquet_dir.mkdir()
    for name, df in typed.items():
        df.to_parquet(parquet_dir / f"{name}.parquet", index=False)
    parquet_tables, _ = validate_tables(load_raw_tables(parquet_dir))
    for name, df in csv_tables.present().items():
        pd.testing.assert_frame_equal(parquet_tables.get(name), df, check_index_type=False)


# --- hard rules: one bad file each --------------------------------------------------------------

BAD_CELLS = [
    # table, row, column, bad value, rule, value shown
    ("loans", 2, "origination_date", "2023-13-01", "date YYYY-MM-DD", "2023-13-01"),
    ("loans", 1, "origination_date", "05/01/2023", "date YYYY-MM-DD", "05/01/2023"),
    ("loans", 3, "closed_date", "2023-7-1", "date YYYY-MM-DD", "2023-7-1"),
    ("loans", 3, "principal", "1,000", "number", "1,000"),
    ("loans", 2, "principal", "-10", "> 0", "-10"),
    ("loans", 1, "principal", "0", "> 0", "0"),
    ("loans", 1, "interest_rate", "6.5", "in [0, 1)", "6.5"),
    ("loans", 2, "term_months", "0", "> 0", "0"),
    ("loans", 2, "term_months", "12.5", "whole number", "12.5"),
    ("loans", 3, "loan_id", "L1", "unique", "L1"),
    ("loans", 2, "customer_id", "", "not empty", "<empty>"),
    ("loans", 3, "customer_id", "C9", "customer_id known in customers", "C9"),
    ("loans", 1, "closed_date", "2022-12-31", "closed_date >= origination_date",
     "2022-12-31 < origination_date 2023-01-05"),
    ("customers", 3, "customer_id", "C2", "unique", "C2"),
    ("customers", 2, "onboarding_date", "2022-11-31", "date YYYY-MM-DD", "2022-11-31"),
    ("repayments", 2, "loan_id", "L9", "loan_id known in loans", "L9"),
    ("repayments", 1, "due_date", "2022-12-05", "due_date >= origination_date of its loan",
     "2022-12-05 < origination_date 2023-01-05"),
    ("repayments", 3, "amount_due", "-1", ">= 0", "-1"),
    ("repayments", 1, "amount_paid", "-4500", ">= 0", "-4500"),
    ("repayments", 1, "paid_date", "yesterday", "date YYYY-MM-DD", "yesterday"),
    ("interactions", 2, "timestamp", "not a time", "timestamp ISO 8601", "not a time"),
    ("interactions", 1, "channel", "", "not empty", "<empty>"),
    ("surveys", 1, "satisfaction", "6", "in [1, 5]", "6"),
    ("surveys", 2, "nps", "11", "in [0, 10]", "11"),
    ("surveys", 1, "nps", "-1", "in [0, 10]", "-1"),
]  # fmt: skip


@pytest.mark.parametrize(("table", "row", "column", "value", "rule", "shown"), BAD_CELLS)
def test_bad_cell_raises_contract_error(tmp_path, table, row, column, value, rule, shown):
    err = contract_error(tmp_path, **{table: with_cell(table, row, column, value)})
    n_failed = 2 if rule == "unique" else 1  # both rows holding a duplicated key are shown
    assert (err.table, err.column, err.rule, err.n_failed) == (table, column, rule, n_failed)
    assert len(err.failures) == 1, str(err)
    assert_names(err, table, column, rule, row, shown)


def test_missing_loans_table(tmp_path):
    err = contract_error(tmp_path, loans=None)
    assert (err.table, err.rule) == ("loans", "required table present")
    assert "table 'loans'" in str(err) and "table is missing" in str(err)


@pytest.mark.parametrize(("table", "column"), [("loans", "principal"), ("surveys", "nps")])
def test_missing_required_column(tmp_path, table, column):
    err = contract_error(tmp_path, **{table: world()[table].drop(columns=column)})
    assert (err.table, err.column, err.rule) == (table, column, "required column present")
    assert f"table '{table}', column '{column}', rule 'required column present'" in str(err)


def test_unparseable_cell_is_not_also_reported_as_empty(tmp_path):
    err = contract_error(tmp_path, loans=with_cell("loans", 1, "principal", "lots"))
    assert [f.rule for f in err.failures] == ["number"]


def test_several_failures_are_listed_in_one_error(tmp_path):
    loans = with_cell("loans", 2, "principal", "-5")
    loans.loc[0, "origination_date"] = "2023/01/05"
    surveys = with_cell("surveys", 2, "satisfaction", "0")
    err = contract_error(tmp_path, loans=loans, surveys=surveys)
    message = str(err)
    assert message.startswith("input data breaks the contract (3 problems)")
    found = {(f.table, f.column, f.rule) for f in err.failures}
    assert found == {
        ("loans", "origination_date", "date YYYY-MM-DD"),
        ("loans", "principal", "> 0"),
        ("surveys", "satisfaction", "in [1, 5]"),
    }
    assert message.count("\n- table ") == 3


def test_more_than_five_bad_rows_show_five_and_the_count(tmp_path):
    loans = pd.DataFrame(
        {
            "loan_id": [f"L{i}" for i in range(1, 9)],
            "customer_id": "C1",
            "origination_date": "2023-01-05",
            "principal": ["100", "-1", "-2", "-3", "-4", "-5", "-6", "-7"],
        }
    )
    raw = load_raw_tables(write_csv(tmp_path, {"loans": loans}))
    with pytest.raises(ContractError) as info:
        validate_tables(raw)
    err = info.value
    assert err.n_failed == 7 and err.examples["row"].tolist() == [2, 3, 4, 5, 6]
    assert "7 rows fail (first 5 shown)" in str(err)
    assert "-6" not in str(err) and "-7" not in str(err)


# --- soft problems ------------------------------------------------------------------------------


def test_soft_problems_are_reported_not_raised(tmp_path):
    loans = pd.concat([world()["loans"], world()["loans"].iloc[[1]]], ignore_index=True)
    interactions = with_cell("interactions", 1, "kind", "lunch")
    interactions.loc[2, "channel"] = "pigeon"
    surveys = with_cell("surveys", 2, "satisfaction", "")
    tables, report = load(tmp_path, loans=loans, interactions=interactions, surveys=surveys)
    warnings = {(w.table, w.column, w.rule): w for w in report.warnings}
    assert warnings["loans", "*", "exact duplicate row (dropped)"].count == 1
    assert len(tables.loans) == 3 and report.tables["loans"]["rows_in"] == 4
    kind_rule = f"kind outside {', '.join(KNOWN_KINDS)} (mapped to 'other')"
    assert warnings["interactions", "kind", kind_rule].examples["value"].tolist() == ["lunch"]
    assert tables.interactions["kind"].tolist() == ["other", "referral", "complaint"]
    assert warnings["interactions", "channel", "unknown channel (kept)"].count == 1
    assert tables.interactions["channel"].iloc[2] == "pigeon"
    assert warnings["surveys", "satisfaction+nps", "both scores empty (kept)"].count == 1
    assert len(report.warnings) == 4


def test_records_after_end_are_counted_per_table_and_column(tmp_path):
    _, report = load(tmp_path, end="2023-04-30")
    counts = {(w.table, w.column): w.count for w in report.warnings}
    assert counts == {
        ("loans", "origination_date"): 1,
        ("loans", "closed_date"): 1,
        ("interactions", "timestamp"): 2,
        ("surveys", "survey_date"): 2,
    }


def test_report_dict_is_json_serialisable(tmp_path):
    interactions = with_cell("interactions", 1, "kind", "lunch")
    _, report = load(tmp_path, end="2023-04-30", interactions=interactions)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["end"] == "2023-04-30"
    assert data["n_warnings"] == len(report.warnings) == 5
    assert data["tables"]["repayments"] == {"rows_in": 3, "rows_out": 3, "ignored_columns": []}
    kinds = [w for w in data["warnings"] if w["column"] == "kind"]
    assert kinds[0]["count"] == 1 and kinds[0]["examples"] == [{"row": 1, "value": "lunch"}]


def test_close_reason_is_optional_lower_cased_and_unknown_values_become_other(tmp_path):
    from features.contract import CLOSE_REASONS

    loans = world()["loans"]
    reasons = ["Matured", "sold", ""] + ["prepaid"] * (len(loans) - 3)
    tables, report = load(tmp_path, loans=loans.assign(close_reason=reasons[: len(loans)]))
    rule = f"close_reason outside {', '.join(CLOSE_REASONS)} (mapped to 'other')"
    warning = {(w.table, w.column, w.rule): w for w in report.warnings}[
        "loans", "close_reason", rule
    ]
    assert warning.examples["value"].tolist() == ["sold"]
    assert tables.loans["close_reason"].iloc[:2].tolist() == ["matured", "other"]
    assert tables.loans["close_reason"].isna().iloc[2]
    without, _ = load(tmp_path)
    assert "close_reason" not in without.loans.columns


# --- read in slices of customers (pipelines/slices.py): the same tables, errors and report -------


def sliced(data_dir: Path, end: str | None = None):
    """Read ``data_dir`` one customer per slice: tables concatenated back, and the report."""
    from pipelines.slices import read_contract_sliced

    end = None if end is None else pd.Timestamp(end)
    with read_contract_sliced(data_dir, 1, end=end) as book:
        parts = [book.slice(k) for k in range(len(book))]
        names = parts[0].present()
        frames = {n: pd.concat([p.get(n) for p in parts], ignore_index=True) for n in names}
        frames["loans"] = book.whole_loans()
        return Tables(**frames), book.report


def assert_sliced_like_whole(data_dir: Path, end: str | None = None) -> None:
    try:
        whole, report = validate_tables(load_raw_tables(data_dir), end=end and pd.Timestamp(end))
    except ContractError as err:
        with pytest.raises(ContractError) as info:
            sliced(data_dir, end)
        assert str(info.value) == str(err)
        return
    tables, sliced_report = sliced(data_dir, end)
    assert sliced_report == report.to_dict()
    for name, df in whole.present().items():
        order = ["customer_id", "loan_id"] if name != "repayments" else ["loan_id", "due_date"]
        key = [c for c in order if c in df.columns] + ([] if name == "loans" else list(df.columns))
        a = df.sort_values(key, kind="stable", ignore_index=True)
        b = tables.get(name).sort_values(key, kind="stable", ignore_index=True)
        pd.testing.assert_frame_equal(b, a, check_dtype=False)


@pytest.mark.parametrize(("table", "row", "column", "value", "rule", "shown"), BAD_CELLS[::5])
def test_sliced_reading_raises_the_same_error(tmp_path, table, row, column, value, rule, shown):
    write_csv(tmp_path, world(**{table: with_cell(table, row, column, value)}))
    assert_sliced_like_whole(tmp_path)


def test_sliced_reading_merges_failures_of_every_slice(tmp_path):
    loans = with_cell("loans", 2, "principal", "-5")
    loans.loc[0, "principal"] = "-1"  # C1 and C2: two slices, one rule
    loans.loc[2, "loan_id"] = "L2"  # a loan_id of two customers: only the whole table sees it
    repayments = with_cell("repayments", 3, "loan_id", "L9")
    repayments.loc[0, "amount_due"] = "-3"
    write_csv(tmp_path, world(loans=loans, repayments=repayments))
    assert_sliced_like_whole(tmp_path)


def test_sliced_reading_merges_the_loan_rule_of_every_slice(tmp_path):
    loans = with_cell("loans", 1, "closed_date", "2022-12-31")  # C1's loan closed before it began
    loans.loc[1, "closed_date"] = "2023-02-01"  # and C2's: the rule fails in two slices
    write_csv(tmp_path, world(loans=loans))
    with pytest.raises(ContractError) as info:
        validate_tables(load_raw_tables(tmp_path))
    assert "closed_date" in str(info.value) and "2 rows" in str(info.value)
    assert_sliced_like_whole(tmp_path)


def test_sliced_reading_gives_the_same_tables_and_warnings(tmp_path):
    loans = pd.concat([world()["loans"], world()["loans"].iloc[[1]]], ignore_index=True)
    interactions = with_cell("interactions", 1, "kind", "lunch")
    interactions.loc[2, "channel"] = "pigeon"
    surveys = with_cell("surveys", 2, "satisfaction", "")
    frames = world(loans=loans, interactions=interactions, surveys=surveys)
    write_csv(tmp_path, {n: f for n, f in frames.items() if n != "interactions"})
    frames["interactions"].to_parquet(tmp_path / "interactions.parquet", index=False)
    assert_sliced_like_whole(tmp_path, end="2023-04-30")


# --- on Spark's executors (features/spark_validation.py): the same error and report -----------

SPARK_CASES = [BAD_CELLS[i] for i in (0, 15)]  # a bad date; a repayment of an unknown loan


def assert_spark_like_pandas(spark, data_dir: Path, end: str | None = None) -> None:
    from features.spark_validation import check_contract, read_raw_tables
    from pipelines.io import find_table_files

    end = None if end is None else pd.Timestamp(end)
    raw = read_raw_tables(spark, {n: str(p) for n, p in find_table_files(data_dir).items()})
    try:
        _, report = validate_tables(load_raw_tables(data_dir), end=end)
    except ContractError as err:
        with pytest.raises(ContractError) as info:
            check_contract(raw, end, buckets=3)
        assert str(info.value) == str(err)
        return
    assert check_contract(raw, end, buckets=3).to_dict() == report.to_dict()


@pytest.mark.slow
def test_spark_validation_raises_the_pandas_errors(spark, tmp_path):
    for i, (table, row, column, value, *_) in enumerate(SPARK_CASES):
        case = tmp_path / str(i)
        case.mkdir()
        write_csv(case, world(**{table: with_cell(table, row, column, value)}))
        assert_spark_like_pandas(spark, case)


@pytest.mark.slow
def test_spark_validation_merges_buckets_and_reports_warnings(spark, tmp_path):
    loans = with_cell("loans", 2, "principal", "-5")
    loans.loc[0, "principal"] = "-1"
    loans.loc[2, "loan_id"] = "L2"
    (tmp_path / "bad").mkdir()
    write_csv(tmp_path / "bad", world(loans=loans))
    assert_spark_like_pandas(spark, tmp_path / "bad")
    loans = pd.concat([world()["loans"], world()["loans"].iloc[[1]]], ignore_index=True)
    interactions = with_cell("interactions", 1, "kind", "lunch")
    frames = world(loans=loans, interactions=interactions)
    (tmp_path / "ok").mkdir()
    write_csv(tmp_path / "ok", {n: f for n, f in frames.items() if n != "surveys"})
    typed = frames["surveys"].assign(
        satisfaction=pd.to_numeric(frames["surveys"]["satisfaction"]),
        nps=pd.to_numeric(frames["surveys"]["nps"]),
    )
    typed.assign(survey_date=pd.to_datetime(typed["survey_date"])).to_parquet(
        tmp_path / "ok" / "surveys.parquet", index=False, coerce_timestamps="us"
    )  # Spark 4.3 cannot read Parquet's nanosecond timestamps
    assert_spark_like_pandas(spark, tmp_path / "ok", end="2023-04-30")


# --- campaigns (optional; tests/features/test_campaigns.py covers the world's) -----------------

from features.contract import CAMPAIGNS  # noqa: E402
from models.strategies.catalog import load_catalog  # noqa: E402

STRATEGY_IDS = tuple(s.id for s in load_catalog().strategies)
CAMPAIGN_ROWS = [
    ["C1", "2023-03-31", "regular_follow_up", "treated", "2000"],
    ["C2", "2023-03-31", "prompt_response", "control", ""],
    ["C1", "2023-06-30", "competitor_counter", "Treated", "12.5"],
]


def campaigns(rows=CAMPAIGN_ROWS, columns=("customer_id", "date", "strategy_id", "arm", "cost")):
    return pd.DataFrame([r[: len(columns)] for r in rows], columns=list(columns))


def validate(tmp_path: Path, table: pd.DataFrame | None, ids=STRATEGY_IDS):
    raw = load_raw_tables(write_csv(tmp_path, world(campaigns=table)))
    return validate_tables(raw, strategy_ids=ids)


def error(tmp_path: Path, table: pd.DataFrame) -> ContractError:
    with pytest.raises(ContractError) as info:
        validate(tmp_path, table)
    return info.value


def test_campaigns_are_typed_and_arms_lower_cased(tmp_path):
    tables, report = validate(tmp_path, campaigns())
    camp = tables.campaigns
    assert camp["date"].dtype == "datetime64[ns]" and camp["cost"].dtype == "float64"
    assert camp["arm"].tolist() == ["treated", "control", "treated"]
    assert np.isnan(camp["cost"].iloc[1])
    assert report.tables[CAMPAIGNS]["rows_out"] == 3


def test_everything_runs_without_campaigns_and_cost_is_optional(tmp_path):
    tables, report = validate(tmp_path, None)
    assert tables.campaigns is None and CAMPAIGNS not in report.tables
    (tmp_path / "x").mkdir()
    tables, _ = validate(
        tmp_path / "x", campaigns(columns=("customer_id", "date", "strategy_id", "arm"))
    )
    assert "cost" not in tables.campaigns.columns


@pytest.mark.parametrize(
    ("row", "column", "value", "rule"),
    [
        (2, "customer_id", "C9", "customer_id known in customers"),
        (1, "strategy_id", "free_lunch", "strategy_id in the strategy catalog"),
        (3, "arm", "maybe", "treated or control"),
        (1, "cost", "-5", ">= 0"),
        (2, "date", "2019-12-31", "date inside the data (2022-01-10 to 2024-01-05)"),
        (3, "date", "2025-01-31", "date inside the data (2022-01-10 to 2024-01-05)"),
        (1, "date", "31/03/2023", "date YYYY-MM-DD"),
    ],
)
def test_each_broken_rule_names_table_column_rule_and_row(tmp_path, row, column, value, rule):
    table = campaigns()
    table.loc[row - 1, column] = value
    assert_names(error(tmp_path, table), CAMPAIGNS, column, rule, row, value)


def test_unknown_customer_is_checked_against_loans_without_a_customers_table(tmp_path):
    table = campaigns()
    table.loc[1, "customer_id"] = "C3"  # in customers, not in loans
    raw = load_raw_tables(write_csv(tmp_path, world(campaigns=table, customers=None)))
    with pytest.raises(ContractError) as info:
        validate_tables(raw)
    assert_names(info.value, CAMPAIGNS, "customer_id", "customer_id known in loans", 2, "C3")


def test_strategy_rule_is_skipped_without_the_catalog(tmp_path):
    table = campaigns()
    table.loc[0, "strategy_id"] = "free_lunch"
    tables, _ = validate(tmp_path, table, ids=None)
    assert "free_lunch" in tables.campaigns["strategy_id"].tolist()


def test_sliced_reading_checks_campaigns_like_the_whole_table(tmp_path):
    from pipelines.slices import read_contract_sliced

    table = campaigns()
    table.loc[0, "date"], table.loc[1, "customer_id"] = "2025-01-31", "C9"
    whole = error(tmp_path, table)
    sliced_read = read_contract_sliced(tmp_path, chunk_customers=1, strategy_ids=STRATEGY_IDS)
    with pytest.raises(ContractError) as info, sliced_read:
        pass
    assert str(info.value) == str(whole)


@pytest.mark.slow
def test_spark_checks_campaigns_like_pandas(spark, tmp_path):
    """The campaign rules that need the whole book (catalog ids, dates inside the other tables'
    span) run on the executors in a second pass: the same error as pandas, one rule, two at
    once, or none (the same report)."""
    from features.spark_validation import check_contract, read_raw_tables
    from pipelines.io import find_table_files

    cases = [
        {(0, "date"): "2025-01-31"},
        {(1, "strategy_id"): "free_lunch"},
        {(0, "date"): "2019-12-31", (2, "strategy_id"): "free_lunch", (1, "customer_id"): "C9"},
        {},
    ]
    for i, cells in enumerate(cases):
        case = tmp_path / str(i)
        case.mkdir()
        table = campaigns()
        for (row, column), value in cells.items():
            table.loc[row, column] = value
        raw_files = write_csv(case, world(campaigns=table))
        raw = read_raw_tables(spark, {n: str(p) for n, p in find_table_files(raw_files).items()})
        if not cells:
            _, report = validate(case, table)
            assert check_contract(raw, buckets=3, strategy_ids=STRATEGY_IDS).to_dict() == (
                report.to_dict()
            )
            continue
        whole = error(case, table)
        with pytest.raises(ContractError) as info:
            check_contract(raw, buckets=3, strategy_ids=STRATEGY_IDS)
        assert str(info.value) == str(whole)


@pytest.mark.slow
def test_spark_file_checks_and_book_figures_are_the_pandas_engines(spark, tmp_path):
    """``read_checked_tables``: a header-only required table is the pandas engine's error, an
    optional one is read as absent; ``check_book``'s figures are those of the whole tables."""
    from features.contract import data_end
    from features.observation import infer_data_start
    from features.snapshots import count_known
    from features.spark_validation import check_book, read_checked_tables
    from pipelines.io import find_table_uris

    frames = world(surveys=world()["surveys"].head(0))
    write_csv(tmp_path, frames)
    tables, report = validate_tables(load_raw_tables(tmp_path))
    book = check_book(
        read_checked_tables(spark, find_table_uris(spark, tmp_path)), None, None,
        pd.Timestamp("2023-03-31"), buckets=3,
    )  # fmt: skip
    assert book.report.to_dict() == report.to_dict()
    assert "surveys" not in book.report.tables
    assert (book.known, book.customers) == count_known(tables, pd.Timestamp("2023-03-31"))
    assert min(book.event_firsts) == infer_data_start(tables)
    assert book.end == data_end(tables)

    (tmp_path / "loans.csv").write_text(",".join(COLUMNS["loans"]) + "\n", encoding="utf-8")
    with pytest.raises(ContractError) as whole:
        load_raw_tables(tmp_path)
    with pytest.raises(ContractError) as on_spark:
        read_checked_tables(spark, find_table_uris(spark, tmp_path))
    assert (on_spark.value.table, on_spark.value.rule) == (whole.value.table, whole.value.rule)
    assert on_spark.value.rule == "required table has rows"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["Call", "EMAIL", "call", " Visit", "Ǆ", "İ"]),
                          st.text(max_size=4)), max_size=30))  # fmt: skip
def test_lowering_once_per_distinct_value_is_str_lower(values):
    """The vocabulary rules lower kinds, channels, arms and close reasons once per distinct value:
    the same column as pandas' ``str.lower`` of every cell, missing cells kept missing."""
    s = pd.Series([np.nan if v is None else v for v in values], dtype=object, name="kind")
    s.index = s.index * 2 + 1  # row numbers, not positions
    pd.testing.assert_series_equal(_lower(s), s.str.lower())
