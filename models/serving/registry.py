"""MLflow tracking and Model Registry: the only module in tierwise that talks to MLflow.

Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<root>/mlruns.db``; the
experiment's artefacts go to ``<root>/mlartifacts`` (both git-ignored). Registered models:
``tierwise-churn`` and ``tierwise-tier``. Every logged run registers a new version of each with
the alias ``challenger``; ``champion`` moves only where the caller decided so (the rule lives in
models/evaluation/champion.py) or by hand with ``promote``. A version records its task
(models/serving/task.py) as tags and in its ``model_config``, and takes the task's aliases
``challenger-<task id>`` and, when it wins within its task, ``champion-<task id>``. A version
is logged from code: models/serving/model_code.py with LightGBM's model text and a JSON
document, no pickle (models/serving/artifacts.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, Protocol

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from models.serving.artifacts import MODEL_CODE
from models.serving.records import RegistryRecord, VersionRecord
from models.serving.task import TASK_PARAMS, TASK_TAG, Task, TaskMismatchError, train_data_end

log = logging.getLogger(__name__)

MODEL_NAMES = {"churn": "tierwise-churn", "tier": "tierwise-tier", "survival": "tierwise-survival",
               "uplift": "tierwise-uplift"}  # fmt: skip
# The code MLflow stores with a version, by kind (model_code.py unless named here).
MODEL_CODES = {"survival": MODEL_CODE.with_name("survival_code.py"),
               "uplift": MODEL_CODE.with_name("uplift_code.py")}  # fmt: skip
CHAMPION, CHALLENGER = "champion", "challenger"
DB_FILE, ARTIFACT_DIR = "mlruns.db", "mlartifacts"
ENV_URIS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
RUNTIME_DISTRIBUTIONS = ("mlflow", "lightgbm", "scikit-learn", "scipy", "numpy", "pandas")


class RegistryError(LookupError):
    """A registered model or version that does not exist."""


class Registrable(Protocol):
    """An in-process model (models/serving/pyfunc.py) that can be stored as files."""

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame: ...
    def predict_params(self) -> dict[str, str]: ...
    def write_artifacts(self, folder: Path) -> dict[str, str]: ...


@dataclass(frozen=True)
class ModelEntry:
    """One model to log and register: the model, an input example and the decision."""

    kind: str  # "churn" or "tier" (a key of MODEL_NAMES)
    model: Registrable
    input_example: pd.DataFrame
    required: tuple[str, ...]  # input columns the model cannot do without (its features)
    promote: bool  # take the plain champion alias
    reason: str
    tags: Mapping[str, str] = field(default_factory=dict)  # the version's task and lineage
    task_champion: bool = False  # take champion-<task id> (the task in ``tags``)


@dataclass(frozen=True)
class RunRecord:
    experiment: str
    params: Mapping[str, Any]  # nested; flattened to dotted keys
    tags: Mapping[str, str]
    metrics: Mapping[str, Any]  # nested; numbers flattened to dotted keys, None skipped
    series: Mapping[str, list[float]] = field(default_factory=dict)  # one value per step
    artifacts: tuple[Path, ...] = ()  # files and folders
    dicts: Mapping[str, Any] = field(default_factory=dict)  # artifact file name -> JSON object


def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / DB_FILE}"


def _connect(root: Path) -> MlflowClient:
    """Point MLflow at the store. ``mlflow.set_*_uri`` also export the URI to the environment;
    that is undone, so a later call with another root is not pinned to this one's store."""
    uri = tracking_uri(root)
    before = {k: os.environ.get(k) for k in ENV_URIS}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client: MlflowClient, name: str, root: Path) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (Path(root).resolve() / ARTIFACT_DIR).as_uri()
    return client.create_experiment(name, artifact_location=location)


