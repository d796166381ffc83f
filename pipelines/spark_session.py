"""The SparkSession tierwise runs on: its defaults, and the Python its workers start.

Environment set-up for the Spark engines (features.spark, models.serving.spark), kept at the edge:
it reads and sets environment variables, which features/ and models/ never do.
"""

from __future__ import annotations

import logging
import os
import re
import sys

from pyspark.sql import SparkSession

from features.spark import BUCKETS_PER_CORE

log = logging.getLogger(__name__)


class _Py4jRootRecords(logging.Filter):
    """Drops py4j's records below WARNING that it logs through the root logger, not its own
    (``logging.info("Exception while sending command.", exc_info=True)`` on every retry once
    the JVM is gone): quiet like the rest of py4j's INFO, so the user sees the error, not a
    traceback."""

    def __init__(self) -> None:
        super().__init__()
        import py4j

        self.folder = os.path.dirname(py4j.__file__) + os.sep

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.pathname.startswith(self.folder)


_PY4J_ROOT_RECORDS = _Py4jRootRecords()


def _local_cores(master: str) -> int | None:
    """Cores of a ``local``/``local[N]``/``local[*]`` master; None for a cluster master."""
    found = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if found is None:
        return None
    n = found.group(1) or "1"
    return (os.cpu_count() or 1) if n == "*" else int(n)


def spark_session(
    master: str = "local[2]", app_name: str = "tierwise", conf: dict | None = None
) -> SparkSession:
    """A SparkSession with tierwise's defaults; ``conf`` entries override them.

    Local masters run Python workers with this interpreter (``sys.executable``); on a cluster an
    explicit ``PYSPARK_PYTHON`` (or ``spark.pyspark.python`` in ``conf``) wins, because the
    executors' Python may live at another path. If a session already runs, it is returned as is
    (settings fixed at JVM start, such as driver memory, cannot change).
    """
    cores = _local_cores(master)
    if cores is not None:
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # one machine: bind to loopback
    else:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # pandera, imported by features.validation, binds Spark to 127.0.0.1 when nothing is set:
        # fine on one machine, unreachable from a cluster's executors.
        if os.environ.get("SPARK_LOCAL_IP") == "127.0.0.1":
            log.warning("ignoring SPARK_LOCAL_IP=127.0.0.1 for cluster master %s", master)
            del os.environ["SPARK_LOCAL_IP"]
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    settings = {
        "spark.driver.memory": "4g",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.log.level": "ERROR",
    }
    if cores is not None:
        settings["spark.sql.shuffle.partitions"] = str(BUCKETS_PER_CORE * cores)
    settings.update({k: str(v) for k, v in (conf or {}).items()})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    logging.getLogger().addFilter(_PY4J_ROOT_RECORDS)  # once: the same filter is not added twice
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings["spark.log.level"])
    return spark
