"""Reading and writing files: the only place tierwise touches the file system for data.

Every write is atomic: the bytes go to a temporary file in the target's directory, which is then
renamed over the target. A failed run therefore never leaves a half-written artefact and never
destroys the previous good one.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import CONTRACT, LOANS, TABLE_NAMES, Tables

if TYPE_CHECKING:  # an external package: pyspark is optional
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".parquet", ".csv")
_UMASK = os.umask(0)
os.umask(_UMASK)


class OutputExistsError(FileExistsError):
    """The output exists and the caller did not ask to overwrite it."""


class BadRequestError(ValueError):
    """A request refused before any work (exit 2): an output format that is not written, a date
    before any data."""


# Temporary outputs are named ``.NAME.tierwise-PID-RANDOM.tmp`` (a file, or a folder for
# save_tables): the PID says which process owns it, so the next run into the same directory
# removes the leftovers of a killed run (a PID that no longer runs) and never a live run's.
TEMP_MARK = "tierwise"
_TEMP_NAME = re.compile(rf"^\..+\.{TEMP_MARK}-(?P<pid>\d+)-[^.]+\.tmp$")
OUTPUT_SUFFIXES = (".parquet", ".csv")


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{TEMP_MARK}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_leftovers(folder: Path | str) -> list[Path]:
    """Remove the temporary outputs of killed tierwise runs in ``folder``; the removed paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        found = _TEMP_NAME.match(path.name)
        if found is None or _pid_alive(int(found["pid"])):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    for path in removed:
        log.warning("removed %s, left by an interrupted run", path)
    return removed


def _prepare_folder(folder: Path) -> None:
    """Create ``folder`` if needed (saying so), and clean the leftovers of killed runs in it."""
    if not folder.exists():
        log.info("creating directory %s", folder)
        folder.mkdir(parents=True, exist_ok=True)
    clean_leftovers(folder)


def check_output(
    path: Path | str, overwrite: bool, suffixes: tuple[str, ...] = OUTPUT_SUFFIXES
) -> Path:
    """Refuse an output before any work: an extension not written (BadRequestError), or an
    existing file without ``overwrite`` (OutputExistsError)."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise BadRequestError(
            f"--out {path}: unsupported extension {path.suffix!r} (use {' or '.join(suffixes)})"
        )
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    return path


@contextmanager
def atomic_path(target: Path | str, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success only.

    The temporary file goes whenever the block fails, SIGINT and SIGTERM included (the CLI turns
    SIGTERM into an exception); one left by a killed process is removed by the next write into
    the same directory (``clean_leftovers``).
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} exists; pass --overwrite to replace it")
    _prepare_folder(target.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_atomic(target: Path | str, writer: Callable[[Path], None], overwrite: bool) -> Path:
    with atomic_path(target, overwrite=overwrite) as tmp:
        writer(tmp)
    return Path(target)


def save_frame(df: pd.DataFrame, path: Path | str, overwrite: bool = True) -> Path:
    """Write a DataFrame as Parquet or CSV, chosen by the file's extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _write_atomic(path, lambda p: df.to_parquet(p, index=False), overwrite)
    if suffix == ".csv":
        return _write_atomic(path, lambda p: df.to_csv(p, index=False), overwrite)
    raise BadRequestError(f"{path}: unsupported extension {suffix!r} (use .parquet or .csv)")


def save_frame_chunks(
    chunks: Iterable[pd.DataFrame], path: Path | str, overwrite: bool = True
) -> Path:
    """Stream DataFrames with the same columns into one Parquet or CSV file (by the extension),
    atomically: memory holds one chunk at a time, and a failure leaves no file behind.

    Parquet: the first chunk fixes the schema (all-empty text columns become strings); each chunk
    is one or more row groups. CSV: the first chunk writes the header. With ``overwrite`` False an
    existing ``path`` raises OutputExistsError before any chunk is read.
    """
    path = Path(path)
    writers = {".parquet": _write_parquet_chunks, ".csv": _write_csv_chunks}
    writer = writers.get(path.suffix.lower())
    if writer is None:
        raise BadRequestError(
            f"{path}: unsupported extension {path.suffix!r} (use .parquet or .csv)"
        )
    return _write_atomic(path, lambda tmp: writer(chunks, tmp), overwrite)


def _write_parquet_chunks(chunks: Iterable[pd.DataFrame], tmp: Path) -> None:
    writer = None
    try:
        for df in chunks:
            if writer is None:
                schema = pa.Schema.from_pandas(df, preserve_index=False)
                for i, f in enumerate(schema):
                    if pa.types.is_null(f.type):
                        schema = schema.set(i, pa.field(f.name, pa.string()))
                writer = pq.ParquetWriter(tmp, schema)
            writer.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError("no data to write")


