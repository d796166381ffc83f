"""The run report (issue 4, section 4): one self-contained HTML page per run. Pure: frames in,
a string out (``pipelines.io.save_text`` writes it; the stage logs it to MLflow).

``report_inputs_from`` gathers what the page shows from the pipeline's frames; ``render_report``
turns a ``ReportInputs`` into the page. Populations:

- KPIs, risk distribution and playbook: the report's snapshot ``as_of`` (default: the latest
  test snapshot). KPIs come from ``models.evaluation.kpis.compute_kpis`` (dimension all and
  tier); the risk distribution covers customers with a churn probability (active at ``as_of``).
- Tier transitions: pooled over every test snapshot, actual row shares and the tier model's
  mean predicted probabilities (the ``actual`` and ``lightgbm`` matrices of
  ``models.evaluation.metrics.transition_matrices``, without needing the Markov baseline's columns).
- Playbook: ``models.explain.views.strategy_coverage`` joined to the catalog (names, citation,
  action); example customers are the at-risk customers (churn probability >= the threshold)
  with the highest probability among those a strategy is recommended to, with their reasons.

The page has no script and loads nothing: CSS is inline, charts are inline SVG (matplotlib),
the global SHAP plots of the explain stage are embedded as base64 PNGs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID, ORIGINATION_DATE, PRINCIPAL
from features.labels import NEXT_TIER
from features.loans import effective_close_days, scheduled_maturity_days
from features.registry import LIFECYCLE_STATE, TIER
from features.spec import TIERS
from features.windows import day_numbers
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS
from models.explain.views import STRATEGY, strategy_citations
from models.serving.records import RegistryRecord
from models.strategies.catalog import Catalog
from pipelines.reporting import sections
from pipelines.reporting.html import page
from pipelines.reporting.inputs import (
    EXAMPLE_COLUMNS,
    KPI_COLUMNS,
    PORTFOLIO,
    RISK_COLUMNS,
    VALUE_AT_RISK,
    ReportInputs,
    RunInfo,
)

_STRATEGY_SLOT = re.compile(r"strategy_(\d+)")


def run_info_from(
    registry: RegistryRecord,
    data_fingerprint: str,
    created: str,
    currency: str = "",
    warnings: tuple[str, ...] = (),
) -> RunInfo:
    """RunInfo from the registry record (reports/registry.json: run id, versions, whether each
    became champion), the feature table's fingerprint and the train stage's warnings
    (``TrainSummary.data_fingerprint`` and ``.warnings``, reports/train.json)."""
    versions = {kind: entry.version for kind, entry in registry.models.items()}
    champions = {kind: entry.champion for kind, entry in registry.models.items()}
    return RunInfo(
        registry.run_id, versions, data_fingerprint, created, champions=champions,
        currency=currency, warnings=warnings,
    )  # fmt: skip


def _date(value) -> str:
    return str(pd.Timestamp(value).date())


def portfolio_kpis(kpis: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The KPI table's rows at ``as_of`` for the whole book and per tier (tiers in order)."""
    rows = kpis[pd.to_datetime(kpis[AS_OF]) == as_of]
    rows = rows[rows["dimension"].isin(["all", TIER])]
    if rows.empty:
        raise ValueError(f"the KPI table has no rows for the report's snapshot {_date(as_of)}")
    table = rows.assign(level=rows["level"].replace({"all": PORTFOLIO})).set_index("level")
    order = [t for t in TIERS if t in table.index] + [PORTFOLIO]
    return table.reindex(order).loc[:, list(KPI_COLUMNS)]


def transition_shares(predictions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """TIERS x TIERS: ``actual`` row shares of tier at t -> next tier (NaN rows: no customer of
    that tier), ``predicted`` the tier model's mean probabilities (as in
    models/evaluation/metrics.py)."""
    current = pd.Categorical(predictions[TIER], categories=TIERS)
    following = pd.Categorical(predictions[NEXT_TIER], categories=TIERS)
    counts = pd.crosstab(current, following, dropna=False).reindex(
        index=TIERS, columns=TIERS, fill_value=0
    )
    actual = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0)
    mean = predictions[list(NEXT_TIER_COLUMNS)].groupby(current, observed=False).mean()
    predicted = mean.set_axis(list(TIERS), axis=1).reindex(index=TIERS)
    return {"actual": actual.astype(float), "predicted": predicted.astype(float)}


