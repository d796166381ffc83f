"""params.yaml, parsed once at the edge into frozen, typed dataclasses.

Unknown or missing keys fail loudly with the key's dotted path; dates are parsed here. Stage code
receives a ``Config``; features/ and models/ receive the typed pieces they need.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from features.spec import Definitions, EventSpec, FeatureSpec
from features.synthetic import WorldSpec
from models.monitoring.spec import MonitorSpec
from models.spec import (
    EvaluateSpec,
    ExplainSpec,
    KpiSpec,
    ScoreSpec,
    SplitSpec,
    SurvivalSpec,
    TrainSpec,
    UpliftSpec,
)

DEFAULT_PARAMS = Path("params.yaml")  # the CLI's default: params.yaml in the working directory
PROJECT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"  # the repository's own
# Keys that are not written in params.yaml: each follows definitions.<same name> (load_config
# fills them; one written by hand must agree).
DERIVED_KEYS = ("features.value_window_days", "kpis.value_window_days")


AUTO = "auto"  # an optional setting derived from the data (split sizes): the same as empty


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Paths:
    """Every file a stage reads or writes, relative to the project root (dvc.yaml uses them)."""

    world: Path
    validated: Path
    validation_report: Path
    features: Path
    features_summary: Path
    models: Path  # the fitted models of the train stage
    predictions: Path
    train_summary: Path
    metrics: Path
    metrics_by_snapshot: Path
    evaluation: Path
    kpis: Path
    plots: Path
    registry: Path
    explanations: Path
    explain: Path  # global SHAP views, coverage, plots
    report: Path
    monitor: Path  # the monitor stage's DVC metrics: test snapshots against the training window
    monitor_by_snapshot: Path  # the same per test snapshot (an output, not a metric)
    survival_predictions: Path  # the survival stage's test-row outputs
    survival_metrics: Path
    survival_headline: Path  # flat headline of survival_metrics (DVC metrics)
    survival_by_snapshot: Path
    survival_plots: Path
    uplift: Path  # the uplift stage's headline: overall Qini per targeting (DVC metrics)
    uplift_evaluation: Path  # the same per strategy, with the split and row counts
    uplift_plan: Path  # the action plan at the latest snapshot, for the report
    uplift_curve: Path  # its incremental-profit curve
    survival_book: Path  # the survival model on the binary models' test snapshots (KPI CLV)


@dataclass(frozen=True)
class DataConfig:
    dir: Path  # any directory that follows the input contract
    # The observation start (docs/data-contract.md, "Observation window"); empty: the earliest
    # date of the event tables, else the earliest origination (features/observation.py).
    start: pd.Timestamp | None
    end: pd.Timestamp | None  # empty: the latest date in any table that is not future-dated
    # With end empty, records dated more than this many days after the day of the run are
    # future-dated: a validation warning, not counted in the data's end (docs/data-contract.md).
    future_tolerance_days: int

    def __post_init__(self) -> None:
        if self.future_tolerance_days < 0:
            raise ValueError("data.future_tolerance_days must be >= 0")

    def future_cutoff(self, today: pd.Timestamp | None = None) -> pd.Timestamp:
        """The last day that is not future-dated: the run's day (UTC) plus the tolerance."""
        day = pd.Timestamp.now(tz="UTC").tz_localize(None) if today is None else today
        return pd.Timestamp(day).normalize() + pd.Timedelta(days=self.future_tolerance_days)


@dataclass(frozen=True)
class SnapshotConfig:
    start: pd.Timestamp | None  # empty: data.start + warmup_days
    end: pd.Timestamp | None  # empty: the data's last month-end
    warmup_days: int | None  # empty: the longest feature window (every window observed)

    def __post_init__(self) -> None:
        if self.warmup_days is not None and self.warmup_days < 0:
            raise ValueError("snapshots.warmup_days must be >= 0 (or empty)")


