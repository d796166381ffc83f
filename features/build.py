"""The feature table: one row per (customer_id, as_of), features from data dated <= as_of only.

``build_feature_table`` is the one entry point: the DVC stage calls it with the month-end grid,
``tierwise features --as-of`` and scoring call it with a single date.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

from features.behaviour import (
    build_interaction_features,
    build_repayment_features,
    build_survey_features,
)
from features.btyd import BGNBDParams, expected_purchases, probability_alive
from features.context import BookContext, btyd_inputs, build_book_context
from features.contract import AS_OF, CUSTOMER_ID, LOAN_ID, CustomerSlices, Tables
from features.labels import LABEL_COLUMNS, compute_labels
from features.loans import LoanBook
from features.pricing import build_pricing_features
from features.registry import (
    LIFECYCLE_STATE,
    LOYALTY_LEVEL,
    LOYALTY_STAGE,
    STATE_COLUMNS,
    TIER,
    feature_names,
    lookbacks,
    value_feature,
)
from features.runway import build_runway_features
from features.snapshots import Universe, build_grid, build_universe
from features.spec import (
    LIFECYCLE_STATES,
    LOYALTY_LEVELS,
    LOYALTY_STAGES,
    TIERS,
    Definitions,
    FeatureSpec,
)
from features.tiers import (
    compute_lifecycle,
    compute_loyalty_level,
    compute_stage,
    compute_tier,
    labels_of,
)
from features.windows import NO_DAY, EventIndex, Window, day_numbers

log = logging.getLogger(__name__)
Columns = dict[str, np.ndarray]


def build_loan_features(book: LoanBook, codes, days, spec: FeatureSpec) -> Columns:
    days = np.asarray(days, dtype=np.int64)
    ws, short = spec.windows_days, min(spec.windows_days)
    w = Window(book.orig, codes, days, ws)
    n_cum, p_cum = book.orig.cumulative(), book.orig.cumulative(book.principal)
    n_total = w.total(n_cum)
    out: Columns = {
        "loan_days_since_last": days - book.orig.last_day(w.pos, w.start),
        "loan_n_total": n_total,
    }
    out.update({f"loan_n_{x}": w.sum(n_cum, x) for x in ws})
    out.update({f"loan_amount_{x}": w.sum(p_cum, x) for x in ws})
    out["loan_avg_principal"] = np.where(
        n_total > 0, w.total(p_cum) / np.maximum(n_total, 1), np.nan
    )
    out["loan_open_n"], out["loan_exposure"] = book.open_count_and_exposure(codes, days)
    out[f"loan_exposure_change_{short}"] = (
        out["loan_exposure"] - book.open_count_and_exposure(codes, days - short)[1]
    )
    out[value_feature(spec.value_window_days)] = book.value(codes, days, spec.value_window_days)
    out["loan_product_breadth"] = _product_breadth(book, codes, days)
    return out


def _product_breadth(book: LoanBook, codes, days) -> np.ndarray:
    if book.product is None:
        return np.full(len(days), np.nan)
    first = pd.DataFrame({"c": book.codes, "p": book.product.to_numpy(), "d": book.orig_day})
    first = first.groupby(["c", "p"], sort=False)["d"].min().reset_index()
    index = EventIndex(first["c"].to_numpy(), first["d"].to_numpy())
    return Window(index, codes, days).total(index.cumulative())


def _maturing(book: LoanBook, codes, days, within: int) -> np.ndarray:
    """Open loans whose contractual maturity falls in (day, day + within].

    A loan is in that set from max(origination, maturity - within) until min(maturity, close):
    an enter and a leave event, counted like any other window. A close after the query day is
    never read beyond "not yet".
    """
    if not book.has_term:
        return np.full(len(days), np.nan)
    enter = np.maximum(book.orig_day, book.maturity_day - within)
    leave = np.minimum(book.maturity_day, book.close_day)
    counted = (book.maturity_day < NO_DAY) & (enter < leave)
    enters = EventIndex(book.codes, np.where(counted, enter, NO_DAY))
    leaves = EventIndex(book.codes, np.where(counted, leave, NO_DAY))
    return Window(enters, codes, days).total(enters.cumulative()) - Window(
        leaves, codes, days
    ).total(leaves.cumulative())


def _customer_codes_of(table: pd.DataFrame, universe: Universe) -> np.ndarray:
    return universe.ids.get_indexer(table[CUSTOMER_ID].astype(str))


def _optional(table, build, names: list[str], n: int, *args) -> Columns:
    """Run a family builder, or give NaN columns when its table is absent."""
    if table is None:
        return {name: np.full(n, np.nan) for name in names}
    return build(table, *args)


def build_btyd_features(
    book: LoanBook,
    codes,
    days,
    spec: FeatureSpec,
    horizon_days: int,
    params: Mapping[int, BGNBDParams],
) -> Columns:
    """BG/NBD scores with the parameters fitted on the whole book at each snapshot day."""
    days = np.asarray(days, dtype=np.int64)
    unit = spec.btyd_time_unit_days
    x, t_x, big_t = btyd_inputs(book, codes, days, unit)
    p_alive, expected = np.full(len(days), np.nan), np.full(len(days), np.nan)
    for day in np.unique(days):
        rows = np.flatnonzero((days == day) & ~np.isnan(x))
        if len(rows):
            fitted = params[int(day)]
            p_alive[rows] = probability_alive(fitted, x[rows], t_x[rows], big_t[rows])
            expected[rows] = expected_purchases(
                fitted, horizon_days / unit, x[rows], t_x[rows], big_t[rows]
            )
    return {"btyd_p_alive": p_alive, "btyd_expected_originations": expected}


def mask_unobserved(
    cols: Columns, days: np.ndarray, observed_from: int | None, windows: Mapping[str, int]
) -> None:
    """NaN for every windowed feature whose window (t - w, t] starts before ``observed_from``
    (the day number of data.start): time before the observation start is not observed, so it
    is never counted as zero events. In place on ``cols``, the builder's own working dict."""
    if observed_from is None:
        return
    for name, w in windows.items():
        if name in cols:
            unobserved = np.asarray(days) - w + 1 < observed_from
            cols[name] = np.where(unobserved, np.nan, np.asarray(cols[name], dtype="float64"))


