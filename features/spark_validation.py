"""The input contract checked on Spark's executors: the same rules, error and report as pandas.

The raw tables are Spark DataFrames (``read_raw_tables``: Parquet or CSV from any URI Spark
reads). Each row gets its row number in the file (``zipWithIndex``: file order for one file per
table) and the bucket of its customer (repayments: their loan's customer, found by a join on
the executors). ``groupBy(bucket).applyInPandas`` then runs the pandas engine's own rules
(``features.validation.SlicedValidation``: coercion, pandera's checks, the cross-table key rules
that hold within one customer's rows) on each bucket and returns only its problems and counts;
the uniqueness of ``loan_id`` across buckets is a Spark SQL aggregation. The driver collects the
problems (a few rows each, never a table) and merges them exactly as the sliced pandas reader
does, so ``ContractError`` names table, column, rule and up to five rows as on one machine.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.contract import (
    CAMPAIGNS,
    CONTRACT,
    CUSTOMER_ID,
    LOAN_ID,
    LOANS,
    REPAYMENTS,
    TABLE_NAMES,
    Tables,
    data_end,
    date_columns,
)
from features.observation import event_first_dates
from features.snapshots import build_universe
from features.validation import ContractError, SlicedValidation, ValidationReport, file_problem
from features.windows import day_numbers

log = logging.getLogger(__name__)
ROW, TABLE, BUCKET = "_row", "_table", "_bucket"
# the characters Python's str.strip() removes (validation strips ids that way)
_SPACE = r"[\s\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_PROBLEMS = T.StructType(
    [
        T.StructField("kind", T.StringType()),
        T.StructField("o1", T.LongType()),
        T.StructField("o2", T.LongType()),
        T.StructField("table", T.StringType()),
        T.StructField("column", T.StringType()),
        T.StructField("rule", T.StringType()),
        T.StructField("detail", T.StringType()),
        T.StructField("count", T.LongType()),
        T.StructField("ex_rows", T.ArrayType(T.LongType())),
        T.StructField("ex_values", T.ArrayType(T.StringType())),
        T.StructField("bucket", T.LongType()),
        T.StructField("seq", T.LongType()),
    ]
)


def read_raw_tables(spark: SparkSession, uris: dict[str, str]) -> dict[str, DataFrame]:
    """Each table as Spark reads it: ``NAME.csv`` with every cell as text (header, empty = null),
    anything else as Parquet (a file or a directory); plus its row number in the file (ROW).

    Parquet timestamps in nanoseconds (pandas' default), which Spark cannot read as timestamps,
    are read as their INT64 count (``spark.sql.legacy.parquet.nanosAsLong``) and turned back
    into timestamps (to the microsecond, Spark's precision): a contract date column stored as
    INT64 is read as nanoseconds since 1970."""
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    raw = {}
    for name, uri in uris.items():
        if str(uri).lower().endswith(".csv"):
            frame = spark.read.csv(str(uri), header=True, inferSchema=False, encoding="UTF-8")
        else:
            frame = _from_nanos(name, spark.read.parquet(str(uri)))
        raw[name] = _numbered(frame)
    return raw


def read_checked_tables(spark: SparkSession, uris: dict[str, str]) -> dict[str, DataFrame]:
    """``read_raw_tables`` with the file checks of ``pipelines.io.load_raw_tables``: a file Spark
    cannot read, or a required table without rows, is a ``ContractError`` naming it; an optional
    table without rows is read as absent (a warning)."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    raw = {}
    for name, uri in uris.items():
        kind = "CSV" if str(uri).lower().endswith(".csv") else "Parquet"
        try:
            frame = read_raw_tables(spark, {name: uri})[name]
            empty = frame.limit(1).count() == 0
        except (PySparkException, Py4JJavaError) as err:
            if out_of_memory(err) or spark_stopped():  # Spark's failure, not the file's
                raise
            detail = f"{uri} cannot be read as {kind}: {error_text(err).splitlines()[0][:200]}"
            raise ContractError([file_problem(name, f"readable {kind}", detail)]) from err
        if empty:
            columns = ", ".join(c for c in frame.columns if c != ROW)
            if CONTRACT[name].required:
                detail = f"{uri} has no data rows (header only: {columns})"
                raise ContractError([file_problem(name, "required table has rows", detail)])
            log.warning("%s has no data rows: table %s read as absent", uri, name)
            continue
        raw[name] = frame
    return raw


def out_of_memory(err: BaseException) -> bool:
    """A Spark error caused by a JVM or a Python worker out of memory (``OutOfMemoryError``,
    ``MemoryError``; the first line names only the failed call, the cause is further down)."""
    return "MemoryError" in error_text(err)


def error_text(err: BaseException) -> str:
    """``str(err)``, or its own message where that fails: a ``Py4JJavaError``'s text is asked
    of the JVM, which may be gone."""
    try:
        return str(err)
    except Exception:  # noqa: BLE001 - any failure of the JVM's side; the message is local
        return " ".join(a for a in err.args if isinstance(a, str)) or type(err).__name__


def spark_stopped() -> bool:
    """Whether the running job's Spark context was stopped under it, or its JVM is gone. Local
    mode stops the context when an executor thread runs out of memory; the failed call then
    reports only a ``NullPointerException`` of the stopped scheduler (or, with the JVM gone, a
    lost connection), the ``OutOfMemoryError`` being in the log alone."""
    from py4j.protocol import Py4JError
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is None:
        return False
    try:
        return bool(context._jsc.sc().isStopped())
    except (Py4JError, OSError):  # the gateway cannot reach the JVM
        return True


def _from_nanos(name: str, frame: DataFrame) -> DataFrame:
    """The contract's date columns that Spark read as INT64 (nanoseconds) as timestamps."""
    longs = {f.name for f in frame.schema.fields if isinstance(f.dataType, T.LongType)}
    for column in (c for c in date_columns(name) if c in longs):
        micros = F.floor(F.col(column) / 1000).cast("long")
        frame = frame.withColumn(column, F.timestamp_micros(micros))
    return frame


def _numbered(frame: DataFrame) -> DataFrame:
    """ROW = the row's number in the file, from 1: each partition's offset (its predecessors'
    row counts, a few numbers collected) plus the row's index within the partition."""
    ids = frame.withColumn("_mid", F.monotonically_increasing_id()).withColumn(
        "_pid", F.spark_partition_id()
    )
    if frame.rdd.getNumPartitions() == 1:
        return ids.withColumn(ROW, F.col("_mid") + 1).drop("_mid", "_pid")
    counts = dict(ids.groupBy("_pid").count().collect())
    offsets, total = [], 0
    for pid in range(frame.rdd.getNumPartitions()):
        offsets.append(total)
        total += counts.get(pid, 0)
    offset = F.element_at(F.array(*[F.lit(o) for o in offsets or [0]]), F.col("_pid") + 1)
    local = F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), 33)
    return ids.withColumn(ROW, (offset + local + 1).cast("long")).drop("_mid", "_pid")


