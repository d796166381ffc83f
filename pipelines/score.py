"""`tierwise score`: a portfolio scored as of one date by the registered churn and tier models.

validate the contract directory -> features as of DATE for every customer known then (slices of
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

from features.build import iter_feature_table, slice_count
from features.contract import Tables, data_end
from features.observation import observation_start
from features.snapshots import count_known
from models.serving import registry
from models.serving.score import Lineage, iter_scores
from models.serving.task import Task, TaskMismatchError
from models.spec import EXPLAIN_POLICIES
from pipelines.config import Config
from pipelines.io import OutputExistsError, read_contract, save_frame_chunks

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
    monitor: bool = False  # also write the full monitor JSON beside --out (docs/monitoring.md)
    ignore_task: bool = False  # score with models of another task than params' (--ignore-task)
    # None: the survival champion's columns when one is registered (pandas engine), else none
    survival_model: str | None = None


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
    if request.survival_model is not None and request.engine == "spark":
        raise ScoreError("--survival-model: the survival columns come with the pandas engine only")
    uri = _is_uri(request.out)
    if uri and request.engine == "pandas":
        raise ScoreError(f"--out {request.out}: the pandas engine writes a local file")
    suffixes = SUFFIXES[request.engine]
    if PurePosixPath(urlparse(str(request.out)).path).suffix.lower() not in suffixes:
        raise ScoreError(f"--out {request.out}: the {request.engine} engine writes {suffixes}")
    if not uri and Path(request.out).exists() and not request.overwrite:
        raise OutputExistsError(f"{request.out} exists; pass --overwrite to replace it")


def check_tasks(models: Iterable[registry.LoadedModel], task: Task, ignore: bool) -> None:
    """Refuse (TaskMismatchError, exit 2) a model whose task is not params' or is not recorded,
    naming both values, unless ``ignore``; then only a warning is logged."""
    for loaded in models:
        where = f"{loaded.name} version {loaded.version}" if loaded.version else loaded.uri
        if loaded.task == task:
            continue
        if loaded.task is None:
            problem = f"{where} records no task (registered before task tags), params' is {task.id}"
        else:
            problem = f"{where} does not answer params' task: " + "; ".join(
                loaded.task.differences(task)
            )
        if ignore:
            log.warning("%s (--ignore-task)", problem)
            continue
        alias = registry.task_alias(registry.CHAMPION, task.id)
        raise TaskMismatchError(
            f"{problem}. Score with the params it was trained with, choose a model of this task "
            f"(e.g. models:/{loaded.name or 'NAME'}@{alias}), or pass --ignore-task"
        )


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


def _score_pandas(
    cfg: Config, tables: Tables, request: ScoreRequest, models, explain: str, in_data: int
):
    total = slice_count(in_data, cfg.features.chunk_customers)
    slices = iter_feature_table(
        tables, pd.DatetimeIndex([request.as_of]), cfg.defs, cfg.features,
        chunk_customers=cfg.features.chunk_customers,
        observed_from=observation_start(tables, cfg.data.start),
    )  # fmt: skip
    churn, tier = models
    book = _book_monitor(churn)
    if book is not None:
        slices = book.watch_features(slices)
    survival = _survival_model(cfg, request)
    chunks = iter_scores(
        _with_progress(slices, total), churn.model, tier.model, _lineage(models), explain,
        None if survival is None else survival.model,
    )  # fmt: skip
    save_frame_chunks(
        chunks if book is None else book.watch_scores(chunks), Path(request.out),
        overwrite=request.overwrite,
    )  # fmt: skip
    return book


def _book_monitor(churn: registry.LoadedModel):
    """A BookMonitor on the churn model's stored profile; None for a version without one."""
    from models.monitoring.book import BookMonitor

    profile = registry.model_profile(churn)
    return None if profile is None else BookMonitor(profile)


def _monitor_summary(cfg: Config, tables: Tables, request: ScoreRequest, book) -> str:
    """The one-line monitor summary for the log and the lineage; with ``request.monitor`` the
    full report (no backtest: `tierwise monitor` runs that) beside the output."""
    from models.monitoring.quality import table_profile
    from models.monitoring.report import summary_line
    from pipelines.io import save_json

    if book is None:
        return "monitor: the churn model carries no reference profile"
    now = table_profile(tables, request.as_of, cfg.monitor.window_days)
    report = book.report(now, cfg.monitor, request.as_of, cfg.evaluate.bins)
    if request.monitor:
        save_json(report, monitor_path(request.out))
    return summary_line(report)


def monitor_path(out: Path | str) -> Path:
    """Where `score --monitor` writes the monitor JSON: beside --out."""
    out = Path(out)
    return out.with_name(out.stem + ".monitor.json")


def _survival_model(cfg: Config, request: ScoreRequest) -> registry.LoadedModel | None:
    """The survival model to add: the one asked for (it must load), else the champion if any."""
    if request.survival_model is not None:
        return registry.load_model(cfg.root, request.survival_model)
    try:
        return registry.load_model(cfg.root, CHAMPION_URIS["survival"])
    except registry.RegistryError:
        log.info("no tierwise-survival champion: the score has no survival columns")
        return None


def _score_spark(
    cfg: Config, tables: Tables, request: ScoreRequest, models, explain: str, in_data: int
):
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


def run(cfg: Config, request: ScoreRequest) -> dict:
    """Score ``request.data_dir`` as of ``request.as_of`` into ``request.out``; a summary."""
    check_request(request)
    start = time.perf_counter()
    explain = request.explain or cfg.score.explain
    uris = (request.churn_model, request.tier_model)
    # a wrong model URI fails before the data is read
    models = tuple(registry.load_model(cfg.root, uri) for uri in uris)
    check_tasks(models, Task.of(cfg.defs), request.ignore_task)
    tables, report = read_contract(
        request.data_dir, end=cfg.data.end, cutoff=cfg.data.future_cutoff()
    )
    customers, in_data = count_known(tables, request.as_of)
    if customers == 0:
        raise ScoreError(f"no customer is known at {request.as_of:%Y-%m-%d} in {request.data_dir}")
    last = pd.Timestamp(report["data_end"]) if report.get("data_end") else data_end(tables)
    if request.as_of > last:
        log.warning("--as-of %s is after the data's last date %s: nothing after it is known",
                    request.as_of.date(), last.date())  # fmt: skip
    log.info("scoring %d customers as of %s (explain=%s)", customers, request.as_of.date(), explain)
    engine = _score_spark if request.engine == "spark" else _score_pandas
    book = engine(cfg, tables, request, models, explain, in_data)
    seconds = round(time.perf_counter() - start, 2)
    log.info("%d customers scored into %s in %.1f s", customers, request.out, seconds)
    monitor = "monitor: the Spark engine does not count; run `tierwise monitor`"
    if request.engine == "pandas":
        monitor = _monitor_summary(cfg, tables, request, book)
    log.info("%s", monitor)
    lineage = {m.name: m.version for m in models}
    return {"customers": customers, "out": str(request.out), "models": lineage, "seconds": seconds,
            "monitor": monitor}  # fmt: skip
