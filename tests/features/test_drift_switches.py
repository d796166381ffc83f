"""The synthetic world's drift switches (generate.drift, docs/synthetic-world.md): off by default,
nothing before `start` changes, and each switch changes what it says from `start` on."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from features.synthetic import DriftSpec, generate_world
from pipelines.config import ConfigError, config_with

START = "2021-07-01"
OFF = DriftSpec("", 0.0, (), False, ())


@pytest.fixture(scope="module")
def base(params_cfg):
    return replace(params_cfg.generate, customers=400, years=3, seed=2, drift=OFF)


@pytest.fixture(scope="module")
def plain(base):
    return generate_world(base)


def _before(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows dated before START as known then (a later closing date is not known yet)."""
    rows = frame[frame[column] < pd.Timestamp(START)].reset_index(drop=True)
    if "closed_date" in rows:
        known = rows["closed_date"] < START
        rows = rows.assign(closed_date=rows["closed_date"].where(known))
        if "close_reason" in rows:  # why a loan closed is known once it has closed
            rows = rows.assign(close_reason=rows["close_reason"].where(known))
    return rows


@pytest.mark.parametrize(
    "switch",
    [{"rate_shock": -0.03}, {"segment_mix": (0.1, 0.3, 0.6)}, {"principal_thousands": True},
     {"channel_rename": ("call", "phone")}],
)  # fmt: skip
def test_nothing_before_start_changes(base, plain, switch) -> None:
    drifted = generate_world(replace(base, drift=replace(OFF, start=START, **switch)))
    pd.testing.assert_frame_equal(_before(drifted.loans, "origination_date"),
                                  _before(plain.loans, "origination_date"))  # fmt: skip
    for table, column in (("interactions", "timestamp"), ("customers", "onboarding_date"),
                          ("surveys", "survey_date")):  # fmt: skip
        pd.testing.assert_frame_equal(_before(getattr(drifted, table), column),
                                      _before(getattr(plain, table), column))  # fmt: skip


def test_each_switch_does_what_it_says(base, plain) -> None:
    def world(**switch):
        return generate_world(replace(base, drift=replace(OFF, start=START, **switch)))

    late = lambda t: t.loans[t.loans["origination_date"] >= START]  # noqa: E731
    faulty = world(principal_thousands=True)
    assert late(faulty)["principal"].median() < late(plain)["principal"].median() / 100
    renamed = world(channel_rename=("call", "phone")).interactions
    after = renamed[renamed["timestamp"] >= START]
    assert "phone" in set(after["channel"]) and "call" not in set(after["channel"])
    mix = world(segment_mix=(0.0, 0.0, 1.0)).customers
    new = mix[mix["onboarding_date"] >= pd.Timestamp(START) + pd.Timedelta(days=31)]
    assert set(new["segment"]) == {"project_sponsor"}
    cheap = world(rate_shock=-0.03)
    assert late(cheap)["interest_rate"].mean() < late(plain)["interest_rate"].mean() - 0.01


def test_bad_switches_and_monitor_params_fail(params_cfg) -> None:
    with pytest.raises(ConfigError, match="segment_mix"):
        config_with(params_cfg, generate={"drift": {"segment_mix": [0.5, 0.5]}})
    with pytest.raises(ConfigError, match="psi_warn"):
        config_with(params_cfg, monitor={"psi_warn": 0.3, "psi_drift": 0.2})
    with pytest.raises(ConfigError, match="unknown key"):
        config_with(params_cfg, monitor={"psi": 0.3})
