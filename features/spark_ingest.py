"""The Spark engine from the raw tables: features as of a date, and no table on the driver.

``features.spark.spark_features_as_of`` ships validated pandas tables from the driver. This
module starts from the raw tables as Spark reads them (``features.spark_validation``: CSV as
text, Parquet, any URI) once they have been validated on the executors (``check_book``):

1. **The book context on one executor.** The VIP bar, the BG/NBD parameters and the book median
   rate per product compare a customer with the whole book (features/context.py). One task
   receives the loans table (``groupBy`` of a constant: the smallest event table, as the sliced
   pandas reader holds it whole), types it with the validation's own coercion and computes
   ``build_book_context``. It returns one spread per loan, which stays on the executors, and one
   row with the few figures for the date (pickled: a few numbers and a small table), which is all
   the driver receives, with the first origination date (data.start's last fallback).
2. **Features per bucket.** The raw tables are in one long frame partitioned by customer
   bucket and persisted on the executors' disks (``spark_validation.bucketed``, repayments
   through their loan's customer), which validation has already read. Each loan's spread is
   sent to its bucket (a join on loan ids only) and meets the bucket's rows in a ``cogroup``, so
   the raw rows are shuffled once for validation and features. The ``applyInPandas`` body types
   each table as validation does (``SlicedValidation.table``: the same typed values, rows in
   file order) and calls ``build_feature_table`` with the whole book's context and the
   observation start, so every row equals the pandas engine's (unobserved windows masked as
   pandas masks them).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.build import build_feature_table
from features.context import BookContext, build_book_context
from features.contract import LOAN_ID, LOANS, ORIGINATION_DATE, Tables
from features.spark import BUCKETS_PER_CORE, feature_schema
from features.spark_validation import BUCKET, TABLE, Bucketed, raw_frames, stripped_key
from features.spec import Definitions, FeatureSpec
from features.validation import SlicedValidation
from features.windows import day_numbers

SPREAD, OWNER_BUCKET = "_spread", "_owner_bucket"  # a new column: the frame joins itself
_CONTEXT = T.StructType(
    [
        T.StructField("_loan", T.StringType()),
        T.StructField(SPREAD, T.DoubleType()),
        T.StructField("_blob", T.BinaryType()),
    ]
)


@dataclass(frozen=True)
class SparkContext:
    """The book context for one date: the small figures on the driver, the spreads on Spark."""

    small: BookContext  # loan_spread empty: each bucket gets its loans' spreads as a column
    spreads: DataFrame  # _loan (the stripped loan id), _spread
    first_origination: pd.Timestamp


def bucket_count(spark: SparkSession, loans_rows: int, spec: FeatureSpec) -> int:
    """A few buckets per core, more if a bucket would hold more loans than a pandas slice has
    customers (``features.chunk_customers``)."""
    by_memory = -(-loans_rows // max(spec.chunk_customers, 1))
    return int(max(BUCKETS_PER_CORE * spark.sparkContext.defaultParallelism, by_memory, 1))


def _typed_loans(long: pd.DataFrame, columns: dict) -> pd.DataFrame:
    raw, rows, _ = raw_frames(long, (LOANS,), columns)[LOANS]
    return SlicedValidation((LOANS,)).table(LOANS, raw, rows).reset_index(drop=True)


def book_context(
    raw: dict[str, DataFrame], as_of: pd.Timestamp, defs: Definitions, spec: FeatureSpec
) -> SparkContext:
    """The whole book's context at ``as_of``, computed on one executor from the raw loans."""
    columns = {LOANS: [c for c in raw[LOANS].columns if c != "_row"]}
    days = day_numbers(pd.DatetimeIndex([as_of]))

    def compute(long: pd.DataFrame) -> pd.DataFrame:
        loans = _typed_loans(long, columns)
        context = build_book_context(loans, days, defs, spec)
        small = (context.vip_bars, context.btyd, context.product_median)
        first = pd.Timestamp(loans[ORIGINATION_DATE].min()).normalize()
        n = len(context.loan_spread)
        return pd.DataFrame(
            {
                "_loan": [*context.loan_spread.index.astype(str), None],
                SPREAD: np.append(context.loan_spread.to_numpy("float64"), np.nan),
                "_blob": [None] * n + [pickle.dumps((small, first))],
            }
        )

    loans = raw[LOANS].withColumn(TABLE, F.lit(LOANS)).withColumn("_one", F.lit(0))
    out = loans.groupBy("_one").applyInPandas(compute, _CONTEXT)
    out = out.persist(StorageLevel.MEMORY_AND_DISK)  # one task; computed once
    (vip_bars, btyd, median), first = pickle.loads(
        out.where(F.col("_blob").isNotNull()).select("_blob").first()[0]
    )
    small = BookContext(vip_bars, btyd, pd.Series(dtype="float64"), median)
    spreads = out.where(F.col("_blob").isNull()).select("_loan", SPREAD)
    return SparkContext(small, spreads, first)


def spark_features_from_raw(
    book: Bucketed,
    present: tuple[str, ...],
    as_of: pd.Timestamp,
    defs: Definitions,
    spec: FeatureSpec,
    context: SparkContext,
    observed_from: pd.Timestamp | None,
) -> DataFrame:
    """Feature rows of every customer known at ``as_of`` (labels omitted) from the validated
    raw tables of ``present``, as bucketed for validation; equal to the pandas engine's row for
    row, in no particular order. Each loan's spread goes to its bucket (the loans rows' bucket,
    a join of loan ids only) and meets the bucket's rows in a ``cogroup``: the raw rows are not
    shuffled again."""
    loans = book.frame.where(F.col(TABLE) == LOANS).select(
        stripped_key(LOAN_ID).alias("_loan"), F.col(BUCKET).alias(OWNER_BUCKET)
    )
    owners = loans.where(F.col("_loan").isNotNull()).dropDuplicates(["_loan"])
    spreads = context.spreads.join(owners, "_loan")
    schema = feature_schema(spec)
    names = schema.fieldNames()
    dates = pd.DatetimeIndex([as_of])
    small, columns = context.small, book.columns

    def build(long: pd.DataFrame, spread_rows: pd.DataFrame) -> pd.DataFrame:
        if long.empty:  # cogroup's call for a key on the spreads' side only: no customer here
            return pd.DataFrame(columns=names)
        check = SlicedValidation(present)
        parts = raw_frames(long, present, columns).items()
        frames = {n: check.table(n, t, rows).reset_index(drop=True) for n, (t, rows, _) in parts}
        spread = pd.Series(spread_rows[SPREAD].to_numpy("float64"),
                           index=spread_rows["_loan"].to_numpy(dtype=object))  # fmt: skip
        spread = spread[~spread.index.duplicated()]
        local = BookContext(small.vip_bars, small.btyd, spread, small.product_median)
        table = build_feature_table(Tables(**frames), dates, defs, spec, None, local, observed_from)
        return table[names]

    grouped = book.frame.groupBy(BUCKET).cogroup(spreads.groupBy(OWNER_BUCKET))
    return grouped.applyInPandas(build, schema)
