"""`tierwise score`: a portfolio scored as of one date by the registered churn and tier models.

validate the contract directory slice by slice (pipelines/slices.py: only the loans table is
held whole) -> features as of DATE for every customer known then (slices of
``features.chunk_customers`` customers with the whole book's context, so memory is bounded by a
slice) -> both models through MLflow pyfunc, exactly as a registry consumer calls them -> one row
per customer, streamed into one Parquet or CSV file that appears only when complete. The Spark
engine (models/serving/spark.py) gives the same rows. docs/scoring.md has the columns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from features.contract import Tables, data_end
from features.snapshots import count_known
from models.serving import registry
from models.serving.score import Lineage, iter_scores
from models.spec import EXPLAIN_POLICIES
from pipelines.config import Config
from pipelines.io import OutputExistsError, read_contract, save_frame_chunks
from pipelines.slices import SlicedBook, iter_slice_features, read_contract_sliced

log = logging.getLogger(__name__)

ENGINES = ("pandas", "spark")
CHAMPION_URIS = {
    kind: f"models:/{name}@{registry.CHAMPION}" for kind, name in registry.MODEL_NAMES.items()
}
SUFFIXES = {"pandas": (".parquet", ".csv"), "spark": (".parquet",)}


class ScoreError(ValueError):
    """A score request that cannot be served (nothing to score, a format the engine lacks)."""


@dataclass(frozen=True)
class ScoreRequest:
    """One `tierwise score` call; ``explain`` None takes params' ``score.explain``."""

    data_dir: Path
    as_of: pd.Timestamp
    out: Path | str  # a local file; the Spark engine also takes a URI (hdfs://…)
    churn_model: str = CHAMPION_URIS["churn"]
    tier_model: str = CHAMPION_URIS["tier"]
    engine: str = "pandas"
    master: str = "local[*]"
    explain: str | None = None
    overwrite: bool = False


def _is_uri(out: str | Path) -> bool:
    """``hdfs://…``, ``file:/…``, ``s3a://…`` (a one-letter scheme would be a Windows drive)."""
    return len(urlparse(str(out)).scheme) > 1


def check_request(request: ScoreRequest) -> None:
    """Fail before any work: unknown engine or policy, a format the engine lacks, an output that
    exists without ``overwrite``."""
    if request.engine not in ENGINES:
        raise ScoreError(f"engine must be one of {ENGINES}, got {request.engine!r}")
    if request.explain is not None and request.explain not in EXPLAIN_POLICIES:
        raise ScoreError(f"explain must be one of {EXPLAIN_POLICIES}, got {request.explain!r}")
    uri = _is_uri(request.out)
    if uri and request.engine == "pandas":
        raise ScoreError(f"--out {request.out}: the pandas engine writes a local file")
    suffixes = SUFFIXES[request.engine]
    if PurePosixPath(urlparse(str(request.out)).path).suffix.lower() not in suffixes:
        raise ScoreError(f"--out {request.out}: the {request.engine} engine writes {suffixes}")
    if not uri and Path(request.out).exists() and not request.overwrite:
        raise OutputExistsError(f"{request.out} exists; pass --overwrite to replace it")


def _with_progress(chunks: Iterable[pd.DataFrame], total: int) -> Iterator[pd.DataFrame]:
    """Yield the chunks while a progress bar on stderr counts them."""
    columns = (
        TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
        TimeElapsedColumn(),
    )  # fmt: skip
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("score", total=total)
        for chunk in chunks:
            yield chunk
            progress.advance(task)


def _lineage(models: tuple[registry.LoadedModel, registry.LoadedModel]) -> Lineage:
    churn, tier = models
    return Lineage(churn.name, churn.version, tier.name, tier.version)


def _score_pandas(cfg: Config, book: SlicedBook, request: ScoreRequest, models, explain: str):
    """Features slice by slice from the sliced book, both models, one file streamed."""
    dates = pd.DatetimeIndex([request.as_of])
    slices = iter_slice_features(book, dates, cfg.defs, cfg.features)
    total = len(book)
    churn, tier = models
    chunks = iter_scores(
        _with_progress(slices, total), churn.model, tier.model, _lineage(models), explain
    )
    save_frame_chunks(chunks, Path(request.out), overwrite=request.overwrite)


def _score_spark(cfg: Config, tables: Tables, request: ScoreRequest, models, explain: str):
    """Features on Spark, both models through ``spark_udf``, the Parquet directory written."""
    from features.spark import spark_features_as_of
    from models.serving.spark import output_struct, score_frame
    from pipelines.io import write_parquet_atomic
    from pipelines.spark_session import spark_session

    churn, tier = models
    spark = spark_session(request.master, app_name="tierwise-score")
    as_of = pd.Timestamp(request.as_of)
    features = spark_features_as_of(spark, tables, as_of, cfg.defs, cfg.features)
    structs = (output_struct(churn), output_struct(tier))
    udfs = (
        registry.spark_udf(cfg.root, spark, churn, structs[0], {"explain": explain}),
        registry.spark_udf(cfg.root, spark, tier, structs[1], None),
    )
    scored = score_frame(features, udfs, structs, models, _lineage(models))
    log.info("spark: writing %s", request.out)
    write_parquet_atomic(scored, request.out, overwrite=request.overwrite)


def _check_known(request: ScoreRequest, customers: int, _in_data: int, end: pd.Timestamp) -> int:
    """Customers known at the date (none: ScoreError); a date after the data is a warning."""
    if customers == 0:
        raise ScoreError(f"no customer is known at {request.as_of:%Y-%m-%d} in {request.data_dir}")
    if request.as_of > end:
        log.warning("--as-of %s is after the data's last date %s: nothing after it is known",
                    request.as_of.date(), end.date())  # fmt: skip
    log.info("scoring %d customers as of %s", customers, request.as_of.date())
    return customers


def run(cfg: Config, request: ScoreRequest) -> dict:
    """Score ``request.data_dir`` as of ``request.as_of`` into ``request.out``; a summary."""
    check_request(request)
    start = time.perf_counter()
    explain = request.explain or cfg.score.explain
    uris = (request.churn_model, request.tier_model)
    # a wrong model URI fails before the data is read
    models = tuple(registry.load_model(cfg.root, uri) for uri in uris)
    if request.engine == "spark":
        tables, _ = read_contract(request.data_dir, end=cfg.data.end)
        customers = _check_known(request, *count_known(tables, request.as_of), data_end(tables))
        _score_spark(cfg, tables, request, models, explain)
    else:
        chunk = cfg.features.chunk_customers
        with read_contract_sliced(request.data_dir, chunk, end=cfg.data.end) as book:
            customers = _check_known(request, *book.count_known(request.as_of), book.end)
            _score_pandas(cfg, book, request, models, explain)
    seconds = round(time.perf_counter() - start, 2)
    log.info("%d customers scored into %s in %.1f s", customers, request.out, seconds)
    lineage = {m.name: m.version for m in models}
    return {"customers": customers, "out": str(request.out), "models": lineage, "seconds": seconds}