def playbook_table(coverage: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Every catalog strategy with its names, citation, action and coverage (0 when unused),
    largest value at risk first (then most customers, then catalog order)."""
    unknown = set(coverage[STRATEGY]) - {s.id for s in catalog.strategies}
    if unknown:
        raise ValueError(f"coverage names strategies not in the catalog: {sorted(unknown)}")
    cited = strategy_citations(catalog).loc[:, [STRATEGY, "name_zh", "name_en", "citation"]]
    cited = cited.assign(action=[s.action for s in catalog.strategies])
    figures = ["customers_at_risk", "share_of_at_risk", "first_choice", "value_at_risk"]
    table = cited.merge(coverage.loc[:, [STRATEGY, *figures]], on=STRATEGY, how="left")
    table = table.fillna({c: 0 for c in figures}).astype(
        {"customers_at_risk": int, "first_choice": int, "value_at_risk": float}
    )
    order = ["value_at_risk", "customers_at_risk"]
    return table.sort_values(order, ascending=False, kind="stable", ignore_index=True)


def _with_states(explanations: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Explanations with tier, lifecycle_state and churn_probability (joined from the
    predictions on customer_id, as_of where the explanations lack them)."""
    wanted = [c for c in (TIER, LIFECYCLE_STATE, CHURN_PROBABILITY) if c not in explanations]
    if not wanted:
        return explanations
    states = predictions.loc[:, [CUSTOMER_ID, AS_OF, *wanted]]
    return explanations.merge(states, on=[CUSTOMER_ID, AS_OF], how="left", validate="many_to_one")


def example_customers(
    explanations: pd.DataFrame, threshold: float, per_strategy: int
) -> pd.DataFrame:
    """Per strategy, the ``per_strategy`` at-risk customers with the highest churn probability
    among those it is recommended to (any slot), with their reasons (EXAMPLE_COLUMNS)."""
    slots = sorted((int(m.group(1)), c) for c in explanations if (m := _STRATEGY_SLOT.fullmatch(c)))
    at_risk = explanations[explanations[CHURN_PROBABILITY].to_numpy(dtype=float) >= threshold]
    if VALUE_AT_RISK not in at_risk:
        at_risk = at_risk.assign(**{VALUE_AT_RISK: float("nan")})
    keep = [c for c in EXAMPLE_COLUMNS if c not in (STRATEGY, "slot") and c in at_risk]
    parts = [at_risk.loc[:, keep].assign(**{STRATEGY: at_risk[c], "slot": j}) for j, c in slots]
    long = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EXAMPLE_COLUMNS)
    long = long[long[STRATEGY].fillna("") != ""]
    long = long.sort_values([CHURN_PROBABILITY, "slot"], ascending=[False, True], kind="stable")
    top = long.groupby(STRATEGY, sort=False).head(per_strategy)
    return top.reindex(columns=list(EXAMPLE_COLUMNS)).fillna({"reason_2": "", "reason_3": ""})


def report_inputs_from(
    predictions: pd.DataFrame,
    explanations: pd.DataFrame,
    kpis: pd.DataFrame,
    coverage: pd.DataFrame,
    group_importance: pd.DataFrame,
    catalog: Catalog,
    run: RunInfo,
    *,
    images: Mapping[str, bytes] | None = None,
    as_of: str | pd.Timestamp | None = None,
    threshold: float,
    watch: float,
    examples_per_strategy: int = 3,
    survival: Mapping[str, pd.DataFrame] | None = None,
    plan: Mapping[str, pd.DataFrame] | None = None,
) -> ReportInputs:
    """The report's inputs from reports/predictions.parquet
    (``models.training.train.predict_test``), the explanations (customer_id, as_of, reason_j,
    strategy_j; churn_probability, tier and lifecycle_state are joined from the predictions when
    absent; an optional value_at_risk), the KPI table (``compute_kpis``), ``strategy_coverage``,
    ``group_importance`` and the catalog. ``threshold`` must be the one the coverage was computed
    with."""
    when = pd.Timestamp(as_of) if as_of is not None else pd.to_datetime(predictions[AS_OF]).max()
    at = predictions[pd.to_datetime(predictions[AS_OF]) == when]
    risk = at[at[CHURN_PROBABILITY].notna()].loc[:, list(RISK_COLUMNS)].reset_index(drop=True)
    explained = _with_states(explanations, predictions)
    explained = explained[pd.to_datetime(explained[AS_OF]) == when]
    at_risk = explained[explained[CHURN_PROBABILITY] >= threshold]
    total = float(at_risk[VALUE_AT_RISK].sum()) if VALUE_AT_RISK in explained else None
    return ReportInputs(
        run=run,
        as_of=_date(when),
        kpis=portfolio_kpis(kpis, when),
        risk=risk,
        transitions=transition_shares(predictions),
        transition_rows=predictions[TIER].value_counts().reindex(TIERS, fill_value=0),
        drivers=group_importance.sort_values("mean_abs", ascending=False, kind="stable"),
        playbook=playbook_table(coverage, catalog),
        examples=example_customers(explained, threshold, examples_per_strategy),
        images=dict(images or {}),
        snapshots=tuple(sorted({_date(t) for t in predictions[AS_OF].unique()})),
        at_risk_threshold=threshold,
        watch_threshold=watch,
        value_at_risk_total=total,
        survival=survival,
        plan=plan,
    )


