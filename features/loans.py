"""The loan book as point-in-time queries: open loans, exposure, originations and value.

A loan is open on [origination_date, closed_date). Without a closed_date column it is open until
origination + term_months; with neither, it closes on its origination day (a point event such as a
drawdown). A loan whose closed_date is empty is open until further notice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import (
    CLOSED_DATE,
    CUSTOMER_ID,
    INTEREST_RATE,
    LOAN_ID,
    ORIGINATION_DATE,
    PRINCIPAL,
    PRODUCT,
    TERM_MONTHS,
)
from features.windows import NO_DAY, EventIndex, Window, day_numbers


def scheduled_maturity_days(loans: pd.DataFrame) -> np.ndarray:
    """Contractual maturity (origination + term_months, day clipped to the month's length).

    Known at origination, so features may use it; NO_DAY for a loan without a term.
    """
    if TERM_MONTHS not in loans.columns:
        return np.full(len(loans), NO_DAY, dtype=np.int64)
    orig = loans[ORIGINATION_DATE].to_numpy(dtype="datetime64[D]")
    months = loans[TERM_MONTHS].to_numpy(dtype="float64")
    ok = ~np.isnan(months)
    month0 = orig.astype("datetime64[M]")
    target = month0 + np.where(ok, months, 0).astype(np.int64).astype("timedelta64[M]")
    target_start = target.astype("datetime64[D]")
    month_len = ((target + 1).astype("datetime64[D]") - target_start).astype(np.int64)
    day_in_month = (orig - month0.astype("datetime64[D]")).astype(np.int64)
    days = target_start.astype(np.int64) + np.minimum(day_in_month, month_len - 1)
    return np.where(ok, days, NO_DAY)


def effective_close_days(loans: pd.DataFrame) -> np.ndarray:
    """Close day of every loan per the contract's rule (NO_DAY = still open)."""
    if CLOSED_DATE in loans.columns:
        return day_numbers(loans[CLOSED_DATE])
    maturity = scheduled_maturity_days(loans)
    return np.where(maturity < NO_DAY, maturity, day_numbers(loans[ORIGINATION_DATE]))


# The loans' columns LoanBook reads: what a caller holding the whole loans table only for the
# book context (features.context) needs to keep of it.
BOOK_COLUMNS = (
    LOAN_ID, CUSTOMER_ID, ORIGINATION_DATE, CLOSED_DATE, TERM_MONTHS, PRINCIPAL, INTEREST_RATE,
    PRODUCT,
)  # fmt: skip


class LoanBook:
    """Originations and closes of all loans, indexed for (customer, day) queries."""

    def __init__(self, loans: pd.DataFrame, customer_codes: pd.Index):
        self.codes = customer_codes.get_indexer(loans[CUSTOMER_ID].astype(str))
        self.loan_ids = loans[LOAN_ID].astype(str).to_numpy()
        self.orig_day = day_numbers(loans[ORIGINATION_DATE])
        self.close_day = effective_close_days(loans)
        self.maturity_day = scheduled_maturity_days(loans)
        self.principal = loans[PRINCIPAL].to_numpy(dtype="float64")
        rate = (
            loans[INTEREST_RATE].to_numpy(dtype="float64")
            if INTEREST_RATE in loans.columns
            else np.full(len(loans), np.nan)
        )
        self.rate = rate
        self.has_rate = INTEREST_RATE in loans.columns
        self.has_product = PRODUCT in loans.columns
        self.has_term = TERM_MONTHS in loans.columns
        self.term_months = (
            loans[TERM_MONTHS].to_numpy(dtype="float64")
            if self.has_term
            else np.full(len(loans), np.nan)
        )
        self.product = loans[PRODUCT].astype("string").fillna("") if self.has_product else None
        self.orig = EventIndex(self.codes, self.orig_day)
        self.close = EventIndex(self.codes, self.close_day)
        self._cum_orig_n = self.orig.cumulative()
        self._cum_orig_p = self.orig.cumulative(self.principal)
        self._cum_close_n = self.close.cumulative()
        self._cum_close_p = self.close.cumulative(self.principal)
        self.first_day_by_code = self._first_day_by_code(len(customer_codes))
        # Day origin of the value sums: each customer's own first origination, so a customer's
        # value is computed from their loans alone and is bit for bit the same whichever slice of
        # the book it is built in (whole book, chunks, Spark buckets). A book-wide origin left
        # rounding residues (~1e-12 where the value is 0) that trees can split on.
        self._base = np.nan_to_num(self.first_day_by_code, nan=0.0)
        self._value_cums = self._value_cumulatives()

    def _first_day_by_code(self, n_customers: int) -> np.ndarray:
        first = np.full(n_customers, np.nan)
        if len(self.codes):
            order = np.lexsort((self.orig_day, self.codes))
            codes, days = self.codes[order], self.orig_day[order]
            lead = np.r_[True, codes[1:] != codes[:-1]]
            first[codes[lead]] = days[lead]
        return first

    def _value_cumulatives(self) -> dict[str, np.ndarray]:
        """Running sums that turn 'days open before x' into a difference of cumulatives."""
        pr = self.principal * np.where(np.isnan(self.rate), 1.0, self.rate)
        point = self.close_day == self.orig_day
        base = self._base[self.codes]
        o = (self.orig_day - base).astype("float64")
        c = np.where(self.close_day < NO_DAY, self.close_day - base, 0).astype("float64")
        return {
            "o_pr": self.orig.cumulative(pr),
            "o_pr_day": self.orig.cumulative(pr * o),
            "c_pr": self.close.cumulative(pr),
            "c_pr_day": self.close.cumulative(pr * c),
            "point_p": self.orig.cumulative(np.where(point, self.principal, 0.0)),
        }

    # --- queries over arrays of (customer code, day) ------------------------------------------
    def originations(self, codes, days, window: int | None = None) -> np.ndarray:
        """Loans originated in (day - window, day], or ever (<= day) without a window."""
        w = Window(self.orig, codes, days, () if window is None else (window,))
        if window is None:
            return w.total(self._cum_orig_n)
        return w.sum(self._cum_orig_n, window)

    def open_count_and_exposure(self, codes, days) -> tuple[np.ndarray, np.ndarray]:
        o = Window(self.orig, codes, days)
        c = Window(self.close, codes, days)
        n = o.total(self._cum_orig_n) - c.total(self._cum_close_n)
        exposure = o.total(self._cum_orig_p) - c.total(self._cum_close_p)
        return np.rint(n), np.where(n > 0.5, exposure, 0.0)

    def _days_open_value_before(self, codes, x) -> np.ndarray:
        """Sum over loans of principal x rate x (days open strictly before day x)."""
        o = Window(self.orig, codes, x - 1)
        c = Window(self.close, codes, x - 1)
        xr = (x - self._base[codes]).astype("float64")
        v = self._value_cums
        opened = xr * o.total(v["o_pr"]) - o.total(v["o_pr_day"])
        closed = xr * c.total(v["c_pr"]) - c.total(v["c_pr_day"])
        return opened - closed

    def value(self, codes, days, window: int) -> np.ndarray:
        """Interest income over (day - window, day]: principal x rate x days open / 365.

        Without a rate, principal x days open / 365; a point-event loan counts its principal.
        """
        days = np.asarray(days, dtype=np.int64)
        accrued = self._days_open_value_before(codes, days + 1) - self._days_open_value_before(
            codes, days + 1 - window
        )
        point = Window(self.orig, codes, days, (window,)).sum(self._value_cums["point_p"], window)
        return np.maximum(accrued, 0.0) / 365.0 + point

    def last_activity_day(self, codes, days) -> np.ndarray:
        """Latest origination or close dated <= day (NaN when none)."""
        o = Window(self.orig, codes, days)
        c = Window(self.close, codes, days)
        return np.fmax(self.orig.last_day(o.pos, o.start), self.close.last_day(c.pos, c.start))

    def is_active(self, codes, days, active_window: int) -> np.ndarray:
        """A loan is open at day, or a loan originated in (day - A, day]."""
        n_open, _ = self.open_count_and_exposure(codes, days)
        return (n_open > 0) | (self.originations(codes, days, active_window) > 0)
