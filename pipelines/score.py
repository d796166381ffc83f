"""`tierwise score`: a portfolio scored as of one date by the registered churn and tier models.

load every model (a bad URI fails before any data is read) -> read and validate the contract
directory one slice of ``features.chunk_customers`` customers at a time (pipelines/slices.py) ->
features as of DATE for every customer known then, slice by slice with the whole book's context,
so memory is bounded by a slice -> the models through MLflow pyfunc, exactly as a registry
consumer calls them -> one row per customer, streamed into one Parquet or CSV file that appears
only when complete. The Spark engine (models/serving/spark.py) gives the same rows.
docs/scoring.md has the columns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from models.monitoring.quality import TableVolumes
from models.serving import registry
from models.serving.registry import check_tasks
from models.serving.score import Lineage, iter_scores
from models.serving.task import Task
from models.spec import EXPLAIN_POLICIES
from models.strategies.catalog import load_catalog
from pipelines.config import Config
from pipelines.io import OutputExistsError, is_uri, save_frame_chunks
from pipelines.slices import SlicedBook, iter_slice_features, read_contract_sliced

log = logging.getLogger(__name__)

ENGINES = ("pandas", "spark")
CHAMPION_URIS = {
    kind: f"models:/{name}@{registry.CHAMPION}" for kind, name in registry.MODEL_NAMES.items()
}
SUFFIXES = {"pandas": (".parquet", ".csv"), "spark": (".parquet",)}
# churn, tier, survival (None: no survival columns)
Models = tuple[registry.LoadedModel, registry.LoadedModel, registry.LoadedModel | None]


class ScoreError(ValueError):
    """A score request that cannot be served (nothing to score, a format the engine lacks)."""


@dataclass(frozen=True)
class ScoreRequest:
    """One `tierwise score` call; ``explain`` None takes params' ``score.explain``."""

    data_dir: Path | str  # the Spark engine also takes a URI (hdfs://…)
    as_of: pd.Timestamp
    out: Path | str  # a local file; the Spark engine also takes a URI (hdfs://…)
    churn_model: str = CHAMPION_URIS["churn"]
    tier_model: str = CHAMPION_URIS["tier"]
    engine: str = "pandas"
    master: str = "local[*]"
    spark_conf: dict[str, str] = field(default_factory=dict)  # --conf KEY=VALUE (Spark)
    explain: str | None = None
    overwrite: bool = False
    monitor: bool = False  # also write the full monitor JSON beside --out (docs/monitoring.md)
    ignore_task: bool = False  # score with models of another task than params' (--ignore-task)
    # None: the survival champion's columns when one is registered (pandas engine), else none
    survival_model: str | None = None


def parse_conf(pairs: Iterable[str]) -> dict[str, str]:
    """``--conf KEY=VALUE`` options as a dict (ScoreError for one without ``=``)."""
    conf = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ScoreError(f"--conf {pair!r}: expected KEY=VALUE, e.g. spark.driver.memory=8g")
        conf[key.strip()] = value.strip()
    return conf


def check_request(request: ScoreRequest) -> None:
    """Fail before any work: unknown engine or policy, a format the engine lacks, an output that
    exists without ``overwrite``."""
    if request.engine not in ENGINES:
        raise ScoreError(f"engine must be one of {ENGINES}, got {request.engine!r}")
    if request.explain is not None and request.explain not in EXPLAIN_POLICIES:
        raise ScoreError(f"explain must be one of {EXPLAIN_POLICIES}, got {request.explain!r}")
    if request.survival_model is not None and request.engine == "spark":
        raise ScoreError("--survival-model: the survival columns come with the pandas engine only")
    uri = is_uri(request.out)
    if request.engine == "pandas" and (uri or is_uri(request.data_dir)):
        where = f"--out {request.out}" if uri else f"--data {request.data_dir}"
        raise ScoreError(f"{where}: the pandas engine reads and writes local files")
    if request.spark_conf and request.engine == "pandas":
        raise ScoreError("--conf: Spark settings need --engine spark")
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


def _lineage(models: Models) -> Lineage:
    churn, tier = models[:2]
    return Lineage(churn.name, churn.version, tier.name, tier.version)