@dataclass(frozen=True)
class LabelConfig:
    horizon_days: int
    active_window_days: int


@dataclass(frozen=True)
class DefinitionConfig:
    """Tier, lifecycle, loyalty and stage thresholds (docs/definitions.md)."""

    new_days: int
    core_min_loans: int
    core_window_days: int
    core_min_tenure_days: int
    vip_top_fraction: float
    value_window_days: int
    loyalty_high_on_time: float
    loyalty_high_satisfaction: float
    loyalty_low_on_time: float
    loyalty_low_satisfaction: float
    advocate_window_days: int
    missed_after_days: int


@dataclass(frozen=True)
class MlflowConfig:
    """Tracking URI: MLFLOW_TRACKING_URI, else sqlite:///mlruns.db in the root (docs/models.md)."""

    experiment: str


@dataclass(frozen=True)
class SurvivalConfig:
    """Churn time and cause (``events``, docs/definitions.md) and their model (docs/survival.md)."""

    events: EventSpec
    model: SurvivalSpec
    split: SplitSpec  # the survival evaluation's own test window (models/survival/train.py)

    def __post_init__(self) -> None:
        if max(self.model.horizons_months) > self.events.months:
            raise ConfigError(
                f"params: survival.model.horizons_months {list(self.model.horizons_months)} "
                f"reach past survival.events.months = {self.events.months}"
            )


@dataclass(frozen=True)
class Config:
    root: Path
    paths: Paths
    data: DataConfig
    generate: WorldSpec
    snapshots: SnapshotConfig
    labels: LabelConfig
    definitions: DefinitionConfig
    features: FeatureSpec
    split: SplitSpec
    train: TrainSpec
    evaluate: EvaluateSpec
    kpis: KpiSpec
    mlflow: MlflowConfig
    explain: ExplainSpec
    score: ScoreSpec
    monitor: MonitorSpec
    survival: SurvivalConfig
    uplift: UpliftSpec

    def __post_init__(self) -> None:
        _check_risk_thresholds(self.score, self.explain)
        for key in DERIVED_KEYS:  # dataclasses.replace can bypass load_config's derivation
            section, name = key.split(".")
            if getattr(getattr(self, section), name) != getattr(self.definitions, name):
                raise ConfigError(
                    f"params: {key} = {getattr(getattr(self, section), name)} but "
                    f"definitions.{name} = {getattr(self.definitions, name)}: {key} follows "
                    f"definitions.{name}; set that one only"
                )

    def path(self, relative: Path) -> Path:
        """A configured path resolved against the project root."""
        return relative if relative.is_absolute() else self.root / relative

    @property
    def data_dir(self) -> Path:
        return self.path(self.data.dir)

    @property
    def warmup_days(self) -> int:
        """snapshots.warmup_days, or the longest feature window when empty."""
        if self.snapshots.warmup_days is not None:
            return self.snapshots.warmup_days
        return max((*self.features.windows_days, self.features.value_window_days))

    @property
    def defs(self) -> Definitions:
        return Definitions(
            horizon_days=self.labels.horizon_days,
            active_window_days=self.labels.active_window_days,
            **dataclasses.asdict(self.definitions),
        )


def _check_risk_thresholds(score: ScoreSpec, explain: ExplainSpec) -> None:
    """ "At risk" and "watch" name the same customers in a score file, the explain stage and the
    report: the at-risk bands start at explain.at_risk_threshold and the band just below them
    starts at explain.watch_threshold."""
    at_risk = min(score.risk_bands[band] for band in score.at_risk_bands)
    if at_risk != explain.at_risk_threshold:
        raise ConfigError(
            f"params: score.at_risk_bands start at {at_risk} but explain.at_risk_threshold is "
            f"{explain.at_risk_threshold}: set them to the same probability"
        )
    below = [bound for bound in score.risk_bands.values() if bound < at_risk]
    watch = max(below, default=at_risk)  # no band below the at-risk ones: an empty watch list
    if watch != explain.watch_threshold:
        raise ConfigError(
            f"params: the band below score.at_risk_bands (score.risk_bands) starts at {watch} but "
            f"explain.watch_threshold is {explain.watch_threshold}: set them to the same value"
        )


