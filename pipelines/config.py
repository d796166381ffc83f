"""params.yaml, parsed once at the edge into frozen, typed dataclasses.

Unknown or missing keys fail loudly with the key's dotted path; dates are parsed here. Stage code
receives a ``Config``; features/ and models/ receive the typed pieces they need.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from features.spec import Definitions, FeatureSpec
from features.synthetic import WorldSpec
from models.spec import EvaluateSpec, ExplainSpec, KpiSpec, ScoreSpec, SplitSpec, TrainSpec

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Paths:
    """Every file a stage reads or writes, relative to the project root (dvc.yaml uses them)."""

    world: Path = Path("data/world")
    validated: Path = Path("data/validated")
    validation_report: Path = Path("reports/validation.json")
    features: Path = Path("data/features/feature_table.parquet")
    features_summary: Path = Path("reports/features_summary.json")
    models: Path = Path("data/models/fitted.pkl")  # the fitted models of the train stage
    predictions: Path = Path("reports/predictions.parquet")
    train_summary: Path = Path("reports/train.json")
    metrics: Path = Path("reports/metrics.json")
    metrics_by_snapshot: Path = Path("reports/metrics_by_snapshot.json")
    evaluation: Path = Path("reports/evaluation.json")
    kpis: Path = Path("reports/kpis.csv")
    plots: Path = Path("reports/plots")
    registry: Path = Path("reports/registry.json")
    explanations: Path = Path("reports/explanations.parquet")
    explain: Path = Path("reports/explain")  # global SHAP views, coverage, plots
    report: Path = Path("reports/report.html")


@dataclass(frozen=True)
class DataConfig:
    dir: Path = Path("data/world")  # any directory that follows the input contract
    end: pd.Timestamp | None = None  # empty: the latest date in any table


@dataclass(frozen=True)
class SnapshotConfig:
    start: pd.Timestamp | None = None  # empty: one active window after the data starts
    end: pd.Timestamp | None = None  # empty: the data's last month-end


@dataclass(frozen=True)
class LabelConfig:
    horizon_days: int = 180
    active_window_days: int = 365


@dataclass(frozen=True)
class DefinitionConfig:
    """Tier, lifecycle, loyalty and stage thresholds (docs/definitions.md)."""

    new_days: int = 90
    core_min_loans: int = 2
    core_window_days: int = 730
    core_min_tenure_days: int = 365
    vip_top_fraction: float = 0.10
    value_window_days: int = 365
    loyalty_high_on_time: float = 0.95
    loyalty_high_satisfaction: float = 4.0
    loyalty_low_on_time: float = 0.80
    loyalty_low_satisfaction: float = 2.0
    advocate_window_days: int = 365
    missed_after_days: int = 30


@dataclass(frozen=True)
class MlflowConfig:
    """Tracking URI: MLFLOW_TRACKING_URI, else sqlite:///mlruns.db in the root (docs/models.md)."""

    experiment: str = "tierwise"


@dataclass(frozen=True)
class Config:
    root: Path
    paths: Paths = field(default_factory=Paths)
    data: DataConfig = field(default_factory=DataConfig)
    generate: WorldSpec = field(default_factory=WorldSpec)
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    definitions: DefinitionConfig = field(default_factory=DefinitionConfig)
    features: FeatureSpec = field(default_factory=FeatureSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    evaluate: EvaluateSpec = field(default_factory=EvaluateSpec)
    kpis: KpiSpec = field(default_factory=KpiSpec)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    explain: ExplainSpec = field(default_factory=ExplainSpec)
    score: ScoreSpec = field(default_factory=ScoreSpec)

    def __post_init__(self) -> None:
        # "At risk" names the same customers in a score file, the explain stage and the report.
        at_risk = min(self.score.risk_bands[band] for band in self.score.at_risk_bands)
        if at_risk != self.explain.at_risk_threshold:
            raise ConfigError(
                f"params: score.at_risk_bands start at {at_risk} but explain.at_risk_threshold is "
                f"{self.explain.at_risk_threshold}: set them to the same probability"
            )

    def path(self, relative: Path) -> Path:
        """A configured path resolved against the project root."""
        return relative if relative.is_absolute() else self.root / relative

    @property
    def data_dir(self) -> Path:
        return self.path(self.data.dir)

    @property
    def defs(self) -> Definitions:
        return Definitions(
            horizon_days=self.labels.horizon_days,
            active_window_days=self.labels.active_window_days,
            **dataclasses.asdict(self.definitions),
        )


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value in (None, "") and type(None) in args:
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
    except (TypeError, ValueError) as err:
        raise ConfigError(f"params: {where or 'top level'}: {err}") from err


def load_config(params: Path | str = DEFAULT_PARAMS, root: Path | str | None = None) -> Config:
    """Parse params.yaml; paths are relative to ``root`` (default: the params file's folder)."""
    params = Path(params)
    raw = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
    raw["root"] = Path(root) if root is not None else params.resolve().parent
    return _build(Config, raw, "")


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = _deep_merge(base[key], value)
        merged[key] = value
    return merged


def config_with(cfg: Config, **sections: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with some keys of some sections replaced (tests, CLI overrides)."""
    changes = {}
    for name, values in sections.items():
        current = getattr(cfg, name)
        merged = _deep_merge(dataclasses.asdict(current), values)
        changes[name] = _build(type(current), merged, name)
    return dataclasses.replace(cfg, **changes)
