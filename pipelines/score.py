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
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import forkserver
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from features.build import build_feature_table
from features.context import BookContext
from features.contract import TABLE_NAMES
from features.spec import Definitions, FeatureSpec
from models.monitoring.quality import TableVolumes
from models.serving import registry
from models.serving import score as serving
from models.serving.registry import check_tasks
from models.serving.score import Lineage
from models.serving.task import Task
from models.spec import EXPLAIN_POLICIES
from models.strategies.catalog import load_catalog
from pipelines.config import Config
from pipelines.io import OutputExistsError, is_uri, save_frame_chunks
from pipelines.slices import (
    SlicedBook,
    book_context,
    each,
    expected_slices,
    read_contract_sliced,
    read_slice,
    slice_loans,
    with_loan_ids,
)

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
    workers: int | None = None  # processes for the slices (pandas engine); None: default_workers


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
    if request.workers is not None and (request.engine == "spark" or request.workers < 1):
        raise ScoreError(f"--workers {request.workers}: a number >= 1, for the pandas engine")
    if request.spark_conf and request.engine == "pandas":
        raise ScoreError("--conf: Spark settings need --engine spark")
    suffixes = SUFFIXES[request.engine]
    if PurePosixPath(urlparse(str(request.out)).path).suffix.lower() not in suffixes:
        raise ScoreError(f"--out {request.out}: the {request.engine} engine writes {suffixes}")
    if not uri and Path(request.out).exists() and not request.overwrite:
        raise OutputExistsError(f"{request.out} exists; pass --overwrite to replace it")


def _with_progress(chunks: Iterable, total: int) -> Iterator:
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


@dataclass(frozen=True)
class _SliceScoring:
    """What scoring every slice shares (sent with each slice to the worker processes)."""

    directory: Path  # the book's typed slices (SlicedBook.directory)
    others: tuple[str, ...]
    as_of: pd.Timestamp
    defs: Definitions
    spec: FeatureSpec
    observed_from: pd.Timestamp
    lineage: Lineage
    explain: str
    window_days: int  # monitor.window_days: the raw tables' volumes
    monitored: bool  # the churn model carries a reference profile: count the slice for it


_WORKER_MODELS: list[Models] = []  # in a worker process: the models it loaded at its start


def _end_with(parent: int) -> None:
    """End this process once ``parent`` is gone (its parent is the fork server, which lives as
    long as its children: no parent-death signal reaches it)."""
    while _alive(parent):
        time.sleep(1.0)
    os._exit(1)


def _alive(pid: int) -> bool:
    """``pid`` runs (a zombie, killed but not yet waited for, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
    except (OSError, IndexError):
        pass
    try:  # no /proc (macOS): the process exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _start_worker(
    root: Path, uris: tuple[str | None, ...], env: dict, cwd: str, parent: int
) -> None:
    """A worker process's start: the parent's environment and directory (the fork server
    keeps those of its own start: another store, in a process that scores twice), then the
    models (exactly the versions the parent loaded). SIGINT and SIGTERM are the parent's to
    handle (it stops the pool, then removes its files); a worker ends within a second of a
    parent that ended without stopping it (SIGKILL)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_end_with, args=(parent,), daemon=True).start()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    loaded = (None if uri is None else registry.load_model(root, uri) for uri in uris)
    _WORKER_MODELS.append(tuple(loaded))


def _score_slice(
    job: _SliceScoring, k: int, loan_rows: np.ndarray, context: BookContext, models: Models | None
) -> tuple[pd.DataFrame | None, tuple | None, TableVolumes]:
    """Slice k's features, scores (None: nobody known at the date), its monitor counts and its
    raw tables' volumes; in a worker process (``models`` None: the worker's) or in this one.
    The slice's tables, loans included, are read from its files (``loan_rows``: its loans'
    positions in the book, and ``context`` cut to them: ``slice_loans``)."""
    churn, tier, survival = models or _WORKER_MODELS[0]
    tables = read_slice(job.directory, job.others, k, loan_rows)
    context = with_loan_ids(context, tables.loans)
    volumes = TableVolumes(job.as_of, job.window_days)
    volumes.add(tables)
    dates = pd.DatetimeIndex([job.as_of])
    features = build_feature_table(
        tables, dates, job.defs, job.spec, None, context, job.observed_from
    )
    del tables
    if not len(features):
        return None, None, volumes
    scores = serving.score_features(features, churn.model, tier.model, job.lineage, job.explain)
    scores = serving.add_survival(scores, features, None if survival is None else survival.model,
                          job.explain)  # fmt: skip
    counted = None
    if job.monitored:  # only the counts travel back: the parent has the profile
        monitor = _book_monitor(churn)
        monitor.add(features, scores)
        counted = (monitor.counts, monitor.probabilities)
    return scores, counted, volumes