def _states(book, cols: Columns, codes, days, defs: Definitions, bars) -> Columns:
    tier = compute_tier(book, codes, days, defs, bars)
    lifecycle = compute_lifecycle(book, codes, days, defs)
    loyalty = compute_loyalty_level(
        cols["pay_on_time_rate_365"]
        if "pay_on_time_rate_365" in cols
        else np.full(len(days), np.nan),
        cols["sat_latest"],
        defs,
    )
    stage = compute_stage(
        book.first_day_by_code[codes] <= days,
        np.nan_to_num(cols.pop("_referrals_recent")),
        cols.pop("_promoter_recent").astype(bool),
        np.nan_to_num(cols.pop("_two_way_ever")),
        np.nan_to_num(cols.pop("_appeal_ever")),
    )
    return {
        "rel_tier_rank": tier * 1.0,
        "rel_lifecycle_rank": lifecycle * 1.0,
        "rel_loyalty_rank": loyalty * 1.0,
        "rel_stage_rank": stage * 1.0,
        TIER: labels_of(tier, TIERS),
        LIFECYCLE_STATE: labels_of(lifecycle, LIFECYCLE_STATES),
        LOYALTY_LEVEL: labels_of(loyalty, LOYALTY_LEVELS),
        LOYALTY_STAGE: labels_of(stage, LOYALTY_STAGES),
    }


