"""Outputs a person can act on (issue 11): each strategy's names, action and source next to its id,
nulls for missing text, reasons for the watch list, no reason too small to act on, amounts with
their currency and count drivers worded as risks."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models.columns import RISK_BAND
from models.explain.reasons import feature_templates, render_reason, template_for
from models.explain.templates import TEMPLATES
from models.serving.outputs import explained_rows
from models.serving.pyfunc import ChurnOutputs, RegisteredChurnModel
from models.strategies.catalog import (
    load_catalog,
    strategy_columns,
    strategy_detail_columns,
    strategy_details,
)


@pytest.fixture(scope="module")
def shown_model(trained, params_cfg):
    """The churn model as the evaluate stage registers it: params score and explain."""
    outputs = ChurnOutputs.from_spec(params_cfg.score, load_catalog(), 3, params_cfg.explain)
    return RegisteredChurnModel(trained.models.churn, outputs)


def test_every_strategy_comes_with_its_names_action_and_source(shown_model, score_rows):
    out = shown_model.predict_frame(score_rows)
    assert set(strategy_detail_columns(3)) <= set(out.columns)
    catalog = load_catalog()
    for column in strategy_columns(3):
        for sid, name, zh, action, source in out[
            [column, *(f"{column}_{d}" for d in ("name", "name_zh", "action", "source"))]
        ].drop_duplicates().itertuples(index=False):  # fmt: skip
            if sid is None:
                assert (name, zh, action, source) == (None, None, None, None)
                continue
            s = catalog.by_id(sid)
            assert (name, zh, action) == (s.name_en, s.name_zh, s.action)
            assert s.source_file in source and s.section in source and s.source_title in source


def test_catalog_actions_are_one_sentence():
    for s in load_catalog().strategies:
        assert len(re.findall(r"[.!?](?:\s|$)", s.action)) == 1 and s.action.endswith("."), s.id


def test_strategy_details_of_nothing_are_nulls():
    ids = pd.DataFrame({"strategy_1": ["prompt_response", None]}, index=[4, 9])
    got = strategy_details(load_catalog(), ids, 2)
    assert list(got.index) == [4, 9] and got.loc[9].isna().all()
    assert got.loc[4, "strategy_1_name"] == load_catalog().by_id("prompt_response").name_en
    assert got["strategy_2_action"].isna().all()


def test_the_watch_policy_explains_the_watch_list_too(shown_model, score_rows):
    band = np.array(["low", "high", "medium", "", "high"], dtype=object)
    active = np.array([True, True, True, False, False])
    assert explained_rows(band, active, "watch", ["high"], ["medium"]).tolist() == [
        0, 1, 1, 0, 0,
    ]  # fmt: skip
    watch = shown_model.predict_frame(score_rows, explain="watch")
    medium = (watch[RISK_BAND] == "medium").to_numpy()
    assert medium.any() and watch.loc[medium, "reason_1"].notna().all()
    at_risk = shown_model.predict_frame(score_rows, explain="at_risk")
    assert at_risk.loc[medium, "reason_1"].isna().all()


def test_tiny_contributions_are_not_reasons(trained, params_cfg, score_rows):
    catalog, spec = load_catalog(), params_cfg.score
    every = ChurnOutputs.from_spec(spec, catalog, 3)  # min_contribution 0: every positive push
    assert params_cfg.explain.min_contribution == 0.005
    kept = RegisteredChurnModel(
        trained.models.churn, ChurnOutputs.from_spec(spec, catalog, 3, params_cfg.explain)
    ).predict_frame(score_rows)
    shown = RegisteredChurnModel(trained.models.churn, every).predict_frame(score_rows)
    values = [f"reason_{j}_contribution" for j in (1, 2, 3)]
    tiny = shown[values].to_numpy() < 0.005
    assert tiny.any(), "the small world has no push below 0.005 to hide"
    assert not (kept[values].to_numpy() < 0.005).any()
    assert kept[values].isna().to_numpy()[tiny].all()
    big = shown[values].to_numpy() >= 0.005
    assert np.array_equal(kept[values].to_numpy()[big], shown[values].to_numpy()[big])


def test_every_amount_carries_the_currency():
    names = ["loan_amount_365", "loan_exposure", "pay_overdue_amount", "loan_value_365",
             "loan_exposure_change_90", "loan_avg_principal", "loan_open_n",
             "con_open_principal_h", "con_open_principal_90",
             "con_scheduled_outstanding_h"]  # fmt: skip
    templates = dict(zip(names, feature_templates(names, currency="CNY"), strict=True))
    for template in templates.values():
        text = render_reason(template, 1_870_000.0, 0.05)
        assert ("CNY 1,870,000" in text) == (template.kind == "amount"), text
    amounts = [key for key, t in TEMPLATES.items() if t.kind == "amount"]
    assert all(any(n.startswith(key) for n in names) for key in amounts)  # every amount template
    assert render_reason(templates["pay_overdue_amount"], 1_870_000, 0.05) == (
        "CNY 1,870,000 overdue now (+0.05)"
    )
    down = render_reason(templates["loan_exposure_change_90"], -50_000, 0.02)
    assert down == "open principal down CNY 50,000 over the last 90 days (+0.02)"


def test_count_drivers_read_as_risks():
    assert render_reason(template_for("loan_open_n"), 1, 0.05) == "only 1 open loan (+0.05)"
    assert render_reason(template_for("loan_open_n"), 0, 0.05) == "no open loan (+0.05)"
    referrals = template_for("rel_referrals_365")
    assert render_reason(referrals, 0, 0.01) == "no referral in the last 365 days (+0.01)"
    assert render_reason(referrals, 2, 0.01) == "only 2 referrals in the last 365 days (+0.01)"