def stripped_key(column: str):
    """An id as validation reads it: stripped, empty = null."""
    text = F.regexp_replace(F.col(column).cast("string"), f"^{_SPACE}+|{_SPACE}+$", "")
    return F.when(text != "", text)


@dataclass(frozen=True)
class RawBook:
    """What the driver learns from validating the raw tables on the executors: the report, and a
    few figures of the whole book (never a table)."""

    report: ValidationReport
    event_firsts: tuple[pd.Timestamp, ...]  # each event table's first date, per bucket
    known: int  # customers known at ``as_of`` (0 without one)
    customers: int  # customers in the data
    end: pd.Timestamp | None  # the latest date in any table (features.contract.data_end)

    def observation_start(self, given: pd.Timestamp | None, first_origination) -> pd.Timestamp:
        """data.start as set, else the first event date, else ``first_origination()``."""
        if given is not None:
            return given
        return min(self.event_firsts) if self.event_firsts else first_origination()


def check_contract(
    raw: dict[str, DataFrame],
    end: pd.Timestamp | None = None,
    buckets: int = 8,
    cutoff: pd.Timestamp | None = None,
    strategy_ids: Collection[str] | None = None,
) -> ValidationReport:
    """Validate the raw tables on the executors; the report, or ``ContractError``."""
    return check_book(raw, end, cutoff, None, buckets, strategy_ids).report


