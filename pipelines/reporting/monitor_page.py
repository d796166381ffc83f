"""The monitor's self-contained HTML page: the verdict and its reasons, estimated and realised
performance, drift by group and feature, data quality. Pure: the report dict (models/monitoring/
report.py) in, a string out; styles from pipelines/reporting/html.py, nothing from the network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.reporting.html import CSS, Html, card, cell, num, table

SECTIONS = {
    "verdict": "Verdict",
    "performance": "Performance",
    "drift": "Drift",
    "quality": "Data quality",
}
COLOURS = {"ok": "#2e7d4f", "warn": "#b7791f", "retrain": "#c0392b"}


def _interval(metric: Mapping[str, Any]) -> str:
    return f"{num(metric['value'], 3)} [{num(metric['low'], 3)}, {num(metric['high'], 3)}]"


def _bar(psi: float | None, drifted: bool) -> Html:
    width = 0 if psi is None else min(psi / 0.5, 1.0) * 120
    colour = "#c0392b" if drifted else "#2f6fb3"
    return Html(f'<svg width="124" height="12" role="img" aria-label="PSI {num(psi, 3)}">'
                f'<rect width="{width:.1f}" height="12" fill="{colour}"></rect></svg>')  # fmt: skip


def _section(key: str, lead: str, *parts: str) -> str:
    return (f'<section id="{key}"><h2>{cell(SECTIONS[key])}</h2><p class="lead">{cell(lead)}</p>'
            f"{''.join(parts)}</section>")  # fmt: skip


def _verdict(report: Mapping[str, Any]) -> str:
    verdict, est = report["verdict"], report["estimated"]
    cards = "".join([
        card("verdict", verdict.upper(), f"as of {report['as_of']}", alert=verdict != "ok"),
        card("drift share", f"{report['drift_share']:.0%}", "model features drifted"),
        card("estimated ROC AUC", num(est["roc_auc"]["value"], 3),
             f"reference {num(est['reference_roc_auc'], 3)}"),
        card("customers", num(report["rows"]), f"scored: {num(est['rows'])}"),
    ])  # fmt: skip
    reasons = "".join(f"<li>{cell(r)}</li>" for r in report["reasons"]) or "<li>no rule fired</li>"
    style = f' style="color:{COLOURS[verdict]}"'
    return _section("verdict", f"Reference: {report['reference'].get('kind')} "
                    f"{report['reference'].get('start')} – {report['reference'].get('end')}; "
                    f"model {report.get('model', '')}",
                    f'<div class="cards">{cards}</div>', f"<h3{style}>{cell(verdict)}</h3>",
                    f'<ul class="reasons">{reasons}</ul>')  # fmt: skip


def _performance(report: Mapping[str, Any]) -> str:
    est = report["estimated"]
    now = table(["metric", "estimated (CBPE) [interval]"],
                [[m, _interval(est[m])] for m in ("roc_auc", "pr_auc", "ece")], [1])  # fmt: skip
    rows = [[r["as_of"], _interval(r["estimated"]["roc_auc"]),
             num((r.get("realised") or {}).get("roc_auc"), 3),
             num((r.get("realised") or {}).get("pr_auc"), 3),
             num((r.get("realised") or {}).get("ece"), 3)] for r in report["realised"]]  # fmt: skip
    back = (
        table(
            ["as of", "estimated ROC AUC", "realised ROC AUC", "realised PR AUC", "realised ECE"],
            rows,
            [1, 2, 3, 4],
        )
        if rows
        else "<p>No matured snapshot.</p>"
    )
    return _section("performance", "Estimated from calibrated probabilities, without labels "
                    "(CBPE); realised on earlier snapshots whose label window has ended.",
                    now, "<h3>Realised backtest</h3>", back)  # fmt: skip


def _drift(report: Mapping[str, Any]) -> str:
    groups = table(
        ["group", "features", "max PSI", "mean PSI", "drifted share"],
        [
            [
                g["group"],
                g["features"],
                num(g["psi_max"], 3),
                num(g["psi_mean"], 3),
                f"{g['drift_share']:.0%}",
            ]
            for g in report["groups"]
        ],
        [1, 2, 3, 4],
    )
    ordered = sorted(report["features"], key=lambda f: -(f["psi"] or 0))
    features = table(
        ["feature", "group", "PSI", "", "p-value", "noise PSI", "drifted"],
        [
            [
                f["name"],
                f["group"],
                num(f["psi"], 3),
                _bar(f["psi"], f["drifted"]),
                f"{f['p_value']:.2g}",
                num(f["psi_noise"], 3),
                "yes" if f["drifted"] else "",
            ]
            for f in ordered
        ],
        [2, 4, 5],
    )
    other = [report["score"], report["risk_bands"], *report["states"]]
    others = table(
        ["column", "PSI", "", "p-value", "drifted"],
        [
            [
                o["name"],
                num(o["psi"], 3),
                _bar(o["psi"], o["drifted"]),
                f"{o['p_value']:.2g}",
                "yes" if o["drifted"] else "",
            ]
            for o in other
        ],
        [1, 3],
    )
    return _section("drift", "PSI on the reference profile's bins (0.1 shifting, 0.25 drifted), "
                    "a chi-square two-sample test on the same bins.",
                    "<h3>Score, risk bands, tier mix and states</h3>", others,
                    "<h3>Feature groups</h3>", groups, "<h3>Features</h3>", features)  # fmt: skip


def _quality(report: Mapping[str, Any]) -> str:
    q = report["quality"]
    cats = table(
        ["column", "PSI", "new categories", "new share"],
        [
            [
                c["name"],
                num(c["psi"], 3),
                ", ".join(c["new_categories"]) or "–",
                f"{c['new_share']:.1%}",
            ]
            for c in q["categories"]
        ],
        [1, 3],
    )
    vols = table(
        ["table", "reference rows / month", "rows / month", "ratio", "flagged"],
        [
            [
                v["table"],
                num(v["reference_per_month"], 1),
                num(v["per_month"], 1),
                num(v["ratio"], 2),
                "yes" if v["flagged"] else "",
            ]
            for v in q["volumes"]
        ],
        [1, 2, 3],
    )
    oor = table(
        ["feature", "share out of the reference range"],
        [[o["name"], f"{o['share']:.1%}"] for o in q["out_of_range"]],
        [1],
    )
    return _section("quality", "Raw tables over the monitor's window; features out of range.",
                    "<h3>Categories</h3>", cats, "<h3>Volumes</h3>", vols,
                    "<h3>Out of range</h3>", oor)  # fmt: skip


def monitor_page(report: Mapping[str, Any]) -> str:
    """The whole page (one file: inline CSS and SVG, no script, no network)."""
    nav = "".join(f'<a href="#{k}">{cell(v)}</a>' for k, v in SECTIONS.items())
    body = _verdict(report) + _performance(report) + _drift(report) + _quality(report)
    title = f"tierwise monitor · {report['as_of']}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>'
        f"{cell(title)}</title><style>{CSS}</style></head><body>"
        f'<header class="masthead"><div class="wrap"><h1 id="verdict-{cell(report["verdict"])}">'
        f'{cell(title)}</h1><p class="meta"><span>verdict {cell(report["verdict"])}</span>'
        f'</p></div></header><nav class="toc"><div class="wrap">{nav}</div></nav>'
        f'<main class="wrap">{body}</main><footer class="wrap">Made by tierwise monitor; '
        "this file needs no network.</footer></body></html>\n"
    )
