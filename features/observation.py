"""The observation window: from which day the data see what happens (data.start), and how much
of the loan book is left-truncated at that day.

A bank's extract typically keeps the loans still open at the extract start with their original
origination dates, while repayments, interactions and surveys start at the extract start. So the
start is inferred from the event tables when any is present, else from the earliest origination
(docs/data-contract.md, "Observation window"). Before it nothing is observed: trailing windows
reaching before it are NaN in the feature table (features/build.py), never zero events.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.contract import (
    INTERACTIONS,
    ORIGINATION_DATE,
    REPAYMENTS,
    SURVEYS,
    Tables,
    date_columns,
)
from features.loans import effective_close_days
from features.windows import NO_DAY, day_numbers

EVENT_TABLES = (REPAYMENTS, INTERACTIONS, SURVEYS)
AGE_QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _first_date(df: pd.DataFrame, table: str) -> pd.Timestamp | None:
    found = [df[c].min() for c in date_columns(table) if c in df.columns and df[c].notna().any()]
    return min(found).normalize() if found else None


def event_first_dates(tables: Tables) -> list[pd.Timestamp]:
    """The first date of each event table (repayments, interactions, surveys) present with a
    date; the minimum over slices of customers is the whole book's (pipelines/slices.py)."""
    events = [tables.get(name) for name in EVENT_TABLES]
    firsts = [_first_date(df, name) for name, df in zip(EVENT_TABLES, events, strict=True)
              if df is not None and len(df)]  # fmt: skip
    return [d for d in firsts if d is not None]


def infer_data_start(tables: Tables) -> pd.Timestamp:
    """The earliest date of the event tables (repayments, interactions, surveys) when any is
    present with a date, else the earliest origination."""
    firsts = event_first_dates(tables)
    if firsts:
        return min(firsts)
    return pd.Timestamp(tables.loans[ORIGINATION_DATE].min()).normalize()


def _window(df: pd.DataFrame, table: str) -> dict[str, Any]:
    columns = [c for c in date_columns(table) if c in df.columns and df[c].notna().any()]
    if not columns:
        return {"first": None, "last": None, "rows": len(df)}
    first = min(df[c].min() for c in columns).normalize()
    last = max(df[c].max() for c in columns).normalize()
    return {"first": f"{first:%Y-%m-%d}", "last": f"{last:%Y-%m-%d}", "rows": len(df)}


def left_truncation(loans: pd.DataFrame, start: pd.Timestamp) -> dict[str, Any]:
    """How much of the book predates ``start``: loans originated before it, how many of those
    closed before it (0 in a left-truncated extract, which keeps only survivors) and the age at
    ``start`` of the loans open then that originated before it (days, quantiles)."""
    start_day = int(day_numbers([start])[0])
    orig = day_numbers(loans[ORIGINATION_DATE])
    close = effective_close_days(loans)
    before = orig < start_day
    open_at_start = before & ((close > start_day) | (close >= NO_DAY))
    ages = (start_day - orig[open_at_start]).astype(float)
    quantiles = np.quantile(ages, AGE_QUANTILES) if len(ages) else [None] * len(AGE_QUANTILES)
    n = len(loans)
    return {
        "loans_originated_before_start": int(before.sum()),
        "share_of_loans": round(float(before.mean()), 4) if n else None,
        "closed_before_start": int((before & ~open_at_start).sum()),
        "open_at_start": int(open_at_start.sum()),
        "age_at_start_days": {
            f"q{int(q * 100)}": (None if v is None else float(v))
            for q, v in zip(AGE_QUANTILES, quantiles, strict=True)
        },
    }


def observation_report(tables: Tables, start: pd.Timestamp, inferred: bool) -> dict[str, Any]:
    """The validation report's ``observation`` section: data.start (and whether it was inferred),
    each table's first and last date, and the left-truncation measures of the loans."""
    return {
        "data_start": f"{start:%Y-%m-%d}",
        "inferred": inferred,
        "tables": {name: _window(df, name) for name, df in tables.present().items()},
        "left_truncation": left_truncation(tables.loans, start),
    }


def observation_start(tables: Tables, given: pd.Timestamp | None) -> pd.Timestamp:
    """data.start as set, else inferred (``infer_data_start``)."""
    return given if given is not None else infer_data_start(tables)


__all__ = [
    "EVENT_TABLES", "event_first_dates", "infer_data_start", "left_truncation",
    "observation_report", "observation_start",
]  # fmt: skip
