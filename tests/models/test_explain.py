"""Explanations: TreeSHAP agreement and additivity, group sums, reason texts, strategy choice, the
vectorised explain_frame against a per-row reference, and the global views."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logsumexp

from features.contract import AS_OF, CUSTOMER_ID
from features.labels import CHURNED, LABEL_AVAILABLE, NEXT_TIER
from features.registry import GROUPS, STATE_COLUMNS, feature_groups, feature_names
from features.spec import TIERS
from models.explain.frame import (
    BASE_VALUE,
    class_set_contributions,
    customer_states,
    downgrade_contributions,
    explain_frame,
    explanation_columns,
    feature_contributions,
    group_contributions,
    shap_contributions,
)
from models.explain.reasons import (
    display_scale,
    format_contribution,
    format_value,
    reason_codes,
    render_reason,
    template_for,
)
from models.explain.templates import TEMPLATES, ReasonTemplate
from models.explain.views import (
    add_citations,
    feature_importance,
    group_importance,
    plot_beeswarm,
    plot_group_importance,
    strategy_coverage,
)
from models.strategies.catalog import load_catalog, recommend
from pipelines.config import load_defaults

SPEC = load_defaults().features  # module level: NAMES parametrises tests below
NAMES = feature_names(SPEC)
GROUP_OF = feature_groups(SPEC)
PLAIN = {"tier": "ordinary", "lifecycle_state": "active", "loyalty_level": "medium"}


def _booster(objective: str, X: pd.DataFrame, y: np.ndarray) -> lgb.Booster:
    extra = {"num_class": len(TIERS)} if objective == "multiclass" else {}
    model = lgb.LGBMClassifier(
        objective=objective, n_estimators=25, num_leaves=15, min_child_samples=20,
        learning_rate=0.1, n_jobs=1, random_state=0, deterministic=True, verbose=-1, **extra,
    )  # fmt: skip
    return model.fit(X, y).booster_


@pytest.fixture(scope="module")
def table(small_table) -> pd.DataFrame:
    """The session's small world feature table (tests/models/conftest.py)."""
    return small_table


@pytest.fixture(scope="module")
def churn_rows(table) -> pd.DataFrame:
    return table[table[CHURNED].notna()].reset_index(drop=True)


@pytest.fixture(scope="module")
def tier_rows(table) -> pd.DataFrame:
    return table[table[LABEL_AVAILABLE].astype(bool)].reset_index(drop=True)


@pytest.fixture(scope="module")
def churn_booster(churn_rows) -> lgb.Booster:
    return _booster("binary", churn_rows[NAMES], churn_rows[CHURNED].to_numpy(int))


@pytest.fixture(scope="module")
def tier_booster(tier_rows) -> lgb.Booster:
    codes = pd.Categorical(tier_rows[NEXT_TIER], categories=TIERS).codes
    return _booster("multiclass", tier_rows[NAMES], codes)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


# --- contributions --------------------------------------------------------------------------------
def test_pred_contrib_agrees_with_tree_explainer_binary(churn_booster, churn_rows) -> None:
    X = churn_rows[NAMES].iloc[:300]
    fast, slow = feature_contributions(churn_booster, X), shap_contributions(churn_booster, X)
    assert list(fast.columns) == [*NAMES, BASE_VALUE]
    assert np.allclose(fast.to_numpy(), slow.to_numpy(), atol=1e-9)


def test_pred_contrib_agrees_with_tree_explainer_multiclass(tier_booster, tier_rows) -> None:
    X = tier_rows[NAMES].iloc[:200]
    for k in range(len(TIERS)):
        fast = feature_contributions(tier_booster, X, class_index=k)
        slow = shap_contributions(tier_booster, X, class_index=k)
        assert np.allclose(fast.to_numpy(), slow.to_numpy(), atol=1e-9)
    with pytest.raises(ValueError, match="class_index"):
        feature_contributions(tier_booster, X)


def test_contributions_add_up_to_the_raw_margin(churn_booster, tier_booster, tier_rows) -> None:
    X = tier_rows[NAMES]
    margin = churn_booster.predict(X, raw_score=True)
    assert np.allclose(feature_contributions(churn_booster, X).sum(axis=1), margin)
    logits = tier_booster.predict(X, raw_score=True)
    for k in range(len(TIERS)):
        total = feature_contributions(tier_booster, X, class_index=k).sum(axis=1)
        assert np.allclose(total, logits[:, k])


