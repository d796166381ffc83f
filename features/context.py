"""Cross-customer statistics: the few figures a customer's features borrow from the whole book.

Three features compare a customer with everyone else at the same date: the VIP bar (the value
quantile of customers with an open loan), the BG/NBD parameters (fitted on all customers with a
loan) and the book's median rate per product. ``BookContext`` computes them once from the loans
table alone, so a caller that builds features for one slice of customers at a time (chunks,
Spark partitions) gets exactly the figures of the whole-book computation. Each figure at day d
reads loans dated <= d only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.btyd import BGNBDParams, fit_bgnbd
from features.contract import CUSTOMER_ID
from features.loans import LoanBook
from features.pricing import book_median_now, loan_spreads
from features.spec import Definitions, FeatureSpec
from features.tiers import vip_thresholds
from features.windows import Window


@dataclass(frozen=True)
class BookContext:
    vip_bars: Mapping[int, float]  # day number -> value a core customer needs to be VIP
    btyd: Mapping[int, BGNBDParams]  # snapshot day number -> BG/NBD parameters
    loan_spread: pd.Series  # loan_id -> rate minus the product's book median at origination
    product_median: pd.DataFrame  # columns day, product, median: book median at each day


def btyd_inputs(book: LoanBook, codes: np.ndarray, days: np.ndarray, unit: float):
    """BG/NBD (x, t_x, T) per query, in ``unit`` days; rows without a loan yet are NaN."""
    w = Window(book.orig, codes, days)
    n = w.total(book.orig.cumulative())
    first = book.first_day_by_code[codes]
    last = book.orig.last_day(w.pos, w.start)
    has = n > 0
    x = np.where(has, n - 1, np.nan)
    return (
        x,
        np.where(has, (last - first) / unit, np.nan),
        np.where(has, (days - first) / unit, np.nan),
    )


def fit_btyd_by_day(book: LoanBook, days: Iterable[int], unit: float) -> dict[int, BGNBDParams]:
    codes = np.arange(len(book.first_day_by_code), dtype=np.int64)
    fitted = {}
    for day in days:
        x, t_x, big_t = btyd_inputs(book, codes, np.full(len(codes), day, dtype=np.int64), unit)
        has = ~np.isnan(x)
        fitted[int(day)] = fit_bgnbd(x[has], t_x[has], big_t[has])
    return fitted


def build_book_context(
    loans: pd.DataFrame, days: np.ndarray, defs: Definitions, spec: FeatureSpec
) -> BookContext:
    """All cross-customer figures for snapshot ``days`` (and their horizon ends, for labels)."""
    snap_days = np.unique(np.asarray(days, dtype=np.int64))
    book = LoanBook(loans, pd.Index(np.sort(loans[CUSTOMER_ID].astype(str).unique())))
    return BookContext(
        vip_bars=vip_thresholds(book, np.r_[snap_days, snap_days + defs.horizon_days], defs),
        btyd=fit_btyd_by_day(book, snap_days, spec.btyd_time_unit_days),
        loan_spread=pd.Series(loan_spreads(book, spec.pricing_window_days), index=book.loan_ids),
        product_median=book_median_now(book, snap_days, spec.pricing_window_days),
    )
