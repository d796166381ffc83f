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

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.contract import CUSTOMER_ID, LOAN_ID, LOANS, REPAYMENTS, TABLE_NAMES
from features.validation import SlicedValidation, ValidationReport

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
    anything else as Parquet (a file or a directory); plus its row number in the file (ROW)."""
    raw = {}
    for name, uri in uris.items():
        if str(uri).lower().endswith(".csv"):
            frame = spark.read.csv(str(uri), header=True, inferSchema=False, encoding="UTF-8")
        else:
            frame = spark.read.parquet(str(uri))
        raw[name] = _numbered(frame)
    return raw


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


def _key(column: str):
    """An id as validation reads it: stripped, empty = null."""
    text = F.regexp_replace(F.col(column).cast("string"), f"^{_SPACE}+|{_SPACE}+$", "")
    return F.when(text != "", text)


def check_contract(
    raw: dict[str, DataFrame], end: pd.Timestamp | None = None, buckets: int = 8
) -> ValidationReport:
    """Validate the raw tables on the executors; the report, or ``ContractError``."""
    present = tuple(n for n in TABLE_NAMES if n in raw)
    check = SlicedValidation(present, end)
    if LOANS not in raw:
        return check.finish()  # raises: the loans table is missing
    columns = {name: [c for c in df.columns if c != ROW] for name, df in raw.items()}
    bucket = F.pmod(F.xxhash64(F.col("_customer")), F.lit(buckets))
    loans = raw[LOANS]
    has_customer = CUSTOMER_ID in loans.columns
    owner = loans.select(
        _key(LOAN_ID).alias("_loan") if LOAN_ID in loans.columns else F.lit(None).alias("_loan"),
        (_key(CUSTOMER_ID) if has_customer else F.lit(None)).alias("_customer"),
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
            text = text.withColumn("_loan", _key(LOAN_ID)).join(owner, "_loan", "left")
            text = text.withColumn("_customer", F.col("_owner")).drop("_loan", "_owner")
        elif CUSTOMER_ID in df.columns:
            text = text.withColumn("_customer", _key(CUSTOMER_ID))
        else:
            text = text.withColumn("_customer", F.lit(None).cast("string"))
        bucketed = text.withColumn(BUCKET, F.coalesce(bucket, F.lit(0)).cast("long"))
        parts.append(bucketed.drop("_customer").withColumn(TABLE, F.lit(name)))
    long = parts[0]
    for part in parts[1:]:
        long = long.unionByName(part, allowMissingColumns=True)
    body = _bucket_check(present, columns, end)
    rows = long.groupBy(BUCKET).applyInPandas(body, _PROBLEMS)
    collected = sorted(rows.collect(), key=lambda r: (r["bucket"], r["seq"]))
    check.absorb([tuple(r)[:10] for r in collected])
    check.absorb(_unique_loan_ids(raw[LOANS]))
    return check.finish()


def _bucket_check(present: tuple[str, ...], columns: dict, end: pd.Timestamp | None):
    """The applyInPandas body: one bucket's rows of every table in, its problems out."""

    def run(long: pd.DataFrame) -> pd.DataFrame:
        check = SlicedValidation(present, end)
        check._found.clear()  # the missing-table rule is the driver's
        frames = {}
        for name in present:
            rows = long[long[TABLE] == name].sort_values(ROW, kind="stable")
            raw = rows[columns[name]].reset_index(drop=True)
            frames[name] = check.table(name, raw, pd.Index(rows[ROW].to_numpy()))
        check.loan_rules(frames[LOANS])
        check.keys(frames)
        exported = [r for r in check.export() if r[3:6] != (LOANS, LOAN_ID, "unique")]
        bucket = int(long[BUCKET].iloc[0])
        out = pd.DataFrame(exported, columns=_PROBLEMS.fieldNames()[:10])
        return out.assign(bucket=bucket, seq=range(len(out)))

    return run


def _unique_loan_ids(loans: DataFrame) -> list[tuple]:
    """``loan_id`` unique across the book (Spark SQL): the rows of duplicated ids, as rows for
    ``SlicedValidation.absorb`` (the count and the first five rows of the file)."""
    if LOAN_ID not in loans.columns:
        return []
    # exact duplicate rows are dropped (a warning), not a second holder of the id
    every = [c for c in loans.columns if c != ROW]
    first = Window.partitionBy(*every).orderBy(ROW)
    loans = loans.withColumn("_n", F.row_number().over(first)).where("_n = 1")
    keyed = loans.select(_key(LOAN_ID).alias("_loan"), F.col(LOAN_ID).cast("string"), ROW)
    counts = keyed.where(F.col("_loan").isNotNull()).groupBy("_loan").count()
    dup = keyed.join(counts.where("count > 1"), "_loan")
    n = dup.count()
    if n == 0:
        return []
    head = dup.orderBy(ROW).limit(5).collect()
    order = TABLE_NAMES.index(LOANS)
    examples = ([int(r[ROW]) for r in head], [str(r[LOAN_ID]) for r in head])
    return [("failure", order, 0, LOANS, LOAN_ID, "unique", "", n, *examples)]