def test_downgrade_contributions_add_up_to_the_downgrade_log_odds(tier_booster, tier_rows):
    X, current = tier_rows[NAMES], tier_rows["tier"]
    contribs = downgrade_contributions(tier_booster, X, current)
    logits = tier_booster.predict(X, raw_score=True)
    lower = np.arange(len(TIERS))[None, :] < pd.Categorical(current, TIERS).codes[:, None]
    inside = logsumexp(np.where(lower, logits, -np.inf), axis=1)
    expected = inside - logsumexp(np.where(lower, -np.inf, logits), axis=1)
    can_fall = (current != "potential").to_numpy()
    assert can_fall.any() and (~can_fall).any()
    assert np.allclose(contribs.sum(axis=1)[can_fall], expected[can_fall], atol=1e-8)
    assert contribs[~can_fall].isna().all(axis=None)  # the lowest tier cannot move down


def test_two_class_set_is_the_difference_of_class_contributions(tier_booster, tier_rows):
    """With one class against one other the set log-odds is linear: exactly phi_a - phi_b."""
    X = tier_rows[NAMES].iloc[:100]
    raw = tier_booster.predict(X, pred_contrib=True).reshape(len(X), len(TIERS), -1)
    target = np.zeros((len(X), len(TIERS)), dtype=bool)
    target[:, 2] = True
    contribs = class_set_contributions(tier_booster, X, target).to_numpy()
    logits = raw.sum(axis=2)
    expected = logits[:, 2] - logsumexp(np.delete(logits, 2, axis=1), axis=1)
    assert np.allclose(contribs.sum(axis=1), expected, atol=1e-8)
    with pytest.raises(ValueError, match="rows x classes"):
        class_set_contributions(tier_booster, X, target[:, :2])


def test_group_sums_equal_feature_sums(churn_booster, churn_rows) -> None:
    contribs = feature_contributions(churn_booster, churn_rows[NAMES])
    groups = group_contributions(contribs, GROUP_OF)
    assert list(groups.columns) == list(GROUPS)
    assert np.allclose(groups.sum(axis=1), contribs.drop(columns=BASE_VALUE).sum(axis=1))
    for group in GROUPS:
        members = [f for f in NAMES if GROUP_OF[f] == group]
        assert np.allclose(groups[group], contribs[members].sum(axis=1))
    with pytest.raises(KeyError, match="no feature group"):
        group_contributions(contribs, {f: g for f, g in GROUP_OF.items() if f != "sat_latest"})


# --- reason texts ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "value", "text"),
    [
        ("count", 3.0, "3"),
        ("share", 0.62, "62%"),
        ("percent", 0.0725, "7.25%"),
        ("pp", 0.008, "0.8 pp"),
        ("days", 210.4, "210"),
        ("amount", 1_234_567.0, "1,230,000"),
        ("amount", 950.0, "950"),
        ("amount", -0.0, "0"),
        ("number", 3.6, "3.6"),
        ("number", 4.0, "4"),
    ],
)
def test_values_are_formatted_by_kind(kind: str, value: float, text: str) -> None:
    assert format_value(kind, value) == text


def test_contributions_are_formatted_with_a_sign() -> None:
    assert [format_contribution(v) for v in (0.1234, 0.004, -0.05)] == ["+0.12", "+0.004", "-0.05"]


@pytest.mark.parametrize(
    ("feature", "value", "text"),
    [
        ("svc_complaints_90", 1.0, "1 complaint in the last 90 days"),
        ("eng_inquiries_180", 1.0, "1 inquiry in the last 180 days"),
        ("eng_inquiries_180", 2.0, "2 inquiries in the last 180 days"),
        ("price_spread_last", -0.005, "rate 0.5 pp below the book median"),
        ("rel_lifecycle_rank", 3.0, "lifecycle state dormant"),
        ("sat_latest", np.nan, "no satisfaction score on record"),
        ("pay_on_time_trend", -0.25,
         "on-time repayment down 25.0 pp (last 90 days vs the 90 before)"),
        ("loan_exposure", 2_345_678.0, "open principal 2,350,000"),
    ],
)  # fmt: skip
def test_templates_word_values(feature: str, value: float, text: str) -> None:
    assert render_reason(template_for(feature), value, 0.1) == f"{text} (+0.10)"


