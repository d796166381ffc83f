"""The evaluate stage's records: reports/evaluation.json (``EvaluationDetails``),
reports/metrics.json (``HeadlineMetrics``) and reports/metrics_by_snapshot.json
(``SnapshotMetrics``). ``to_json`` gives a file's content key for key; ``from_json`` reads it back.

The figures of one model stay a plain dict (metric -> value, None when undefined on the rows):
the metric names are the files' vocabulary, listed in docs/models.md. What code reads between
stages (which kind, which model, the conversion rate) is typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from models.records import RecordError, checked, plain

Kind = Literal["churn", "tier"]
KINDS: tuple[Kind, ...] = ("churn", "tier")
ModelMetrics = Mapping[str, Any]  # one model's figures: metric -> value
ByModel = Mapping[str, ModelMetrics]  # model -> its figures
BySnapshot = Mapping[str, ByModel]  # test snapshot (ISO date) -> model -> figures


@dataclass(frozen=True)
class Conversion:
    """Potential -> any borrowing tier at t+H (document 003): the test rows of potential
    customers, the actual rate, and each tier model's predicted rate (None without rows)."""

    rows: int
    actual: float | None
    predicted: Mapping[str, float | None]

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "actual": self.actual, **self.predicted}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Conversion:
        if not isinstance(data, Mapping) or not {"rows", "actual"} <= set(data):
            raise RecordError(f"conversion: needs rows and actual, got {data!r}")
        predicted = {k: v for k, v in data.items() if k not in ("rows", "actual")}
        return cls(int(data["rows"]), data["actual"], predicted)


@dataclass(frozen=True)
class ChurnDetails:
    """Churn figures per model (overall and per test snapshot), and the actual and mean
    predicted churn rate per tier and per lifecycle state (level -> rows, churn_rate,
    predicted)."""

    overall: ByModel
    by_snapshot: BySnapshot
    by_tier: Mapping[str, Mapping[str, Any]]
    by_lifecycle: Mapping[str, Mapping[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChurnDetails:
        d = checked(data, ("overall", "by_snapshot", "by_tier", "by_lifecycle"), "churn details")
        return cls(**plain(dict(d)))


@dataclass(frozen=True)
class TierDetails:
    """Tier figures per model (overall and per test snapshot); transition matrices (name ->
    tier at t -> tier at t+H -> rate); upgrade and downgrade precision and recall (model ->
    current tier -> move -> figures); the conversion rate."""

    overall: ByModel
    by_snapshot: BySnapshot
    transitions: Mapping[str, Mapping[str, Mapping[str, float | None]]]
    moves: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]]
    conversion: Conversion

    def to_json(self) -> dict[str, Any]:
        figures = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "conversion"}
        return plain(figures) | {"conversion": self.conversion.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TierDetails:
        keys = ("overall", "by_snapshot", "transitions", "moves", "conversion")
        d = dict(checked(data, keys, "tier details"))
        conversion = Conversion.from_json(d.pop("conversion"))
        return cls(**plain(d), conversion=conversion)


@dataclass(frozen=True)
class EvaluationDetails:
    """reports/evaluation.json: every figure of the test rows."""

    churn: ChurnDetails
    tier: TierDetails

    def of(self, kind: Kind) -> ChurnDetails | TierDetails:
        return self.churn if kind == "churn" else self.tier

    def to_json(self) -> dict[str, Any]:
        return {"churn": self.churn.to_json(), "tier": self.tier.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluationDetails:
        d = checked(data, KINDS, "evaluation")
        return cls(ChurnDetails.from_json(d["churn"]), TierDetails.from_json(d["tier"]))


@dataclass(frozen=True)
class HeadlineMetrics:
    """reports/metrics.json (DVC metrics): overall figures per kind and model, the pooled
    portfolio KPIs (``models.evaluation.kpis.kpi_headline``) and the conversion rate."""

    churn: ByModel
    tier: ByModel
    kpis: Mapping[str, float]
    conversion: Conversion

    def of(self, kind: Kind) -> ByModel:
        """The overall figures of each model of ``kind``."""
        return self.churn if kind == "churn" else self.tier

    def to_json(self) -> dict[str, Any]:
        figures = {"churn": self.churn, "tier": self.tier, "kpis": self.kpis}
        return plain(figures) | {"conversion": self.conversion.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeadlineMetrics:
        d = dict(checked(data, (*KINDS, "kpis", "conversion"), "metrics"))
        conversion = Conversion.from_json(d.pop("conversion"))
        return cls(**plain(d), conversion=conversion)


@dataclass(frozen=True)
class SnapshotMetrics:
    """reports/metrics_by_snapshot.json: figures per test snapshot and model (not DVC metrics:
    ``dvc plots`` shows one metric of each kind per snapshot, models/evaluation/evaluation.py)."""

    churn: BySnapshot
    tier: BySnapshot

    def of(self, kind: Kind) -> BySnapshot:
        return self.churn if kind == "churn" else self.tier

    def to_json(self) -> dict[str, Any]:
        return {"churn": plain(self.churn), "tier": plain(self.tier)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SnapshotMetrics:
        d = checked(data, KINDS, "metrics by snapshot")
        return cls(plain(d["churn"]), plain(d["tier"]))
