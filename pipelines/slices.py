"""A contract directory read one slice of customers at a time: memory bounded by the slice.

``read_contract_sliced`` gives the same typed tables, the same ``ContractError`` and the same
validation report as ``pipelines.io.read_contract``, without holding the event tables whole
(`tierwise score` and `tierwise features --as-of` read their data this way):

1. The files are found and checked as ``pipelines.io`` does (``find_table_files``: missing
   directory, two files for a table, zero bytes; a header-only file: an error for a required
   table, an optional one read as absent; a file that cannot be read gets
   ``read_table_file``'s error). CSV files are converted once (per run) to Parquet, every
   column as text, streamed.
2. The loans table is validated per slice like the others, its own rules included; the one
   rule that spans customers, ``loan_id`` unique across the book, is checked once in Arrow on
   the typed ids of every slice (only the ids seen twice reach pandas: ``book_unique``). No
   table is held whole by this process: the book context (VIP bar, BG/NBD, book median rates),
   which needs every loan, is computed where ``book_context`` runs it (a worker process, when
   there is a pool) from the typed slices' ``features.loans.BOOK_COLUMNS``.
3. Every customer id of the book (stripped as validation strips them) is collected, sorted, and
   cut into slices of ``features.chunk_customers`` exactly as ``iter_feature_table`` cuts them.
4. One streaming pass per other table writes each row into its slice's Parquet file, with its
   row number in the file (repayments go to their loan's customer's slice; a row whose customer
   or loan is unknown goes to slice 0, where the key rules name it).
5. Each slice is validated (``features.validation.SlicedValidation``: the per-table rules, the
   cross-table key rules, all of which hold within one customer's rows, and the future-dated
   rule) and written typed; the error, if any, is raised when every slice is checked: before
   any feature is built. The first event dates are kept for the observation window
   (``SlicedBook.observation_start``: data.start, as ``features.observation`` infers it).

Then ``SlicedBook.slice(k)`` reads slice k's typed tables back, its loans included;
``iter_slice_features`` builds the features slice by slice with the whole book's context, equal
to ``iter_feature_table``.
The files live in a temporary directory (``TMPDIR``) removed when the ``with`` block ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import tempfile
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Executor, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from features.build import build_feature_table, slice_count
from features.context import BookContext, build_book_context
from features.contract import (
    CUSTOMER_ID,
    CUSTOMERS,
    LOAN_ID,
    LOANS,
    REPAYMENTS,
    TABLE_NAMES,
    Tables,
)
from features.contract import data_end as tables_end
from features.loans import BOOK_COLUMNS
from features.observation import event_first_dates, infer_data_start
from features.snapshots import build_universe
from features.spec import Definitions, FeatureSpec
from features.windows import day_numbers
from pipelines.io import find_table_files, load_raw_tables, read_table_file

log = logging.getLogger(__name__)

BATCH_ROWS = 500_000
CACHE_COMPRESSION = "lz4"  # temporary files: fast beats small
# temporary files are read back whole, once: no dictionary pages nor column statistics (the
# values read back are the same; writing and reading them is about twice as fast)
CACHE_OPTIONS = {"compression": CACHE_COMPRESSION, "use_dictionary": False,
                 "write_statistics": False}  # fmt: skip
ROW = "_tierwise_row"
_ASCII_SPACE = "".join(
    c for c in map(chr, range(128)) if c.isspace()
)  # a row's number in its file (from 1, header excluded)


@dataclass(frozen=True)
class SlicedBook:
    """A validated contract directory held as typed slices on disk, and the book's keys."""

    ids: pd.Index  # every customer of the book, sorted; slice k = ids[bounds[k]:bounds[k + 1]]
    bounds: np.ndarray
    known_day: np.ndarray  # day each customer becomes known (features.snapshots.Universe)
    end: pd.Timestamp  # the latest date in any table (features.contract.data_end)
    report: dict  # the validation report (ValidationReport.to_dict)
    directory: Path  # typed slices: {k}/{table}.parquet, loans included
    others: tuple[str, ...]  # the present tables besides loans
    loan_slice: np.ndarray  # each loan's slice, in the loans file's order
    event_firsts: tuple[pd.Timestamp, ...] = ()  # each event table's first date, per slice

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def slice(self, k: int) -> Tables:
        """Slice k's typed tables, rows in the file's order (as ``CustomerSlices.slice``)."""
        return read_slice(self.directory, self.others, k, self.loan_rows(k))

    def loan_rows(self, k: int) -> np.ndarray:
        """Slice k's loans: their positions in the loans table (the file's order)."""
        return np.flatnonzero(self.loan_slice == k)

    def count_known(self, as_of: pd.Timestamp) -> tuple[int, int]:
        """As ``features.snapshots.count_known``: (customers known at ``as_of``, in the data)."""
        day = day_numbers(pd.DatetimeIndex([as_of]))[0]
        return int((self.known_day <= day).sum()), len(self.ids)

    def observation_start(self, given: pd.Timestamp | None) -> pd.Timestamp:
        """As ``features.observation.observation_start`` on the whole tables: data.start as
        set, else the first event date, else the first origination."""
        if given is not None:
            return given
        if self.event_firsts:
            return min(self.event_firsts)
        return infer_data_start(Tables(loans=self.whole_loans()))

    def whole_loans(self) -> pd.DataFrame:
        """The book context's columns of every loan, in the file's order (index: positions):
        read back from the typed slices on each call (this object does not hold them)."""
        return _context_loans(self.directory, len(self))