def build_feature_table(
    tables: Tables,
    as_of_dates: pd.DatetimeIndex,
    defs: Definitions,
    spec: FeatureSpec,
    data_end: pd.Timestamp | None = None,
    context: BookContext | None = None,
    observed_from: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Features, states and labels for every customer known at each as_of date.

    ``data_end`` enables labels (a row is labelled when as_of + horizon <= data_end).
    ``observed_from`` (data.start): windowed features reaching before it are NaN.
    ``context`` holds the cross-customer figures (features.context); a caller that passes only
    some customers (a chunk, a Spark partition) passes the whole book's context so that every
    row equals the whole-book computation.
    """
    universe = build_universe(tables)
    grid = build_grid(universe, pd.DatetimeIndex(as_of_dates))
    codes, days = grid["_code"].to_numpy(), grid["_day"].to_numpy()
    n = len(grid)
    book = LoanBook(tables.loans, universe.ids)
    if context is None:
        context = build_book_context(tables.loans, np.unique(days), defs, spec)
    log.info("building features for %d rows (%d snapshots)", n, len(as_of_dates))

    cols: Columns = build_loan_features(book, codes, days, spec)
    reps = tables.repayments
    rep_codes = None
    if reps is not None:
        loan_pos = pd.Index(tables.loans[LOAN_ID]).get_indexer(reps[LOAN_ID])
        rep_codes = book.codes[loan_pos]
    names = feature_names(spec)
    pay_names = [x for x in names if x.startswith("pay_")]
    cols.update(
        _optional(reps, build_repayment_features, pay_names, n, rep_codes, codes, days, spec, defs)
    )
    inter = tables.interactions
    int_names = [x for x in names if x.startswith(("eng_", "svc_", "rel_referrals"))]
    int_names += ["_two_way_ever", "_appeal_ever", "_referrals_recent"]
    int_codes = None if inter is None else _customer_codes_of(inter, universe)
    cols.update(
        _optional(
            inter, build_interaction_features, int_names, n, int_codes, codes, days, spec, defs
        )
    )
    sur = tables.surveys
    sur_names = [x for x in names if x.startswith("sat_")] + ["_promoter_recent"]
    sur_codes = None if sur is None else _customer_codes_of(sur, universe)
    cols.update(
        _optional(sur, build_survey_features, sur_names, n, sur_codes, codes, days, spec, defs)
    )
    start_day = None if observed_from is None else int(day_numbers([observed_from])[0])
    windows = lookbacks(spec)
    mask_unobserved(cols, days, start_day, windows)  # before the states: loyalty reads a rate
    spread = context.loan_spread.reindex(book.loan_ids).to_numpy(dtype="float64")
    cols.update(build_pricing_features(book, codes, days, spread, context.product_median))
    cols.update(_states(book, cols, codes, days, defs, context.vip_bars))
    first_known = universe.known_day[codes]
    cols["rel_tenure_days"] = (days - first_known) * 1.0
    cols["rel_customer_days"] = days - book.first_day_by_code[codes]
    cols["rel_customer_days"] = np.where(
        cols["rel_customer_days"] >= 0, cols["rel_customer_days"], np.nan
    )
    short = min(spec.windows_days)
    cols[f"rel_maturing_{short}"] = _maturing(book, codes, days, short)
    cols.update(
        build_runway_features(book, reps, codes, days, spec.windows_days, defs.horizon_days)
    )
    cols.update(build_btyd_features(book, codes, days, spec, defs.horizon_days, context.btyd))
    mask_unobserved(cols, days, start_day, windows)

    table = pd.DataFrame({CUSTOMER_ID: grid[CUSTOMER_ID].to_numpy(), AS_OF: grid[AS_OF].to_numpy()})
    table = table.assign(**{c: cols[c] for c in STATE_COLUMNS})
    features = pd.DataFrame({name: np.asarray(cols[name], dtype="float64") for name in names})
    table = pd.concat([table, features], axis=1)
    if data_end is not None:
        end_day = int(day_numbers(pd.DatetimeIndex([data_end]))[0])
        labels = compute_labels(book, codes, days, defs, end_day, context.vip_bars)
        table = pd.concat([table, labels], axis=1)
    return table


def slice_count(customers: int, chunk_customers: int | None) -> int:
    """How many slices ``iter_feature_table`` cuts ``customers`` customers into."""
    return 1 if not chunk_customers else max(1, -(-customers // chunk_customers))


def iter_feature_table(
    tables: Tables,
    as_of_dates: pd.DatetimeIndex,
    defs: Definitions,
    spec: FeatureSpec,
    data_end: pd.Timestamp | None = None,
    chunk_customers: int | None = None,
    observed_from: pd.Timestamp | None = None,
) -> Iterator[pd.DataFrame]:
    """``build_feature_table`` in slices of at most ``chunk_customers`` customers.

    The cross-customer context is computed once over the whole book, so the concatenated slices
    equal the one-piece table (tests/features/test_context.py); memory is bounded by the slice.
    """
    dates = pd.DatetimeIndex(as_of_dates)
    ids = build_universe(tables).ids
    context = build_book_context(tables.loans, day_numbers(dates), defs, spec)
    n_chunks = slice_count(len(ids), chunk_customers)
    if n_chunks == 1:
        yield build_feature_table(tables, dates, defs, spec, data_end, context, observed_from)
        return
    slices = CustomerSlices(tables, ids)
    for i, chunk in enumerate(np.array_split(np.arange(len(ids)), n_chunks)):
        log.info("customer slice %d of %d", i + 1, n_chunks)
        part = slices.slice(int(chunk[0]), int(chunk[-1]) + 1)
        yield build_feature_table(part, dates, defs, spec, data_end, context, observed_from)


__all__ = ["build_feature_table", "iter_feature_table", "slice_count", "LABEL_COLUMNS"]
