"""Out-of-time split of the feature table, by snapshot (never by random rows).

The snapshots with labels (``label_available``) are put in time order; the last K
(``split.test_snapshots``) are the **test** set, starting at T. A training snapshot t is kept only
when its label window (t, t+H] ends before T (t + H < T), so no label of a training row reads a
day of the test period. The latest V (``split.validation_snapshots``) of those are the
**validation** slice (early stopping and calibration); the snapshots the models are **fit** on
are purged the same way against the first validation snapshot V0 (t + H < V0) when the span
allows it (``validation_purge``, below).

Sizes adapt to the span (docs/models.md, "The split"): ``auto`` (None) takes K = L // 4 clipped
to [1, 6] and V = L // 6 clipped to [1, 3], L the number of labelled snapshots. The purge before
the test set is always made: it keeps the test estimate honest. The purge before the validation
slice (t + ``validation_purge_days`` < V0; the horizon by default) is made whenever it leaves at
least ``MIN_PURGED_FIT`` fit snapshots: without it the fit labels overlap the validation months,
early stopping keeps too many trees and the calibrator fits sharper scores than new data get
(docs/models.md measures both). Only a span too short for that keeps one purge, so that it trains
at all. The smallest split is fit 1 + validation 1 + purge + test 1 (``minimum_snapshots``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.contract import AS_OF
from features.labels import CHURNED, LABEL_AVAILABLE
from models.spec import SplitSpec
from models.training.summary import PARTS, Part, SplitPart, SplitSummary

MIN_PURGED_FIT = 3  # fit snapshots the validation purge must leave (docs/models.md)


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
    validation_purge: bool = True  # fit label windows end before the validation slice

    def dates(self, part: Part) -> pd.DatetimeIndex:
        return getattr(self, part)

    def rows(self, table: pd.DataFrame, part: Part) -> pd.DataFrame:
        """The rows of ``table`` whose snapshot belongs to ``part`` (any label state)."""
        return table[table[AS_OF].isin(self.dates(part))]

    def summary(self) -> SplitSummary:
        """Snapshot ranges and counts of each part, for reports/train.json and MLflow."""
        parts = {part: _described(self.dates(part)) for part in PARTS}
        return SplitSummary(self.horizon_days, **parts, validation_purge=self.validation_purge)

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


AUTO_TEST = (4, 1, 6)  # auto K: labelled snapshots // 4, clipped to [1, 6]
AUTO_VALIDATION = (6, 1, 3)  # auto V: labelled snapshots // 6, clipped to [1, 3]


def _auto(given: int | None, labelled: int, rule: tuple[int, int, int]) -> int:
    if given is not None:
        return given
    per, low, high = rule
    return min(max(labelled // per, low), high)


def purge_gap(labelled: pd.DatetimeIndex, horizon_days: int) -> int:
    """Month-end snapshots a purge removes: those within H days before a snapshot."""
    if len(labelled) == 0:
        return 0
    last = labelled[-1]
    before = pd.date_range(last - pd.Timedelta(days=horizon_days + 62), last, freq="ME")[:-1]
    return int((before + pd.Timedelta(days=horizon_days) >= last).sum())


def minimum_snapshots(labelled: pd.DatetimeIndex, spec: SplitSpec, horizon_days: int) -> int:
    """Labelled snapshots the smallest split needs: fit 1 + validation + purge + test."""
    k = spec.test_snapshots or 1
    v = spec.validation_snapshots or 1
    return 1 + v + purge_gap(labelled, horizon_days) + k


def _too_short(labelled: pd.DatetimeIndex, spec: SplitSpec, horizon_days: int, why: str):
    k, v = spec.test_snapshots or 1, spec.validation_snapshots or 1
    gap = purge_gap(labelled, horizon_days)
    found = f"{len(labelled)} labelled snapshot(s)"
    if len(labelled):
        found += f" ({labelled[0].date()} .. {labelled[-1].date()})"
    return SplitError(
        f"{why}: {found}; the smallest split needs {1 + v + gap + k} (fit 1 + validation {v} + "
        f"purge {gap} month-ends within H = {horizon_days} days + test {k}). Minimum span: "
        f"warm-up + {1 + v + k} month-ends + H (purge) + H (labels of the last test snapshot). "
        "Change: labels.horizon_days (a shorter H), snapshots.start or snapshots.warmup_days "
        "(earlier snapshots), split.test_snapshots / split.validation_snapshots (auto sizes them "
        "from the span), or bring a longer history"
    )


def split_snapshots(table: pd.DataFrame, spec: SplitSpec, horizon_days: int) -> Split:
    """The out-of-time split of ``table``'s labelled snapshots (see the module docstring)."""
    labelled = pd.DatetimeIndex(sorted(tier_rows(table)[AS_OF].unique()))
    k = _auto(spec.test_snapshots, len(labelled), AUTO_TEST)
    v = _auto(spec.validation_snapshots, len(labelled), AUTO_VALIDATION)
    if len(labelled) < 1 + v + purge_gap(labelled, horizon_days) + k:
        raise _too_short(labelled, spec, horizon_days, "the data span is too short")
    test = labelled[-k:]
    train = _purged(labelled[:-k], test[0], horizon_days)
    if len(train) <= v:
        why = f"only {len(train)} snapshots have their label window end before the first test "
        why += f"snapshot {test[0].date()}"
        raise _too_short(labelled, spec, horizon_days, why)
    validation = train[-v:]
    adjacent = train[:-v]
    purge_days = horizon_days if spec.validation_purge_days is None else spec.validation_purge_days
    fit = _purged(adjacent, validation[0], purge_days)
    purged = len(fit) >= MIN_PURGED_FIT  # else the fit slice is too short to learn from
    fit = fit if purged else adjacent
    return Split(fit, validation, test, horizon_days, validation_purge=purged)
