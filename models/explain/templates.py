"""Reason templates: how each feature is worded in a reason code (models/explain/reasons.py
renders them).

A ``ReasonTemplate`` per feature, or per windowed family (key ``"svc_complaints_"`` serves
``svc_complaints_90``, ``svc_complaints_365`` ... with ``{w}`` the window):

- ``{v}`` is the value formatted by ``kind``: count ``3``, share ``62%``, percent ``7.25%``,
  pp ``0.8 pp``, days ``210``, amount ``1,230,000`` (three significant figures;
  ``feature_templates`` puts the params' currency before it: ``CNY 1,230,000``),
  number ``3.6``, label (an ordinal code read through ``labels``);
- ``{s}`` / ``{ies}`` pluralise (``"" / "s"``, ``"y" / "ies"``) unless ``{v}`` reads ``1``;
- ``negative`` words a value below zero, shown as its magnitude ("down 25 pp" vs "up 25 pp");
- ``missing`` words a missing value (missing values have SHAP contributions too);
- ``zero`` words a value of exactly 0 ("no referral in the last 365 days");
- ``{short}`` is the shortest window (trend features compare it with the one before).

A feature without a template falls back to its registry description: ``"<description>: {v}"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from features.spec import LIFECYCLE_STATES, LOYALTY_LEVELS, LOYALTY_STAGES, TIERS

KINDS = ("count", "share", "percent", "pp", "days", "amount", "number", "label")


@dataclass(frozen=True)
class ReasonTemplate:
    text: str
    kind: str = "number"
    negative: str | None = None
    missing: str | None = None
    labels: tuple[str, ...] = ()
    zero: str | None = None  # words a value of exactly 0 ("no open loan"), when given

    def __post_init__(self) -> None:
        if self.kind not in KINDS or "{v}" not in self.text:
            raise ValueError(f"template {self.text!r}: kind in {KINDS} and a {{v}} are required")


T = ReasonTemplate
TEMPLATES: dict[str, ReasonTemplate] = {
    # recency
    "loan_days_since_last": T("{v} day{s} since the latest loan", "days", missing="no loan yet"),
    "loan_n_total": T("only {v} loan{s} taken to date", "count", zero="no loan taken yet"),
    "loan_n_": T(
        "only {v} new loan{s} in the last {w} days",
        "count",
        zero="no new loan in the last {w} days",
    ),
    # value
    "loan_amount_": T("{v} borrowed in the last {w} days", "amount"),
    "loan_avg_principal": T("average loan size {v}", "amount", missing="no loan yet"),
    "loan_open_n": T("only {v} open loan{s}", "count", zero="no open loan"),
    "loan_exposure": T("open principal {v}", "amount"),
    "loan_exposure_change_": T(
        "open principal up {v} over the last {w} days",
        "amount",
        negative="open principal down {v} over the last {w} days",
    ),
    "loan_value_": T("interest income {v} over the last {w} days", "amount"),
    "loan_product_breadth": T(
        "only {v} distinct product{s} taken", "count", zero="no product taken"
    ),
    # repayment
    "pay_n_due_": T("{v} installment{s} due in the last {w} days", "count"),
    "pay_on_time_rate_": T(
        "on-time repayment {v} over the last {w} days",
        "share",
        missing="no installment due in the last {w} days",
    ),
    "pay_late_n_": T(
        "{v} late installment{s} in the last {w} days",
        "count",
        zero="no late installment in the last {w} days",
    ),
    "pay_dpd_mean_": T(
        "on average {v} day{s} past due over the last {w} days",
        "number",
        missing="no installment settled in the last {w} days",
    ),
    "pay_missed_n_": T("{v} missed installment{s} in the last {w} days", "count"),
    "pay_partial_n_": T("{v} partial payment{s} in the last {w} days", "count"),
    "pay_overdue_n": T("{v} installment{s} overdue now", "count"),
    "pay_overdue_amount": T("{v} overdue now", "amount"),
    "pay_dpd_max_to_date": T(
        "worst delay to date {v} day{s} past due", "days", missing="no installment settled yet"
    ),
    "pay_on_time_trend": T(
        "on-time repayment up {v} (last {short} days vs the {short} before)",
        "pp",
        negative="on-time repayment down {v} (last {short} days vs the {short} before)",
        missing="no on-time trend (too few installments due)",
    ),
    # engagement
    "eng_n_": T(
        "only {v} interaction{s} in the last {w} days",
        "count",
        zero="no interaction in the last {w} days",
    ),
    "eng_rm_contacts_": T(
        "only {v} relationship-manager contact{s} in the last {w} days",
        "count",
        zero="no relationship-manager contact in the last {w} days",
    ),
    "eng_inquiries_": T("{v} inquir{ies} in the last {w} days", "count"),
    "eng_events_": T(
        "only {v} event{s} attended in the last {w} days",
        "count",
        zero="no event attended in the last {w} days",
    ),
    "eng_online_": T(
        "only {v} online interaction{s} in the last {w} days",
        "count",
        zero="no online interaction in the last {w} days",
    ),
    "eng_marketing_": T("{v} marketing contact{s} in the last {w} days", "count"),
    "eng_days_since_rm_contact": T(
        "no relationship-manager contact for {v} day{s}",
        "days",
        missing="no relationship-manager contact on record",
    ),
    "eng_trend": T(
        "{v} more interaction{s} in the last {short} days than the {short} before",
        "count",
        negative="{v} fewer interaction{s} in the last {short} days than the {short} before",
    ),
    # service
    "svc_complaints_": T("{v} complaint{s} in the last {w} days", "count"),
    "svc_service_": T("{v} service request{s} in the last {w} days", "count"),
    "svc_days_since_complaint": T(
        "latest complaint {v} day{s} ago", "days", missing="no complaint on record"
    ),
    # satisfaction
    "sat_latest": T("latest satisfaction score {v}/5", missing="no satisfaction score on record"),
    "sat_change": T(
        "satisfaction up {v} point{s} at the latest survey",
        negative="satisfaction down {v} point{s} at the latest survey",
        missing="no earlier satisfaction score to compare",
    ),
    "sat_mean_": T(
        "average satisfaction {v}/5 over the last {w} days",
        missing="no satisfaction score in the last {w} days",
    ),
    "sat_nps_latest": T("latest NPS answer {v}/10", missing="no NPS answer on record"),
    "sat_nps_change": T(
        "NPS answer up {v} point{s} at the latest survey",
        negative="NPS answer down {v} point{s} at the latest survey",
        missing="no earlier NPS answer to compare",
    ),
    "sat_nps_mean_": T(
        "average NPS answer {v}/10 over the last {w} days",
        missing="no NPS answer in the last {w} days",
    ),
    "sat_days_since_survey": T(
        "no survey answer for {v} day{s}", "days", missing="never answered a survey"
    ),
    # pricing
    "price_rate_last": T("latest loan at {v} interest", "percent", missing="no loan yet"),
    "price_spread_last": T(
        "rate {v} above the book median",
        "pp",
        negative="rate {v} below the book median",
        missing="no loan yet",
    ),
    "price_spread_mean_": T(
        "loans of the last {w} days priced {v} above the book median",
        "pp",
        negative="loans of the last {w} days priced {v} below the book median",
        missing="no loan in the last {w} days",
    ),
    "price_gap_now": T(
        "rate {v} above today's book median",
        "pp",
        negative="rate {v} below today's book median",
        missing="no loan yet",
    ),
    # relationship
    "rel_tenure_days": T("known for {v} day{s}", "days"),
    "rel_customer_days": T("borrower for {v} day{s}", "days", missing="no loan yet"),
    "rel_tier_rank": T("tier {v}", "label", labels=TIERS),
    "rel_lifecycle_rank": T("lifecycle state {v}", "label", labels=LIFECYCLE_STATES),
    "rel_loyalty_rank": T("loyalty level {v}", "label", labels=LOYALTY_LEVELS),
    "rel_stage_rank": T("loyalty stage {v}", "label", labels=LOYALTY_STAGES),
    "rel_maturing_": T("{v} loan{s} reaching maturity within {w} days", "count"),
    "rel_referrals_": T(
        "only {v} referral{s} in the last {w} days",
        "count",
        zero="no referral in the last {w} days",
    ),
    # contract: the contractual runway of the open loans (features/runway.py)
    "con_days_to_last_maturity": T(
        "last loan matures in {v} day{s}, nothing scheduled after",
        "days",
        negative="every open loan is past its maturity, the last by {v} day{s}",
        missing="no open loan with a scheduled maturity",
    ),
    "con_days_to_first_maturity": T(
        "next loan matures in {v} day{s}",
        "days",
        negative="a loan is {v} day{s} past its maturity and still open",
        missing="no open loan with a scheduled maturity",
    ),
    "con_open_n_h": T("{v} loan{s} scheduled to stay open beyond the horizon", "count"),
    "con_open_principal_h": T("{v} of principal scheduled to stay beyond the horizon", "amount"),
    "con_open_n_": T("{v} loan{s} scheduled to stay open beyond {w} days", "count"),
    "con_open_principal_": T("{v} of principal scheduled to stay beyond {w} days", "amount"),
    "con_maturing_n_h": T("{v} loan{s} up for renewal within the horizon", "count"),
    "con_maturing_share_h": T(
        "{v} of the open principal matures within the horizon",
        "share",
        missing="no open principal",
    ),
    "con_scheduled_outstanding_h": T(
        "{v} scheduled to be outstanding at the horizon's end", "amount"
    ),
    "con_renewal_rate": T(
        "renewed {v} of past loans at maturity",
        "share",
        missing="no past loan has reached maturity yet",
    ),
    # btyd
    "btyd_p_alive": T("BG/NBD probability of still being active {v}", "share"),
    "btyd_expected_originations": T("only {v} new loan{s} expected within the horizon (BG/NBD)"),
}
del T