def git_commit(root: Path) -> str:
    """HEAD's commit, with "+dirty" when the work tree has changes; "unknown" outside git."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}.")
        else:
            out[name] = value
    return out


def _col_type(dtype: Any) -> str:
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    return "double" if pd.api.types.is_numeric_dtype(dtype) else "string"


def _signature(entry: ModelEntry) -> ModelSignature:
    example = entry.input_example
    inputs = [ColSpec(_col_type(example[c].dtype), c, c in entry.required) for c in example]
    output = entry.model.predict_frame(example)
    outputs = [ColSpec(_col_type(output[c].dtype), c) for c in output]
    defaults = entry.model.predict_params()
    if entry.tags:  # a version with a task checks the task params a caller passes
        defaults = {**defaults, **dict.fromkeys(TASK_PARAMS, "")}
    params = (
        ParamSchema([ParamSpec(k, "string", v) for k, v in defaults.items()]) if defaults else None
    )
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=params)


def pip_requirements() -> list[str]:
    """Pinned runtime libraries; the functions model_code.py calls come from the installed
    tierwise package."""
    return [f"{name}=={dist_version(name)}" for name in RUNTIME_DISTRIBUTIONS]


def task_alias(alias: str, task_id: str) -> str:
    """``champion-h180-a365-l1-…``: the alias of a task's champion (or challenger)."""
    return f"{alias}-{task_id}"


def _log_model(client: MlflowClient, entry: ModelEntry, tags: Mapping[str, str]) -> VersionRecord:
    """Log the model from code (model_code.py and its files, no pickle) and register it."""
    name = MODEL_NAMES[entry.kind]
    with tempfile.TemporaryDirectory(prefix="tierwise-model-") as tmp:
        info = mlflow.pyfunc.log_model(
            name=f"{entry.kind}-model",
            python_model=str(MODEL_CODES.get(entry.kind, MODEL_CODE)),
            artifacts=entry.model.write_artifacts(Path(tmp)),
            signature=_signature(entry),
            input_example=entry.input_example,
            pip_requirements=pip_requirements(),
            registered_model_name=name,
            # the task only: MLflow also logs model_config as the run's params, and the churn and
            # tier versions of one run differ in their lineage (test-set fingerprint)
            model_config={"task": Task.keys_of(entry.tags)} if entry.tags else None,
        )
    version = str(info.registered_model_version)
    for key, value in {**tags, **entry.tags, "promotion": entry.reason}.items():
        client.set_model_version_tag(name, version, key, value)
    aliases = [CHALLENGER] + ([CHAMPION] if entry.promote else [])
    if TASK_TAG in entry.tags:
        task_id = entry.tags[TASK_TAG]
        aliases.append(task_alias(CHALLENGER, task_id))
        if entry.task_champion or entry.promote:
            aliases.append(task_alias(CHAMPION, task_id))
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)
    log.info("%s version %s (%s): %s", name, version, ", ".join(aliases), entry.reason)
    return VersionRecord(name, version, entry.promote, entry.reason)


def _log_values(client: MlflowClient, run_id: str, record: RunRecord) -> None:
    params = {k: str(v) for k, v in flatten(record.params).items()}
    mlflow.log_params(params)
    mlflow.set_tags(dict(record.tags))
    numbers = {k: float(v) for k, v in flatten(record.metrics).items()
               if isinstance(v, int | float) and not isinstance(v, bool) and v == v}  # fmt: skip
    mlflow.log_metrics(numbers)
    steps = [Metric(key, float(v), 0, step) for key, values in record.series.items()
             for step, v in enumerate(values) if v is not None]  # fmt: skip
    for start in range(0, len(steps), 1000):
        client.log_batch(run_id, metrics=steps[start : start + 1000])
    _log_artifacts(record.artifacts)
    for file_name, obj in record.dicts.items():
        mlflow.log_dict(obj, file_name)


def _log_artifacts(paths: Sequence[Path]) -> None:
    """Log files, and folders under their own name, into the active run."""
    for path in paths:
        if path.is_dir():
            mlflow.log_artifacts(str(path), path.name)
        elif path.exists():
            mlflow.log_artifact(str(path))