def _score_pandas(
    cfg: Config, book: SlicedBook, request: ScoreRequest, models: Models, explain: str
):
    """Features slice by slice, the models through pyfunc, one file streamed; the monitor's
    BookMonitor (None without a reference profile) and the raw tables' volumes."""
    churn, tier, survival = models
    volumes = TableVolumes(request.as_of, cfg.monitor.window_days)
    slices = iter_slice_features(
        book, pd.DatetimeIndex([request.as_of]), cfg.defs, cfg.features,
        observed_from=book.observation_start(cfg.data.start), watch=volumes.add,
    )  # fmt: skip
    monitor = _book_monitor(churn)
    if monitor is not None:
        slices = monitor.watch_features(slices)
    chunks = iter_scores(
        _with_progress(slices, len(book)), churn.model, tier.model, _lineage(models), explain,
        None if survival is None else survival.model,
    )  # fmt: skip
    save_frame_chunks(
        chunks if monitor is None else monitor.watch_scores(chunks), Path(request.out),
        overwrite=request.overwrite,
    )  # fmt: skip
    return monitor, volumes.profile()


def _book_monitor(churn: registry.LoadedModel):
    """A BookMonitor on the churn model's stored profile; None for a version without one."""
    from models.monitoring.book import BookMonitor

    profile = registry.model_profile(churn)
    return None if profile is None else BookMonitor(profile)


def _monitor_summary(cfg: Config, request: ScoreRequest, book, now: dict) -> str:
    """The one-line monitor summary for the log and the lineage; with ``request.monitor`` the
    full report (no backtest: `tierwise monitor` runs that) beside the output. ``now``: the raw
    tables' profile at the date (models.monitoring.quality)."""
    from models.monitoring.report import summary_line
    from pipelines.io import save_json

    if book is None:
        return "monitor: the churn model carries no reference profile"
    report = book.report(now, cfg.monitor, request.as_of, cfg.evaluate.bins)
    if request.monitor:
        save_json(report, monitor_path(request.out))
    return summary_line(report)


def monitor_path(out: Path | str) -> Path:
    """Where `score --monitor` writes the monitor JSON: beside --out."""
    out = Path(out)
    return out.with_name(out.stem + ".monitor.json")


def _survival_model(cfg: Config, request: ScoreRequest) -> registry.LoadedModel | None:
    """The survival model to add (pandas engine): the one asked for (it must load), else the
    champion if any."""
    if request.engine == "spark":
        return None
    if request.survival_model is not None:
        return registry.load_model(cfg.root, request.survival_model)
    try:
        return registry.load_model(cfg.root, CHAMPION_URIS["survival"])
    except registry.RegistryError:
        log.info("no tierwise-survival champion: the score has no survival columns")
        return None


