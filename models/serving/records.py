"""The evaluate stage's registry record (reports/registry.json): the MLflow run and, per model
kind, the version registered and the promotion decision. The explain and report stages read it
back with ``RegistryRecord.from_json`` to log into the same run; ``to_json`` is the file's
content, key for key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from models.records import checked


@dataclass(frozen=True)
class VersionRecord:
    """One registered version: its model name and number, whether it became champion, why."""

    name: str
    version: str
    champion: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionRecord:
        d = checked(data, ("name", "version", "champion", "reason"), "registered version")
        return cls(str(d["name"]), str(d["version"]), bool(d["champion"]), str(d["reason"]))


@dataclass(frozen=True)
class RegistryRecord:
    """The run that logged everything, the store it lives in, and each kind's new version."""

    run_id: str
    tracking_uri: str
    models: Mapping[str, VersionRecord]  # kind ("churn", "tier") -> version

    def to_json(self) -> dict[str, Any]:
        return {
            "models": {kind: v.to_json() for kind, v in self.models.items()},
            "run_id": self.run_id,
            "tracking_uri": self.tracking_uri,
        }

    def portable(self, root: Path) -> RegistryRecord:
        """The record as committed: a SQLite store inside ``root`` named relative to it
        (``sqlite:///mlruns.db``, what MLflow reads from the repository's root), so the file
        holds no absolute path of the machine that ran it; any other URI unchanged."""
        prefix = "sqlite:///"
        if not self.tracking_uri.startswith(prefix):
            return self
        path = Path(self.tracking_uri[len(prefix) :])
        base = Path(root).resolve()
        if not path.is_absolute() or not path.resolve().is_relative_to(base):
            return self
        return replace(self, tracking_uri=prefix + path.resolve().relative_to(base).as_posix())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegistryRecord:
        d = checked(data, ("models", "run_id", "tracking_uri"), "registry record")
        models = {str(k): VersionRecord.from_json(v) for k, v in d["models"].items()}
        return cls(str(d["run_id"]), str(d["tracking_uri"]), models)
