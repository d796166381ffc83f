"""pipelines/io.py: atomic writes leave no debris, frames round-trip in both formats, bad
extensions and inputs fail with their error, contract directories are read and validated."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from features.validation import ContractError
from pipelines.io import (
    BadRequestError,
    OutputExistsError,
    atomic_path,
    check_output,
    clean_leftovers,
    load_frame,
    load_json,
    load_pickle,
    load_raw_tables,
    load_tables,
    read_contract,
    save_frame,
    save_frame_chunks,
    save_json,
    save_pickle,
    save_tables,
)

FRAME = pd.DataFrame({"customer_id": ["A", "B", "C"], "value": [1.5, None, 3.0]})


def _debris(folder: Path) -> list[str]:
    """Hidden temporary files or folders the writers may have left."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_path_renames_on_success_with_the_usual_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
        assert not target.exists()  # nothing visible before the block ends
    assert target.read_text() == "new" and _debris(target.parent) == []
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and _debris(tmp_path) == []


def test_no_overwrite_refuses_an_existing_target(tmp_path):
    target = tmp_path / "out.csv"
    save_frame(FRAME, target)
    before = target.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        save_frame(FRAME.head(1), target, overwrite=False)
    assert target.read_bytes() == before and _debris(tmp_path) == []


@pytest.mark.parametrize("name", ["t.parquet", "t.csv", "T.CSV"])
def test_save_frame_round_trips_by_extension(tmp_path, name):
    path = save_frame(FRAME, tmp_path / name)
    pd.testing.assert_frame_equal(load_frame(path), FRAME)
    if name.endswith("parquet"):
        assert path.read_bytes()[:4] == b"PAR1"
    else:
        assert path.read_text().splitlines()[0] == "customer_id,value"


