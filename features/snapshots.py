"""The as-of grid: which snapshot dates, and which customers are known at each.

Snapshots are month-ends. A customer is known at t from the first date any table mentions them:
onboarding, first loan, first interaction or first survey. The grid has one row per
(customer_id, as_of) for every known customer, prospects and long-gone customers included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import (
    AS_OF,
    CUSTOMER_ID,
    CUSTOMERS,
    INTERACTIONS,
    LOANS,
    ONBOARDING_DATE,
    ORIGINATION_DATE,
    SURVEY_DATE,
    SURVEYS,
    TIMESTAMP,
    Tables,
    data_end,
    data_start,
)
from features.windows import day_numbers

_FIRST_SEEN = {
    LOANS: ORIGINATION_DATE,
    CUSTOMERS: ONBOARDING_DATE,
    INTERACTIONS: TIMESTAMP,
    SURVEYS: SURVEY_DATE,
}


@dataclass(frozen=True)
class Universe:
    """All customers of the data with a stable integer code and the day each becomes known."""

    ids: pd.Index  # sorted customer ids; code = position
    known_day: np.ndarray  # int64 day number per code


def build_universe(tables: Tables) -> Universe:
    frames = []
    for name, col in _FIRST_SEEN.items():
        df = tables.get(name)
        if df is not None and len(df):
            frames.append(pd.DataFrame({CUSTOMER_ID: df[CUSTOMER_ID], "day": day_numbers(df[col])}))
    seen = pd.concat(frames, ignore_index=True).groupby(CUSTOMER_ID, sort=True)["day"].min()
    return Universe(ids=pd.Index(seen.index.astype(str)), known_day=seen.to_numpy(np.int64))


def count_known(tables: Tables, as_of: pd.Timestamp) -> tuple[int, int]:
    """(customers known at ``as_of``: the rows a score at that date has, customers in the data)."""
    universe = build_universe(tables)
    day = day_numbers(pd.DatetimeIndex([as_of]))[0]
    return int((universe.known_day <= day).sum()), len(universe.ids)


def month_ends(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Month-ends in [start, end]."""
    return pd.date_range(start, end, freq="ME")


def snapshot_dates(
    tables: Tables,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    warm_up_days: int,
    last_day: pd.Timestamp | None = None,
) -> pd.DatetimeIndex:
    """Month-ends in [start, end]; empty bounds come from the data.

    The default start is one warm-up window (the active window) after the data's first date, so
    trailing windows are filled; the default end is the data's last month-end.
    """
    start = start if start is not None else data_start(tables) + pd.Timedelta(days=warm_up_days)
    end = end if end is not None else (last_day if last_day is not None else data_end(tables))
    dates = month_ends(start, end)
    if len(dates) == 0:
        raise ValueError(
            f"no month-end between snapshots.start {start:%Y-%m-%d} and end {end:%Y-%m-%d}"
        )
    return dates


def build_grid(universe: Universe, as_of_dates: pd.DatetimeIndex) -> pd.DataFrame:
    """One row per (customer, snapshot) with the customer known at the snapshot.

    Columns: customer_id, as_of, plus the private integer columns ``_code`` and ``_day``.
    Sorted by as_of, then customer_id.
    """
    snap_days = day_numbers(as_of_dates)
    n_cust = len(universe.ids)
    codes = np.tile(np.arange(n_cust, dtype=np.int64), len(snap_days))
    days = np.repeat(snap_days, n_cust)
    keep = universe.known_day[codes] <= days
    codes, days = codes[keep], days[keep]
    return pd.DataFrame(
        {
            CUSTOMER_ID: universe.ids.to_numpy()[codes],
            AS_OF: days.astype("datetime64[D]").astype("datetime64[ns]"),
            "_code": codes,
            "_day": days,
        }
    )
