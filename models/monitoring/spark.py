"""Monitoring a book scored on Spark: the same counts as ``BookMonitor`` (book.py), taken on the
executors. Each partition of the scored feature frame is counted on the reference profile's bins
with ``current_counts`` (drift.py) and sends back one row: its counts as JSON and its churn
probabilities. The driver adds the counts up, so it receives one row per partition and one float
per scored customer, never a feature table. pyspark is imported lazily (an optional extra).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.columns import CHURN_PROBABILITY, RISK_BAND
from models.monitoring.book import BookMonitor
from models.monitoring.drift import add_counts, current_counts

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_SCHEMA = "counts string, p array<double>"


def _encode(counts: Mapping[str, Any]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, np.ndarray):
            return value.tolist()
        return value.item() if isinstance(value, np.generic) else value

    return json.dumps(plain(counts))


def _decode(text: str, profile: Mapping[str, Any]) -> dict[str, Any]:
    counts = json.loads(text)
    counts["features"] = {k: np.asarray(v, dtype=np.int64) for k, v in counts["features"].items()}
    counts["score"] = np.asarray(counts["score"], dtype=np.int64)
    missing = set(profile["features"]) - set(counts["features"])
    if missing:
        raise ValueError(f"partition counts lack features {sorted(missing)[:5]}")
    return counts


def spark_book(profile: Mapping[str, Any], scored: DataFrame) -> BookMonitor:
    """A ``BookMonitor`` holding the counts of ``scored``: a Spark frame with the profile's
    feature and state columns plus ``churn_probability`` and ``risk_band`` per row."""
    book = BookMonitor(profile)  # checks the profile on the driver first
    needed = [*profile["features"], *profile["states"], CHURN_PROBABILITY, RISK_BAND]
    columns = [c for c in dict.fromkeys(needed) if c in scored.columns]

    def count(parts: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        counts, kept = None, []
        for part in parts:
            p = part[CHURN_PROBABILITY].to_numpy(dtype=float)
            chunk = current_counts(profile, part, p, part[RISK_BAND].reset_index(drop=True))
            counts = add_counts(counts, chunk)
            kept.append(p[~np.isnan(p)])
        if counts is not None:
            p = np.concatenate(kept) if kept else np.zeros(0)
            yield pd.DataFrame({"counts": [_encode(counts)], "p": [p]})

    for row in scored.select(*columns).mapInPandas(count, _SCHEMA).toLocalIterator():
        book.add_counts(_decode(row["counts"], profile), np.asarray(row["p"], dtype=float))
    return book


__all__ = ["spark_book"]