@dataclass(frozen=True)
class Bucketed:
    """``long_frame`` hash-partitioned by bucket and persisted on the executors: validation and
    the features (features.spark_ingest) group it by bucket with no second shuffle."""

    frame: DataFrame
    columns: dict[str, list[str]]

    def unpersist(self) -> None:
        self.frame.unpersist()


def bucketed(raw: dict[str, DataFrame], buckets: int) -> Bucketed:
    """Every raw table in one frame, ``buckets`` partitions by customer, persisted on disk when
    the first job reads it (in memory, a small local-mode driver, whose heap is the executors',
    ran out of it building the cache: docs/spark.md)."""
    long, columns = long_frame(raw, buckets)
    frame = long.repartition(buckets, BUCKET).persist(StorageLevel.DISK_ONLY)
    return Bucketed(frame, columns)


def check_book(
    raw: dict[str, DataFrame],
    end: pd.Timestamp | None,
    cutoff: pd.Timestamp | None,
    as_of: pd.Timestamp | None,
    buckets: int = 8,
    strategy_ids: Collection[str] | None = None,
    book: Bucketed | None = None,
) -> RawBook:
    """``check_contract`` plus the book's figures at ``as_of`` (``RawBook``); ``end``,
    ``cutoff`` and ``strategy_ids`` as ``features.validation.validate_tables``'. ``book``: the
    raw tables already bucketed (``bucketed(raw, buckets)``), else they are bucketed here."""
    present = tuple(n for n in TABLE_NAMES if n in raw)
    check = SlicedValidation(present, end, cutoff, strategy_ids)
    if LOANS not in raw:
        check.finish()  # raises: the loans table is missing
    long, columns = (book.frame, book.columns) if book is not None else long_frame(raw, buckets)
    body = _bucket_check(present, columns, end, cutoff, as_of)
    rows = long.groupBy(BUCKET).applyInPandas(body, _PROBLEMS)
    collected = sorted(rows.collect(), key=lambda r: (r["bucket"], r["seq"]))
    stats = [tuple(r)[:10] for r in collected if r["kind"] == "stat"]
    check.absorb([tuple(r)[:10] for r in collected if r["kind"] != "stat"])
    check.absorb(_unique_loan_ids(raw[LOANS]))
    check.widen_span([pd.Timestamp(r[6]) for r in stats if r[3] == "span"])
    if CAMPAIGNS in raw:  # their rules need the whole book's span: a second pass, campaigns only
        second = _campaign_check(present, columns, end, cutoff, strategy_ids, check.span)
        rows = long.where(F.col(TABLE) == CAMPAIGNS).groupBy(BUCKET)
        found = sorted(rows.applyInPandas(second, _PROBLEMS).collect(),
                       key=lambda r: (r["bucket"], r["seq"]))  # fmt: skip
        check.absorb([tuple(r)[:10] for r in found])
    latest = [pd.Timestamp(r[6]) for r in stats if r[3] == "latest"]
    check.latest = max(latest) if latest else None
    report = check.finish()
    ends = [pd.Timestamp(r[6]) for r in stats if r[3] == "end"]
    return RawBook(
        report=report,
        event_firsts=tuple(pd.Timestamp(r[6]) for r in stats if r[3] == "first"),
        known=sum(int(r[7]) for r in stats if r[3] == "known"),
        customers=sum(int(r[7]) for r in stats if r[3] == "customers"),
        end=max(ends) if ends else None,
    )