def _derive(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill the keys that follow another key (DERIVED_KEYS); a user-written one must agree."""
    raw = dict(raw)
    for key in DERIVED_KEYS:
        section, name = key.split(".")
        definitions, values = raw.get("definitions"), raw.get(section) or {}
        if not isinstance(definitions, dict) or name not in definitions:
            continue  # _build reports the missing or malformed key
        if not isinstance(values, dict):
            continue
        source, values = definitions[name], dict(values)
        if name in values and values[name] != source:
            raise ConfigError(
                f"params: {key} = {values[name]!r} differs from definitions.{name} = {source!r}: "
                f"{key} follows definitions.{name}; remove {key} or make them equal"
            )
        raw[section] = {**values, name: source}
    return raw


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value in (None, "", AUTO) and type(None) in args:  # auto: derived (split sizes)
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    try:
        if hint is pd.Timestamp:
            return pd.Timestamp(str(value))
        if hint is Path:
            return Path(str(value))
        if origin is tuple:
            return tuple(_coerce(v, args[0], f"{where}[]") for v in value)
        if hint is bool:
            if not isinstance(value, bool):
                raise TypeError("expected true or false")
            return value
        if hint in (int, float, str):
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise TypeError("expected a whole number")
            return hint(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"params: {where} = {value!r}: {err}") from err
    return value


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params: {where} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"params: unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}")
    missing = sorted(names - set(raw))
    if missing:  # params.yaml is the full record of a run: no silent defaults
        keys = ", ".join(f"{where}.{k}".lstrip(".") for k in missing)
        raise ConfigError(f"params: missing key(s) {keys}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}".lstrip(".")) for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"params: {where or 'top level'}: {err}") from err


def load_config(params: Path | str = DEFAULT_PARAMS, root: Path | str | None = None) -> Config:
    """Parse params.yaml; paths are relative to ``root`` (default: the params file's folder)."""
    params = Path(params)
    raw = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params: {params} must be a mapping of sections")
    raw["root"] = Path(root) if root is not None else params.resolve().parent
    return _build(Config, _derive(raw), "")


def load_defaults(root: Path | str | None = None) -> Config:
    """The project's own params.yaml (PROJECT_PARAMS), e.g. for tests, benchmarks and notebooks.

    The file is looked up next to the packages: ``pipelines/`` sits at the repository root, where
    params.yaml lives, because the package is installed editable (``pip install -e .``, what
    ``make setup`` does). A non-editable install ships no params.yaml: pass a file to
    ``load_config`` instead. Paths are relative to ``root`` (default: the repository root).
    """
    if not PROJECT_PARAMS.is_file():
        raise ConfigError(
            f"params: {PROJECT_PARAMS} not found: load_defaults reads the repository's "
            "params.yaml and needs an editable install (pip install -e .)"
        )
    return load_config(PROJECT_PARAMS, root=root)


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = _deep_merge(base[key], value)
        merged[key] = value
    return merged


def config_with(cfg: Config, **sections: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with some keys of some sections replaced (tests, CLI overrides).

    The whole config is parsed again, so the checks of load_config hold for the copy too.
    """
    raw: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        if f.name != "root":
            raw[f.name] = dataclasses.asdict(getattr(cfg, f.name))
    for key in DERIVED_KEYS:  # derived again from the (possibly changed) definitions
        section, name = key.split(".")
        raw[section].pop(name)
    unknown = sorted(set(sections) - set(raw))
    if unknown:
        raise ConfigError(f"params: unknown section(s) {', '.join(unknown)}")
    raw = _deep_merge(raw, sections)
    return _build(Config, {**_derive(raw), "root": cfg.root}, "")
