"""The out-of-time split on hand-made snapshot grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.spec import SplitSpec
from models.training.split import SplitError, churn_rows, split_snapshots, tier_rows

H = 180


def grid(first: str, last: str, data_end: str, customers: int = 2) -> pd.DataFrame:
    """Month-end snapshots; rows are labelled when as_of + H <= data_end."""
    dates = pd.date_range(first, last, freq="ME")
    as_of = np.repeat(dates, customers)
    labelled = as_of + pd.Timedelta(days=H) <= pd.Timestamp(data_end)
    churned = np.where(labelled, np.tile([0.0, np.nan], len(dates))[: len(as_of)], np.nan)
    return pd.DataFrame(
        {
            "customer_id": np.tile([f"C{i}" for i in range(customers)], len(dates)),
            "as_of": as_of,
            "label_available": labelled,
            "churned": churned,
        }
    )


def test_test_set_is_the_last_k_labelled_snapshots():
    table = grid("2021-01-31", "2022-12-31", "2022-12-31")
    split = split_snapshots(
        table, SplitSpec(test_snapshots=3, validation_snapshots=2, validation_purge_days=None), H
    )
    labelled = pd.DatetimeIndex(sorted(table.loc[table.label_available, "as_of"].unique()))
    assert list(split.test) == list(labelled[-3:])
    assert split.test[-1] == pd.Timestamp("2022-06-30")  # 2022-06-30 + 180 d <= 2022-12-31


def test_training_label_windows_end_before_the_test_and_validation_periods():
    table = grid("2020-12-31", "2024-12-31", "2024-12-31")
    split = split_snapshots(
        table, SplitSpec(test_snapshots=6, validation_snapshots=3, validation_purge_days=None), H
    )
    horizon = pd.Timedelta(days=H)
    assert (split.validation + horizon < split.test[0]).all()
    assert (split.fit + horizon < split.validation[0]).all()
    # and the purge is tight: the next month-end after each part would overlap
    next_train = split.validation[-1] + pd.offsets.MonthEnd(1)
    assert next_train + horizon >= split.test[0]
    next_fit = split.fit[-1] + pd.offsets.MonthEnd(1)
    assert next_fit + horizon >= split.validation[0]
    assert len(split.validation) == 3
    assert split.fit[0] == pd.Timestamp("2020-12-31")


def test_parts_are_disjoint_and_rows_follow_their_snapshot():
    table = grid("2021-01-31", "2022-12-31", "2022-12-31")
    split = split_snapshots(table, SplitSpec(3, 2, None), H)
    parts = [set(split.fit), set(split.validation), set(split.test)]
    assert not (parts[0] & parts[1]) and not (parts[1] & parts[2]) and not (parts[0] & parts[2])
    test_rows = split.rows(table, "test")
    assert set(test_rows["as_of"]) == parts[2]
    assert len(test_rows) == 3 * 2


def test_describe_names_each_part():
    split = split_snapshots(
        grid("2021-01-31", "2022-12-31", "2022-12-31"), SplitSpec(3, 2, None), H
    )
    described = split.describe()
    assert described["test"] == {"snapshots": 3, "first": "2022-04-30", "last": "2022-06-30"}
    assert described["horizon_days"] == H


def test_row_selections_for_each_model():
    table = grid("2021-01-31", "2021-12-31", "2022-12-31")
    assert churn_rows(table)["churned"].notna().all()
    assert len(churn_rows(table)) == 12  # one of the two customers is active
    assert len(tier_rows(table)) == 24


@pytest.mark.parametrize(
    ("first", "spec", "message"),
    [
        ("2022-03-31", SplitSpec(3, 2, None), "the data span is too short: 4 labelled"),
        ("2021-10-31", SplitSpec(3, 2, None), "the data span is too short: 9 labelled"),
        ("2022-03-31", SplitSpec(None, None, None), "the data span is too short: 4 labelled"),
    ],
)
def test_too_short_a_history_fails_with_one_message_naming_the_minimum(first, spec, message):
    table = grid(first, "2022-12-31", "2022-12-31")
    with pytest.raises(SplitError, match=message) as err:
        split_snapshots(table, spec, H)
    text = str(err.value)
    assert "the smallest split needs" in text and "Minimum span: warm-up +" in text
    for param in ("labels.horizon_days", "snapshots.start", "split.test_snapshots"):
        assert param in text


def test_a_short_span_keeps_one_purge_and_the_fit_slice():
    """Two purges would leave 1 fit snapshot of the 6 before validation: the validation purge is
    dropped, the purge before the test set stays."""
    table = grid("2021-06-30", "2022-12-31", "2022-12-31")
    split = split_snapshots(table, SplitSpec(3, 2, None), H)
    horizon = pd.Timedelta(days=H)
    assert not split.validation_purge and split.summary().validation_purge is False
    assert (split.validation + horizon < split.test[0]).all()
    assert split.fit[-1] + pd.offsets.MonthEnd(1) == split.validation[0]  # adjacent


def test_the_validation_purge_is_kept_when_it_leaves_three_fit_snapshots():
    """Nine snapshots before validation, six of them within H of it: the purge leaves three, and
    three are enough (an overlapping validation slice costs more than a longer fit slice)."""
    table = grid("2021-01-31", "2022-12-31", "2022-12-31")
    split = split_snapshots(table, SplitSpec(2, 2, None), H)
    assert split.validation_purge and len(split.fit) >= 3
    assert (split.fit + pd.Timedelta(days=H) < split.validation[0]).all()


def test_a_shorter_validation_purge_keeps_the_test_purge_and_more_fit_snapshots():
    """The survival split: a 12-month test purge, a 6-month validation purge. The fit's windows
    end validation_purge_days before the first validation snapshot, tightly; the test purge is
    the full window."""
    window, short = 365, 91
    table = grid("2019-12-31", "2024-12-31", "2024-12-31")
    full = split_snapshots(table, SplitSpec(6, 3, None), window)
    split = split_snapshots(table, SplitSpec(6, 3, short), window)
    assert list(split.test) == list(full.test) and list(split.validation) == list(full.validation)
    assert (split.validation + pd.Timedelta(days=window) < split.test[0]).all()
    assert (split.fit + pd.Timedelta(days=short) < split.validation[0]).all()
    assert split.fit[-1] + pd.offsets.MonthEnd(1) + pd.Timedelta(days=short) >= split.validation[0]
    assert len(split.fit) >= len(full.fit) + 8  # ~12 month-ends purged by the window, ~3 by 91 days
    assert split.validation_purge


def test_a_long_span_keeps_both_purges():
    split = split_snapshots(
        grid("2020-12-31", "2024-12-31", "2024-12-31"), SplitSpec(6, 3, None), H
    )
    assert split.validation_purge


@pytest.mark.parametrize(
    ("first", "test", "validation"),
    [("2019-12-31", 6, 3), ("2022-01-31", 4, 3), ("2022-07-31", 3, 2), ("2022-10-31", 2, 1)],
)
def test_auto_sizes_follow_the_span(first, test, validation):
    """K = L // 4 in [1, 6], V = L // 6 in [1, 3]; 18 labelled month-ends (a 3-year history
    after a year of warm-up, H = 180) give 4 test and 3 validation snapshots."""
    table = grid(first, "2023-12-31", "2023-12-31")
    split = split_snapshots(table, SplitSpec(None, None, None), H)
    assert (len(split.test), len(split.validation)) == (test, validation)
    assert len(split.fit) >= 1 and split.test[-1] == pd.Timestamp("2023-06-30")


def test_split_spec_rejects_non_positive_counts():
    with pytest.raises(ValueError, match="validation_purge_days"):
        SplitSpec(3, 2, -1)
    with pytest.raises(ValueError):
        SplitSpec(test_snapshots=0, validation_snapshots=3, validation_purge_days=None)


def test_a_three_year_world_splits_with_the_default_params(small_table, params_cfg):
    """The small world is 3 years (generate.years=3): the default (auto) split trains on it."""
    split = split_snapshots(small_table, params_cfg.split, params_cfg.labels.horizon_days)
    assert len(split.fit) >= 3 and len(split.validation) >= 1 and len(split.test) >= 1
    assert not split.validation_purge  # two purges would leave a single fit snapshot