def long_frame(raw: dict[str, DataFrame], buckets: int) -> tuple[DataFrame, dict[str, list[str]]]:
    """Every raw table in one frame, each row tagged with its table (TABLE) and the bucket of its
    customer (BUCKET; repayments: their loan's customer's); ids as text. Also each table's own
    columns."""
    columns = {name: [c for c in df.columns if c != ROW] for name, df in raw.items()}
    bucket = F.pmod(F.xxhash64(F.col("_customer")), F.lit(buckets))
    loans = raw[LOANS]
    has_customer = CUSTOMER_ID in loans.columns
    owner = loans.select(
        stripped_key(LOAN_ID).alias("_loan")
        if LOAN_ID in loans.columns
        else F.lit(None).alias("_loan"),
        (stripped_key(CUSTOMER_ID) if has_customer else F.lit(None)).alias("_customer"),
        F.col(ROW),
    )
    first = Window.partitionBy("_loan").orderBy(ROW)
    owner = (
        owner.where(F.col("_loan").isNotNull())
        .withColumn("_n", F.row_number().over(first))
        .where("_n = 1")
        .select("_loan", F.col("_customer").alias("_owner"))
    )
    parts = []
    for name, df in raw.items():
        ids = {CUSTOMER_ID, LOAN_ID}  # shared by several tables: one type in the union
        text = df.select(
            *[F.col(c).cast("string").alias(c) if c in ids else F.col(c) for c in columns[name]],
            ROW,
        )
        if name == REPAYMENTS and LOAN_ID in df.columns:
            text = text.withColumn("_loan", stripped_key(LOAN_ID)).join(owner, "_loan", "left")
            text = text.withColumn("_customer", F.col("_owner")).drop("_loan", "_owner")
        elif CUSTOMER_ID in df.columns:
            text = text.withColumn("_customer", stripped_key(CUSTOMER_ID))
        else:
            text = text.withColumn("_customer", F.lit(None).cast("string"))
        tagged = text.withColumn(BUCKET, F.coalesce(bucket, F.lit(0)).cast("long"))
        parts.append(tagged.drop("_customer").withColumn(TABLE, F.lit(name)))
    long = parts[0]
    for part in parts[1:]:
        long = long.unionByName(part, allowMissingColumns=True)
    return long, columns


def raw_frames(
    long: pd.DataFrame, present: tuple[str, ...], columns: dict[str, list[str]]
) -> dict[str, tuple[pd.DataFrame, pd.Index, pd.DataFrame]]:
    """One bucket's long frame split back into each table's raw rows in file order: (the raw
    table, its row numbers in the file, the rows with every column of the long frame)."""
    out = {}
    for name in present:
        rows = long[long[TABLE] == name].sort_values(ROW, kind="stable")
        raw = rows[columns[name]].reset_index(drop=True)
        out[name] = (raw, pd.Index(rows[ROW].to_numpy()), rows)
    return out


def _bucket_check(
    present: tuple[str, ...],
    columns: dict,
    end: pd.Timestamp | None,
    cutoff: pd.Timestamp | None,
    as_of: pd.Timestamp | None,
):
    """The applyInPandas body: one bucket's rows of every table in, its problems (and, when
    they pass, its figures: ``_stats``) out."""

    def run(long: pd.DataFrame) -> pd.DataFrame:
        check = SlicedValidation(present, end, cutoff)
        check._found.clear()  # the missing-table rule is the driver's
        frames = {}
        for name, (raw, rows, _) in raw_frames(long, present, columns).items():
            frames[name] = check.table(name, raw, rows)
        check.loan_rules(frames[LOANS])
        check.keys(frames)
        exported = [r for r in check.export() if r[3:6] != (LOANS, LOAN_ID, "unique")]
        if not check.failed:
            exported += _stats(frames, check.latest, as_of)
        exported += [_stat("span", day) for day in check.span or ()]  # the campaign rules' span
        return _problem_frame(exported, long)

    return run