def iter_slice_features(
    book: SlicedBook,
    as_of_dates: pd.DatetimeIndex,
    defs: Definitions,
    spec: FeatureSpec,
    data_end: pd.Timestamp | None = None,
    observed_from: pd.Timestamp | None = None,
    watch: Callable[[Tables], None] | None = None,
) -> Iterator[pd.DataFrame]:
    """``features.build.iter_feature_table`` on a sliced book: the same rows, slice by slice.
    ``watch`` sees each slice's typed tables (the monitor's table volumes count them)."""
    dates = pd.DatetimeIndex(as_of_dates)
    context = book_context(book, dates, defs, spec)
    for k in range(len(book)):
        log.info("customer slice %d of %d", k + 1, len(book))
        tables = book.slice(k)
        if watch is not None:
            watch(tables)
        part = with_loan_ids(slice_loans(book, context, k)[1], tables.loans)
        yield build_feature_table(tables, dates, defs, spec, data_end, part, observed_from)


def book_context(
    book: SlicedBook,
    dates: pd.DatetimeIndex,
    defs: Definitions,
    spec: FeatureSpec,
    pool: Executor | None = None,
) -> BookContext:
    """The whole book's context for ``dates`` (``features.context.build_book_context``), its
    ``loan_spread`` by position in the loans file (``slice_loans`` cuts it, ``with_loan_ids``
    labels a slice's part). Computed in one of ``pool``'s workers when given: the whole loans
    are then read there, and only the context (a float per loan, a few figures per date)
    comes back to this process."""
    call = (book.directory, len(book), day_numbers(dates), defs, spec)
    context = next(each(pool, _positional_context, [call]))
    return_freed_memory()
    return context


def _positional_context(
    directory: Path, n_slices: int, days: np.ndarray, defs: Definitions, spec: FeatureSpec
) -> BookContext:
    """``build_book_context`` of the typed slices' loans, ``loan_spread`` indexed by position
    (not by the loan ids, which would double what travels back from a worker)."""
    context = build_book_context(_context_loans(directory, n_slices), days, defs, spec)
    spread = pd.Series(context.loan_spread.to_numpy(dtype="float64"))
    result = replace(context, loan_spread=spread)
    del context
    return_freed_memory()
    return result


