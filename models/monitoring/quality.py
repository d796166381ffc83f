"""Data quality of the raw tables around a date: categories and rows per month over the
``window_days`` up to that date (rows dated in (t - window, t]); the monitor compares them with
the reference's (new categories such as an unknown product or channel, volumes off the
reference)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pandas as pd

from features import contract as ct
from models.monitoring.profile import category_counts

# (table, its date column, the categorical columns watched)
WATCHED = (
    (ct.LOANS, ct.ORIGINATION_DATE, (ct.PRODUCT,)),
    (ct.CUSTOMERS, ct.ONBOARDING_DATE, (ct.SEGMENT, ct.INDUSTRY, ct.REGION)),
    (ct.REPAYMENTS, ct.DUE_DATE, ()),
    (ct.INTERACTIONS, ct.TIMESTAMP, (ct.CHANNEL, ct.KIND)),
    (ct.SURVEYS, ct.SURVEY_DATE, ()),
)
DAYS_PER_MONTH = 30.4375


def table_profile(tables: ct.Tables, as_of: pd.Timestamp, window_days: int) -> dict[str, Any]:
    """Per present table: rows per month in the window and the counts of its watched columns."""
    volumes = TableVolumes(as_of, window_days)
    volumes.add(tables)
    return volumes.profile()


class TableVolumes:
    """``table_profile`` counted slice by slice (slices of customers: every row in one slice);
    ``profile`` equals ``table_profile`` of the whole tables."""

    def __init__(self, as_of: pd.Timestamp, window_days: int) -> None:
        self.as_of, self.window_days = as_of, window_days
        self._rows: dict[str, int] = {}
        self._counts: dict[str, dict[str, Counter]] = {}

    def add(self, tables: ct.Tables) -> None:
        start = self.as_of - pd.Timedelta(days=self.window_days)
        for name, date_col, columns in WATCHED:
            frame = getattr(tables, name)
            if frame is None or date_col not in frame:
                continue
            day = frame[date_col].dt.normalize()
            rows = frame[(day > start) & (day <= self.as_of)]
            self._rows[name] = self._rows.get(name, 0) + len(rows)
            counts = self._counts.setdefault(name, {})
            for c in (c for c in columns if c in rows):
                counts.setdefault(c, Counter()).update(category_counts(rows[c]))

    def merge(self, other: TableVolumes) -> None:
        """Add the counts of ``other`` (other slices, counted in another process)."""
        for name, rows in other._rows.items():
            self._rows[name] = self._rows.get(name, 0) + rows
        for name, columns in other._counts.items():
            counts = self._counts.setdefault(name, {})
            for c, counter in columns.items():
                counts.setdefault(c, Counter()).update(counter)

    def profile(self) -> dict[str, Any]:
        months = self.window_days / DAYS_PER_MONTH
        return {
            name: {
                "rows_per_month": round(rows / months, 3),
                "categories": {
                    c: {k: int(n) for k, n in sorted(counts.items())}
                    for c, counts in self._counts[name].items()
                },
            }
            for name, rows in self._rows.items()
        }


def volume_checks(
    reference: Mapping[str, Any], current: Mapping[str, Any], tolerance: float
) -> list[dict[str, Any]]:
    """Rows per month of each table against the reference; a table missing now is flagged."""
    out = []
    for name, ref in reference.items():
        was = float(ref["rows_per_month"])
        now = float(current[name]["rows_per_month"]) if name in current else 0.0
        ratio = now / was if was > 0 else None
        flagged = ratio is None or not (1 / (1 + tolerance) <= ratio <= 1 + tolerance)
        out.append({"table": name, "reference_per_month": was, "per_month": now,
                    "ratio": None if ratio is None else round(ratio, 4),
                    "flagged": bool(flagged and was > 0)})  # fmt: skip
    return out
