"""A model version's task: what its labels mean, so that only like is compared with like.

Two versions answer the same question when their labels were built the same way: the horizon H
(``labels.horizon_days``), the active window A (``labels.active_window_days``), the version of
the label code (``LABEL_DEFINITION_VERSION``, bumped whenever features/labels.py or the tier
rules change what a label means) and a hash of the definitions behind the states and tiers
(params ``definitions``). The feature-spec hash and the test-set fingerprint are recorded beside
the task (lineage) but do not make it: a champion is re-scored on the challenger's own test rows.

Every registered version carries its task as tags and in its MLmodel ``model_config``
(docs/models.md, "Tasks"); ``Task.id`` names the task in aliases (``champion-h180-a365-l1-…``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.spec import Definitions, EventSpec, FeatureSpec

LABEL_DEFINITION_VERSION = "1"
HORIZON, ACTIVE_WINDOW = "label.horizon_days", "label.active_window_days"
DEFINITION_VERSION, DEFINITIONS_HASH = "label.definition_version", "label.definitions_hash"
TASK_TAG, FEATURE_SPEC_HASH, TEST_SET_FINGERPRINT = (
    "task",
    "feature_spec_hash",
    "test_set_fingerprint",
)
# lineage: the last day whose outcome the version's fit learned from (YYYY-MM-DD); a plan or
# score dated before it would use what the model learned later (docs/uplift.md)
TRAIN_DATA_END = "train_data_end"
_TASK_KEYS = (HORIZON, ACTIVE_WINDOW, DEFINITION_VERSION, DEFINITIONS_HASH, TASK_TAG)
# predict params of a registered model: when given, the version refuses another task's rows
TASK_PARAMS = {"horizon_days": HORIZON, "active_window_days": ACTIVE_WINDOW}


class TaskMismatchError(ValueError):
    """A model asked to answer for another task than the one it was trained for."""


def digest(obj: Any, length: int = 12) -> str:
    """A short, stable hash of a JSON-serialisable object."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class Task:
    horizon_days: int
    active_window_days: int
    definition_version: str
    definitions_hash: str

    @classmethod
    def of(cls, defs: Definitions) -> Task:
        shape = {k: v for k, v in dataclasses.asdict(defs).items()
                 if k not in ("horizon_days", "active_window_days")}  # fmt: skip
        return cls(defs.horizon_days, defs.active_window_days, LABEL_DEFINITION_VERSION,
                   digest(shape, 8))  # fmt: skip

    @classmethod
    def of_survival(cls, defs: Definitions, events: EventSpec) -> Task:
        """The survival model's task: its labels are churn time and cause over K months
        (``survival.events``, docs/definitions.md), so the horizon is the K-month window in days
        and the definitions hash covers the event rules too (with the churn definitions that
        decide activity). Versions under other event rules are another task."""
        shape = {k: v for k, v in dataclasses.asdict(defs).items() if k != "horizon_days"}
        shape |= {"events": dataclasses.asdict(events)}
        window = events.month_ends()[-1]
        return cls(window, defs.active_window_days, LABEL_DEFINITION_VERSION, digest(shape, 8))

    @property
    def id(self) -> str:
        """The task's name in aliases: ``h180-a365-l1-<definitions hash>``."""
        return (f"h{self.horizon_days}-a{self.active_window_days}-l{self.definition_version}"
                f"-{self.definitions_hash}")  # fmt: skip

    @staticmethod
    def keys_of(tags: Mapping[str, str]) -> dict[str, str]:
        """Only the task's own keys of a version's tags (no lineage)."""
        return {k: v for k, v in tags.items() if k in _TASK_KEYS}

    def to_tags(self) -> dict[str, str]:
        return {
            HORIZON: str(self.horizon_days),
            ACTIVE_WINDOW: str(self.active_window_days),
            DEFINITION_VERSION: self.definition_version,
            DEFINITIONS_HASH: self.definitions_hash,
            TASK_TAG: self.id,
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, Any] | None) -> Task | None:
        """The task of a version's tags (or model_config); None when it records none."""
        keys = (HORIZON, ACTIVE_WINDOW, DEFINITION_VERSION, DEFINITIONS_HASH)
        if not tags or not all(k in tags for k in keys):
            return None
        return cls(int(tags[HORIZON]), int(tags[ACTIVE_WINDOW]), str(tags[DEFINITION_VERSION]),
                   str(tags[DEFINITIONS_HASH]))  # fmt: skip

    def differences(self, other: Task) -> list[str]:
        """'KEY: model VALUE, params VALUE' for each key where ``other`` (the params') differs."""
        mine, theirs = self.to_tags(), other.to_tags()
        return [f"{k} is {mine[k]} for the model but {theirs[k]} in params"
                for k in (HORIZON, ACTIVE_WINDOW, DEFINITION_VERSION, DEFINITIONS_HASH)
                if mine[k] != theirs[k]]  # fmt: skip


def train_data_end(tags: Mapping[str, Any] | None) -> pd.Timestamp | None:
    """The ``train_data_end`` a version records; None when it records none."""
    value = (tags or {}).get(TRAIN_DATA_END)
    return pd.Timestamp(value) if value else None


def feature_spec_hash(spec: FeatureSpec, features: list[str]) -> str:
    """The feature settings and the model's feature columns, hashed."""
    return digest({"spec": dataclasses.asdict(spec), "features": list(features)})


def fingerprint_test_set(rows: pd.DataFrame) -> str:
    """The test rows' (customer_id, as_of) keys, in a stable order, hashed."""
    keys = rows[[CUSTOMER_ID, AS_OF]].astype(str).sort_values([CUSTOMER_ID, AS_OF])
    hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:12] + f"-{len(rows)}"


def check_task(model_task: Mapping[str, Any] | None, params: Mapping[str, Any] | None) -> None:
    """The pyfunc's guard: a ``horizon_days`` or ``active_window_days`` predict param that
    differs from the version's task raises ``TaskMismatchError`` naming both values. Params left
    empty are not checked; a version that records no task is not checked either."""
    if not params or not model_task:
        return
    for param, key in TASK_PARAMS.items():
        asked = params.get(param)
        if asked in (None, "") or key not in model_task:
            continue
        if str(asked).strip() != str(model_task[key]):
            raise TaskMismatchError(
                f"this model was trained for {key}={model_task[key]} but the request asks for "
                f"{param}={asked}: use a model of that task"
            )