def return_freed_memory() -> None:
    """Hand the memory freed by a whole-book step back to the system. pyarrow's pool (mimalloc
    or jemalloc) and glibc's malloc keep freed pages for reuse, so without this the process
    would hold each whole-book step's peak for the rest of the run: measured at 1M customers,
    0.47 GB kept by pyarrow after gathering the loans and 0.4 GB by malloc after the book
    context (benchmarks/README.md, "Scoring"). A no-op where malloc has no ``malloc_trim``."""
    pa.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, when this process runs on it (``malloc_trim`` is glibc's)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def slice_loans(book: SlicedBook, context: BookContext, k: int) -> tuple[np.ndarray, BookContext]:
    """Slice k's loan positions and ``book_context``'s context cut to its loans (``loan_spread``,
    one value per loan by position: the part ``build_feature_table`` reads for these loans):
    what a worker process needs, with ``read_slice`` and ``with_loan_ids``, to build slice k's
    features."""
    rows = book.loan_rows(k)
    return rows, replace(context, loan_spread=context.loan_spread.iloc[rows])


def with_loan_ids(context: BookContext, loans: pd.DataFrame) -> BookContext:
    """A slice's context (``slice_loans``) with ``loan_spread`` indexed by loan id, as
    ``build_feature_table`` reads it; ``loans``: the slice's loans from ``read_slice``
    (indexed by their positions)."""
    spread = context.loan_spread.reindex(loans.index).to_numpy(dtype="float64")
    return replace(context, loan_spread=pd.Series(spread, index=loans[LOAN_ID].astype(str)))


def read_slice(directory: Path, others: tuple[str, ...], k: int, loan_rows: np.ndarray) -> Tables:
    """Slice k's typed tables (``SlicedBook.slice``); its loans indexed by ``loan_rows``, their
    positions in the whole loans table (``SlicedBook.loan_rows``)."""
    loans = _read_typed(directory / str(k) / f"{LOANS}.parquet").drop(columns=ROW)
    parts = {name: _read_typed(directory / str(k) / f"{name}.parquet") for name in others}
    return Tables(loans=loans.set_axis(pd.Index(loan_rows)), **parts)


@contextmanager
def read_contract_sliced(
    data_dir: Path | str,
    chunk_customers: int | None,
    end: pd.Timestamp | None = None,
    cutoff: pd.Timestamp | None = None,
    strategy_ids: Collection[str] | None = None,
    pool: Executor | None = None,
) -> Iterator[SlicedBook]:
    """Read and validate ``data_dir`` in slices of ``chunk_customers`` customers; ``end``,
    ``cutoff`` and ``strategy_ids`` as ``read_contract``'s. With ``pool`` (worker processes)
    the tables are split into slices one table per worker and the slices validated two or more
    at a time; the report and the error are the same (the slices' checks merged in order).

    Raises ``ContractError`` (features.validation) before the ``with`` body runs.
    """
    from features.validation import SlicedValidation, validate_tables

    files = find_table_files(data_dir)
    if LOANS not in files:  # nothing to slice by: the whole-table report names what is missing
        validate_tables(load_raw_tables(data_dir), end=end, cutoff=cutoff,
                        strategy_ids=strategy_ids)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tierwise-slices-") as tmp:
        tmp = Path(tmp)
        sources = {}
        for name, path in files.items():  # in TABLE_NAMES order: the first bad file is named
            source = _source(name, path, tmp / "csv")
            if source is not None:
                sources[name] = source
        present = tuple(sources)
        check = SlicedValidation(present, end, cutoff, strategy_ids)
        names = tuple(n for n in TABLE_NAMES if n in sources)  # loans first
        others = names[1:]
        ids = _book_ids({n: sources[n] for n in names if n != REPAYMENTS}, pool)
        return_freed_memory()
        n_slices = slice_count(len(ids), chunk_customers)
        sizes = [len(c) for c in np.array_split(np.arange(len(ids)), n_slices)]
        bounds = np.cumsum([0, *sizes])
        calls = [(n, sources[n], ids, sources[LOANS], bounds, tmp / "raw") for n in names]
        schemas = dict(zip(names, each(pool, _partition, calls), strict=True))
        log.info("%d customers in %d slices", len(ids), n_slices)
        known, ends, firsts = [], [], []
        calls = [(k, names, schemas, tmp, sizes[k], (present, end, cutoff, strategy_ids))
                 for k in range(n_slices)]  # fmt: skip
        for part_check, found in each(pool, _check_slice, calls):
            check.merge(part_check)
            if found is not None:
                known.append(found[0])
                ends.append(found[1])
                firsts += found[2]
        loan_slice = _book_unique(check, tmp / "typed", n_slices, sources[LOANS])
        report = check.finish()
        return_freed_memory()
        yield SlicedBook(
            ids=ids,
            bounds=bounds,
            known_day=np.concatenate(known) if known else np.empty(0, np.int64),
            end=pd.Series(ends, dtype="datetime64[ns]").max(),
            report=report.to_dict(),
            directory=tmp / "typed",
            others=others,
            loan_slice=loan_slice,
            event_firsts=tuple(firsts),
        )


def expected_slices(data_dir: Path | str, chunk_customers: int | None) -> int:
    """The slices a valid book in ``data_dir`` has, from its files' row counts without reading
    them: its customers table's rows, else its loans' (at least as many as their customers).
    It sizes the worker pool only (a wrong figure costs time, never changes a result); files
    that cannot be counted count as many slices (the reader then names their problem)."""
    from features.validation import ContractError

    try:
        files = find_table_files(data_dir)
        rows = _file_rows(files.get(CUSTOMERS) or files[LOANS])
    except (ContractError, KeyError, OSError, UnicodeError, pa.ArrowException):
        return np.iinfo(np.int32).max
    return slice_count(rows, chunk_customers)


def _file_rows(path: Path) -> int:
    """A table file's data rows: Parquet's metadata; a CSV file's lines but the header (a quoted
    line break counts a row more)."""
    if path.suffix.lower() != ".csv":
        return _row_count(path)
    with path.open("rb") as f:
        lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))
        f.seek(-1, 2)
        ends_open = f.read(1) != b"\n"
    return max(lines + ends_open - 1, 0)