def test_every_registry_feature_has_its_own_template() -> None:
    fallbacks = [
        f for f in NAMES if template_for(f, TEMPLATES, {f: "FALLBACK"}).text[:8] == "FALLBACK"
    ]
    assert fallbacks == []
    custom = template_for("new_feature", TEMPLATES, {"new_feature": "a new thing"})
    assert custom == ReasonTemplate("a new thing: {v}", missing="a new thing: none on record")


def _hand_made(rows: list[dict[str, float]], values: list[dict[str, float]]):
    """Contributions (log-odds, base -1) and feature values with the given non-zero entries."""
    contribs = pd.DataFrame(0.0, index=range(len(rows)), columns=[*NAMES, BASE_VALUE])
    X = pd.DataFrame(0.0, index=range(len(rows)), columns=NAMES)
    for i, (c, v) in enumerate(zip(rows, values, strict=True)):
        contribs.loc[i, list(c)] = list(c.values())
        X.loc[i, list(v)] = list(v.values())
    contribs[BASE_VALUE] = -1.0
    return contribs, X


def test_reasons_on_hand_made_rows() -> None:
    contribs, X = _hand_made(
        [
            {
                "svc_complaints_90": 0.12, "svc_service_90": -0.02,  # service +0.10, the top one
                "pay_on_time_rate_365": 0.08, "price_spread_last": 0.05,
                "eng_days_since_rm_contact": 0.04, "loan_open_n": -0.30,
            },
            {"loan_open_n": -0.2, "sat_latest": -0.1},  # nothing pushes risk up
        ],
        [
            {"svc_complaints_90": 3, "svc_service_90": 1, "pay_on_time_rate_365": 0.62,
             "price_spread_last": 0.008, "eng_days_since_rm_contact": 210, "loan_open_n": 2},
            {"loan_open_n": 1, "sat_latest": 5},
        ],
    )  # fmt: skip
    groups = group_contributions(contribs, GROUP_OF)
    out = reason_codes(contribs, groups, X, GROUP_OF, k=3, link=None)
    first = out.iloc[0]
    assert first["reason_1"] == "3 complaints in the last 90 days (+0.10)"
    assert first["reason_2"] == "on-time repayment 62% over the last 365 days (+0.08)"
    assert first["reason_3"] == "rate 0.8 pp above the book median (+0.05)"
    assert [first[f"reason_{j}_group"] for j in (1, 2, 3)] == ["service", "repayment", "pricing"]
    assert np.allclose([first[f"reason_{j}_contribution"] for j in (1, 2, 3)], [0.10, 0.08, 0.05])
    second = out.iloc[1]
    assert [second[f"reason_{j}"] for j in (1, 2, 3)] == ["", "", ""]
    assert second[[f"reason_{j}_contribution" for j in (1, 2, 3)]].isna().all()


def test_probability_points_add_up_to_the_probability_change() -> None:
    contribs, X = _hand_made([{"svc_complaints_90": 0.9, "loan_open_n": -0.4}], [{}])
    groups = group_contributions(contribs, GROUP_OF)
    scale = display_scale(contribs, expit)
    assert np.allclose((groups.to_numpy() * scale[:, None]).sum(), expit(-0.5) - expit(-1.0))
    shown = reason_codes(contribs, groups, X, GROUP_OF, link=expit)["reason_1_contribution"]
    assert np.isclose(shown.iloc[0], 0.9 * (expit(-0.5) - expit(-1.0)) / 0.5)


# --- strategies -----------------------------------------------------------------------------------
def _state_table(X: pd.DataFrame, states: list[dict[str, str]]) -> pd.DataFrame:
    ids = pd.DataFrame(
        {CUSTOMER_ID: [f"C{i}" for i in range(len(X))], AS_OF: pd.Timestamp("2022-12-31")}
    )
    states_df = pd.DataFrame([{"loyalty_stage": "Act", **PLAIN, **s} for s in states])
    return pd.concat([ids, states_df[list(STATE_COLUMNS)], X], axis=1)


