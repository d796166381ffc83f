"""Pricing features: a customer's rate against the book's median rate for the same product.

The book median at day d for product p is the median interest rate of p's loans originated in
(d - pricing_window, d]. A loan's spread is its rate minus the book median at its origination, so
it is known on its origination day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.loans import LoanBook
from features.windows import Window

Columns = dict[str, np.ndarray]
_NAMES = ("price_rate_last", "price_spread_last", "price_spread_mean_365", "price_gap_now")


def _products(book: LoanBook) -> np.ndarray:
    if book.product is None:
        return np.full(len(book.rate), "", dtype=object)
    return book.product.to_numpy(dtype=object)


def loan_spreads(book: LoanBook, window_days: int) -> np.ndarray:
    """Rate minus the median rate of same-product loans originated in (o - window, o], per loan."""
    frame = pd.DataFrame(
        {
            "product": _products(book),
            "date": book.orig_day.astype("datetime64[D]"),
            "rate": book.rate,
            "row": np.arange(len(book.rate)),
        }
    ).sort_values(["product", "date", "row"], kind="stable")
    rolled = (
        frame.groupby("product", sort=False)
        .rolling(f"{window_days}D", on="date", closed="right")["rate"]
        .median()
    )
    median = np.full(len(book.rate), np.nan)
    median[frame["row"].to_numpy()] = rolled.to_numpy()
    return book.rate - median


def book_median_now(book: LoanBook, days: np.ndarray, window_days: int) -> pd.DataFrame:
    """Median rate per (day, product) over loans originated in (day - window, day]."""
    products = _products(book)
    rows = [
        pd.DataFrame(
            {
                "day": pd.Series(dtype="int64"),
                "product": pd.Series(dtype=object),
                "median": pd.Series(dtype="float64"),
            }
        )
    ]
    for day in np.unique(days):
        recent = (book.orig_day <= day) & (book.orig_day > day - window_days)
        med = pd.Series(book.rate[recent]).groupby(products[recent]).median()
        rows.append(
            pd.DataFrame(
                {
                    "day": int(day),
                    "product": med.index.to_numpy(dtype=object),
                    "median": med.to_numpy(),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def build_pricing_features(
    book: LoanBook, codes, days, spread: np.ndarray, product_median: pd.DataFrame
) -> Columns:
    """``spread`` is aligned with the book's loans; ``product_median`` from book_median_now."""
    days = np.asarray(days, dtype=np.int64)
    if not book.has_rate or len(book.rate) == 0:
        return {name: np.full(len(days), np.nan) for name in _NAMES}
    w = Window(book.orig, codes, days, (365,))
    last = book.orig.last_index(w.pos, w.start)
    has, pick = last >= 0, np.maximum(last, 0)

    def latest(values: np.ndarray) -> np.ndarray:
        return np.where(has, book.orig.sorted_values(values)[pick], np.nan)

    out: Columns = {"price_rate_last": latest(book.rate), "price_spread_last": latest(spread)}
    priced = ~np.isnan(spread)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["price_spread_mean_365"] = w.sum(book.orig.cumulative(spread), 365) / w.sum(
            book.orig.cumulative(priced * 1.0), 365
        )
    last_product = np.where(has, book.orig.sorted_values(_products(book))[pick], None)
    now = (
        pd.DataFrame({"day": days, "product": last_product})
        .merge(product_median, on=["day", "product"], how="left")["median"]
        .to_numpy(dtype="float64")
    )
    out["price_gap_now"] = out["price_rate_last"] - now
    return out
