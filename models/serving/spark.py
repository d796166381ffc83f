"""Scoring on Spark: the same score rows as the pandas engine (models/serving/score.py).

Features come from ``features.spark.spark_features_as_of`` (the pandas feature code per customer
bucket, with the whole book's context). Models: ``mlflow.pyfunc.spark_udf`` on a struct of the model
inputs, with a struct result type read from each model's logged output signature, so the UDF
returns every output column at once; each Arrow batch goes through the same pyfunc ``predict``
as on one machine (``mapInPandas`` is not needed: the UDF can return a struct). The rows come
out in customer_id order; pipelines/score.py writes them with ``write_parquet_atomic``.
"""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.contract import AS_OF, CUSTOMER_ID
from features.registry import LIFECYCLE_STATE
from models.serving import registry
from models.serving.score import (
    ID_COLUMNS,
    NO_TRANSITION_STATES,
    Lineage,
    check_outputs,
    score_columns,
)

log = logging.getLogger(__name__)

_SPARK_TYPES = {"double": T.DoubleType(), "string": T.StringType(), "long": T.LongType(),
                "boolean": T.BooleanType()}  # fmt: skip
CHURN, TIER = "_churn", "_tier"
IDS = (CUSTOMER_ID, AS_OF)  # optional model inputs the models do not use


def output_struct(loaded: registry.LoadedModel) -> T.StructType:
    """A model's logged output signature as a Spark struct (the UDF's result type)."""
    schema = loaded.model.metadata.get_output_schema()
    if schema is None:
        raise ValueError(f"model {loaded.uri} was logged without an output signature")
    fields = [T.StructField(c.name, _SPARK_TYPES[c.type.name]) for c in schema.inputs]
    return T.StructType(fields)


def _model_input(features: DataFrame, loaded: registry.LoadedModel) -> Column:
    """The model's inputs present in ``features`` (ids aside) as one struct, which the UDF reads
    as a pandas DataFrame with these column names."""
    names = loaded.model.metadata.get_input_schema().input_names()
    return F.struct(*[F.col(n) for n in names if n in features.columns and n not in IDS])


def _null_text(column: Column, field: T.StructField) -> Column:
    """A missing text as null: MLflow's spark_udf casts a string field with ``astype(str)``,
    which turns the pyfunc's None into the text "None" (never a real value of these columns)."""
    if not isinstance(field.dataType, T.StringType):
        return column
    return F.when(column == F.lit("None"), F.lit(None)).otherwise(column)


def score_frame(
    features: DataFrame,
    udfs: tuple,
    structs: tuple[T.StructType, T.StructType],
    models: tuple[registry.LoadedModel, registry.LoadedModel],
    lineage: Lineage,
) -> DataFrame:
    """Score rows from a Spark feature frame: ids, both models' outputs, lineage, in order."""
    k = check_outputs(structs[0].fieldNames(), structs[1].fieldNames(), lineage)
    (churn_udf, tier_udf), (churn, tier) = udfs, models
    # sorted before the models run: sorting their output puts the models in the plan that the
    # range partitioner samples, a job that loads every pyfunc again in each partition (about
    # 9 s of a small book's run); the select below keeps each partition's order
    features = features.orderBy(CUSTOMER_ID)
    scored = features.select(
        *ID_COLUMNS,
        churn_udf(_model_input(features, churn)).alias(CHURN),
        tier_udf(_model_input(features, tier)).alias(TIER),
    )
    outputs = [_null_text(F.col(f"{CHURN}.{f.name}"), f).alias(f.name) for f in structs[0].fields]
    gone = F.col(LIFECYCLE_STATE).isin(*NO_TRANSITION_STATES)  # no tier transition (score.py)
    outputs += [
        F.when(gone, F.lit(None)).otherwise(F.col(f"{TIER}.{n}")).alias(n)
        for n in structs[1].fieldNames()
    ]
    lineage_columns = [F.lit(v).cast("string").alias(c) for c, v in lineage.columns().items()]
    scored = scored.select(*ID_COLUMNS, *outputs, *lineage_columns)
    return scored.select(*score_columns(k))