def each(pool: Executor | None, fn: Callable, calls: Iterable[tuple], ahead: int = 4) -> Iterator:
    """``fn(*call)`` for every call, in order: in this process without ``pool``, else in the
    pool's worker processes, at most ``ahead`` calls submitted at a time (what is held waiting
    stays bounded). However the loop ends (an error, SIGTERM), every submitted call is
    cancelled or waited for before this returns: no worker still writes into a temporary
    directory the caller is about to remove."""
    if pool is None:
        for call in calls:
            yield fn(*call)
        return
    pending: deque[Future] = deque()  # a call leaves it once its result is in hand
    try:
        for call in calls:
            pending.append(pool.submit(fn, *call))
            if len(pending) >= ahead:
                result = pending[0].result()
                pending.popleft()
                yield result
        while pending:
            result = pending[0].result()
            pending.popleft()
            yield result
    finally:
        for future in pending:
            future.cancel()
        wait(pending)


def _check_slice(
    k: int,
    names: tuple[str, ...],
    schemas: dict[str, pa.Schema],
    tmp: Path,
    size: int,
    rules: tuple,
) -> tuple[Any, tuple | None]:
    """Validate slice k's raw tables (``rules``: SlicedValidation's arguments) and write them
    typed: its loans always (the book-wide uniqueness of loan_id reads them), the others when
    the slice passed. The check (to merge) and, when it passed, (known days, last date, first
    dates)."""
    from features.validation import SlicedValidation

    check = SlicedValidation(*rules)
    part = {}
    for name in names:
        raw = _read_raw(tmp / "raw" / str(k) / f"{name}.parquet", schemas[name])
        rows = pd.Index(raw[ROW].to_numpy())
        part[name] = check.table(name, raw.drop(columns=ROW), rows)
    check.loan_rules(part[LOANS])
    check.keys(part)
    loans_k = part[LOANS]
    _save_frame(loans_k.assign(**{ROW: loans_k.index.to_numpy()}), tmp / "typed" / str(k) / LOANS)
    if check.failed:
        return check, None  # keep checking for the report; nothing else needs the slice
    tables = Tables(**part)
    found = (_known_days(tables, size), tables_end(tables), event_first_dates(tables))
    _save_slice(part, names[1:], tmp / "typed" / str(k))
    return check, found


def _typed_loans(folder: Path, n_slices: int, columns: Collection[str]) -> pa.Table:
    """``columns`` (those present) of every slice's typed loans with ROW and each row's slice
    (``_slice``), back in the file's order. Gathered and sorted in Arrow."""
    parts = []
    for k in range(n_slices):
        path = folder / str(k) / f"{LOANS}.parquet"
        names = pq.read_schema(path).names
        part = pq.read_table(path, columns=[c for c in names if c in (*columns, ROW)])
        slice_k = pa.array(np.full(part.num_rows, k, dtype=np.int32))
        parts.append(part.replace_schema_metadata(None).append_column("_slice", slice_k))
    table = pa.concat_tables(parts, promote_options="default")  # a slice's all-null column
    del parts
    return table.take(pc.sort_indices(table.column(ROW)))


def _context_loans(folder: Path, n_slices: int) -> pd.DataFrame:
    """The book context's columns (``BOOK_COLUMNS``) of every loan, in the file's order (index:
    positions): one copy as pandas."""
    table = _typed_loans(folder, n_slices, BOOK_COLUMNS).drop_columns([ROW, "_slice"])
    return _typed_frame(table, low_memory=True)  # the only reference: freed column by column


