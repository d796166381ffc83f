"""Out-of-time split of the feature table, by snapshot (never by random rows).

The snapshots with labels (``label_available``) are put in time order; the last K
(``split.test_snapshots``) are the **test** set, starting at T. A training snapshot t is kept only
when its label window (t, t+H] ends before T (t + H < T), so no label of a training row reads a
day of the test period. The latest V (``split.validation_snapshots``) of those are the
**validation** slice (early stopping and calibration); the snapshots the models are **fit** on
are purged the same way against the first validation snapshot V0 (t + H < V0).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.contract import AS_OF
from features.labels import CHURNED, LABEL_AVAILABLE
from models.spec import SplitSpec
from models.training.summary import PARTS, Part, SplitPart, SplitSummary


class SplitError(ValueError):
    """The feature table has too few labelled snapshots for the requested split."""


def _described(dates: pd.DatetimeIndex) -> SplitPart:
    return SplitPart(len(dates), str(dates.min().date()), str(dates.max().date()))


@dataclass(frozen=True)
class Split:
    fit: pd.DatetimeIndex
    validation: pd.DatetimeIndex
    test: pd.DatetimeIndex
    horizon_days: int

    def dates(self, part: Part) -> pd.DatetimeIndex:
        return getattr(self, part)

    def rows(self, table: pd.DataFrame, part: Part) -> pd.DataFrame:
        """The rows of ``table`` whose snapshot belongs to ``part`` (any label state)."""
        return table[table[AS_OF].isin(self.dates(part))]

    def summary(self) -> SplitSummary:
        """Snapshot ranges and counts of each part, for reports/train.json and MLflow."""
        parts = {part: _described(self.dates(part)) for part in PARTS}
        return SplitSummary(horizon_days=self.horizon_days, **parts)

    def describe(self) -> dict:
        """``summary()`` as a plain dict, for logs."""
        return self.summary().to_json()


def churn_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows the churn model learns from: customers active at t with a label."""
    return table[table[CHURNED].notna()]


def tier_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows the tier model learns from: every labelled row (prospects included)."""
    return table[table[LABEL_AVAILABLE].astype(bool)]


def _purged(dates: pd.DatetimeIndex, before: pd.Timestamp, horizon_days: int) -> pd.DatetimeIndex:
    """Snapshots whose label window (t, t+H] ends strictly before ``before``."""
    return dates[dates + pd.Timedelta(days=horizon_days) < before]


def split_snapshots(table: pd.DataFrame, spec: SplitSpec, horizon_days: int) -> Split:
    """The out-of-time split of ``table``'s labelled snapshots (see the module docstring)."""
    labelled = pd.DatetimeIndex(sorted(tier_rows(table)[AS_OF].unique()))
    need = spec.test_snapshots + spec.validation_snapshots + 1
    if len(labelled) < need:
        raise SplitError(
            f"{len(labelled)} labelled snapshots; the split needs at least {need} "
            f"(test {spec.test_snapshots} + validation {spec.validation_snapshots} + fit)"
        )
    test = labelled[-spec.test_snapshots :]
    train = _purged(labelled[: -spec.test_snapshots], test[0], horizon_days)
    if len(train) <= spec.validation_snapshots:
        raise SplitError(
            f"only {len(train)} snapshots have their label window end before the first test "
            f"snapshot {test[0].date()}; fewer test or validation snapshots are needed"
        )
    validation = train[-spec.validation_snapshots :]
    fit = _purged(train[: -spec.validation_snapshots], validation[0], horizon_days)
    if len(fit) == 0:
        raise SplitError(
            f"no snapshot has its label window end before the first validation snapshot "
            f"{validation[0].date()}; the data span is too short for this split"
        )
    return Split(fit=fit, validation=validation, test=test, horizon_days=horizon_days)
