"""The report's five sections (#kpis, #risk, #transitions, #drivers, #playbook), each a pure
function of ``ReportInputs`` returning HTML; building blocks in ``pipelines.reporting.html``."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID
from features.registry import LIFECYCLE_STATE, TIER
from features.spec import LIFECYCLE_STATES, TIERS
from models.columns import CHURN_PROBABILITY
from pipelines.reporting import charts
from pipelines.reporting.html import (
    Html,
    card,
    cell,
    figure,
    image,
    money,
    num,
    pct,
    section,
    table,
)
from pipelines.reporting.inputs import ReportInputs

BANDS = ("low", "watch", "at risk")
OPEN_CARDS = 5  # strategy cards shown open; the others are collapsed <details>
KPI_FORMATS = {
    "customers": num,
    "active": num,
    "churn_rate": pct,
    "predicted_churn_rate": pct,
    "retention_rate": pct,
    "clv_mean": num,
    "clv_total": num,
    "nps": lambda x: num(x, 1),
    "csi": lambda x: num(x, 1),
}
KPI_HEADER = ("Tier", "Customers", "Active", "Churn rate", "Predicted", "Retention", "Mean CLV",
              "Total CLV", "NPS", "CSI")  # fmt: skip
MOVES = ("stay", "upgrade", "downgrade")
EXAMPLE_HEADER = ("Customer", "Tier", "Lifecycle", "Churn p", "Value at risk", "Why (top drivers)")
PLAYBOOK_HEADER = ("Strategy", "At-risk customers", "Share of at-risk", "First choice",
                   "Value at risk")  # fmt: skip


def _chart(fig, name: str, caption: str) -> Html:
    return figure(charts.svg_markup(fig, name), caption)


def _money(inputs: ReportInputs):
    currency = inputs.run.currency
    return lambda x: money(x, currency)


def _kpi_cards(inputs: ReportInputs) -> str:
    book, risk, cut = inputs.kpis.loc["portfolio"], inputs.risk, inputs.at_risk_threshold
    amount = _money(inputs)
    at_risk = int((risk[CHURN_PROBABILITY] >= cut).sum())
    share = pct(at_risk / max(len(risk), 1))
    cards = [
        card("Customers", num(book["customers"]), f"{num(book['active'])} active"),
        card(f"At risk (p ≥ {cut:.0%})", num(at_risk), f"{share} of scored", alert=True),
        card("Churn rate", pct(book["churn_rate"]), f"model {pct(book['predicted_churn_rate'])}"),
        card("Retention rate", pct(book["retention_rate"]), "active customers kept"),
        card("Expected CLV", amount(book["clv_total"]), f"mean {amount(book['clv_mean'])}"),
        card("NPS", num(book["nps"], 1), "promoters − detractors"),
        card("CSI", num(book["csi"], 1), "satisfaction, 0–100"),
    ]  # fmt: skip
    if inputs.value_at_risk_total is not None:
        total = amount(inputs.value_at_risk_total)
        cards.insert(2, card("Value at risk", total, "of at-risk customers", alert=True))
    return f'<div class="cards">{"".join(cards)}</div>'


def kpi_section(inputs: ReportInputs) -> str:
    k = inputs.kpis
    formats = KPI_FORMATS | {"clv_mean": _money(inputs), "clv_total": _money(inputs)}
    rows = [[level, *(f(r[c]) for c, f in formats.items())] for level, r in k.iterrows()]
    lead = (
        f"The book at snapshot {inputs.as_of}: actual churn over the horizon, the model's "
        "predicted rate, expected customer lifetime value and survey scores (document 004)."
    )
    scored = k.drop(index="portfolio").query("active > 0")
    caption = "Churn rate and CLV of active customers by tier."
    chart = _chart(charts.kpi_chart(scored, inputs.run.currency), "kpis", caption)
    kpi_table = table(KPI_HEADER, rows, range(1, len(KPI_HEADER)), total_last=True)
    return section("kpis", lead, _kpi_cards(inputs), kpi_table, chart)


def _levels(risk: pd.DataFrame, column: str) -> list[str]:
    order = TIERS if column == TIER else LIFECYCLE_STATES
    present = set(risk[column].astype(str))
    return [x for x in order if x in present] + sorted(present - set(order))


def risk_bands(risk: pd.DataFrame, column: str, watch: float, cut: float) -> pd.DataFrame:
    """Customers per level of ``column`` (rows) in each risk band (columns BANDS): low below
    ``watch``, watch in [watch, cut), at risk from ``cut``."""
    p = risk[CHURN_PROBABILITY].to_numpy(dtype=float)
    band = pd.cut(p, [-math.inf, watch, cut, math.inf], right=False, labels=list(BANDS))
    return pd.crosstab(risk[column].astype(str).to_numpy(), band, dropna=False)


def _risk_table(risk: pd.DataFrame, column: str, counts: pd.DataFrame) -> str:
    mean = risk.groupby(risk[column].astype(str))[CHURN_PROBABILITY].mean()
    header = ["Level", "Scored", "Mean p", *(b.capitalize() for b in BANDS), "Share at risk"]
    rows = [
        [x, num(t.sum()), pct(mean.get(x)), *map(num, t), pct(t.iloc[-1] / max(t.sum(), 1))]
        for x, t in counts.iterrows()
    ]
    title = f"<h3>By {cell(column.replace('_', ' '))}</h3>"
    return f"<div>{title}{table(header, rows, range(1, len(header)))}</div>"


def risk_section(inputs: ReportInputs) -> str:
    risk, watch, cut = inputs.risk, inputs.watch_threshold, inputs.at_risk_threshold
    levels = {c: _levels(risk, c) for c in (TIER, LIFECYCLE_STATE)}
    counts = {c: risk_bands(risk, c, watch, cut).reindex(names) for c, names in levels.items()}
    shares = {c: t.div(t.sum(axis=1).clip(lower=1), axis=0) for c, t in counts.items()}
    caption = "Distribution (boxes: quartiles; whiskers: 1.5 IQR) and risk bands."
    chart = _chart(charts.risk_chart(risk, shares, levels, cut), "risk", caption)
    tables = "".join(_risk_table(risk, c, counts[c]) for c in levels)
    lead = (
        f"Calibrated churn probability of the {len(risk):,} customers scored at "
        f"{inputs.as_of}. Bands: low below {watch:.0%}, watch {watch:.0%} to {cut:.0%}, "
        f"at risk from {cut:.0%} (the dashed line)."
    )
    return section("risk", lead, chart, f'<div class="grid2">{tables}</div>')


def transition_moves(matrix: pd.DataFrame) -> pd.DataFrame:
    """Per tier at t: the share that stays, moves up and moves down (from TIERS x TIERS)."""
    values = matrix.to_numpy(dtype=float)
    rows = [
        (values[i, i], values[i, i + 1 :].sum(), values[i, :i].sum()) for i in range(len(values))
    ]
    return pd.DataFrame(rows, index=matrix.index, columns=list(MOVES))


def transition_section(inputs: ReportInputs) -> str:
    actual, predicted = inputs.transitions["actual"], inputs.transitions["predicted"]
    a, p = transition_moves(actual), transition_moves(predicted)
    support = inputs.transition_rows.reindex(actual.index, fill_value=0)
    header = [
        "Tier at t",
        "Rows",
        *(m.capitalize() for m in MOVES),
        *(f"Predicted {m}" for m in MOVES),
    ]
    rows = [[t, num(support[t]), *map(pct, a.loc[t]), *map(pct, p.loc[t])] for t in actual.index]
    snaps = ", ".join(inputs.snapshots) or "the test snapshots"
    lead = (
        f"Where customers of each tier are one horizon later, pooled over {snaps}: actual "
        "shares and the tier model's mean predicted probabilities."
    )
    caption = "Rows: tier at t; columns: tier at t + H; cells: share of the row."
    chart = _chart(charts.transition_chart(dict(inputs.transitions)), "transitions", caption)
    return section("transitions", lead, chart, table(header, rows, range(1, len(header))))


def driver_section(inputs: ReportInputs) -> str:
    d = inputs.drivers
    header = ["Feature group", "Mean |SHAP|", "Mean (signed)", "Pushes risk up for"]
    rows = [
        [r.group, num(r.mean_abs, 3), f"{r.mean:+.3f}", pct(r.share_up, 0)] for r in d.itertuples()
    ]
    caption = "Mean absolute contribution per feature group."
    chart = _chart(charts.drivers_chart(d), "drivers", caption)
    images = "".join(image(caption, data) for caption, data in inputs.images.items())
    lead = (
        "What moves the churn model: TreeSHAP contributions summed by feature group "
        "(log-odds), averaged in absolute value over the scored customers."
    )
    grid = f'<div class="grid2">{chart}{table(header, rows, (1, 2, 3))}</div>'
    return section("drivers", lead, grid, images)


def _name(zh: str, en: str, anchor: str = "") -> Html:
    zh_html = f'<span class="zh" lang="zh-Hans">{cell(zh)}</span>'
    if anchor:
        zh_html = f'<a href="#{cell(anchor)}">{zh_html}</a>'
    return Html(f'{zh_html}<br><span class="en">{cell(en)}</span>')


def _reasons(r: Mapping[str, object]) -> Html:
    items = [cell(r[c]) for c in ("reason_1", "reason_2", "reason_3") if str(r[c] or "")]
    return Html("<ol class=reasons>" + "".join(f"<li>{x}</li>" for x in items) + "</ol>")


def _example_rows(examples: pd.DataFrame, currency: str) -> list[list[object]]:
    return [
        [r[CUSTOMER_ID], r[TIER], r[LIFECYCLE_STATE],
         Html(f'<span class="prob">{pct(r[CHURN_PROBABILITY])}</span>'),
         money(r["value_at_risk"], currency), _reasons(r)]
        for _, r in examples.iterrows()
    ]  # fmt: skip


def _strategy_card(s: pd.Series, examples: pd.DataFrame, is_open: bool, currency: str) -> str:
    badges = (
        f'<span class="badge risk">{num(s.customers_at_risk)} at-risk customers</span>'
        f'<span class="badge">{pct(s.share_of_at_risk)} of at-risk</span>'
        f'<span class="badge">first choice for {num(s.first_choice)}</span>'
        f'<span class="badge risk">value at risk {cell(money(s.value_at_risk, currency))}</span>'
    )
    rows = _example_rows(examples, currency)
    examples_html = table(EXAMPLE_HEADER, rows, (3, 4)) if rows else ""
    head = f'<details class="strategy" id="strategy-{cell(s.strategy)}"{" open" * is_open}>'
    return (
        f"{head}<summary><h3>{_name(s.name_zh, s.name_en)}</h3>"
        f'<div class="badges">{badges}</div></summary><p class="action">{cell(s.action)}</p>'
        f"<cite>Source: {cell(s.citation)}</cite>{examples_html}</details>"
    )


def _unused(unused: pd.DataFrame) -> str:
    if unused.empty:
        return ""
    items = "".join(f"<li>{_name(s.name_zh, s.name_en)}</li>" for s in unused.itertuples())
    return (
        f'<details class="more"><summary>{len(unused)} catalog strategies not recommended to an '
        f"at-risk customer this run</summary><ul>{items}</ul></details>"
    )


def playbook_section(inputs: ReportInputs) -> str:
    book, ex, currency = inputs.playbook, inputs.examples, inputs.run.currency
    used, unused = book[book.customers_at_risk > 0], book[book.customers_at_risk == 0]
    rows = [
        [_name(s.name_zh, s.name_en, f"strategy-{s.strategy}"), num(s.customers_at_risk),
         pct(s.share_of_at_risk), num(s.first_choice), money(s.value_at_risk, currency)]
        for s in used.itertuples()
    ]  # fmt: skip
    cards = "".join(
        _strategy_card(s, ex[ex["strategy"] == s.strategy], i < OPEN_CARDS, currency)
        for i, (_, s) in enumerate(used.iterrows())
    )
    lead = (
        "What to do: the catalog strategies recommended to customers with churn probability "
        f"≥ {inputs.at_risk_threshold:.0%}, with their source in the loyalty documents."
    )
    caption = "Value at risk per strategy (a customer counts for each of their strategies)."
    chart = _chart(charts.playbook_chart(book, currency=currency), "playbook", caption)
    summary = table(PLAYBOOK_HEADER, rows, (1, 2, 3, 4))
    title = "<h3>Strategies and example customers</h3>"
    return section("playbook", lead, chart, summary, title, cards, _unused(unused))


def when_section(inputs: ReportInputs) -> str:
    """When and why (docs/survival.md): cumulative incidence by tier and cause, the cause mix of
    the book at the snapshot, and when to act over the next 12 months; empty without the
    survival stage."""
    if inputs.survival is None:
        return ""
    view = inputs.survival
    inc = view["incidence"]
    causes = [c for c in inc.columns if c not in ("tier", "month")]
    at = inc[inc["month"].isin((3, 6, 12))]
    rows = [[r["tier"], int(r["month"]), *(pct(r[c]) for c in causes)] for _, r in at.iterrows()]
    curves = table(("Tier", "Months", *causes), rows, numeric=range(1, 2 + len(causes)))
    mix = view["mix"]
    mix_rows = [[r["cause"], num(r["customers"]), pct(r["mean_incidence_12m"])]
                for _, r in mix.iterrows()]  # fmt: skip
    mix_table = table(("Most likely cause", "Customers", "Mean 12-month incidence"), mix_rows,
                      numeric=(1, 2))  # fmt: skip
    cal = view["calendar"]
    cal_rows = [[r["month"], num(r["customers"])] for _, r in cal.iterrows()]
    cal_table = table(("Act by (month)", "Customers"), cal_rows, numeric=(1,))
    caption = "Cumulative incidence by cause and tier (Aalen–Johansen, training rows)"
    chart = _chart(charts.incidence_chart(inc), "incidence", caption)
    whose = ("at-risk customers of the latest snapshot" if bool(view["book"]["at_risk"].iloc[0])
             else "customers of the survival stage's latest test snapshot")  # fmt: skip
    parts = [chart, curves, f'<div class="grid2">{mix_table}{cal_table}</div>']
    maturities = view.get("maturities")
    if maturities is not None:
        money = _money(inputs)
        due_rows = [[r["month"], num(r["loans"]), money(r["principal"]), num(r["customers"]),
                     num(r["runoff_customers"])] for _, r in maturities.iterrows()]  # fmt: skip
        parts.append("<h3>Maturities at risk over the next 12 months</h3>")
        header = ("Month", "Loans maturing", "Principal", "At-risk customers",
                  "of which likely run-off")  # fmt: skip
        parts.append(table(header, due_rows, numeric=(1, 2, 3, 4)))
    lead = (
        "Cumulative incidence of each churn cause by tier (Aalen–Johansen, training snapshots); "
        f"the cause mix of the {num(mix['customers'].sum())} {whose} by their most likely "
        "cause; the calendar of act-by dates (60 days before the likely churn month of the "
        "most likely cause); and the contractual maturities of the at-risk customers' open "
        "loans over the next 12 months (renewal offers are due before them)."
    )
    return section("when", lead, *parts)


def plan_section(inputs: ReportInputs) -> str:
    """Action plan (docs/uplift.md): the incremental-profit curve (budget against the expected
    saved value net of cost, down the plan's ranking) and the plan's mix of strategies by tier;
    empty without the uplift stage's plan."""
    if inputs.plan is None:
        return ""
    plan, curve = inputs.plan["plan"], inputs.plan["curve"]
    taken = plan[plan["action"] != "none"]
    cur = inputs.run.currency
    points = curve.iloc[np.unique(np.linspace(0, len(curve) - 1, 11).astype(int))]
    curve_rows = [[num(r["customers"]), money(r["budget"], cur), money(r["saved_value"], cur)]
                  for _, r in points.iterrows()]  # fmt: skip
    curve_table = table(("Customers treated", "Budget", "Expected saved value (net)"),
                        curve_rows, numeric=(0, 1, 2))  # fmt: skip
    tiers = _mix_table(taken, "tier", "Strategy by tier")
    causes = taken.get("churn_cause", pd.Series(dtype=object))
    known = causes.notna().any()
    by_cause = _mix_table(taken, "churn_cause", "Strategy by likely churn cause") if known else ""
    cause_note = (
        "and by the most likely churn cause (the tierwise-survival champion's answer)."
        if known else "(no survival champion answered: the mix by cause is not shown)."
    )  # fmt: skip
    lead = (
        f"Uplift decides whom and which: {num(len(taken))} of {num(len(plan))} active customers "
        f"get a strategy, for {money(taken['cost'].sum(), cur)} and an expected saved value of "
        f"{money(taken['expected_saved_value'].sum(), cur)} net of cost{_basis_note(inputs.plan)}. "
        "The curve follows the plan's ranking (saved value per unit of cost) with no budget "
        f"limit; the mix is the plan's strategies by tier {cause_note} The expected values are "
        "the uplift model's own estimates, and a plan picks the customers whose estimates are "
        "highest: read them as a ranking, not a forecast (on the synthetic world they overstate "
        "the simulated churners saved about fourfold; docs/uplift.md)."
    )
    return section("plan", lead, f'<div class="grid2">{curve_table}{tiers}</div>', by_cause)


def _basis_note(plan: dict) -> str:
    """How the saved value was valued (the uplift stage's value basis, docs/uplift.md)."""
    basis, reason = plan.get("value_basis"), plan.get("value_basis_reason", "")
    if basis == "survival":
        return f", on the survival-weighted CLV ({reason})"
    if basis == "geometric":
        return f", on the geometric CLV ({reason})"
    return ""


def _mix_table(taken: pd.DataFrame, by: str, caption: str) -> str:
    """Customers per (strategy, ``by``) of the plan's chosen rows."""
    mix = pd.crosstab(taken["action"], taken[by]) if len(taken) else pd.DataFrame()
    rows = [[a, *(num(v) for v in r)] for a, r in mix.iterrows()]
    return f"<h3>{caption}</h3>" + table(
        ("Strategy", *mix.columns), rows, numeric=range(1, len(mix.columns) + 1)
    )
