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

from features.contract import AS_OF, CUSTOMER_ID
from features.labels import NEXT_TIER
from features.registry import LIFECYCLE_STATE, TIER
from features.spec import TIERS
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


def survival_view(predictions: pd.DataFrame, incidence: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The "When and why" tables from the survival stage's test outputs (latest snapshot) and
    its Aalen–Johansen incidence by tier (reports/survival_plots/incidence_by_tier.csv)."""
    at = predictions[pd.to_datetime(predictions[AS_OF]) == pd.to_datetime(predictions[AS_OF]).max()]
    causes = [c for c in incidence.columns if c not in ("tier", "month")]
    mix = pd.DataFrame({
        "cause": causes,
        "customers": [int((at["churn_cause"] == c).sum()) for c in causes],
        "mean_incidence_12m": [float(at[f"p_{c}_12m"].mean()) for c in causes],
    })  # fmt: skip
    months = pd.to_datetime(at["act_by"]).dt.strftime("%Y-%m")
    calendar = months.value_counts().sort_index().rename_axis("month").reset_index(name="customers")
    return {"incidence": incidence, "mix": mix, "calendar": calendar}


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
