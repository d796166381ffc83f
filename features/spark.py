"""The Spark engine for one-date features: the pandas feature code, one customer bucket at a time.

Design (docs/spark.md): the few cross-customer figures (``features.context.BookContext``: VIP bar,
BG/NBD parameters, book median rates) are computed once on the driver from the loans table. Every
table then goes to Spark tagged with its table name, its original row number and a bucket of a
stable hash of customer_id (repayments take their loan's customer; each loan carries its spread
from the context as a column). ``groupBy(bucket).applyInPandas`` rebuilds typed ``Tables`` for the
bucket's customers and calls ``build_feature_table`` with the context, so every row equals the
pandas engine's whole-book computation. Nothing runs per row in Python: tables cross over Arrow,
and a bucket's features are the vectorised pandas code.

Timestamps (the input dates and ``as_of``) are ``timestamp_ntz``: naive like the pandas engine's
datetimes, independent of the session time zone, and read back by pandas as naive datetimes.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.build import build_feature_table
from features.context import BookContext, build_book_context
from features.contract import (
    AS_OF,
    CONTRACT,
    CUSTOMER_ID,
    LOAN_ID,
    LOANS,
    REPAYMENTS,
    TABLE_NAMES,
    Tables,
)
from features.registry import STATE_COLUMNS, feature_names
from features.spec import Definitions, FeatureSpec
from features.windows import day_numbers

log = logging.getLogger(__name__)

BUCKET = "_bucket"  # stable hash bucket of customer_id: one applyInPandas group
TABLE = "_table"  # which contract table a row belongs to: its index in TABLE_NAMES
ROW = "_row"  # the row's position in its pandas table: restores the input order per bucket
SPREAD = "_spread"  # a loan's spread from the book context
BUCKETS_PER_CORE = 3

_SPARK_TYPES = {
    "str": T.StringType(),
    "date": T.TimestampNTZType(),
    "timestamp": T.TimestampNTZType(),
    "float": T.DoubleType(),
    "int": T.DoubleType(),  # validated tables hold term_months as float64
}


def feature_schema(spec: FeatureSpec) -> T.StructType:
    """The feature table's columns as Spark types (the pandas engine's, labels omitted)."""
    fields = [
        T.StructField(CUSTOMER_ID, T.StringType()),
        T.StructField(AS_OF, T.TimestampNTZType()),
    ]
    fields += [T.StructField(c, T.StringType()) for c in STATE_COLUMNS]
    fields += [T.StructField(c, T.DoubleType()) for c in feature_names(spec)]
    return T.StructType(fields)


def default_partitions(spark: SparkSession, tables: Tables, spec: FeatureSpec) -> int:
    """A few buckets per core, more if a bucket would exceed ``spec.chunk_customers`` customers."""
    customers = tables.loans[CUSTOMER_ID].nunique()
    if tables.customers is not None:
        customers = max(customers, len(tables.customers))
    by_memory = -(-customers // max(spec.chunk_customers, 1))
    return int(max(BUCKETS_PER_CORE * spark.sparkContext.defaultParallelism, by_memory, 1))


def _shipped(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """The table's contract columns with Spark-friendly dtypes, plus its row numbers."""
    spec = CONTRACT[name]
    cols = [c for c in spec.column_names if c in df.columns]
    numeric = {c: "float64" for c in cols if spec.column(c).kind in ("float", "int")}
    return df[cols].astype(numeric).assign(**{ROW: np.arange(len(df), dtype=np.int64)})


def _to_spark(spark: SparkSession, name: str, frame: pd.DataFrame, partitions: int) -> DataFrame:
    spec = CONTRACT[name]
    extra = {ROW: T.LongType(), SPREAD: T.DoubleType(), CUSTOMER_ID: T.StringType()}
    schema = T.StructType(
        [
            T.StructField(
                c, _SPARK_TYPES[spec.column(c).kind] if c in spec.column_names else extra[c]
            )
            for c in frame.columns
        ]
    )
    bucket = F.pmod(F.xxhash64(F.col(CUSTOMER_ID)), F.lit(partitions)).cast("int")
    shipped = (
        spark.createDataFrame(frame, schema=schema)
        .withColumn(TABLE, F.lit(TABLE_NAMES.index(name)).cast("byte"))
        .withColumn(BUCKET, bucket)
    )
    # repayments carry their loan's customer for bucketing only: no strings to convert twice
    return shipped if CUSTOMER_ID in spec.column_names else shipped.drop(CUSTOMER_ID)