def _score_spark(
    cfg: Config, request: ScoreRequest, models: Models, explain: str
) -> tuple[int, str]:
    """Read and validate the raw tables on Spark's executors (none reaches the driver), the book
    context on one executor, features per customer bucket, both models through ``spark_udf``,
    the Parquet directory written; the customers scored and the monitor's summary."""
    from features.spark_ingest import book_context, bucket_count, spark_features_from_raw
    from features.spark_validation import check_book, read_checked_tables
    from models.serving.spark import output_struct, score_frame
    from pipelines.io import find_table_uris, write_parquet_atomic
    from pipelines.spark_session import spark_session

    churn, tier, _ = models
    spark = spark_session(request.master, app_name="tierwise-score", conf=request.spark_conf)
    heap = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()
    log.info("spark: driver JVM heap %d MiB", heap // 2**20)
    as_of = pd.Timestamp(request.as_of)
    raw = read_checked_tables(spark, find_table_uris(spark, request.data_dir))
    loans_rows = raw["loans"].count() if "loans" in raw else 0
    buckets = bucket_count(spark, loans_rows, cfg.features)
    book = check_book(
        raw, cfg.data.end, cfg.data.future_cutoff(), as_of, buckets, load_catalog().ids
    )
    data_end = book.report.data_end or book.end
    _known(book.known, pd.Timestamp(data_end), request, explain)
    context = book_context(raw, as_of, cfg.defs, cfg.features)
    start = book.observation_start(cfg.data.start, lambda: context.first_origination)
    features = spark_features_from_raw(raw, as_of, cfg.defs, cfg.features, context, start, buckets)
    profile = registry.model_profile(churn)
    if profile is not None:  # the monitor counts these rows again: built once
        features = features.persist()
    structs = (output_struct(churn), output_struct(tier))
    udfs = (
        registry.spark_udf(cfg.root, spark, churn, structs[0], {"explain": explain}),
        registry.spark_udf(cfg.root, spark, tier, structs[1], None),
    )
    scored = score_frame(features, udfs, structs, (churn, tier), _lineage(models))
    log.info("spark: writing %s", request.out)
    write_parquet_atomic(scored, request.out, overwrite=request.overwrite)
    if profile is None:
        return book.known, "monitor: the churn model carries no reference profile"
    monitor = _spark_monitor(spark, profile, features, request.out)
    features.unpersist()
    return book.known, _monitor_summary(cfg, request, monitor, {})


def _spark_monitor(spark, profile: dict, features, out: Path | str):
    """The monitor's counts of the scored book on the executors (models/monitoring/spark.py):
    the features joined with the churn probability and risk band just written. The raw tables'
    volumes are not counted on Spark (``tierwise monitor`` reports them)."""
    from features.contract import CUSTOMER_ID
    from models.columns import CHURN_PROBABILITY, RISK_BAND
    from models.monitoring.spark import spark_book

    written = spark.read.parquet(str(out)).select(CUSTOMER_ID, CHURN_PROBABILITY, RISK_BAND)
    return spark_book(profile, features.join(written, CUSTOMER_ID, "left"))


def _known(customers: int, last: pd.Timestamp, request: ScoreRequest, explain: str) -> None:
    if customers == 0:
        raise ScoreError(f"no customer is known at {request.as_of:%Y-%m-%d} in {request.data_dir}")
    if request.as_of > last:
        log.warning("--as-of %s is after the data's last date %s: nothing after it is known",
                    request.as_of.date(), last.date())  # fmt: skip
    log.info("scoring %d customers as of %s (explain=%s)", customers, request.as_of.date(), explain)


def _run_pandas(cfg: Config, request: ScoreRequest, models: Models, explain: str) -> tuple:
    with read_contract_sliced(
        request.data_dir,
        cfg.features.chunk_customers,
        cfg.data.end,
        cfg.data.future_cutoff(),
        strategy_ids=load_catalog().ids,
    ) as book:
        customers = book.count_known(request.as_of)[0]
        report = book.report
        _known(customers, pd.Timestamp(report["data_end"] or book.end), request, explain)
        monitor, now = _score_pandas(cfg, book, request, models, explain)
    return customers, _monitor_summary(cfg, request, monitor, now)


def _run_spark(cfg: Config, request: ScoreRequest, models: Models, explain: str) -> tuple:
    return _score_spark(cfg, request, models, explain)


def run(cfg: Config, request: ScoreRequest) -> dict:
    """Score ``request.data_dir`` as of ``request.as_of`` into ``request.out``; a summary."""
    check_request(request)
    start = time.perf_counter()
    explain = request.explain or cfg.score.explain
    uris = (request.churn_model, request.tier_model)
    # every model (the survival one too) loads before the data is read: a wrong URI fails early
    churn, tier = (registry.load_model(cfg.root, uri) for uri in uris)
    check_tasks((churn, tier), Task.of(cfg.defs), request.ignore_task)
    models = (churn, tier, _survival_model(cfg, request))
    engine = _run_spark if request.engine == "spark" else _run_pandas
    customers, monitor = engine(cfg, request, models, explain)
    seconds = round(time.perf_counter() - start, 2)
    log.info("%d customers scored into %s in %.1f s", customers, request.out, seconds)
    log.info("%s", monitor)
    lineage = {m.name: m.version for m in (churn, tier)}
    return {"customers": customers, "out": str(request.out), "models": lineage, "seconds": seconds,
            "monitor": monitor}  # fmt: skip
