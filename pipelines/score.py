"""`tierwise score`: a portfolio scored as of one date by the registered churn and tier models.

validate the contract directory -> features as of DATE for every customer known then (slices of
``features.chunk_customers`` customers with the whole book's context, so memory is bounded by a
slice) -> both models through MLflow pyfunc, exactly as a registry consumer calls them -> one row
per customer, streamed into one Parquet or CSV file that appears only when complete. The Spark
engine (pipelines/score_spark.py) gives the same rows. docs/scoring.md has the columns.
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

from features.build import iter_feature_table, slice_count
from features.contract import Tables, data_end
from features.snapshots import build_universe
from features.windows import day_numbers
from models import registry
from models.score import Lineage, score_features
from models.spec import EXPLAIN_POLICIES
from pipelines.config import Config
from pipelines.io import OutputExistsError, save_frame_chunks
from pipelines.validate import validated_tables

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


def count_customers(tables: Tables, as_of: pd.Timestamp) -> tuple[int, int]:
    """(customers known at ``as_of``: the rows of the score, customers in the data)."""
    universe = build_universe(tables)
    day = day_numbers(pd.DatetimeIndex([as_of]))[0]
    return int((universe.known_day <= day).sum()), len(universe.ids)


def feature_slices(cfg: Config, tables: Tables, as_of: pd.Timestamp) -> Iterator[pd.DataFrame]:
    """Feature rows as of ``as_of``, one slice of ``features.chunk_customers`` customers at a
    time (a slice may be empty: customers who all arrive after ``as_of``)."""
    return iter_feature_table(
        tables,
        pd.DatetimeIndex([as_of]),
        cfg.defs,
        cfg.features,
        chunk_customers=cfg.features.chunk_customers,
    )


def iter_scores(
    slices: Iterable[pd.DataFrame],
    models: tuple[registry.LoadedModel, registry.LoadedModel],
    explain: str,
) -> Iterator[pd.DataFrame]:
    """Score rows of each non-empty slice of feature rows, in the slices' order."""
    churn, tier = models
    lineage = Lineage(churn.name, churn.version, tier.name, tier.version)
    for features in slices:
        if len(features):
            yield score_features(features, churn.model, tier.model, lineage, explain)


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


def _load_models(cfg: Config, request: ScoreRequest) -> tuple[registry.LoadedModel, ...]:
    uris = (request.churn_model, request.tier_model)
    return tuple(registry.load_model(cfg.root, uri) for uri in uris)


def run(cfg: Config, request: ScoreRequest) -> dict:
    """Score ``request.data_dir`` as of ``request.as_of`` into ``request.out``; a summary."""
    check_request(request)
    start = time.perf_counter()
    explain = request.explain or cfg.score.explain
    models = _load_models(cfg, request)  # a wrong model URI fails before the data is read
    tables, _ = validated_tables(cfg, request.data_dir)
    customers, in_data = count_customers(tables, request.as_of)
    if customers == 0:
        raise ScoreError(f"no customer is known at {request.as_of:%Y-%m-%d} in {request.data_dir}")
    if request.as_of > data_end(tables):
        log.warning("--as-of %s is after the data's last date %s: nothing after it is known",
                    request.as_of.date(), data_end(tables).date())  # fmt: skip
    log.info("scoring %d customers as of %s (explain=%s)", customers, request.as_of.date(), explain)
    if request.engine == "spark":
        from pipelines.score_spark import score_spark

        score_spark(cfg, tables, request, models, explain)
    else:
        total = slice_count(in_data, cfg.features.chunk_customers)
        slices = _with_progress(feature_slices(cfg, tables, request.as_of), total)
        chunks = iter_scores(slices, models, explain)
        save_frame_chunks(chunks, Path(request.out), overwrite=request.overwrite)
    seconds = round(time.perf_counter() - start, 2)
    log.info("%d customers scored into %s in %.1f s", customers, request.out, seconds)
    lineage = {m.name: m.version for m in models}
    return {"customers": customers, "out": str(request.out), "models": lineage, "seconds": seconds}