def _write_csv_chunks(chunks: Iterable[pd.DataFrame], tmp: Path) -> None:
    columns, first = None, True
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        for df in chunks:
            if first:
                columns = list(df.columns)
            elif list(df.columns) != columns:
                raise ValueError("every chunk must have the first chunk's columns, in order")
            df.to_csv(handle, index=False, header=first)
            first = False
    if columns is None:
        raise ValueError("no data to write")


def load_frame(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)


def save_json(obj: Any, path: Path | str) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    return _write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"), True)


def save_text(text: str, path: Path | str) -> Path:
    return _write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"), True)


def load_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _file_problem(table: str, rule: str, detail: str):
    from features.validation import file_problem  # pandera: ~1.7 s to import, validation only

    return file_problem(table, rule, detail)


def _contract_error(problems: list):
    from features.validation import ContractError

    return ContractError(problems)


def find_table_files(data_dir: Path | str) -> dict[str, Path]:
    """One file per contract table found in ``data_dir`` (table name -> path).

    Raises ``ContractError`` (exit 2) when the directory is missing, a table has two files
    (``loans.csv`` and ``loans.parquet``) or a file is empty (0 bytes): every such problem at
    once, before any table is read. A sliced reader calls this, then ``read_table_file``.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory {data_dir} does not exist")
    paths = {
        name: [
            data_dir / f"{name}{s}" for s in TABLE_SUFFIXES if (data_dir / f"{name}{s}").is_file()
        ]
        for name in TABLE_NAMES
    }
    return _one_file_each(paths, lambda p: p.stat().st_size, str(data_dir))


def _one_file_each(paths: dict[str, list], size: Callable[[Any], int], where: str) -> dict:
    """The one file of each table found (``paths``: table -> its candidate files); raises one
    ``ContractError`` naming every table with two files or an empty (0-byte) one."""
    found, problems = {}, []
    for name, candidates in paths.items():
        if len(candidates) > 1:
            names = " and ".join(str(p).rsplit("/", 1)[-1] for p in candidates)
            problems.append(
                _file_problem(name, "one file per table", f"both {names} in {where}; keep one")
            )
        elif candidates and size(candidates[0]) == 0:
            detail = f"{candidates[0]} is empty (0 bytes, no header)"
            problems.append(_file_problem(name, "file not empty", detail))
        elif candidates:
            found[name] = candidates[0]
    if problems:
        raise _contract_error(problems)
    return found


def read_table_file(path: Path, name: str) -> pd.DataFrame:
    """Read one table's file as it is on disk; a file that cannot be read, or a required table
    with a header and no rows, is a ``ContractError`` that says so (not the knock-on failures
    of the other tables' keys)."""
    try:
        df = _read_table(path, name)
    except (
        pd.errors.EmptyDataError, pd.errors.ParserError, pa.ArrowException, OSError,
        UnicodeDecodeError,  # a CSV that is not UTF-8
    ) as err:  # fmt: skip
        kind = "CSV" if path.suffix == ".csv" else "Parquet"
        detail = f"{path} cannot be read as {kind}: {str(err).splitlines()[0][:200]}"
        raise _contract_error([_file_problem(name, f"readable {kind}", detail)]) from err
    if df.empty and CONTRACT[name].required:
        detail = f"{path} has no data rows (header only: {', '.join(map(str, df.columns))})"
        raise _contract_error([_file_problem(name, "required table has rows", detail)])
    return df


def _read_table(path: Path, name: str) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    # CSV cells are read as text; the contract's coercion parses them and names bad cells.
    spec = CONTRACT[name]
    header = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(
        path,
        dtype={c: "string" for c in header if c in spec.column_names},
        keep_default_na=False,
        na_values=[""],
        encoding="utf-8",
    )


def load_raw_tables(data_dir: Path | str) -> dict[str, pd.DataFrame]:
    """Read every contract table found in ``data_dir`` as it is on disk (no coercion).

    An optional table whose file has a header and no rows is read as absent, with a warning
    (its absence is a shape the pipeline handles; an empty frame would only fail the keys of
    the other tables)."""
    raw = {}
    for name, path in find_table_files(data_dir).items():
        log.info("reading %s", path)
        df = read_table_file(path, name)
        if df.empty:
            log.warning("%s has no data rows: table %s read as absent", path, name)
            continue
        raw[name] = df
    return raw


def save_tables(tables: dict[str, pd.DataFrame], data_dir: Path | str) -> Path:
    """Write tables as ``NAME.parquet`` into ``data_dir``, replacing the folder as a whole.

    The files go to a temporary sibling folder first; only when every table is written does it
    take the target's place, so readers never see a mix of old and new tables.
    """
    data_dir = Path(data_dir)
    _prepare_folder(data_dir.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(data_dir), suffix=".tmp", dir=data_dir.parent))
    old = data_dir.with_name(f".{data_dir.name}.old")
    try:
        for name, df in tables.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        shutil.rmtree(old, ignore_errors=True)
        if data_dir.exists():
            os.replace(data_dir, old)
        os.replace(tmp, data_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return data_dir


def load_tables(data_dir: Path | str) -> Tables:
    """Read tables written by ``save_tables`` (already validated and typed)."""
    data_dir = Path(data_dir)
    found = {
        n: pd.read_parquet(data_dir / f"{n}.parquet")
        for n in TABLE_NAMES
        if (data_dir / f"{n}.parquet").exists()
    }
    if LOANS not in found:
        raise FileNotFoundError(f"{data_dir}: no {LOANS}.parquet; run the validate stage first")
    return Tables(**found)


def read_contract(
    data_dir: Path | str,
    end: pd.Timestamp | None = None,
    cutoff: pd.Timestamp | None = None,
    strategy_ids: Collection[str] | None = None,
) -> tuple[Tables, dict]:
    """Read and validate a contract directory; the typed tables and the validation report.

    Raises ``ContractError`` (features.validation) before anything is written. ``cutoff``: the
    last day that is not future-dated (``DataConfig.future_cutoff``), used when ``end`` is None.
    ``strategy_ids``: the catalog's ids, the only ones ``campaigns.strategy_id`` may hold.
    """
    from features.validation import validate_tables  # pandera: ~1.7 s to import, validation only

    tables, report = validate_tables(
        load_raw_tables(data_dir), end=end, cutoff=cutoff, strategy_ids=strategy_ids
    )
    return tables, report.to_dict()


def save_pickle(obj: Any, path: Path | str) -> Path:
    """Pickle ``obj`` atomically: tierwise's own intermediate outputs (the train stage's fitted
    models, read back by evaluate and explain), never a registered model."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    return Path(path)


def load_pickle(path: Path | str, stage: str) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the {stage} stage first")
    return pickle.loads(path.read_bytes())


def _hadoop_fs(spark: SparkSession, path: str):
    """The Hadoop file system that holds ``path``, and the JVM gateway."""
    jvm = spark.sparkContext._jvm
    target = jvm.org.apache.hadoop.fs.Path(path)
    return target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jvm


def find_table_uris(spark: SparkSession, data: str | Path) -> dict[str, str]:
    """``find_table_files`` for any file system Spark reads (``hdfs://``, ``s3a://``, a local
    path): table name -> URI of ``NAME.parquet`` (a file or a directory) or ``NAME.csv``. The
    same problems, every one at once: no such directory, two files for a table, a 0-byte file."""
    if not is_uri(data):
        # absolute: Spark resolves a relative path against its JVM's start directory
        return {name: str(path.resolve()) for name, path in find_table_files(data).items()}
    base = str(data).rstrip("/")
    fs, jvm = _hadoop_fs(spark, base)
    if not fs.exists(jvm.org.apache.hadoop.fs.Path(base)):
        raise FileNotFoundError(f"data directory {base} does not exist")
    hpath = jvm.org.apache.hadoop.fs.Path
    paths = {
        name: [u for u in (f"{base}/{name}{s}" for s in TABLE_SUFFIXES) if fs.exists(hpath(u))]
        for name in TABLE_NAMES
    }

    def size(uri: str) -> int:  # a Parquet directory counts as non-empty
        status = fs.getFileStatus(hpath(uri))
        return status.getLen() if status.isFile() else 1

    return _one_file_each(paths, size, base)


def is_uri(path: str | Path) -> bool:
    """``hdfs://…``, ``file:/…``, ``s3a://…`` (a one-letter scheme would be a Windows drive)."""
    from urllib.parse import urlparse

    return len(urlparse(str(path)).scheme) > 1


def write_parquet_atomic(df: SparkFrame, path: str | Path, overwrite: bool = False) -> str:
    """Write ``df`` as a Parquet directory at ``path``, all or nothing.

    Spark writes into a hidden sibling directory, which is renamed onto ``path`` only when the
    job succeeded; a failed job leaves neither. An existing ``path`` raises OutputExistsError
    unless ``overwrite``. Paths resolve like Spark's own (``file:``, ``hdfs:``, ...); the rename
    is atomic on local and HDFS file systems, not on object stores.
    """
    path = str(path).rstrip("/")
    spark = df.sparkSession
    fs, jvm = _hadoop_fs(spark, path)
    hpath = jvm.org.apache.hadoop.fs.Path
    target = hpath(path)
    if fs.exists(target) and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    token = uuid.uuid4().hex[:12]
    tmp = hpath(target.getParent(), f".{target.getName()}.{token}.tmp")
    old = hpath(target.getParent(), f".{target.getName()}.{token}.old")
    try:
        df.write.mode("errorifexists").parquet(tmp.toString())
        replaced = fs.exists(target) and fs.rename(target, old)
        if not fs.rename(tmp, target):
            if replaced:
                fs.rename(old, target)
            raise OSError(f"could not rename {tmp.toString()} to {path}")
    finally:
        fs.delete(tmp, True)
        fs.delete(old, True)
    return path