def test_save_frame_rejects_an_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match="unsupported extension '.xlsx'"):
        save_frame(FRAME, tmp_path / "t.xlsx")
    with pytest.raises(ValueError, match="unsupported extension"):
        save_frame_chunks([FRAME], tmp_path / "t.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_chunks_stream_into_one_file(tmp_path, suffix):
    chunks = [FRAME.iloc[:1], FRAME.iloc[1:]]
    path = save_frame_chunks(iter(chunks), tmp_path / f"t{suffix}")
    pd.testing.assert_frame_equal(load_frame(path), FRAME)
    if suffix == ".csv":
        assert path.read_text().count("customer_id") == 1  # one header


def test_parquet_chunks_type_an_all_empty_first_chunk_as_text(tmp_path):
    first = pd.DataFrame({"reason": [None, None]})
    later = pd.DataFrame({"reason": ["price", None]})
    path = save_frame_chunks([first, later], tmp_path / "t.parquet")
    assert load_frame(path)["reason"].tolist() == [None, None, "price", None]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_chunk_errors_leave_no_file(tmp_path, suffix):
    with pytest.raises(ValueError, match="no data to write"):
        save_frame_chunks(iter([]), tmp_path / f"empty{suffix}")
    mismatched = [FRAME, FRAME.rename(columns={"value": "other"})]
    with pytest.raises((ValueError, KeyError)):
        save_frame_chunks(mismatched, tmp_path / f"bad{suffix}")
    assert list(tmp_path.iterdir()) == []


def test_chunks_are_not_read_when_the_output_exists(tmp_path):
    target = tmp_path / "t.parquet"
    save_frame(FRAME, target)

    def chunks():
        raise AssertionError("a chunk was read")
        yield FRAME

    with pytest.raises(OutputExistsError):
        save_frame_chunks(chunks(), target, overwrite=False)


def test_csv_chunks_must_keep_the_column_order(tmp_path):
    with pytest.raises(ValueError, match="first chunk's columns, in order"):
        save_frame_chunks([FRAME, FRAME[["value", "customer_id"]]], tmp_path / "t.csv")
    assert list(tmp_path.iterdir()) == []


def test_json_and_pickle_round_trip(tmp_path):
    obj = {"b": 1, "a": [1.5, "x"], "when": pd.Timestamp("2024-01-31")}
    save_json(obj, tmp_path / "r.json")
    assert load_json(tmp_path / "r.json") == {
        "a": [1.5, "x"],
        "b": 1,
        "when": "2024-01-31 00:00:00",
    }
    save_pickle(FRAME, tmp_path / "m.pkl")
    pd.testing.assert_frame_equal(load_pickle(tmp_path / "m.pkl", "train"), FRAME)
    assert _debris(tmp_path) == []


def test_load_pickle_names_the_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the train stage first"):
        load_pickle(tmp_path / "missing.pkl", "train")


def test_save_tables_replaces_the_folder_and_load_tables_reads_it(tmp_path, tiny_tables):
    folder = tmp_path / "validated"
    save_tables({"loans": tiny_tables.loans, "surveys": tiny_tables.surveys}, folder)
    save_tables({"loans": tiny_tables.loans, "customers": tiny_tables.customers}, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["customers.parquet", "loans.parquet"]
    assert _debris(tmp_path) == []
    tables = load_tables(folder)
    pd.testing.assert_frame_equal(tables.loans, tiny_tables.loans)
    assert tables.surveys is None and tables.customers is not None


def test_load_tables_without_loans_says_to_validate_first(tmp_path, tiny_tables):
    save_tables({"customers": tiny_tables.customers}, tmp_path / "v")
    with pytest.raises(FileNotFoundError, match="run the validate stage first"):
        load_tables(tmp_path / "v")


def test_read_contract_validates_what_it_reads(tmp_path, tiny_tables):
    save_tables(tiny_tables.present(), tmp_path / "good")
    tables, report = read_contract(tmp_path / "good")
    assert len(tables.loans) == len(tiny_tables.loans) and isinstance(report, dict)
    bad = tiny_tables.loans.assign(principal=-1.0)
    save_tables({"loans": bad}, tmp_path / "bad")
    with pytest.raises(ContractError, match="principal"):
        read_contract(tmp_path / "bad")


def test_read_contract_errors_for_missing_or_ambiguous_files(tmp_path, tiny_tables):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_contract(tmp_path / "nowhere")
    both = tmp_path / "both"
    save_tables({"loans": tiny_tables.loans}, both)
    tiny_tables.loans.to_csv(both / "loans.csv", index=False)
    with pytest.raises(ContractError, match="both loans.parquet and loans.csv") as err:
        load_raw_tables(both)
    assert (err.value.table, err.value.rule) == ("loans", "one file per table")


def _csv_world(folder: Path, tables) -> Path:
    folder.mkdir()
    for name, df in tables.present().items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.mark.parametrize("only_table", [True, False])
def test_a_header_only_loans_table_is_named_as_such(tmp_path, tiny_tables, only_table):
    """Not "No objects to concatenate", nor the knock-on "loan_id known in loans" failures."""
    world = _csv_world(tmp_path / "w", tiny_tables)
    if only_table:
        for path in world.iterdir():
            path.unlink()
    tiny_tables.loans.head(0).to_csv(world / "loans.csv", index=False)
    with pytest.raises(ContractError) as err:
        read_contract(world)
    assert [(f.table, f.rule) for f in err.value.failures] == [("loans", "required table has rows")]
    assert "header only" in str(err.value)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_zero_byte_and_unreadable_files_are_contract_errors(tmp_path, tiny_tables, suffix):
    world = _csv_world(tmp_path / "w", tiny_tables)
    (world / "surveys.csv").unlink()
    (world / f"surveys{suffix}").write_bytes(b"")
    with pytest.raises(ContractError) as err:
        read_contract(world)
    assert (err.value.table, err.value.rule) == ("surveys", "file not empty")
    (world / f"surveys{suffix}").write_bytes(b"\n\n" if suffix == ".csv" else b"not parquet")
    with pytest.raises(ContractError) as err:
        read_contract(world)
    assert err.value.table == "surveys" and err.value.rule.startswith("readable")


def test_future_dated_records_warn_and_do_not_move_the_end(tmp_path, tiny_tables):
    today = pd.Timestamp("2023-06-30")
    future = pd.Timestamp.now().normalize() + pd.Timedelta(days=3000)
    late = tiny_tables.loans.iloc[[0]].assign(
        loan_id="L9", origination_date=future, closed_date=pd.NaT
    )
    tables = tiny_tables.present() | {"loans": pd.concat([tiny_tables.loans, late])}
    save_tables(tables, tmp_path / "w")
    _, plain = read_contract(tmp_path / "w")
    assert plain["data_end"] == f"{future:%Y-%m-%d}"  # no rule: the end moves (what the rule fixes)
    _, report = read_contract(tmp_path / "w", cutoff=today)
    assert report["data_end"] == "2023-01-15"  # the latest date that is not future-dated
    [warning] = [w for w in report["warnings"] if w["rule"].startswith("future-dated")]
    assert (warning["table"], warning["column"], warning["count"]) == (
        "loans",
        "origination_date",
        1,
    )
    assert warning["examples"][0]["value"] == f"{future:%Y-%m-%d}"


def test_check_output_refuses_bad_extensions_and_existing_files(tmp_path):
    with pytest.raises(BadRequestError, match="unsupported extension '.json'"):
        check_output(tmp_path / "x.json", overwrite=True)
    (tmp_path / "x.csv").write_text("old")
    with pytest.raises(OutputExistsError):
        check_output(tmp_path / "x.csv", overwrite=False)
    assert check_output(tmp_path / "x.csv", overwrite=True) == tmp_path / "x.csv"


def _dead_pid() -> int:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_the_next_write_removes_leftovers_of_killed_runs_only(tmp_path, caplog):
    dead, alive = _dead_pid(), os.getppid()
    killed = tmp_path / f".scores.parquet.tierwise-{dead}-k2j1.tmp"
    killed_dir = tmp_path / f".validated.tierwise-{dead}-x8.tmp"
    running = tmp_path / f".scores.parquet.tierwise-{alive}-abc.tmp"
    other = tmp_path / ".scores.parquet.abc.tmp"  # not ours: never touched
    for path in (killed, running, other):
        path.write_bytes(b"partial")
    killed_dir.mkdir()
    save_frame(FRAME, tmp_path / "other.csv")
    assert _debris(tmp_path) == sorted([running.name, other.name])
    assert "left by an interrupted run" in caplog.text
    assert clean_leftovers(tmp_path) == []


def test_writing_into_a_missing_directory_says_so(tmp_path, caplog):
    caplog.set_level("INFO", logger="pipelines.io")
    save_frame(FRAME, tmp_path / "new" / "sub" / "x.csv")
    assert f"creating directory {tmp_path / 'new' / 'sub'}" in caplog.text


def test_a_header_only_optional_table_is_read_as_absent(tmp_path, tiny_tables, caplog):
    """Not the knock-on "customer_id known in customers" failures of every loan."""
    world = _csv_world(tmp_path / "w", tiny_tables)
    tiny_tables.customers.head(0).to_csv(world / "customers.csv", index=False)
    tables, report = read_contract(world)
    assert tables.customers is None and len(tables.loans) == len(tiny_tables.loans)
    assert "customers" not in report["tables"]
    assert "customers.csv has no data rows: table customers read as absent" in caplog.text