def _book_unique(check: Any, folder: Path, n_slices: int, source: Path) -> np.ndarray:
    """``loan_id`` unique across the book (``SlicedValidation.book_unique``), checked on every
    slice's typed ids in Arrow: only the ids seen twice or more become pandas. Each loan's
    slice, in the file's order."""
    table = _typed_loans(folder, n_slices, [LOAN_ID])
    loan_slice = table.column("_slice").to_numpy()
    if LOAN_ID not in table.column_names:
        return loan_slice
    ids = table.column(LOAN_ID)
    if not pa.types.is_string(ids.type):  # a slice of empty ids only: no other type is typed
        ids = ids.cast(pa.string())
    counts = pc.value_counts(ids)
    values = counts.field("values")
    seen_twice = values.filter(pc.and_(pc.greater(counts.field("counts"), 1), values.is_valid()))
    hit = pc.is_in(ids, value_set=seen_twice)
    rows = table.column(ROW).filter(hit).to_numpy()
    typed = pd.Series(ids.filter(hit).to_numpy(zero_copy_only=False), index=rows, dtype=object)
    raw_ids = lambda at: _raw_cells(source, LOAN_ID, at)  # noqa: E731
    check.book_unique(LOANS, LOAN_ID, typed, raw_ids)
    return loan_slice


def _raw_cells(path: Path, column: str, rows: np.ndarray) -> pd.Series:
    """A column's cells as they are in the file at ``rows`` (numbered from 1)."""
    wanted, found, start = set(rows.tolist()), {}, 1
    for batch in _batches(path, [column]):
        cells = batch.column(0).to_pandas()
        numbers = np.arange(start, start + len(cells))
        hit = np.isin(numbers, rows)
        found.update(zip(numbers[hit].tolist(), cells[hit].tolist(), strict=True))
        start += len(cells)
        if wanted <= found.keys():
            break
    return pd.Series([found[r] for r in rows], index=pd.Index(rows, name="row"), dtype=object)


def _source(name: str, path: Path, tmp: Path) -> Path | None:
    """A table's file as Parquet to stream, checked as ``pipelines.io.load_raw_tables`` checks
    it: a file pyarrow cannot read gets ``read_table_file``'s error (or, when pandas reads it
    after all, is converted from what pandas read); a file without rows gets its error when the
    table is required, and is read as absent (None, with a warning) when it is optional."""
    try:
        source = _as_parquet(name, path, tmp)
        rows = _row_count(source)
    except (pa.ArrowException, OSError, UnicodeError, ValueError) as err:
        log.warning("%s: streaming it failed (%s); reading it with pandas", path, err)
        frame = read_table_file(path, name)  # raises the ContractError of today's reader
        source = tmp / f"{name}.pandas.parquet"
        tmp.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(source, index=False)
        rows = len(frame)
    if rows == 0:
        read_table_file(path, name)  # a required table: its ContractError
        log.warning("%s has no data rows: table %s read as absent", path, name)
        return None
    return source


def _row_count(path: Path) -> int:
    if path.is_dir():
        return pads.dataset(path, format="parquet").count_rows()
    return pq.ParquetFile(path).metadata.num_rows


