"""Monitoring a book slice by slice: the counts of each slice of feature rows and its churn
scores, added up, then the report. Memory: the counts and one probability per scored customer,
so the batch scorer can monitor while it streams (pipelines/score.py) and the monitor stage can
read slices of any size (pipelines/monitor.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.columns import CHURN_PROBABILITY, RISK_BAND
from models.monitoring.drift import add_counts, current_counts
from models.monitoring.profile import check_profile
from models.monitoring.report import monitor_report
from models.monitoring.spec import MonitorSpec


class BookMonitor:
    """Counts of the monitored book on the profile's bins, slice by slice."""

    def __init__(self, profile: Mapping[str, Any]) -> None:
        check_profile(profile)
        self.profile = profile
        self.counts: dict[str, Any] | None = None
        self._p: list[np.ndarray] = []

    def add(self, features: pd.DataFrame, scores: pd.DataFrame) -> None:
        """One slice: feature rows and the churn model's output on them (same order)."""
        p = scores[CHURN_PROBABILITY].to_numpy(dtype=float)
        bands = scores[RISK_BAND].reset_index(drop=True)
        self.add_counts(current_counts(self.profile, features, p, bands), p[~np.isnan(p)])

    def add_counts(self, counts: Mapping[str, Any], probabilities: np.ndarray) -> None:
        """Counts taken elsewhere (a Spark partition: models/monitoring/spark.py) and the scored
        probabilities they came with."""
        self.counts = add_counts(self.counts, counts)
        self._p.append(np.asarray(probabilities, dtype=float))

    @property
    def probabilities(self) -> np.ndarray:
        return np.concatenate(self._p) if self._p else np.zeros(0)

    def report(
        self,
        tables_now: Mapping[str, Any],
        spec: MonitorSpec,
        as_of: pd.Timestamp,
        ece_bins: int,
        realised: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        if self.counts is None:
            raise ValueError("no rows were monitored")
        return monitor_report(self.profile, self.counts, self.probabilities, tables_now, spec,
                              str(pd.Timestamp(as_of).date()), ece_bins, realised)  # fmt: skip