def _campaign_check(
    present: tuple[str, ...],
    columns: dict,
    end: pd.Timestamp | None,
    cutoff: pd.Timestamp | None,
    strategy_ids: Collection[str] | None,
    span: tuple[pd.Timestamp, pd.Timestamp] | None,
):
    """The second pass's applyInPandas body: one bucket's campaign rows in, the failures of the
    campaign rules against the book's ``span`` out (their own column rules were the first
    pass's)."""

    def run(long: pd.DataFrame) -> pd.DataFrame:
        check = SlicedValidation(present, end, cutoff, strategy_ids)
        raw, rows, _ = raw_frames(long, (CAMPAIGNS,), columns)[CAMPAIGNS]
        typed = check.table(CAMPAIGNS, raw, rows)
        found = SlicedValidation(present, end, cutoff, strategy_ids)
        found.widen_span(list(span or ()))
        found.campaign_rules(typed)
        failures = [r for r in found.export() if r[0] == "failure" and r[3] == CAMPAIGNS]
        return _problem_frame(failures, long)

    return run


def _stat(name: str, day: pd.Timestamp) -> tuple:
    return ("stat", 0, 0, name, "", "", f"{day:%Y-%m-%d}", 0, [], [])


def _problem_frame(exported: list[tuple], long: pd.DataFrame) -> pd.DataFrame:
    """A bucket's exported rows as the applyInPandas result (_PROBLEMS)."""
    out = pd.DataFrame(exported, columns=_PROBLEMS.fieldNames()[:10])
    return out.assign(bucket=int(long[BUCKET].iloc[0]), seq=range(len(out)))


def _stats(frames: dict, latest, as_of: pd.Timestamp | None) -> list[tuple]:
    """A bucket's figures as problem-shaped rows (kind "stat"; the name in ``table``, a date in
    ``detail``, a number in ``count``)."""
    tables = Tables(**{n: f.reset_index(drop=True) for n, f in frames.items()})
    out = [_stat("first", d) for d in event_first_dates(tables)]
    if latest is not None:
        out.append(_stat("latest", latest))
    if any(len(f) for f in frames.values()):
        universe = build_universe(tables)
        out.append(("stat", 0, 0, "customers", "", "", "", len(universe.ids), [], []))
        if as_of is not None:
            day = day_numbers(pd.DatetimeIndex([as_of]))[0]
            known = int((universe.known_day <= day).sum())
            out.append(("stat", 0, 0, "known", "", "", "", known, [], []))
        last = data_end(tables)
        if pd.notna(last):
            out.append(_stat("end", last))
    return out


def _unique_loan_ids(loans: DataFrame) -> list[tuple]:
    """``loan_id`` unique across the book (Spark SQL): the rows of duplicated ids, as rows for
    ``SlicedValidation.absorb`` (the count and the first five rows of the file)."""
    if LOAN_ID not in loans.columns:
        return []
    # exact duplicate rows are dropped (a warning), not a second holder of the id
    every = [c for c in loans.columns if c != ROW]
    first = Window.partitionBy(*every).orderBy(ROW)
    loans = loans.withColumn("_n", F.row_number().over(first)).where("_n = 1")
    keyed = loans.select(stripped_key(LOAN_ID).alias("_loan"), F.col(LOAN_ID).cast("string"), ROW)
    counts = keyed.where(F.col("_loan").isNotNull()).groupBy("_loan").count()
    dup = keyed.join(counts.where("count > 1"), "_loan")
    n = dup.count()
    if n == 0:
        return []
    head = dup.orderBy(ROW).limit(5).collect()
    order = TABLE_NAMES.index(LOANS)
    examples = ([int(r[ROW]) for r in head], [str(r[LOAN_ID]) for r in head])
    return [("failure", order, 0, LOANS, LOAN_ID, "unique", "", n, *examples)]