def test_strategies_follow_the_drivers_and_the_state(catalog) -> None:
    contribs, X = _hand_made(
        [{"price_spread_last": 0.3}, {"eng_rm_contacts_90": -0.2, "eng_n_90": 0.3}, {}],
        [{"price_spread_last": 0.01}, {"eng_n_90": 0}, {}],
    )
    table = _state_table(X, [{}, {"lifecycle_state": "dormant"}, {"tier": "vip"}])
    out = explain_frame(None, table, NAMES, GROUP_OF, catalog, contributions=contribs)
    assert out.loc[0, "strategy_1"] == "act_flexible_financing"  # pricing pushes risk up
    assert out.loc[1, "strategy_1"] == "dormant_wake_up"  # the dormant lifecycle's anchor
    assert out.loc[2, "strategy_1"] == "vip_dedicated_team"  # VIP, no driver at all
    assert out.loc[2, "reason_1"] == ""
    cited = add_citations(out, catalog)
    assert cited.loc[0, "strategy_1_citation"].endswith("§ 4. 行为阶段(Act)")


# --- explain_frame against a per-row reference ----------------------------------------------------
def _reference_row(contrib: pd.Series, values: pd.Series, state: pd.Series, catalog, k=3) -> dict:
    """One row, the slow way: dict sums, sorted groups, the scalar renderer and recommend()."""
    sums: dict[str, float] = {}
    for feature in NAMES:
        sums[GROUP_OF[feature]] = sums.get(GROUP_OF[feature], 0.0) + contrib[feature]
    margin = contrib.sum()
    scale = (expit(margin) - expit(contrib[BASE_VALUE])) / (margin - contrib[BASE_VALUE])
    ranked = sorted((g for g in GROUPS if sums[g] > 0), key=lambda g: (-sums[g], GROUPS.index(g)))
    row: dict = {}
    for j in range(k):
        key = f"reason_{j + 1}"
        if j < len(ranked):
            group = ranked[j]
            members = [f for f in NAMES if GROUP_OF[f] == group]
            top = max(members, key=lambda f: (contrib[f], -members.index(f)))
            shown = sums[group] * scale
            text = render_reason(template_for(top), values[top], shown)
            row |= {key: text, f"{key}_group": group, f"{key}_contribution": shown}
        else:
            row |= {key: "", f"{key}_group": "", f"{key}_contribution": np.nan}
    picks = recommend(catalog, list(sums.items()), state["tier"], state["lifecycle_state"],
                      state["loyalty_level"], state["loyalty_stage"], k)  # fmt: skip
    ids = [s.id for s in picks] + [""] * (k - len(picks))
    return row | {f"strategy_{j + 1}": ids[j] for j in range(k)}


def test_explain_frame_equals_a_per_row_reference(churn_booster, churn_rows, catalog) -> None:
    sample = churn_rows.sample(80, random_state=3)
    out = explain_frame(churn_booster, sample, NAMES, GROUP_OF, catalog)
    assert list(out.index) == list(sample.index)
    assert list(out.columns) == [CUSTOMER_ID, AS_OF, *explanation_columns(3)]
    contribs = feature_contributions(churn_booster, sample[NAMES])
    expected = pd.DataFrame(
        [
            _reference_row(contribs.loc[i], sample.loc[i], sample.loc[i], catalog)
            for i in sample.index
        ],
        index=sample.index,
    )
    pd.testing.assert_frame_equal(out.drop(columns=[CUSTOMER_ID, AS_OF]), expected[out.columns[2:]])
    assert (out["reason_1"] != "").mean() > 0.9


def test_only_selected_rows_are_explained(churn_booster, table, catalog) -> None:
    dormant = table["lifecycle_state"] == "dormant"
    rows = pd.concat([table[~dormant].iloc[:50], table[dormant].iloc[:10]])
    chosen = (np.arange(len(rows)) % 3 == 0) & (rows["lifecycle_state"] != "dormant").to_numpy()
    part = explain_frame(churn_booster, rows, NAMES, GROUP_OF, catalog, rows=chosen)
    full = explain_frame(churn_booster, rows, NAMES, GROUP_OF, catalog)
    assert list(part.columns) == list(full.columns) and part.index.equals(full.index)
    pd.testing.assert_frame_equal(part[chosen], full[chosen])
    rest = part[~chosen]
    assert (rest[["reason_1", "reason_1_group"]] == "").all(axis=None)
    assert rest["reason_1_contribution"].isna().all()
    woken = rest["strategy_1"][rows.loc[~chosen, "lifecycle_state"] == "dormant"]
    assert len(woken) == 10 and (woken == "dormant_wake_up").all()  # the state's own strategy


