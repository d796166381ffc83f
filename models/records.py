"""What every JSON record passed between stages shares: a strict check of its keys.

The records themselves are frozen dataclasses next to the code that makes them
(``models.training.summary``, ``models.evaluation.records``, ``models.explain.customers``);
each has ``to_json()`` (a new JSON-ready dict, the file's content) and ``from_json(dict)``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any


class RecordError(ValueError):
    """A JSON record lacks keys its type needs, or has keys the type does not know."""


def checked(data: Mapping[str, Any], keys: Iterable[str], what: str) -> Mapping[str, Any]:
    """``data`` itself when its keys are exactly ``keys``; a RecordError naming the difference
    otherwise (an old or hand-edited file fails where it is read, not three stages later)."""
    if not isinstance(data, Mapping):
        raise RecordError(f"{what}: expected a JSON object, got {type(data).__name__}")
    expected = set(keys)
    missing, unknown = sorted(expected - set(data)), sorted(set(data) - expected)
    found = {"missing": missing, "unknown": unknown}
    problems = [f"{label} keys {names}" for label, names in found.items() if names]
    if problems:
        raise RecordError(f"{what}: {', '.join(problems)}")
    return data


def plain(value: Any) -> Any:
    """A deep copy of a nested dict of figures, so a record never shares it with its caller."""
    return copy.deepcopy(value)
