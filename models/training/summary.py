"""The train stage's record (reports/train.json): what was split, fitted and timed.

``TrainSummary`` is what ``train_models`` returns and what the evaluate and report stages read
back with ``TrainSummary.from_json``; ``to_json`` gives the file's content, key for key. Every
part is a flat dataclass whose fields are the file's keys, so ``to_json`` is ``asdict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from models.records import checked

Part = Literal["fit", "validation", "test"]
PARTS: tuple[Part, ...] = ("fit", "validation", "test")


@dataclass(frozen=True)
class SplitPart:
    """One part of the out-of-time split: its number of snapshots, first and last (ISO dates)."""

    snapshots: int
    first: str
    last: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitPart:
        d = checked(data, ("snapshots", "first", "last"), "split part")
        return cls(snapshots=int(d["snapshots"]), first=str(d["first"]), last=str(d["last"]))


@dataclass(frozen=True)
class SplitSummary:
    """The split's parts and the label horizon H their purge gaps use."""

    horizon_days: int
    fit: SplitPart
    validation: SplitPart
    test: SplitPart
    validation_purge: bool = True  # fit purged against validation (models/training/split.py)

    def part(self, name: Part) -> SplitPart:
        return getattr(self, name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitSummary:
        d = checked(data, ("horizon_days", *PARTS, "validation_purge"), "split")
        parts = {p: SplitPart.from_json(d[p]) for p in PARTS}
        purge = bool(d["validation_purge"])
        return cls(horizon_days=int(d["horizon_days"]), **parts, validation_purge=purge)


@dataclass(frozen=True)
class ChurnInfo:
    """The fitted churn model: trees kept by early stopping, the calibration method and each
    candidate's cross-validated Brier score (empty when the method was fixed), rows of the fit
    and validation slices."""

    trees: int
    calibration: str
    calibration_cv: Mapping[str, float]
    fit_rows: int
    validation_rows: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChurnInfo:
        keys = ("trees", "calibration", "calibration_cv", "fit_rows", "validation_rows")
        d = checked(data, keys, "churn info")
        return cls(
            trees=int(d["trees"]),
            calibration=str(d["calibration"]),
            calibration_cv={str(k): float(v) for k, v in d["calibration_cv"].items()},
            fit_rows=int(d["fit_rows"]),
            validation_rows=int(d["validation_rows"]),
        )


@dataclass(frozen=True)
class TierInfo:
    """The fitted tier model: trees kept by early stopping, rows of the fit and validation
    slices, which model gives the next-tier probabilities ("lightgbm", or "markov_baseline"
    when the data could not train one) and why it fell back ("" when it did not)."""

    trees: int
    fit_rows: int
    validation_rows: int
    model: str = "lightgbm"
    fallback: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TierInfo:
        keys = ("trees", "fit_rows", "validation_rows", "model", "fallback")
        d = checked(data, keys, "tier info")
        counts = (int(d["trees"]), int(d["fit_rows"]), int(d["validation_rows"]))
        return cls(*counts, model=str(d["model"]), fallback=str(d["fallback"]))


@dataclass(frozen=True)
class TrainSeconds:
    """Wall-clock seconds of each fit (rounded to 0.01 s)."""

    churn: float
    logistic: float
    tier: float

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainSeconds:
        d = checked(data, ("churn", "logistic", "tier"), "seconds")
        return cls(float(d["churn"]), float(d["logistic"]), float(d["tier"]))


@dataclass(frozen=True)
class TestRows:
    """Labelled test rows: the churn model's (active at t) and the tier model's (all)."""

    __test__ = False  # not a pytest class, whatever its name says

    churn: int
    tier: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TestRows:
        d = checked(data, ("churn", "tier"), "test rows")
        return cls(int(d["churn"]), int(d["tier"]))


@dataclass(frozen=True)
class FitInfo:
    """What fitting the models records (``FittedModels.info``)."""

    churn: ChurnInfo
    tier: TierInfo
    seconds: TrainSeconds


@dataclass(frozen=True)
class TrainSummary:
    """reports/train.json. ``data_fingerprint`` is the feature table's SHA-256
    (``models.training.train.data_fingerprint``)."""

    split: SplitSummary
    data_fingerprint: str
    test_rows: TestRows
    churn: ChurnInfo
    tier: TierInfo
    seconds: TrainSeconds
    warnings: tuple[str, ...] = ()  # e.g. the tier model fell back to the Markov baseline

    @property
    def trees(self) -> dict[str, int]:
        """Trees of each booster, by kind (logged to MLflow as ``trees.*``)."""
        return {"churn": self.churn.trees, "tier": self.tier.trees}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "warnings": list(self.warnings)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainSummary:
        keys = ("split", "data_fingerprint", "test_rows", "churn", "tier", "seconds", "warnings")
        d = checked(data, keys, "train summary")
        return cls(
            split=SplitSummary.from_json(d["split"]),
            data_fingerprint=str(d["data_fingerprint"]),
            test_rows=TestRows.from_json(d["test_rows"]),
            churn=ChurnInfo.from_json(d["churn"]),
            tier=TierInfo.from_json(d["tier"]),
            seconds=TrainSeconds.from_json(d["seconds"]),
            warnings=tuple(str(w) for w in d["warnings"]),
        )
