"""Point-in-time window arithmetic without re-scanning history for every snapshot.

Events of one table are sorted once by (customer, day). A query (customer, day d) finds, by binary
search, how many of the customer's events are dated <= d; per-customer cumulative sums then give
any trailing-window sum as a difference ``S(t) - S(t - w)``. Cumulative sums restart at every
customer, so a customer's figures depend on that customer's own events dated <= d and nothing
else: adding, changing or deleting an event dated after d (or another customer's event) cannot
change them, not even in the last floating-point bit. That is the point-in-time guarantee.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_SPAN = np.int64(1 << 22)  # days per customer key block (~11,000 years)
_EPOCH_OFFSET = 1 << 21  # shifts day numbers so dates after ~5700 BC stay positive
NO_DAY = np.iinfo(np.int64).max // 4  # "never", e.g. the close day of a loan still open


def day_numbers(dates: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Whole days since 1970-01-01 as int64; NaT becomes NO_DAY."""
    values = np.asarray(dates, dtype="datetime64[ns]")
    days = values.astype("datetime64[D]").astype(np.int64)
    return np.where(np.isnat(values), NO_DAY, days)


def to_dates(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[ns]")


class EventIndex:
    """Events of one kind, sorted by (customer code, day), queried by (customer code, day)."""

    def __init__(self, codes: np.ndarray, days: np.ndarray):
        codes = np.asarray(codes, dtype=np.int64)
        days = np.asarray(days, dtype=np.int64)
        keep = days < NO_DAY  # undated events (e.g. never closed) never happen
        self._take = np.flatnonzero(keep)
        keys = codes[keep] * _SPAN + (days[keep] + _EPOCH_OFFSET)
        order = np.argsort(keys, kind="stable")
        self._take = self._take[order]
        self.keys = keys[order]
        self.codes = codes[keep][order]
        self.days = days[keep][order]

    def __len__(self) -> int:
        return len(self.keys)

    def sorted_values(self, values: np.ndarray) -> np.ndarray:
        """Re-order a column aligned with the constructor's input into the index's order."""
        return np.asarray(values)[self._take]

    def count_through(self, codes: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Position after the last event with key <= (code, day): a global count."""
        days = np.clip(np.asarray(days, dtype=np.int64), -_EPOCH_OFFSET, _SPAN - _EPOCH_OFFSET - 1)
        q = np.asarray(codes, dtype=np.int64) * _SPAN + (days + _EPOCH_OFFSET)
        return np.searchsorted(self.keys, q, side="right")

    def segment_start(self, codes: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.keys, np.asarray(codes, dtype=np.int64) * _SPAN, side="left")

    def cumulative(self, values: np.ndarray | None = None) -> np.ndarray:
        """Per-customer running sum of ``values`` (aligned with the input; NaN counts as 0)."""
        v = np.ones(len(self)) if values is None else np.nan_to_num(self.sorted_values(values))
        return pd.Series(v).groupby(self.codes, sort=False).cumsum().to_numpy()

    def running_max(self, values: np.ndarray) -> np.ndarray:
        v = pd.Series(self.sorted_values(values), dtype="float64")
        return v.groupby(self.codes, sort=False).cummax().to_numpy()

    @staticmethod
    def at(cum: np.ndarray, pos: np.ndarray, start: np.ndarray, empty: float = 0.0) -> np.ndarray:
        """Running value at query positions: the customer's last event <= day, else ``empty``."""
        has = pos > start
        out = np.full(len(pos), empty, dtype="float64")
        out[has] = cum[pos[has] - 1]
        return out

    def last_index(self, pos: np.ndarray, start: np.ndarray, back: int = 0) -> np.ndarray:
        """Index (in sorted order) of the customer's (back+1)-th latest event <= day, or -1."""
        idx = pos - 1 - back
        return np.where(idx >= start, idx, -1)

    def last_day(self, pos: np.ndarray, start: np.ndarray, back: int = 0) -> np.ndarray:
        idx = self.last_index(pos, start, back)
        out = np.full(len(pos), np.nan)
        out[idx >= 0] = self.days[idx[idx >= 0]]
        return out

    def first_day(self, codes: np.ndarray) -> np.ndarray:
        """Each customer's first event day (NaN without events); needs no query day."""
        start = self.segment_start(codes)
        end = np.searchsorted(self.keys, (np.asarray(codes, dtype=np.int64) + 1) * _SPAN)
        out = np.full(len(start), np.nan)
        has = end > start
        out[has] = self.days[start[has]]
        return out


class Window:
    """Positions of one query set in one EventIndex at the end day and each window's start."""

    def __init__(self, index: EventIndex, codes: np.ndarray, days: np.ndarray, windows=()):
        self.index = index
        self.start = index.segment_start(codes)
        self.pos = index.count_through(codes, days)
        self.lo = {w: index.count_through(codes, np.asarray(days) - w) for w in windows}

    def total(self, cum: np.ndarray) -> np.ndarray:
        """Running value through the query day."""
        return EventIndex.at(cum, self.pos, self.start)

    def sum(self, cum: np.ndarray, w: int) -> np.ndarray:
        """Sum over the trailing window (day - w, day]."""
        return self.total(cum) - EventIndex.at(cum, self.lo[w], self.start)
