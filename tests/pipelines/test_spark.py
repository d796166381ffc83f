"""The Spark engine equals the pandas engine row for row (real Spark, local[2], no mocks; the
session is tests/conftest.py's, shared with the score stage's tests)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17+ on PATH", allow_module_level=True)

from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.build import build_feature_table
from features.contract import AS_OF, CUSTOMER_ID, Tables
from features.spark import feature_schema, spark_features_as_of
from features.validation import validate_tables
from pipelines.io import OutputExistsError, write_parquet_atomic
from pipelines.spark_session import _local_cores

pytestmark = pytest.mark.slow
AS_OF_DATE = pd.Timestamp("2022-06-30")


@pytest.fixture(scope="module")
def world(small_world) -> Tables:
    tables, _ = validate_tables(small_world.present())
    return tables


def _pandas_engine(tables: Tables, defs, spec) -> pd.DataFrame:
    return build_feature_table(tables, pd.DatetimeIndex([AS_OF_DATE]), defs, spec)


def _assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    got = got.astype(expected.dtypes.to_dict()).sort_values(CUSTOMER_ID, ignore_index=True)
    expected = expected.sort_values(CUSTOMER_ID, ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9)


def test_spark_features_equal_the_pandas_engine(spark, world, defs, spec):
    features = spark_features_as_of(spark, world, AS_OF_DATE, defs, spec)
    assert features.schema == feature_schema(spec)
    assert features.schema[AS_OF].dataType == T.TimestampNTZType()
    expected = _pandas_engine(world, defs, spec)
    _assert_same_rows(features.toPandas(), expected)
    assert expected["tier"].nunique() > 2 and expected["pay_n_due_365"].gt(0).any()


def test_loans_only_tables_in_one_partition(spark, world, defs, spec):
    loans_only = Tables(loans=world.loans)
    features = spark_features_as_of(spark, loans_only, AS_OF_DATE, defs, spec, partitions=1)
    expected = _pandas_engine(loans_only, defs, spec)
    _assert_same_rows(features.toPandas(), expected)
    assert expected["pay_n_due_365"].isna().all()  # no repayments table: NaN, not 0


def test_features_round_trip_through_parquet(spark, tiny_tables, defs, spec, tmp_path):
    """Hand-made edge cases (prospects, a customer with no loan yet), many near-empty buckets."""
    out = tmp_path / "features.parquet"
    features = spark_features_as_of(spark, tiny_tables, AS_OF_DATE, defs, spec, partitions=7)
    assert write_parquet_atomic(features, out) == str(out)
    _assert_same_rows(pd.read_parquet(out), _pandas_engine(tiny_tables, defs, spec))
    assert [p.name for p in tmp_path.iterdir()] == ["features.parquet"]  # no leftovers


def test_parquet_output_is_not_overwritten_unless_asked(spark, tmp_path):
    out = tmp_path / "scores.parquet"
    write_parquet_atomic(spark.range(3), out)
    with pytest.raises(OutputExistsError):
        write_parquet_atomic(spark.range(5), out)
    assert len(pd.read_parquet(out)) == 3
    write_parquet_atomic(spark.range(5), out, overwrite=True)
    assert len(pd.read_parquet(out)) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def test_a_failed_write_leaves_the_previous_output_and_no_debris(spark, tmp_path):
    out = tmp_path / "scores.parquet"
    write_parquet_atomic(spark.range(2), out)
    failing = spark.range(4).withColumn("x", F.when(F.col("id") == 3, F.raise_error("boom")))
    with pytest.raises(Exception, match="boom"):
        write_parquet_atomic(failing, out, overwrite=True)
    assert len(pd.read_parquet(out)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]
    with pytest.raises(Exception, match="boom"):
        write_parquet_atomic(failing, tmp_path / "new.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


@pytest.mark.parametrize(
    ("master", "cores"),
    [
        ("local", 1),
        ("local[3]", 3),
        ("local[4, 2]", 4),
        ("spark://host:7077", None),
        ("yarn", None),
    ],
)
def test_local_masters_are_told_from_cluster_masters(master, cores):
    assert _local_cores(master) == cores
