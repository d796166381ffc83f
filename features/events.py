"""Churn time and cause per (customer, snapshot t) over the window (t, t + K months].

The survival grid has K months (``survival.months``) of ``survival.month_days`` days each; month k
ends on day t + round(k x month_days) (t_k). For a customer active at t, with m the number of
grid months the data cover (t_m <= the data's end; m = K when the whole window is observed):

- **event** (churned): no loan originated in (t, t_m] and no loan open at t_m: the churn label's
  rule (features/labels.py) at horizon t_m. With m = K it is the binary label at K months; a
  customer who returns before t_m (any new origination) has not churned.
- **churn month** T: the first grid month k at whose end no loan is open (exposure reached zero;
  nothing was originated since t, so exposure only falls).
- **censoring**: a customer without the event is observed for m months (the data's end cuts the
  window when m < K). Rows with m = 0 carry no outcome.
- **cause** of an event: ``loans.close_reason`` of the last loan to close (among those open at t)
  when present and not 'other'; else inferred from that loan: ``credit_exit`` when an installment
  of the customer reached ``arrears_dpd_days`` days past due, or ``arrears_missed`` installments
  became missed (``definitions.missed_after_days``), within ``arrears_window_days`` before the
  close; ``runoff`` when it closed at most ``maturity_tolerance_days`` before its scheduled
  maturity (or has no term); ``refinanced`` when it closed earlier than that. A customer with no
  loan open at t (active through a recent origination only, e.g. point events) has ``lapsed``.

Point in time: everything read is dated in (t, t_m] (an origination, a close, the day an
installment reached its arrears threshold), so data dated after t + K months change nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import (
    CLOSE_REASON,
    CUSTOMER_ID,
    DUE_DATE,
    LOAN_ID,
    PAID_DATE,
    Tables,
)
from features.loans import LoanBook
from features.spec import CAUSES, Definitions, EventSpec
from features.windows import NO_DAY, EventIndex, Window, day_numbers

SURV_MONTHS = "surv_months"  # the churn month T, or the months observed without churn
SURV_EVENT = "surv_event"  # 1.0 churned in the window, 0.0 censored; NaN when not active at t
SURV_CAUSE = "surv_cause"  # one of CAUSES when churned, else None
EVENT_COLUMNS = (SURV_MONTHS, SURV_EVENT, SURV_CAUSE)
RUNOFF, REFINANCED, CREDIT_EXIT, LAPSED = CAUSES
# loans.close_reason -> cause; 'other' and empty cells leave the cause to the inference.
REASON_CAUSE = {
    "matured": RUNOFF,
    "prepaid": REFINANCED,
    "refinanced": REFINANCED,
    "written_off": CREDIT_EXIT,
    "restructured": CREDIT_EXIT,
}


def compute_events(
    tables: Tables,
    customer_ids: pd.Series,
    as_of: pd.Series,
    defs: Definitions,
    spec: EventSpec,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """EVENT_COLUMNS for query rows (customer id, snapshot date), in the rows' order."""
    ids = pd.Index(pd.unique(pd.concat([tables.loans[CUSTOMER_ID], customer_ids]).astype(str)))
    book = LoanBook(tables.loans, ids)
    codes = ids.get_indexer(customer_ids.astype(str))
    days = day_numbers(as_of)
    offsets = np.array(spec.month_ends(), dtype=np.int64)
    observed = (days[:, None] + offsets[None, :] <= day_numbers(pd.Series([end]))[0]).sum(axis=1)
    active = book.is_active(codes, days, defs.active_window_days) & (observed > 0)
    open_at = np.column_stack(
        [book.open_count_and_exposure(codes, days + off)[0] for off in offsets]
    )
    last = days + offsets[np.maximum(observed, 1) - 1]
    returned = book.originations(codes, last) > book.originations(codes, days)
    rows = np.arange(len(days))
    event = active & ~returned & (open_at[rows, np.maximum(observed, 1) - 1] == 0)
    first_empty = np.argmax(open_at == 0, axis=1) + 1
    months = np.where(event, first_empty, observed).astype(float)
    cause = np.full(len(days), None, dtype=object)
    hit = np.flatnonzero(event)
    cause[hit] = _causes(tables, book, codes[hit], days[hit], defs, spec)
    return pd.DataFrame(
        {
            SURV_MONTHS: np.where(active, months, np.nan),
            SURV_EVENT: np.where(active, event.astype(float), np.nan),
            SURV_CAUSE: cause,
        }
    )


