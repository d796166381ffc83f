"""The report's HTML building blocks: the inline stylesheet, escaping, number formats, tables,
figures and the page skeleton (pure, strings out).

Every piece of text from the inputs goes through ``html.escape`` (``cell``); only ``Html``
strings built here from escaped parts are inserted as they are. Numbers carry thousands
separators. The font stack ends in CJK-capable families (PingFang, Microsoft YaHei, Noto Sans
CJK, WenQuanYi) so the Chinese strategy names render on macOS, Windows and Linux alike; nothing
is loaded from the network (no web fonts, no scripts, no imports).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence

from pipelines.reporting.inputs import RunInfo

SECTIONS = {
    "kpis": "Portfolio KPIs",
    "risk": "Churn risk",
    "transitions": "Tier transitions",
    "drivers": "Top drivers",
    "playbook": "Strategy playbook",
    "when": "When and why",  # only when the survival stage ran (docs/survival.md)
    "plan": "Action plan",  # only when the uplift stage planned (docs/uplift.md)
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FONT_STACK = (
    'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", '
    '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", '
    '"Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", sans-serif'
)

CSS = """
:root { --ink: #1d2733; --muted: #5b6877; --line: #dde3ea; --panel: #ffffff; --bg: #f4f6f9;
  --brand: #0f2b46; --accent: #2f6fb3; --risk: #c0392b; --ok: #2e7d4f; }
* { box-sizing: border-box; }
html { scroll-behavior: smooth; }
body { margin: 0; font-family: FONTS; color: var(--ink); background: var(--bg);
  font-size: 15px; line-height: 1.5; }
.wrap { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header.masthead { background: var(--brand); color: #fff; padding: 28px 0 22px; }
header.masthead h1 { margin: 0 0 6px; font-size: 26px; font-weight: 650; letter-spacing: .2px; }
header.masthead .meta { margin: 0; color: #c9d6e4; font-size: 13px; }
header.masthead .meta span { margin-right: 18px; white-space: nowrap; }
header.masthead code { color: #fff; background: rgba(255,255,255,.12); padding: 1px 5px;
  border-radius: 4px; }
nav.toc { position: sticky; top: 0; z-index: 5; background: #fff;
  border-bottom: 1px solid var(--line); box-shadow: 0 1px 3px rgba(15,43,70,.06); }
nav.toc .wrap { display: flex; gap: 6px; flex-wrap: wrap; padding-top: 8px; padding-bottom: 8px; }
nav.toc a { color: var(--brand); text-decoration: none; font-size: 14px; font-weight: 550;
  padding: 6px 12px; border-radius: 6px; }
nav.toc a:hover { background: #e8f0f9; }
main section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
  padding: 22px 26px; margin: 22px 0; scroll-margin-top: 60px; }
section h2 { margin: 0 0 4px; font-size: 20px; color: var(--brand); }
section h3 { margin: 18px 0 8px; font-size: 16px; }
p.lead { margin: 0 0 16px; color: var(--muted); font-size: 14px; }
.cards { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px;
  margin: 8px 0 18px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px;
  background: #fbfcfe; }
.card .label { font-size: 12px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .4px; }
.card .value { font-size: 23px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .note { font-size: 12px; color: var(--muted); }
.card.alert .value { color: var(--risk); }
p.warning { margin: 22px 0 0; padding: 10px 14px; border: 1px solid #e7b6ae;
  border-left: 4px solid var(--risk); border-radius: 8px; background: #fdf3f1; }
.table-scroll { overflow-x: auto; margin: 8px 0 14px; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: #f0f3f7; color: #34414f; font-weight: 600; font-size: 12.5px;
  white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfd; }
tr.total td { font-weight: 650; border-top: 2px solid #c5ced8; background: #f5f8fb; }
figure.chart { margin: 10px 0 16px; }
figure.chart svg, figure.chart img { display: block; max-width: 100%; height: auto;
  margin: 0 auto; }
figure.chart figcaption { text-align: center; }
figure.chart img { max-width: min(100%, 760px); }
.strategy:not([open]) { padding-bottom: 6px; }
figcaption { font-size: 12.5px; color: var(--muted); margin-top: 4px; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; align-items: start; }
@media (max-width: 900px) { .grid2, .cards { grid-template-columns: 1fr 1fr; } }
.zh { font-weight: 650; }
.en { color: var(--muted); font-size: 13px; }
.strategy { border: 1px solid var(--line); border-left: 4px solid var(--accent);
  border-radius: 8px;
  padding: 14px 18px; margin: 14px 0; background: #fff; }
.strategy h3 { margin: 0; font-size: 18px; display: inline; }
.strategy summary { cursor: pointer; list-style-position: outside; }
.strategy summary::marker { color: var(--accent); }
.strategy td:last-child { width: 50%; }
td a { color: inherit; text-decoration: none; border-bottom: 1px dotted #9fb3c8; }
.strategy td:first-child { word-break: break-all; }
.strategy .badges { margin: 8px 0; display: flex; gap: 8px; flex-wrap: wrap; }
.badge { font-size: 12.5px; padding: 2px 9px; border-radius: 999px; background: #eef3f9;
  color: #24466b; font-variant-numeric: tabular-nums; }
.badge.risk { background: #fbeceb; color: #8e2a20; }
.strategy p.action { margin: 6px 0; }
.strategy cite { display: block; font-style: normal; font-size: 12.5px; color: var(--muted); }
ol.reasons { margin: 0; padding-left: 18px; }
ol.reasons li { margin: 0; }
.prob { font-weight: 650; color: var(--risk); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
details.more { margin: 10px 0; }
details.more summary { cursor: pointer; color: var(--accent); }
footer { color: var(--muted); font-size: 12.5px; padding: 10px 0 40px; }
@media print { nav.toc { display: none; } main section { break-inside: avoid-page; } }
""".replace("FONTS", FONT_STACK)


class Html(str):
    """Markup built here from escaped parts: ``cell`` inserts it unchanged."""


def cell(value: object) -> str:
    return value if isinstance(value, Html) else html.escape(str(value))


def _missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x: object, digits: int = 0) -> str:
    return "–" if _missing(x) else f"{float(x):,.{digits}f}"


def money(x: object, currency: str = "") -> str:
    """An amount with its currency before it: ``CNY 1,870,000`` (``–`` when missing)."""
    shown = num(x)
    return f"{currency} {shown}" if currency and shown != "–" else shown


def pct(x: object, digits: int = 1) -> str:
    return "–" if _missing(x) else f"{float(x):.{digits}%}"


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    numeric: Iterable[int] = (),
    total_last: bool = False,
) -> Html:
    """A table; columns at positions ``numeric`` are right-aligned; cells are escaped unless
    they are ``Html``. ``total_last`` styles the last row as a total."""
    rows, right = list(rows), set(numeric)
    head = "".join(f"<th{' class=num' * (j in right)}>{cell(h)}</th>" for j, h in enumerate(header))
    body = []
    for i, row in enumerate(rows):
        total = ' class="total"' if total_last and i == len(rows) - 1 else ""
        tds = "".join(f"<td{' class=num' * (j in right)}>{cell(v)}</td>" for j, v in enumerate(row))
        body.append(f"<tr{total}>{tds}</tr>")
    return Html(
        f'<div class="table-scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def figure(content: str, caption: str) -> Html:
    """``content`` (an inline <svg> or <img> built here) with an escaped caption."""
    return Html(f'<figure class="chart">{content}<figcaption>{cell(caption)}</figcaption></figure>')


def image(caption: str, data: bytes) -> Html:
    """A PNG (or SVG) file's bytes embedded as a base64 data URI."""
    mime = "image/png" if data[:8] == PNG_SIGNATURE else "image/svg+xml"
    encoded = base64.b64encode(data).decode("ascii")
    return figure(f'<img src="data:{mime};base64,{encoded}" alt="{cell(caption)}">', caption)


def card(label: str, value: str, note: str = "", alert: bool = False) -> str:
    return (
        f'<div class="card{" alert" * alert}"><div class="label">{cell(label)}</div>'
        f'<div class="value">{cell(value)}</div><div class="note">{cell(note)}</div></div>'
    )


def section(key: str, lead: str, *parts: str) -> str:
    return (
        f'<section id="{key}"><h2>{cell(SECTIONS[key])}</h2><p class="lead">{cell(lead)}</p>'
        f"{''.join(parts)}</section>"
    )


def _role(champion: bool | None) -> str:
    """Whether the version the report describes is the one consumers get (alias champion)."""
    if champion is None:
        return ""
    return " (champion)" if champion else " (challenger, not the champion)"


def page(run: RunInfo, as_of: str, body: Sequence[str]) -> str:
    """The document: head with the inline CSS, masthead (run metadata), nav, sections."""
    versions = " · ".join(
        f"{k} model v{v}" + _role(run.champions.get(k))
        for k, v in sorted(run.model_versions.items())
    )
    meta = [f"Snapshot {as_of}", f"Generated {run.created}", versions]
    spans = "".join(f"<span>{cell(m)}</span>" for m in meta if m)
    spans += f"<span>Run <code>{cell(run.run_id or '–')}</code></span>"
    spans += f"<span>Data <code>{cell(run.data_fingerprint[:12] or '–')}</code></span>"
    if run.currency:
        spans += f"<span>Amounts in {cell(run.currency)}</span>"
    shown = "".join(body)
    nav = "".join(
        f'<a href="#{k}">{cell(v)}</a>'
        for k, v in SECTIONS.items()
        if f'<section id="{k}"' in shown
    )
    body = [*(f'<p class="warning">Warning: {cell(w)}</p>' for w in run.warnings), *body]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{cell(run.title)} · {cell(as_of)}</title><style>{CSS}</style></head>"
        f'<body><header class="masthead"><div class="wrap"><h1>{cell(run.title)}</h1>'
        f'<p class="meta">{spans}</p></div></header><nav class="toc"><div class="wrap">{nav}</div>'
        f'</nav><main class="wrap">{"".join(body)}</main><footer class="wrap">Made by tierwise '
        f"from run {cell(run.run_id)}; data fingerprint {cell(run.data_fingerprint)}. Charts are "
        "inline SVG; this file needs no network.</footer></body></html>\n"
    )