def log_run(root: Path, record: RunRecord, entries: list[ModelEntry]) -> RegistryRecord:
    """One MLflow run: params, tags, metrics, artefacts, and each model logged and registered."""
    client = _connect(root)
    experiment_id = _experiment_id(client, record.experiment, root)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        _log_values(client, run.info.run_id, record)
        versions = {e.kind: _log_model(client, e, record.tags) for e in entries}
    return RegistryRecord(run.info.run_id, tracking_uri(root), versions)


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def version_tags(root: Path, name: str, version: str) -> dict[str, str]:
    return dict(_connect(root).get_model_version(name, str(version)).tags)


def alias_task(root: Path, name: str, alias: str) -> tuple[str, str | None] | None:
    """(version, its task id or None when it records none) behind ``name@alias``, or None when
    there is no such alias. Reads tags only: nothing is loaded or scored."""
    version = _alias_version(_connect(root), name, alias)
    if version is None:
        return None
    task = Task.from_tags(version_tags(root, name, version))
    return version, None if task is None else task.id


def load_alias(root: Path, name: str, alias: str) -> tuple[str, mlflow.pyfunc.PyFuncModel] | None:
    """(version, model) behind ``name@alias``, or None when the model or alias does not exist."""
    version = _alias_version(_connect(root), name, alias)
    if version is None:
        return None
    return version, mlflow.pyfunc.load_model(f"models:/{name}@{alias}")


@dataclass(frozen=True)
class AliasScore:
    version: str
    output: pd.DataFrame | None  # None when the model could not score the frame
    error: str = ""  # why not: the version's URI, whether loading or scoring failed, the cause


def _cause(err: BaseException, limit: int = 300) -> str:
    """The exception's type and message, and the type and message of what caused it."""
    reason = str(err).rsplit("Error: ", 1)[-1]  # MLflow's schema errors end with the cause
    text = f"{type(err).__name__}: {reason}"
    if err.__cause__ is not None and str(err.__cause__) not in text:
        text += f" (from {type(err.__cause__).__name__}: {err.__cause__})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def score_with_alias(
    root: Path, name: str, alias: str, frame: pd.DataFrame, params: dict | None = None
) -> AliasScore | None:
    """Score ``frame`` with ``name@alias`` through pyfunc, as a consumer would.

    None when there is no such alias; an ``AliasScore`` without output, and an error naming the
    version and the cause, when the model cannot be loaded (a pickled version whose classes
    moved, a deleted or corrupt artifact, an unknown format) or cannot score the frame (its input
    schema or code no longer matches the data). Any exception counts: the caller decides what a
    broken champion means (models/evaluation/champion.py never promotes over one silently).
    ``params`` go to ``predict`` (a model logged without them ignores them with a warning).
    """
    version = _alias_version(_connect(root), name, alias)
    if version is None:
        return None
    uri = f"models:/{name}/{version}"
    try:
        model = mlflow.pyfunc.load_model(uri)
    except Exception as err:  # any failure to load is the version's failure, reported as such
        return AliasScore(version, None, f"cannot load {uri} ({name}@{alias}): {_cause(err)}")
    try:
        return AliasScore(version, model.predict(frame, params=params))
    except Exception as err:
        return AliasScore(version, None, f"{uri} ({name}@{alias}) cannot score: {_cause(err)}")


def promote(root: Path, name: str, version: str) -> None:
    """Make ``version`` of ``name`` the champion (by hand; no rule is checked)."""
    client = _connect(root)
    try:
        client.get_model_version(name, str(version))
    except MlflowException as err:
        raise RegistryError(f"no version {version} of registered model {name!r}") from err
    client.set_registered_model_alias(name, CHAMPION, str(version))
    task = Task.from_tags(version_tags(root, name, str(version)))
    if task is not None:  # the champion of its task too
        client.set_registered_model_alias(name, task_alias(CHAMPION, task.id), str(version))
    client.set_model_version_tag(name, str(version), "promotion", "promoted by hand")
    log.info("%s version %s is now the champion", name, version)