def test_explain_frame_fails_loudly(churn_booster, churn_rows, catalog) -> None:
    rows = churn_rows.iloc[:5]
    no_stage = rows.drop(columns=["loyalty_stage", "rel_stage_rank"])
    with pytest.raises(KeyError, match="loyalty_stage"):
        explain_frame(churn_booster, no_stage, NAMES, GROUP_OF, catalog)
    with pytest.raises(ValueError, match="training order"):
        explain_frame(churn_booster, rows, NAMES[::-1], GROUP_OF, catalog)
    with pytest.raises(ValueError, match="model or precomputed"):
        explain_frame(None, rows, NAMES, GROUP_OF, catalog)


def test_states_are_read_from_rank_features_when_absent(churn_booster, churn_rows, catalog):
    rows = churn_rows.iloc[:50]
    features_only = rows[NAMES]
    pd.testing.assert_frame_equal(
        customer_states(features_only), rows[list(STATE_COLUMNS)].astype(object)
    )
    full = explain_frame(churn_booster, rows, NAMES, GROUP_OF, catalog)
    bare = explain_frame(churn_booster, features_only, NAMES, GROUP_OF, catalog)
    pd.testing.assert_frame_equal(bare, full.drop(columns=[CUSTOMER_ID, AS_OF]))


def test_downgrade_view_goes_through_explain_frame(tier_booster, tier_rows, catalog) -> None:
    rows = tier_rows.iloc[:200]
    contribs = downgrade_contributions(tier_booster, rows[NAMES], rows["tier"])
    out = explain_frame(None, rows, NAMES, GROUP_OF, catalog, contributions=contribs)
    bottom = (rows["tier"] == "potential").to_numpy()
    assert (out.loc[bottom, "reason_1"] == "").all()
    assert (out.loc[~bottom, "reason_1"] != "").any()


# --- global views ---------------------------------------------------------------------------------
def test_importance_tables(churn_booster, churn_rows) -> None:
    contribs = feature_contributions(churn_booster, churn_rows[NAMES])
    features = feature_importance(contribs, GROUP_OF)
    assert set(features["feature"]) == set(NAMES)
    assert features["mean_abs"].is_monotonic_decreasing
    groups = group_importance(contribs, GROUP_OF).set_index("group")
    sums = group_contributions(contribs, GROUP_OF)
    assert np.allclose(groups.loc[sums.columns, "mean_abs"], sums.abs().mean())


def test_strategy_coverage_counts_at_risk_customers_and_value(catalog) -> None:
    wake = "dormant_wake_up"
    explanations = pd.DataFrame(
        {
            "strategy_1": ["dormant_wake_up", "prompt_response", "prompt_response", wake],
            "strategy_2": ["regular_follow_up", wake, "", "regular_follow_up"],
            "p": [0.9, 0.6, 0.7, 0.1],  # the last one is not at risk
            "var": [100.0, 10.0, 1.0, 1000.0],
        }
    )  # fmt: skip
    table = strategy_coverage(explanations, "p", "var", threshold=0.5).set_index("strategy")
    assert table.loc["dormant_wake_up", "customers_at_risk"] == 2
    assert table.loc["dormant_wake_up", "first_choice"] == 1
    assert table.loc["dormant_wake_up", "value_at_risk"] == 110.0
    assert table.loc["prompt_response", "share_of_at_risk"] == pytest.approx(2 / 3)
    assert table.index[0] == "dormant_wake_up"  # largest value at risk first
    full = strategy_coverage(explanations, "p", "var", threshold=0.5, catalog=catalog)
    assert len(full) == len(catalog.strategies) and "citation" in full.columns
    assert (full.set_index("strategy").loc["vip_dedicated_team", ["customers_at_risk"]] == 0).all()


def test_plots_write_pngs(churn_booster, churn_rows, tmp_path) -> None:
    contribs = feature_contributions(churn_booster, churn_rows[NAMES].iloc[:300])
    bars = plot_group_importance(group_importance(contribs, GROUP_OF), tmp_path / "groups.png")
    swarm = plot_beeswarm(contribs, churn_rows[NAMES].iloc[:300], tmp_path / "beeswarm.png")
    for path in (bars, swarm):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
