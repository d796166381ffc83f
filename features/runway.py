"""Contractual runway: what the loans open at t are scheduled to do over the horizon.

The churn label asks whether any exposure remains at t+H or a new loan starts (features/labels.py);
every loan's schedule (origination, term, rate, principal) is known at origination. So these
features read, for the loans open at t (originated <= t, not closed by t), only their contract
terms and the repayments due <= t: a prepayment, renewal or close after t changes nothing at t
(tests/features/test_runway.py proves it by property).

Grain: the builder's query rows (customer code, day). A (row, open loan) pair is made for every
loan open at the row's day; figures are sums, minima and maxima over a row's pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import AMOUNT_DUE, DUE_DATE, LOAN_ID
from features.loans import LoanBook
from features.windows import NO_DAY, EventIndex, day_numbers

Columns = dict[str, np.ndarray]
DAYS_PER_MONTH = 30.4375
BULLET_SHARE = 0.5  # observed installments below this share of the annuity: not amortising


def _open_pairs(book: LoanBook, codes: np.ndarray, days: np.ndarray):
    """(row, loan) index pairs of every loan open at each row's day: orig <= day < close."""
    snaps = np.unique(days)
    n_cust = int(max(codes.max(initial=-1), book.codes.max(initial=-1))) + 1
    row_of = np.full((n_cust, len(snaps)), -1, dtype=np.int64)
    row_of[codes, np.searchsorted(snaps, days)] = np.arange(len(days))
    known = book.codes >= 0
    lo = np.searchsorted(snaps, book.orig_day, side="left")
    hi = np.searchsorted(snaps, np.minimum(book.close_day, NO_DAY), side="left")
    counts = np.where(known, np.maximum(hi - lo, 0), 0)
    loans = np.repeat(np.arange(len(lo)), counts)
    offsets = np.arange(len(loans)) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = row_of[book.codes[loans], lo[loans] + offsets]
    keep = rows >= 0
    return rows[keep], loans[keep]


def _by_row(n: int, rows: np.ndarray, values: np.ndarray, how: str) -> np.ndarray:
    if how == "sum":
        return np.bincount(rows, weights=values, minlength=n)
    out = np.full(n, np.nan)
    ufunc = np.fmax if how == "max" else np.fmin
    ufunc.at(out, rows, values)
    return out


def _balance(book: LoanBook, loans: np.ndarray, day: np.ndarray, bullet: np.ndarray):
    """Scheduled principal outstanding at ``day``: annuity amortisation from term and rate (a
    missing rate amortises linearly); a bullet loan keeps its principal until maturity."""
    principal, months = book.principal[loans], book.term_months[loans]
    rate = np.nan_to_num(book.rate[loans]) / 12.0
    elapsed = np.clip((day - book.orig_day[loans]) / DAYS_PER_MONTH, 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        grow_n, grow_k = (1 + rate) ** months, (1 + rate) ** np.minimum(elapsed, months)
        annuity = np.where(rate > 0, (grow_n - grow_k) / (grow_n - 1), 1 - elapsed / months)
    left = principal * np.clip(np.where(np.isnan(months), 1.0, annuity), 0.0, 1.0)
    matured = day >= book.maturity_day[loans]
    return np.where(matured, 0.0, np.where(bullet, principal, left))


def _annuity_payment(book: LoanBook, loans: np.ndarray) -> np.ndarray:
    principal, months = book.principal[loans], book.term_months[loans]
    rate = np.nan_to_num(book.rate[loans]) / 12.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        paid = np.where(
            rate > 0, principal * rate / (1 - (1 + rate) ** -months), principal / months
        )
    return paid


def _bullet(book, repayments, loans: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Loans whose installments due <= day average under BULLET_SHARE of the annuity payment
    (interest only: the principal comes at maturity). Without repayments: none."""
    if repayments is None or not len(loans):
        return np.zeros(len(loans), dtype=bool)
    loan_pos = pd.Index(book.loan_ids).get_indexer(repayments[LOAN_ID].astype(str))
    due = EventIndex(loan_pos, np.where(loan_pos >= 0, day_numbers(repayments[DUE_DATE]), NO_DAY))
    amount = repayments[AMOUNT_DUE].to_numpy(dtype="float64")
    pos, start = due.count_through(loans, days), due.segment_start(loans)
    n = EventIndex.at(due.cumulative(), pos, start)
    total = EventIndex.at(due.cumulative(amount), pos, start)
    mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return mean < BULLET_SHARE * _annuity_payment(book, loans)


def _renewal_rate(book: LoanBook, codes: np.ndarray, days: np.ndarray, within: int):
    """Share of the customer's loans that ran to maturity and were renewed: another loan
    originated in (maturity - within, maturity + within]. A loan counts from maturity + within
    (its outcome is known then); prepaid loans (closed before maturity - within) do not."""
    term = book.maturity_day < NO_DAY
    ran = term & (book.close_day >= book.maturity_day - within)
    settled = np.where(ran, book.maturity_day + within, NO_DAY)
    around = book.originations(book.codes, np.minimum(settled, NO_DAY - 1), 2 * within)
    own = (book.orig_day > book.maturity_day - within) & (book.orig_day <= settled)
    renewed = (around - own) > 0
    index = EventIndex(book.codes, settled)
    pos, start = index.count_through(codes, days), index.segment_start(codes)
    n = EventIndex.at(index.cumulative(), pos, start)
    hits = EventIndex.at(index.cumulative(renewed * 1.0), pos, start)
    return np.where(n > 0, hits / np.maximum(n, 1), np.nan)


def build_runway_features(
    book: LoanBook, repayments, codes, days, windows: tuple[int, ...], horizon_days: int
) -> Columns:
    """The ``contract`` group (features/registry.py) at each (customer code, day) row."""
    codes, days = np.asarray(codes, dtype=np.int64), np.asarray(days, dtype=np.int64)
    n = len(days)
    rows, loans = _open_pairs(book, codes, days) if n else (np.empty(0, int), np.empty(0, int))
    t = days[rows]
    maturity = book.maturity_day[loans]
    dated = maturity < NO_DAY
    to_maturity = np.where(dated, maturity - t, np.nan).astype("float64")
    principal = book.principal[loans]
    out: Columns = {
        "con_days_to_last_maturity": _by_row(n, rows, to_maturity, "max"),
        "con_days_to_first_maturity": _by_row(n, rows, to_maturity, "min"),
    }
    for label, ahead in [("h", horizon_days), *((str(w), w) for w in windows)]:
        remains = ~dated | (maturity > t + ahead)  # a loan without a term has no end date
        out[f"con_open_n_{label}"] = _by_row(n, rows, remains * 1.0, "sum")
        out[f"con_open_principal_{label}"] = _by_row(n, rows, remains * principal, "sum")
    maturing = dated & (maturity <= t + horizon_days)
    exposure = _by_row(n, rows, principal, "sum")
    out["con_maturing_n_h"] = _by_row(n, rows, maturing * 1.0, "sum")
    share = _by_row(n, rows, maturing * principal, "sum") / np.where(exposure > 0, exposure, 1)
    out["con_maturing_share_h"] = np.where(exposure > 0, share, np.nan)
    bullet = _bullet(book, repayments, loans, t)
    balance = np.where(dated, _balance(book, loans, t + horizon_days, bullet), principal)
    out["con_scheduled_outstanding_h"] = _by_row(n, rows, balance, "sum")
    out["con_renewal_rate"] = _renewal_rate(book, codes, days, min(windows))
    return out