def _score_pandas(
    cfg: Config,
    book: SlicedBook,
    request: ScoreRequest,
    models: Models,
    explain: str,
    pool: Executor | None,
):
    """Features slice by slice, the models through pyfunc (in ``pool``'s worker processes, or
    here without one), one file streamed in slice order; the monitor's BookMonitor (None
    without a reference profile) and the raw tables' volumes."""
    churn = models[0]
    volumes = TableVolumes(request.as_of, cfg.monitor.window_days)
    monitor = _book_monitor(churn)
    dates = pd.DatetimeIndex([request.as_of])
    context = book_context(book, dates, cfg.defs, cfg.features, pool)  # in a worker
    job = _SliceScoring(
        book.directory, book.others, request.as_of, cfg.defs, cfg.features,
        book.observation_start(cfg.data.start), _lineage(models), explain,
        cfg.monitor.window_days, monitor is not None,
    )  # fmt: skip
    here = models if pool is None else None
    calls = ((job, k, *slice_loans(book, context, k), here) for k in range(len(book)))

    def chunks() -> Iterator[pd.DataFrame]:
        done = _with_progress(each(pool, _score_slice, calls), len(book))
        for k, (scores, counted, seen) in enumerate(done):
            log.info("customer slice %d of %d", k + 1, len(book))
            volumes.merge(seen)
            if counted is not None:
                monitor.add_counts(*counted)
            if scores is not None:
                yield scores

    save_frame_chunks(chunks(), Path(request.out), overwrite=request.overwrite)
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


SPARK_MEMORY_HINT = (
    "give it more with --conf spark.driver.memory=8g (in local mode the executors run in the "
    "driver's JVM) or spark.executor.memory on a cluster"
)


def _score_spark(
    cfg: Config, request: ScoreRequest, models: Models, explain: str
) -> tuple[int, str]:
    """``_score_spark_book``; Spark out of memory is a ``ScoreError`` saying what to raise."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    from features.spark_validation import error_text, out_of_memory, spark_stopped

    try:
        return _score_spark_book(cfg, request, models, explain)
    except (PySparkException, Py4JError, ConnectionError) as err:  # the last: the JVM gone
        text = error_text(err)
        if out_of_memory(err):
            found = re.search(r"java\.lang\.OutOfMemoryError[^\n]*|MemoryError[^\n]*", text)
            cause = found[0].strip() if found else "out of memory"
            raise ScoreError(f"Spark ran out of memory ({cause}); nothing was written: "
                             f"{SPARK_MEMORY_HINT}") from err  # fmt: skip
        if spark_stopped():
            first = text.strip().splitlines()[0][:200] if text.strip() else type(err).__name__
            raise ScoreError(
                f"Spark stopped mid-job ({first}); an executor out of memory is the usual cause "
                f"(the log above names it); nothing was written: {SPARK_MEMORY_HINT}"
            ) from err
        raise


def _score_spark_book(
    cfg: Config, request: ScoreRequest, models: Models, explain: str
) -> tuple[int, str]:
    """Read and validate the raw tables on Spark's executors (none reaches the driver), the book
    context on one executor, features per customer bucket, both models through ``spark_udf``,
    the Parquet directory written; the customers scored and the monitor's summary. The raw
    tables are shuffled into their buckets once, for validation and features alike."""
    from features.spark_ingest import bucket_count
    from features.spark_validation import bucketed, read_checked_tables, spark_stopped
    from pipelines.io import find_table_uris
    from pipelines.spark_session import spark_session

    spark = spark_session(request.master, app_name="tierwise-score", conf=request.spark_conf)
    heap = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()
    log.info("spark: driver JVM heap %d MiB", heap // 2**20)
    raw = read_checked_tables(spark, find_table_uris(spark, request.data_dir))
    loans_rows = raw["loans"].count() if "loans" in raw else 0
    buckets = bucket_count(spark, loans_rows, cfg.features)
    book = bucketed(raw, buckets) if "loans" in raw else None  # without: check_book says so
    try:
        return _score_bucketed(cfg, request, models, explain, spark, raw, book, buckets)
    finally:
        # a Spark context stopped by the failure (out of memory) has dropped the cache with it,
        # and unpersisting there would raise over the failure the user must see
        if book is not None and not spark_stopped():
            book.unpersist()


def _score_bucketed(
    cfg: Config, request: ScoreRequest, models: Models, explain: str, spark, raw: dict,
    bucketed_book, buckets: int,
) -> tuple[int, str]:  # fmt: skip
    """``_score_spark_book`` once the raw tables are read and bucketed."""
    from features.spark_ingest import book_context, spark_features_from_raw
    from features.spark_validation import check_book
    from models.serving.spark import output_struct, score_frame
    from pipelines.io import write_parquet_atomic

    churn, tier, _ = models
    as_of = pd.Timestamp(request.as_of)
    book = check_book(raw, cfg.data.end, cfg.data.future_cutoff(), as_of, buckets,
                      load_catalog().ids, bucketed_book)  # fmt: skip
    data_end = book.report.data_end or book.end
    _known(book.known, pd.Timestamp(data_end), request, explain)
    context = book_context(raw, as_of, cfg.defs, cfg.features)
    start = book.observation_start(cfg.data.start, lambda: context.first_origination)
    present = tuple(n for n in TABLE_NAMES if n in raw)
    features = spark_features_from_raw(
        bucketed_book, present, as_of, cfg.defs, cfg.features, context, start
    )
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


@contextmanager
def _slice_pool(cfg: Config, models: Models, workers: int) -> Iterator[Executor | None]:
    """``workers`` processes for the slices' work (None: one, this process). Started from a
    fork server that imported this module once; each loads the models (their pinned versions)
    at its start, while this process reads the book's keys."""
    if workers <= 1:
        yield None
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    _start_fork_server()
    uris = tuple(None if m is None else m.pinned_uri for m in models)
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(cfg.root, uris, dict(os.environ), os.getcwd(), os.getpid()),
    ) as pool:
        for _ in range(workers):  # start every worker now: the models load meanwhile
            pool.submit(int)
        yield pool