def _as_parquet(name: str, path: Path, tmp: Path) -> Path:
    """A table's file as Parquet: CSV converted once (streamed, every cell read as text; the
    contract's coercion parses them and names bad cells, as ``pipelines.io`` does)."""
    if path.suffix.lower() != ".csv":
        return path
    header = pd.read_csv(path, nrows=0, encoding="utf-8").columns
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in header},
        null_values=[""],
        strings_can_be_null=True,
    )
    read = pacsv.ReadOptions(block_size=64 << 20)
    out = tmp / f"{name}.parquet"
    tmp.mkdir(parents=True, exist_ok=True)
    reader = pacsv.open_csv(path, read_options=read, convert_options=convert)
    with reader, pq.ParquetWriter(out, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
    log.info("converted %s to Parquet", path)
    return out


def _batches(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """A Parquet file's (or directory's) rows in file order, in batches, without pandas'
    metadata (the pieces written from them carry none)."""
    columns = _schema(path).names if columns is None else columns
    if path.is_dir():
        scanner = pads.dataset(path, format="parquet").scanner(
            columns=columns, batch_size=BATCH_ROWS, use_threads=False
        )
        batches = scanner.to_batches()
    else:
        batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns)
    for batch in batches:
        yield batch.replace_schema_metadata(None)


def _schema(path: Path) -> pa.Schema:
    """The file's columns as ``pandas.read_parquet`` gives them: a stored pandas index (named in
    the pandas metadata) is not a column."""
    schema = pads.dataset(path, format="parquet").schema if path.is_dir() else pq.read_schema(path)
    index = set()
    if schema.pandas_metadata:
        index = {c for c in schema.pandas_metadata.get("index_columns", []) if isinstance(c, str)}
    for column in index & set(schema.names):
        schema = schema.remove(schema.get_field_index(column))
    return schema.remove_metadata()


def _book_ids(sources: dict[str, Path], pool: Executor | None = None) -> pd.Index:
    """Every customer id of the book, sorted: ``build_universe(tables).ids`` of valid tables
    (each table's distinct ids found in ``pool``'s workers, one table per worker). The tables'
    ids meet in Arrow: a book's ids as Python strings are held once, not once per table."""
    found = [ids for ids in each(pool, _table_ids, [(p,) for p in sources.values()]) if len(ids)]
    if not found:
        return pd.Index([], dtype=object)
    ids = pa.chunked_array(found).unique()
    ids = ids.take(pc.array_sort_indices(ids))  # UTF-8 bytes sort as their code points do
    return pd.Index(ids.to_numpy(zero_copy_only=False), dtype=object)


def _table_ids(path: Path) -> pa.Array:
    """A table's distinct customer ids, stripped as validation strips them (none: empty). The
    raw cells are made distinct in Arrow first, so each id is stripped (and, when not ASCII,
    becomes a Python string) once, not once per batch it appears in."""
    schema = _schema(path)
    if CUSTOMER_ID not in schema.names:
        return pa.array([], pa.string())
    cells = [pc.unique(batch.column(0)) for batch in _batches(path, [CUSTOMER_ID])]
    raw = pa.chunked_array(cells, schema.field(CUSTOMER_ID).type).unique()
    if pa.types.is_string(raw.type) and pc.all(pc.string_is_ascii(raw)).as_py() is not False:
        trimmed = pc.utf8_trim(raw, characters=_ASCII_SPACE)  # str.strip() of ASCII text
        return trimmed.filter(pc.not_equal(trimmed, "")).unique()  # null and empty: dropped
    distinct = _distinct(raw)[1]
    return pa.array(distinct[distinct.notna()].to_numpy(), pa.string()).unique()


def _distinct(column: pa.Array) -> tuple[np.ndarray, pd.Series]:
    """(each cell's code, the distinct values stripped as validation strips them; code -1 for
    an empty cell): keys are matched once per distinct value, in Arrow, not per row."""
    from features.validation import stripped_text

    encoded = pc.dictionary_encode(column)
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    values = encoded.dictionary
    if pa.types.is_string(values.type) and pc.all(pc.string_is_ascii(values)).as_py() is not False:
        # str.strip() of ASCII text, in Arrow: the same characters Python strips
        trimmed = pc.utf8_trim(values, characters=_ASCII_SPACE)
        text = pc.if_else(pc.equal(trimmed, ""), None, trimmed).to_pandas()
        return codes.astype(np.int64), text.where(text.notna(), np.nan)
    return codes.astype(np.int64), stripped_text(values.to_pandas())


def _positions(column: pa.Array, index: pd.Index) -> np.ndarray:
    """Each cell's position in ``index`` after stripping (-1: empty or not found)."""
    codes, distinct = _distinct(column)
    return np.append(index.get_indexer(distinct), -1)[codes]


def _slice_of(positions: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The slice of each customer position; an unknown customer (-1) goes to slice 0."""
    return np.maximum(np.searchsorted(bounds, positions, side="right") - 1, 0)


def _loan_owners(path: Path, ids: pd.Index, bounds: np.ndarray) -> pd.Series:
    """Stripped loan_id -> the slice of its first row's customer: where its repayments go
    (unique index)."""
    names = _schema(path).names
    if LOAN_ID not in names:
        return pd.Series([], dtype=np.int64)
    keys, slices = [], []
    columns = [LOAN_ID, CUSTOMER_ID] if CUSTOMER_ID in names else [LOAN_ID]
    for batch in _batches(path, columns):
        codes, distinct = _distinct(batch.column(0))
        keys.append(np.append(distinct.to_numpy(dtype=object), np.nan)[codes])
        where = np.full(batch.num_rows, -1)
        if CUSTOMER_ID in names:
            where = _positions(batch.column(1), ids)
        slices.append(_slice_of(where, bounds))
    owner = pd.Series(np.concatenate(slices), index=np.concatenate(keys))
    return owner[~owner.index.duplicated(keep="first") & owner.index.notna()]


def _partition(
    name: str, path: Path, ids: pd.Index, loans: Path, bounds: np.ndarray, out: Path
) -> pa.Schema:
    """Stream a table into one Parquet file per slice (rows in file order, with ROW): by its
    customer's position in ``ids``, or (repayments) by its loan's slice (``_loan_owners`` of
    the ``loans`` file, found here: the loan ids are held by this process only)."""
    schema = _schema(path)
    key = LOAN_ID if name == REPAYMENTS else CUSTOMER_ID
    owner = _loan_owners(loans, ids, bounds) if key == LOAN_ID else None
    schema = schema.append(pa.field(ROW, pa.int64()))
    writers: dict[int, pq.ParquetWriter] = {}
    start = 1
    try:
        for batch in _batches(path):
            table = pa.Table.from_batches([batch]).append_column(
                ROW, pa.array(np.arange(start, start + batch.num_rows, dtype=np.int64))
            )
            start += batch.num_rows
            slices = np.zeros(batch.num_rows, dtype=np.int64)
            if key == LOAN_ID and key in batch.schema.names:
                found = _positions(batch.column(key), owner.index)
                slices = np.where(found >= 0, np.append(owner.to_numpy(), 0)[found], 0)
            elif key in batch.schema.names:
                slices = _slice_of(_positions(batch.column(key), ids), bounds)
            order = np.argsort(slices, kind="stable")
            counts = np.bincount(slices, minlength=len(bounds) - 1)
            table = table.take(pa.array(order))
            offset = 0
            for k in np.flatnonzero(counts):
                if k not in writers:
                    (out / str(k)).mkdir(parents=True, exist_ok=True)
                    path = out / str(k) / f"{name}.parquet"
                    writers[k] = pq.ParquetWriter(path, schema, **CACHE_OPTIONS)
                writers[k].write_table(table.slice(offset, counts[k]))
                offset += counts[k]
    finally:
        for writer in writers.values():
            writer.close()
    return schema


def _read_raw(path: Path, schema: pa.Schema) -> pd.DataFrame:
    """A slice's raw rows (empty with ``schema``'s columns when the slice has none)."""
    table = pq.read_table(path) if path.exists() else pa.Table.from_batches([], schema=schema)
    return table.to_pandas()


def _read_typed(path: Path) -> pd.DataFrame:
    """A typed slice file as pandas; missing text back as NaN, as validation returns it."""
    return _typed_frame(pq.read_table(path))


def _typed_frame(table: pa.Table, low_memory: bool = False) -> pd.DataFrame:
    """``low_memory``: each column converted on its own and its Arrow buffers released as it
    is (pyarrow's ``split_blocks`` and ``self_destruct``): the table is unusable afterwards."""
    missing = {
        name: pc.is_null(column).to_numpy(zero_copy_only=False)
        for name, column in zip(table.column_names, table.columns, strict=True)
        if column.null_count
    }
    options = {"split_blocks": True, "self_destruct": True} if low_memory else {}
    frame = table.to_pandas(**options)
    del table
    for name, mask in missing.items():
        if frame[name].dtype == object:
            frame[name] = frame[name].where(~mask, np.nan)
    return frame


def _save_slice(part: dict[str, pd.DataFrame], names: tuple[str, ...], out: Path) -> None:
    for name in names:
        _save_frame(part[name], out / name)


def _save_frame(frame: pd.DataFrame, out: Path) -> None:
    """``out``.parquet, written for this run only (fast compression)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out.with_suffix(".parquet"), index=False, **CACHE_OPTIONS)


def _known_days(tables: Tables, size: int) -> np.ndarray:
    if size == 0:
        return np.empty(0, np.int64)
    universe = build_universe(tables)
    if len(universe.ids) != size:
        raise RuntimeError(f"slice of {size} customers holds {len(universe.ids)}")
    return universe.known_day