def _long_frame(spark: SparkSession, tables: Tables, spread: pd.Series, partitions: int):
    """All tables as one tagged, bucketed Spark frame, and each table's pandas dtypes."""
    dtypes, parts = {}, []
    for name, df in tables.present().items():
        frame = _shipped(name, df)
        dtypes[name] = df[[c for c in frame.columns if c != ROW]].dtypes.to_dict()
        if name == LOANS:
            frame = frame.assign(**{SPREAD: spread.reindex(df[LOAN_ID].astype(str)).to_numpy()})
        if name == REPAYMENTS:
            owner = pd.Series(tables.loans[CUSTOMER_ID].to_numpy(), index=tables.loans[LOAN_ID])
            frame = frame.assign(**{CUSTOMER_ID: df[LOAN_ID].map(owner).to_numpy()})
        parts.append(_to_spark(spark, name, frame, partitions))
    long = parts[0]
    for part in parts[1:]:
        long = long.unionByName(part, allowMissingColumns=True)
    return long, dtypes


def _restore(rows: pd.DataFrame, dtypes: dict) -> pd.DataFrame:
    """One table's rows of a bucket with the input's columns and dtypes (text: NaN if missing)."""
    table = rows[list(dtypes)].astype(dtypes).reset_index(drop=True)
    text = [c for c, t in dtypes.items() if pd.api.types.is_object_dtype(t)]
    return table.assign(**{c: table[c].where(table[c].notna(), np.nan) for c in text})


def _bucket_features(
    dtypes: dict,
    context: BookContext,
    as_of: pd.Timestamp,
    defs: Definitions,
    spec: FeatureSpec,
    columns: list[str],
):
    """The applyInPandas body: one bucket's long frame in, its customers' feature rows out."""

    def build(long: pd.DataFrame) -> pd.DataFrame:
        long = long.sort_values(ROW, kind="stable")  # each table's rows back in input order
        tag = long[TABLE].to_numpy()
        frames = {
            name: _restore(long[tag == TABLE_NAMES.index(name)], d) for name, d in dtypes.items()
        }
        loans = long[tag == TABLE_NAMES.index(LOANS)]
        spread = pd.Series(loans[SPREAD].to_numpy("float64"), index=loans[LOAN_ID].astype(str))
        local = BookContext(context.vip_bars, context.btyd, spread, context.product_median)
        dates = pd.DatetimeIndex([as_of])
        return build_feature_table(Tables(**frames), dates, defs, spec, None, local)[columns]

    return build


def spark_features_as_of(
    spark: SparkSession,
    tables: Tables,
    as_of: pd.Timestamp,
    defs: Definitions,
    spec: FeatureSpec,
    partitions: int | None = None,
) -> DataFrame:
    """Feature rows of every customer known at ``as_of`` as a Spark DataFrame (labels omitted).

    Equals ``pipelines.features.build_as_of`` row for row (in no particular row order).
    ``partitions`` is the number of customer buckets and of tasks (default_partitions): each
    bucket's tables sit in one Python worker's memory at once.
    """
    as_of = pd.Timestamp(as_of)
    n = partitions or default_partitions(spark, tables, spec)
    context = build_book_context(tables.loans, day_numbers(pd.DatetimeIndex([as_of])), defs, spec)
    long, dtypes = _long_frame(spark, tables, context.loan_spread, n)
    small = BookContext(
        context.vip_bars, context.btyd, pd.Series(dtype="float64"), context.product_median
    )
    schema = feature_schema(spec)
    body = _bucket_features(dtypes, small, as_of, defs, spec, schema.fieldNames())
    log.info("spark features as of %s: %d buckets", as_of.date(), n)
    return long.repartition(n, BUCKET).groupBy(BUCKET).applyInPandas(body, schema)