def survival_view(
    predictions: pd.DataFrame,
    incidence: pd.DataFrame,
    at_risk: pd.DataFrame | None = None,
    loans: pd.DataFrame | None = None,
    months: int = 12,
) -> dict[str, pd.DataFrame]:
    """The "When and why" tables: the Aalen–Johansen incidence by tier (the curves), the cause
    mix and the act-by calendar. With ``at_risk`` (the explain stage's at-risk customers, with
    the survival columns) the mix is the at-risk book's, and with ``loans`` too the calendar of
    their loans maturing in the next ``months`` months (``maturity_calendar``); otherwise both
    come from the survival stage's latest test snapshot."""
    latest = pd.to_datetime(predictions[AS_OF]) == pd.to_datetime(predictions[AS_OF]).max()
    at = predictions[latest] if at_risk is None or "churn_cause" not in at_risk else at_risk
    causes = [c for c in incidence.columns if c not in ("tier", "month")]
    mix = pd.DataFrame({
        "cause": causes,
        "customers": [int((at["churn_cause"] == c).sum()) for c in causes],
        "mean_incidence_12m": [float(at.loc[at["churn_cause"] == c, f"p_{c}_12m"].mean())
                               if (at["churn_cause"] == c).any() else float("nan")
                               for c in causes],
    })  # fmt: skip
    act = pd.to_datetime(at["act_by"]).dt.strftime("%Y-%m")
    act_calendar = (
        act.value_counts().sort_index().rename_axis("month").reset_index(name="customers")
    )
    view = {"incidence": incidence, "mix": mix, "calendar": act_calendar,
            "book": pd.DataFrame({"at_risk": [at_risk is not None]})}  # fmt: skip
    if at_risk is not None and loans is not None and len(at_risk):
        as_of = pd.Timestamp(pd.to_datetime(at_risk[AS_OF]).max())
        view["maturities"] = maturity_calendar(loans, at_risk, as_of, months)
    return view


def maturity_calendar(
    loans: pd.DataFrame, at_risk: pd.DataFrame, as_of: pd.Timestamp, months: int = 12
) -> pd.DataFrame:
    """By month of (as_of, as_of + ``months`` months]: the loans of the at-risk customers open at
    ``as_of`` whose contractual maturity (origination + term) falls in it, their principal, the
    customers, and how many of these have run-off as their most likely cause (the renewal
    offers to make before the date). Only what is known at ``as_of``: open then, the schedule."""
    day = int(day_numbers(pd.Series([as_of]))[0])
    end = int(day_numbers(pd.Series([as_of + pd.DateOffset(months=months)]))[0])
    maturity = scheduled_maturity_days(loans)
    open_now = (day_numbers(loans[ORIGINATION_DATE]) <= day) & (effective_close_days(loans) > day)
    cause = at_risk.assign(**{CUSTOMER_ID: at_risk[CUSTOMER_ID].astype(str)}).set_index(
        CUSTOMER_ID
    )["churn_cause"]
    owner = loans[CUSTOMER_ID].astype(str)
    hit = open_now & owner.isin(cause.index).to_numpy() & (maturity > day) & (maturity <= end)
    due = pd.DataFrame({
        "month": pd.to_datetime(maturity[hit], unit="D").strftime("%Y-%m"),
        CUSTOMER_ID: owner[hit].to_numpy(),
        PRINCIPAL: loans.loc[hit, PRINCIPAL].to_numpy(dtype=float),
    })  # fmt: skip
    due = due.assign(runoff=due[CUSTOMER_ID].map(cause).eq("runoff"))
    grouped = due.groupby("month", sort=True)
    runoff = due[due["runoff"]].groupby("month")[CUSTOMER_ID].nunique()
    table = pd.DataFrame({
        "loans": grouped.size(),
        "principal": grouped[PRINCIPAL].sum(),
        "customers": grouped[CUSTOMER_ID].nunique(),
    })  # fmt: skip
    table = table.assign(runoff_customers=runoff.reindex(table.index, fill_value=0))
    return (
        table.rename_axis("month")
        .reset_index()
        .astype({"loans": int, "customers": int, "runoff_customers": int})
    )


def render_report(inputs: ReportInputs) -> str:
    """The whole report as one self-contained HTML document (sections #kpis, #risk,
    #transitions, #drivers, #playbook)."""
    body = [
        sections.kpi_section(inputs),
        sections.risk_section(inputs),
        sections.transition_section(inputs),
        sections.driver_section(inputs),
        sections.playbook_section(inputs),
        sections.when_section(inputs),
        sections.plan_section(inputs),
    ]
    return page(inputs.run, inputs.as_of, [part for part in body if part])