def _start_fork_server() -> None:
    """Start the fork server ignoring SIGTERM (inherited through its exec): a SIGTERM to the
    whole process group must not end it before this process has stopped the workers (the pool
    would see every worker as dead, and stop waiting for the slices in flight).

    It imports this module from this process's ``sys.path``, not from its working directory:
    Python 3.11's fork server runs ``python -c`` (the working directory first on its path) and
    ignores the parent's path when it preloads, so a ``pipelines``, ``models`` or ``features``
    package in the directory `tierwise score` runs in (another tierwise checkout, a project's
    own ``models/``) gave the workers other code than this process's: measured, a clone of an
    older commit in the working directory ran its own functions in the workers."""
    with _fork_server_path(), _sigterm_ignored():
        forkserver.ensure_running()


@contextmanager
def _fork_server_path() -> Iterator[None]:
    """This process's ``sys.path`` (relative entries made absolute) as the fork server's:
    PYTHONSAFEPATH keeps its working directory off the path, PYTHONPATH carries ours."""
    keys = ("PYTHONPATH", "PYTHONSAFEPATH")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["PYTHONSAFEPATH"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in sys.path)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _sigterm_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def default_workers() -> int:
    """Worker processes by default: 2 (the slices' work is CPU-bound), at most the CPUs."""
    return max(1, min(2, len(os.sched_getaffinity(0))))


def _run_pandas(cfg: Config, request: ScoreRequest, models: Models, explain: str) -> tuple:
    workers = default_workers() if request.workers is None else request.workers
    # a worker more than the slices only loads the models: a one-slice book runs here
    workers = min(workers, expected_slices(request.data_dir, cfg.features.chunk_customers))
    log.info("slices in %s", "this process" if workers <= 1 else f"{workers} worker processes")
    with (
        _slice_pool(cfg, models, workers) as pool,
        read_contract_sliced(
            request.data_dir,
            cfg.features.chunk_customers,
            cfg.data.end,
            cfg.data.future_cutoff(),
            strategy_ids=load_catalog().ids,
            pool=pool,
        ) as book,
    ):
        customers = book.count_known(request.as_of)[0]
        report = book.report
        _known(customers, pd.Timestamp(report["data_end"] or book.end), request, explain)
        monitor, now = _score_pandas(cfg, book, request, models, explain, pool)
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
