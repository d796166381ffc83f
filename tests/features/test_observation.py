"""The observation window: data.start inferred from the event tables, left-truncation measures,
windows reaching before data.start NaN (never zero events), the warm-up warning, and the params
as DVC passes them (strings)."""

from __future__ import annotations

import pandas as pd
import pytest

from features.build import build_feature_table
from features.contract import Tables
from features.observation import infer_data_start, left_truncation, observation_report
from pipelines.config import config_with
from pipelines.features import warmup_warning

D = pd.Timestamp


def test_data_start_is_the_first_event_else_the_first_origination(tiny_tables):
    assert infer_data_start(tiny_tables) == D("2022-02-01")  # A's first survey; loans 2020
    assert infer_data_start(Tables(tiny_tables.loans)) == D("2020-03-01")


def test_left_truncation_measures(make_loans):
    loans = make_loans(
        [
            ("L1", "A", "2010-01-01", 1.0, None, None, 240, None),  # open at start, 12 y old
            ("L2", "B", "2019-01-01", 1.0, None, None, 12, "2021-06-01"),  # open at start
            ("L3", "C", "2018-01-01", 1.0, None, None, 12, "2019-01-01"),  # closed before
            ("L4", "C", "2021-03-01", 1.0, None, None, 12, None),  # after the start
        ]
    )
    start = D("2021-01-01")
    measures = left_truncation(loans, start)
    assert measures["loans_originated_before_start"] == 3 and measures["share_of_loans"] == 0.75
    assert measures["closed_before_start"] == 1 and measures["open_at_start"] == 2
    ages = measures["age_at_start_days"]
    assert ages["q0"] == (start - D("2019-01-01")).days
    assert ages["q100"] == (start - D("2010-01-01")).days
    report = observation_report(Tables(loans), start, inferred=False)
    assert (
        report["data_start"] == "2021-01-01" and report["tables"]["loans"]["first"] == "2010-01-01"
    )


def test_windows_reaching_before_data_start_are_nan_not_zero(tiny_tables, defs, spec):
    start = D("2022-02-01")
    at = lambda d: build_feature_table(  # noqa: E731
        tiny_tables, pd.DatetimeIndex([d]), defs, spec, observed_from=start
    ).set_index("customer_id")
    early = at(D("2022-03-13"))  # 40 days of repayment history
    assert early["pay_late_n_365"].isna().all() and early["pay_late_n_90"].isna().all()
    assert early["pay_on_time_rate_365"].isna().all() and early["eng_n_90"].isna().all()
    assert early["loan_n_total"].notna().all()  # to date: what was observed
    later = at(D("2022-05-31"))  # 119 days: the 90-day windows are observed, 365 is not
    assert later["pay_late_n_90"].notna().all() and later["pay_late_n_365"].isna().all()
    assert later.loc["A", "pay_late_n_90"] == 1
    unmasked = build_feature_table(tiny_tables, pd.DatetimeIndex([D("2022-03-13")]), defs, spec)
    assert (unmasked["pay_late_n_365"].fillna(-1) >= 0).all()  # the old reading: zeros


def test_the_warm_up_warning_names_both_dates(params_cfg):
    cfg = config_with(params_cfg, data={"start": "2021-01-01"}, snapshots={"start": "2021-06-30"})
    assert cfg.data.start == D("2021-01-01") and cfg.snapshots.start == D("2021-06-30")
    text = warmup_warning(cfg, cfg.data.start)
    assert "snapshots.start 2021-06-30" in text and "data.start 2021-01-01" in text
    assert "2022-01-01" in text  # + 365 days of warm-up (the longest window)
    ok = config_with(cfg, snapshots={"start": "2022-01-31"})
    assert warmup_warning(ok, ok.data.start) == ""


@pytest.mark.parametrize("value", ["", None])
def test_empty_observation_params_are_inferred(params_cfg, value):
    cfg = config_with(params_cfg, data={"start": value}, snapshots={"warmup_days": value})
    assert cfg.data.start is None and cfg.warmup_days == max(params_cfg.features.windows_days)


def test_split_sizes_accept_auto(params_cfg):
    cfg = config_with(params_cfg, split={"test_snapshots": "auto", "validation_snapshots": 2})
    assert cfg.split.test_snapshots is None and cfg.split.validation_snapshots == 2


def test_one_date_features_mask_unobserved_windows_like_training(tiny_tables, params_cfg, tmp_path):
    """`tierwise features --as-of` (and `score`, which builds its rows the same way) reads the
    observation start from data.start like the training table: 40 days into the data, the
    365-day windows are NaN, not zeros."""
    from dataclasses import replace

    from pipelines import features as features_stage
    from pipelines.io import save_tables

    data = save_tables(tiny_tables.present(), tmp_path / "data")
    cfg = replace(params_cfg, data=replace(params_cfg.data, start=D("2022-02-01")))
    out = features_stage.run_as_of(cfg, data, D("2022-03-13"), tmp_path / "rows.parquet", False)
    rows = pd.read_parquet(out)
    assert len(rows) and rows["pay_late_n_365"].isna().all()
    assert rows["loan_n_total"].notna().all()
