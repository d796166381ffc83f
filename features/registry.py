"""The feature registry: every model feature's name, group and one-line description.

Explanations aggregate SHAP contributions by group and map groups to strategies, so every feature
belongs to exactly one of GROUPS. The builder emits exactly these columns (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

from features.spec import FeatureSpec

GROUPS = (
    "recency",
    "value",
    "repayment",
    "engagement",
    "service",
    "satisfaction",
    "pricing",
    "relationship",
    "contract",
    "btyd",
)

# Human-readable state columns carried next to the features (not model inputs themselves; their
# ordinal encodings rel_*_rank are).
TIER = "tier"
LIFECYCLE_STATE = "lifecycle_state"
LOYALTY_LEVEL = "loyalty_level"
LOYALTY_STAGE = "loyalty_stage"
STATE_COLUMNS = (TIER, LIFECYCLE_STATE, LOYALTY_LEVEL, LOYALTY_STAGE)


def value_feature(value_window_days: int) -> str:
    """The name of the interest-income feature over the value window (the tier value)."""
    return f"loan_value_{value_window_days}"


@dataclass(frozen=True)
class FeatureDef:
    name: str
    group: str
    description: str
    # Days the feature looks back over, (t - lookback_days, t]; 0 = at t or to date. A window
    # reaching before the observation start (data.start) is not observed: NaN (features/build.py).
    lookback_days: int = 0


def _windowed(prefix: str, group: str, text: str, windows: tuple[int, ...]) -> list[FeatureDef]:
    return [FeatureDef(f"{prefix}_{w}", group, text.format(w=w), w) for w in windows]


def lookbacks(spec: FeatureSpec) -> dict[str, int]:
    """Feature name -> days it looks back over, for the features with a trailing window."""
    return {f.name: f.lookback_days for f in feature_registry(spec) if f.lookback_days}


def _fixed(group: str, items: list[tuple]) -> list[FeatureDef]:
    """(name, description) or (name, description, lookback_days) items of one group."""
    keys = ("name", "description", "lookback_days")
    return [FeatureDef(group=group, **dict(zip(keys, item, strict=False))) for item in items]


def feature_registry(spec: FeatureSpec) -> tuple[FeatureDef, ...]:
    """All features for the given windows, in the column order of the feature table."""
    return registry_for(spec.windows_days, spec.value_window_days)


def registry_for(ws: tuple[int, ...], value_window_days: int) -> tuple[FeatureDef, ...]:
    """``feature_registry`` from the two settings that name features: the trailing windows and
    the value window (for code that knows feature names, not a FeatureSpec)."""
    short = min(ws)
    defs: list[FeatureDef] = []
    defs += _fixed(
        "recency",
        [
            ("loan_days_since_last", "days since the latest loan origination"),
            ("loan_n_total", "loans originated to date"),
        ],
    )
    defs += _windowed("loan_n", "recency", "loans originated in the last {w} days", ws)
    defs += _windowed("loan_amount", "value", "principal originated in the last {w} days", ws)
    defs += _fixed(
        "value",
        [
            ("loan_avg_principal", "mean principal of the loans originated to date"),
            ("loan_open_n", "loans open at the snapshot"),
            ("loan_exposure", "principal of the loans open at the snapshot"),
            (
                f"loan_exposure_change_{short}",
                f"open principal now minus {short} days earlier",
                short,
            ),
            (
                value_feature(value_window_days),
                "interest income over the trailing value window (tier value)",
                value_window_days,
            ),
            ("loan_product_breadth", "distinct products taken to date"),
        ],
    )
    for prefix, text in [
        ("pay_n_due", "installments due in the last {w} days"),
        ("pay_on_time_rate", "share of installments due in the last {w} days paid by the due date"),
        ("pay_late_n", "installments settled late in the last {w} days"),
        ("pay_dpd_mean", "mean days past due of installments settled in the last {w} days"),
        ("pay_missed_n", "installments that became missed in the last {w} days"),
        ("pay_partial_n", "partial payments in the last {w} days"),
    ]:
        defs += _windowed(prefix, "repayment", text, ws)
    defs += _fixed(
        "repayment",
        [
            ("pay_overdue_n", "installments due and not settled at the snapshot"),
            ("pay_overdue_amount", "amount due and not settled at the snapshot"),
            ("pay_dpd_max_to_date", "worst days past due of any settled installment to date"),
            (
                "pay_on_time_trend",
                f"on-time rate of the last {short} days minus the {short} before",
                2 * short,
            ),
        ],
    )
    for prefix, text in [
        ("eng_n", "interactions of any kind in the last {w} days"),
        ("eng_rm_contacts", "relationship-manager visits and calls in the last {w} days"),
        ("eng_inquiries", "inquiries in the last {w} days"),
        ("eng_events", "events attended in the last {w} days"),
        ("eng_online", "online interactions in the last {w} days"),
        ("eng_marketing", "marketing contacts in the last {w} days"),
    ]:
        defs += _windowed(prefix, "engagement", text, ws)
    defs += _fixed(
        "engagement",
        [
            (
                "eng_days_since_rm_contact",
                "days since the latest relationship-manager visit or call",
            ),
            (
                "eng_trend",
                f"interactions in the last {short} days minus the {short} before",
                2 * short,
            ),
        ],
    )
    defs += _windowed("svc_complaints", "service", "complaints in the last {w} days", ws)
    defs += _windowed("svc_service", "service", "service requests in the last {w} days", ws)
    defs += _fixed("service", [("svc_days_since_complaint", "days since the latest complaint")])
    defs += _fixed(
        "satisfaction",
        [
            ("sat_latest", "latest satisfaction score (1-5)"),
            ("sat_change", "latest satisfaction minus the previous one"),
            ("sat_mean_365", "mean satisfaction over the last 365 days", 365),
            ("sat_nps_latest", "latest NPS answer (0-10)"),
            ("sat_nps_change", "latest NPS answer minus the previous one"),
            ("sat_nps_mean_365", "mean NPS answer over the last 365 days", 365),
            ("sat_days_since_survey", "days since the latest survey answer"),
        ],
    )
    defs += _fixed(
        "pricing",
        [
            ("price_rate_last", "interest rate of the latest loan"),
            ("price_spread_last", "latest loan's rate minus the book median for its product then"),
            (
                "price_spread_mean_365",
                "mean spread to the book median of loans of the last 365 days",
                365,
            ),
            ("price_gap_now", "latest loan's rate minus today's book median for its product"),
        ],
    )
    defs += _fixed(
        "relationship",
        [
            ("rel_tenure_days", "days since the customer became known"),
            ("rel_customer_days", "days since the first loan"),
            ("rel_tier_rank", "relationship tier: 0 potential, 1 ordinary, 2 core, 3 VIP"),
            ("rel_lifecycle_rank", "lifecycle: 0 potential, 1 new, 2 active, 3 dormant, 4 churned"),
            ("rel_loyalty_rank", "loyalty level: 0 low, 1 medium, 2 high"),
            ("rel_stage_rank", "loyalty stage: 0 Aware, 1 Appeal, 2 Ask, 3 Act, 4 Advocate"),
            (f"rel_maturing_{short}", f"open loans reaching contractual maturity in {short} days"),
        ],
    )
    defs += _windowed("rel_referrals", "relationship", "referrals made in the last {w} days", ws)
    defs += _contract(ws)
    defs += _fixed(
        "btyd",
        [
            ("btyd_p_alive", "BG/NBD probability that the customer is still alive"),
            ("btyd_expected_originations", "BG/NBD expected originations within the horizon"),
        ],
    )
    return tuple(defs)


def _contract(ws: tuple[int, ...]) -> list[FeatureDef]:
    """The contractual runway (features/runway.py); H is labels.horizon_days."""
    defs = _fixed(
        "contract",
        [
            ("con_days_to_last_maturity", "days to the latest scheduled maturity of an open loan"),
            (
                "con_days_to_first_maturity",
                "days to the earliest scheduled maturity of an open loan",
            ),
            ("con_open_n_h", "open loans scheduled to remain open at t+H"),
            ("con_open_principal_h", "principal of the open loans scheduled to remain at t+H"),
        ],
    )
    for w in ws:
        defs += _fixed(
            "contract",
            [
                (f"con_open_n_{w}", f"open loans scheduled to remain open in {w} days"),
                (f"con_open_principal_{w}", f"principal of the open loans remaining in {w} days"),
            ],
        )
    return defs + _fixed(
        "contract",
        [
            ("con_maturing_n_h", "open loans reaching maturity within H: up for renewal"),
            ("con_maturing_share_h", "share of the open principal maturing within H"),
            (
                "con_scheduled_outstanding_h",
                "scheduled principal still outstanding at t+H (amortisation by the schedule)",
            ),
            ("con_renewal_rate", "share of past loans that ran to maturity and were renewed"),
        ],
    )


def feature_names(spec: FeatureSpec) -> list[str]:
    return [f.name for f in feature_registry(spec)]


def feature_groups(spec: FeatureSpec) -> dict[str, str]:
    return {f.name: f.group for f in feature_registry(spec)}