def _last_open_loan(book: LoanBook, codes: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Per query row, the index of the last loan to close among those open at t (-1: none)."""
    queries = pd.DataFrame({"q": np.arange(len(codes)), "code": codes, "t": days})
    loans = pd.DataFrame(
        {"code": book.codes, "loan": np.arange(len(book.codes)), "close": book.close_day}
    )
    pairs = queries.merge(loans, on="code")
    orig = book.orig_day[pairs["loan"].to_numpy()]
    pairs = pairs[(orig <= pairs["t"]) & (pairs["close"] > pairs["t"])]
    pairs = pairs.sort_values(["q", "close", "loan"]).drop_duplicates("q", keep="last")
    out = np.full(len(codes), -1, dtype=np.int64)
    out[pairs["q"].to_numpy()] = pairs["loan"].to_numpy()
    return out


def _causes(
    tables: Tables,
    book: LoanBook,
    codes: np.ndarray,
    days: np.ndarray,
    defs: Definitions,
    spec: EventSpec,
) -> np.ndarray:
    """The cause of each churn event (rows: customer code, snapshot day)."""
    loan = _last_open_loan(book, codes, days)
    has = loan >= 0
    close = np.where(has, book.close_day[np.maximum(loan, 0)], days)
    maturity = np.where(has, book.maturity_day[np.maximum(loan, 0)], NO_DAY)
    early = (maturity < NO_DAY) & (close < maturity - spec.maturity_tolerance_days)
    arrears = _arrears(tables, book, codes, close, defs, spec)
    inferred = np.where(arrears, CREDIT_EXIT, np.where(early, REFINANCED, RUNOFF)).astype(object)
    recorded = np.full(len(codes), None, dtype=object)
    if CLOSE_REASON in tables.loans.columns:
        reasons = tables.loans[CLOSE_REASON].map(REASON_CAUSE).to_numpy(dtype=object)
        recorded[has] = reasons[loan[has]]
    cause = np.where(pd.isna(recorded), inferred, recorded)
    return np.where(has, cause, LAPSED).astype(object)


def _arrears(
    tables: Tables,
    book: LoanBook,
    codes: np.ndarray,
    close: np.ndarray,
    defs: Definitions,
    spec: EventSpec,
) -> np.ndarray:
    """Whether the customer's installments were in arrears within the window before ``close``.

    An installment 'reaches' d days past due on due + d unless it was paid before that day; the
    rule counts the installments that reached a threshold in (close - window, close].
    """
    reps = tables.repayments
    if reps is None or reps.empty:
        return np.zeros(len(codes), dtype=bool)
    owner = pd.Series(book.codes, index=book.loan_ids)
    rep_codes = owner.reindex(reps[LOAN_ID].astype(str)).to_numpy()
    known = ~np.isnan(rep_codes)
    due = day_numbers(reps[DUE_DATE])[known]
    paid = day_numbers(reps[PAID_DATE])[known]
    rep_codes = rep_codes[known].astype(np.int64)
    w = spec.arrears_window_days
    counts = []
    for threshold in (spec.arrears_dpd_days, defs.missed_after_days):
        reached = np.where(paid >= due + threshold, due + threshold, NO_DAY)
        index = EventIndex(rep_codes, reached)
        counts.append(Window(index, codes, close, (w,)).sum(index.cumulative(), w))
    return (counts[0] >= 1) | (counts[1] >= spec.arrears_missed)