def log_to_run(
    root: Path, run_id: str, artifacts: Sequence[Path], metrics: Mapping[str, float]
) -> None:
    """Add artefacts (files or folders) and metrics to an existing run (later stages' outputs)."""
    _connect(root)
    with mlflow.start_run(run_id=run_id):
        _log_artifacts(artifacts)
        if metrics:
            mlflow.log_metrics(dict(metrics))


@dataclass(frozen=True)
class LoadedModel:
    """A pyfunc model with the registry name and version it came from (lineage)."""

    uri: str  # as given
    name: str  # registered model name; the URI itself for a model outside the registry
    version: str  # "" for a model outside the registry
    model: mlflow.pyfunc.PyFuncModel
    task: Task | None = None  # what the version records (tags, else its model_config)
    train_end: pd.Timestamp | None = None  # its tag train_data_end, when it records one

    @property
    def pinned_uri(self) -> str:
        """The URI of exactly this version (an alias may move while a job runs)."""
        return _pinned_uri(self.uri, self.name, self.version)


def _pinned_uri(uri: str, name: str, version: str) -> str:
    return f"models:/{name}/{version}" if version else uri


def _registry_version(client: MlflowClient, uri: str) -> tuple[str, str] | None:
    """(name, version) of a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI, else None."""
    if not uri.startswith("models:/"):
        return None
    ref = uri.removeprefix("models:/").strip("/")
    name, sep, alias = ref.partition("@")
    if sep:
        version = _alias_version(client, name, alias)
        if version is None:
            raise RegistryError(f"{uri}: registered model {name!r} has no alias {alias!r}")
        return name, version
    name, _, version = ref.rpartition("/")
    if not name or not version.isdigit():
        raise RegistryError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    try:
        client.get_model_version(name, version)
    except MlflowException as err:
        raise RegistryError(f"{uri}: no version {version} of registered model {name!r}") from err
    return name, version


def load_model(root: Path, uri: str) -> LoadedModel:
    """Load a pyfunc model by URI (a registry URI, ``runs:/...`` or a path) with its lineage.

    Raises RegistryError when the model, alias or version does not exist or cannot be loaded.
    """
    client = _connect(root)
    found = _registry_version(client, uri)
    name, version = found if found else (uri, "")
    try:
        model = mlflow.pyfunc.load_model(_pinned_uri(uri, name, version))
    except Exception as err:  # missing files, a pickled version whose classes moved, a bad format
        raise RegistryError(f"cannot load model {uri}: {_cause(err)}") from err
    log.info("model %s: %s version %s", uri, name, version or "-")
    tags = version_tags(root, name, version) if version else {}
    task = Task.from_tags(tags) or _config_task(model)
    return LoadedModel(uri, name, version, model, task, train_data_end(tags))


def _config_task(model: mlflow.pyfunc.PyFuncModel) -> Task | None:
    """The task stored in a version's MLmodel (``model_config``), for URIs outside the registry."""
    config = getattr(model, "model_config", None) or {}
    return Task.from_tags(config.get("task") if isinstance(config, Mapping) else None)


def spark_udf(root: Path, spark: Any, loaded: LoadedModel, result_type: Any, params: dict | None):
    """``mlflow.pyfunc.spark_udf`` for exactly the loaded version, run in this environment."""
    _connect(root)
    return mlflow.pyfunc.spark_udf(
        spark, loaded.pinned_uri, result_type=result_type, env_manager="local", params=params
    )


def model_profile(loaded: LoadedModel) -> dict | None:
    """The monitoring reference profile stored with a loaded churn version (``profile.json``,
    read by model_code.py); None for a version registered without one."""
    try:
        python_model = loaded.model.unwrap_python_model()
    except Exception:  # not a python-function model (a flavour loaded from a path)
        return None
    return getattr(python_model, "profile", None)


def check_tasks(models: Iterable[LoadedModel], task: Task, ignore: bool) -> None:
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
        alias = task_alias(CHAMPION, task.id)
        raise TaskMismatchError(
            f"{problem}. Score with the params it was trained with, choose a model of this task "
            f"(e.g. models:/{loaded.name or 'NAME'}@{alias}), or pass --ignore-task"
        )
