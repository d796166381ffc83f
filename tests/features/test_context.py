"""Features built a slice of customers at a time, with the whole book's context, equal the
whole-book computation: the guarantee that chunked and Spark scoring rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import build_feature_table, iter_feature_table
from features.context import build_book_context
from features.contract import CustomerSlices
from features.snapshots import build_universe
from features.windows import day_numbers


def test_slices_with_the_book_context_equal_the_whole(small_world, defs, spec):
    tables = small_world
    dates = pd.DatetimeIndex(["2021-06-30", "2022-03-31"])
    end = pd.Timestamp("2022-12-31")
    whole = build_feature_table(tables, dates, defs, spec, data_end=end)
    context = build_book_context(tables.loans, day_numbers(dates), defs, spec)
    ids = build_universe(tables).ids.to_numpy()
    parts = [
        build_feature_table(tables.for_customers(chunk), dates, defs, spec, end, context)
        for chunk in np.array_split(ids, 3)
    ]
    sliced = pd.concat(parts).sort_values(["as_of", "customer_id"]).reset_index(drop=True)
    whole = whole.sort_values(["as_of", "customer_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(sliced, whole, check_exact=False, rtol=1e-9)
    assert (whole["tier"] == "vip").any()  # the VIP bar matters in this world


def test_slices_without_rows_in_some_tables_equal_the_whole(small_world, defs, spec):
    """A slice may hold no loans (prospects only) or no survey answers at all."""
    tables = small_world
    dates = pd.DatetimeIndex(["2022-03-31"])
    context = build_book_context(tables.loans, day_numbers(dates), defs, spec)
    whole = build_feature_table(tables, dates, defs, spec).set_index("customer_id")
    ids = pd.Index(tables.customers["customer_id"])
    borrowers = ids.isin(tables.loans["customer_id"])
    slices = {
        "prospects": ids[~borrowers][:5],
        "no surveys": ids[borrowers & ~ids.isin(tables.surveys["customer_id"])][:5],
    }
    for name, chunk in slices.items():
        part = tables.for_customers(chunk)
        assert len(part.surveys) == 0 and (name != "prospects" or len(part.loans) == 0)
        got = build_feature_table(part, dates, defs, spec, context=context)
        assert len(got) > 0
        expected = whole.loc[got["customer_id"]].reset_index()
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9)


def test_customer_slices_are_for_customers_of_consecutive_ids(small_world):
    tables = small_world
    ids = build_universe(tables).ids
    slices = CustomerSlices(tables, ids)
    for start, stop in ((0, 80), (80, 81), (81, 240), (0, 240), (5, 5)):
        fast, plain = slices.slice(start, stop), tables.for_customers(ids[start:stop])
        for name, df in plain.present().items():
            pd.testing.assert_frame_equal(fast.get(name), df, check_exact=True)


def test_iter_feature_table_in_chunks_equals_one_piece(small_world, defs, spec):
    tables = small_world
    dates = pd.DatetimeIndex(["2022-03-31"])
    one = next(iter_feature_table(tables, dates, defs, spec))
    chunked = pd.concat(iter_feature_table(tables, dates, defs, spec, chunk_customers=70))
    one = one.sort_values("customer_id", ignore_index=True)
    chunked = chunked.sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(chunked, one, check_exact=False, rtol=1e-9)
