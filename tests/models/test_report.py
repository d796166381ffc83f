"""The HTML report: built from small hand-made frames, checked as text (sections, charts,
escaping, nothing loaded from the network) and opened in headless Chromium (fixture
``chromium`` in conftest.py: installed by the test set-up when it is missing and can be)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from features.contract import AS_OF, CUSTOMER_ID, NPS, SATISFACTION, SEGMENT
from features.labels import CHURNED, NEXT_TIER
from features.registry import GROUPS, LIFECYCLE_STATE, TIER, value_feature
from features.spec import TIERS
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS
from models.evaluation.kpis import CLV, compute_kpis, kpi_rows
from models.explain.frame import explain_frame, feature_contributions
from models.explain.views import group_importance, strategy_coverage
from models.serving.records import RegistryRecord, VersionRecord
from models.strategies.catalog import load_catalog
from pipelines.reporting.report import (
    ReportInputs,
    RunInfo,
    example_customers,
    playbook_table,
    render_report,
    report_inputs_from,
    run_info_from,
)

SECTION_IDS = ("kpis", "risk", "transitions", "drivers", "playbook")
CHARTS = ("kpis", "risk", "transitions", "drivers", "playbook")
EVIL_ID = '<b>c"0</b>'
EVIL_REASON = "<script>alert('x')</script> 3 complaints & more (+0.12)"
STRATEGIES = (
    "dormant_wake_up",
    "prompt_response",
    "regular_follow_up",
    "vip_dedicated_team",
    "act_flexible_financing",
    "new_welcome",
)
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a1d4d0bb0000000049454e44ae426082"
)


def _predictions(rng: np.random.Generator, n: int = 80) -> pd.DataFrame:
    dates = pd.to_datetime(["2024-01-01", "2024-07-01"])
    ids = [EVIL_ID, *(f"c{i:03d}" for i in range(1, n))]
    frame = pd.DataFrame({CUSTOMER_ID: np.tile(ids, 2), AS_OF: np.repeat(dates, n)})
    tier = rng.choice(TIERS, size=2 * n, p=[0.2, 0.45, 0.25, 0.1])
    life = np.where(
        tier == "potential",
        "potential",
        rng.choice(["new", "active", "dormant"], size=2 * n, p=[0.2, 0.6, 0.2]),
    )
    tier[[0, n]], life[[0, n]] = "core", "active"  # the customer with the evil id is at risk
    p = np.where(life == "potential", np.nan, rng.beta(1.6, 3.0, size=2 * n))
    p[[0, n]] = 0.99
    churned = np.where(np.isnan(p), np.nan, (rng.random(2 * n) < p).astype(float))
    proba = rng.dirichlet(np.ones(len(TIERS)), size=2 * n)
    return frame.assign(
        **{
            TIER: tier,
            LIFECYCLE_STATE: life,
            CHURNED: churned,
            NEXT_TIER: rng.choice(TIERS, size=2 * n),
            CHURN_PROBABILITY: p,
            **dict(zip(NEXT_TIER_COLUMNS, proba.T, strict=True)),
        }
    )


def _explanations(predictions: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = predictions[predictions[AS_OF] == predictions[AS_OF].max()].reset_index(drop=True)
    n = len(rows)
    picks = np.array([rng.choice(STRATEGIES, size=3, replace=False) for _ in range(n)])
    reasons = {
        f"reason_{j}": [f"driver {j} of {c} (+0.0{j})" for c in rows[CUSTOMER_ID]]
        for j in (1, 2, 3)
    }
    reasons["reason_1"][0] = EVIL_REASON
    reasons["reason_3"][1] = ""  # fewer than three reasons
    picks[2, 2] = ""  # fewer than three strategies
    return rows.loc[:, [CUSTOMER_ID, AS_OF, CHURN_PROBABILITY, TIER]].assign(
        **reasons,
        **{f"strategy_{j}": picks[:, j - 1] for j in (1, 2, 3)},
        value_at_risk=rows[CHURN_PROBABILITY].fillna(0) * rng.uniform(1e4, 2e6, n),
    )


def _kpis(predictions: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = predictions.assign(
        **{
            SEGMENT: "sme",
            CLV: rng.uniform(1e4, 5e6, len(predictions)),
            NPS: rng.integers(0, 11, len(predictions)).astype(float),
            SATISFACTION: rng.uniform(1, 5, len(predictions)),
        }
    )
    return compute_kpis(rows)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


VERSIONS = {"churn": "3", "tier": "2"}
AT_RISK, WATCH = 0.5, 0.2  # this module's hand-made book is riskier than the default world


@pytest.fixture(scope="module")
def inputs(catalog) -> ReportInputs:
    rng = np.random.default_rng(7)
    predictions = _predictions(rng)
    explanations = _explanations(predictions, rng)
    coverage = strategy_coverage(
        explanations, CHURN_PROBABILITY, "value_at_risk", threshold=AT_RISK, catalog=catalog
    )
    drivers = pd.DataFrame(
        {
            "group": list(GROUPS),
            "mean_abs": rng.uniform(0.01, 0.4, len(GROUPS)),
            "mean": rng.normal(0, 0.05, len(GROUPS)),
            "share_up": rng.uniform(0.1, 0.9, len(GROUPS)),
        }
    )
    registry = RegistryRecord(
        "0123abcd<run>",
        "sqlite:///mlruns.db",
        {kind: VersionRecord(f"tierwise-{kind}", v, kind == "churn", "test")
         for kind, v in VERSIONS.items()},
    )  # fmt: skip
    run = run_info_from(registry, "f" * 64, "2024-07-02", "CNY")
    images = {"SHAP summary (beeswarm)": TINY_PNG}
    return report_inputs_from(
        predictions,
        explanations,
        _kpis(predictions, rng),
        coverage,
        drivers,
        catalog,
        run,
        images=images,
        threshold=AT_RISK,
        watch=WATCH,
    )


@pytest.fixture(scope="module")
def report(inputs) -> str:
    return render_report(inputs)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.append(attributes["id"])

    def handle_data(self, data) -> None:
        self.text.append(data)


def _parse(html_text: str) -> _Collector:
    parser = _Collector()
    parser.feed(html_text)
    parser.close()
    return parser


def test_inputs_hold_the_report_grain(inputs, catalog) -> None:
    assert inputs.as_of == "2024-07-01" and inputs.snapshots == ("2024-01-01", "2024-07-01")
    assert list(inputs.kpis.index) == [*TIERS, "portfolio"]
    assert inputs.risk[CHURN_PROBABILITY].notna().all()
    assert set(inputs.transitions) == {"actual", "predicted"}
    assert np.allclose(inputs.transitions["predicted"].sum(axis=1), 1.0)
    assert len(inputs.playbook) == len(catalog.strategies)
    assert inputs.playbook["value_at_risk"].is_monotonic_decreasing
    assert inputs.examples.groupby("strategy").size().max() <= 3
    assert (inputs.examples[CHURN_PROBABILITY] >= 0.5).all()
    assert inputs.run.model_versions == {"churn": "3", "tier": "2"}


def test_examples_are_the_riskiest_customers_of_each_strategy() -> None:
    explanations = pd.DataFrame(
        {
            CUSTOMER_ID: ["a", "b", "c", "d"],
            TIER: "core",
            LIFECYCLE_STATE: "active",
            CHURN_PROBABILITY: [0.9, 0.6, 0.8, 0.2],
            "reason_1": ["r"] * 4,
            "strategy_1": ["x", "x", "y", "x"],
            "strategy_2": ["", "y", "x", ""],
        }
    )
    table = example_customers(explanations, 0.5, per_strategy=2)
    assert table[table.strategy == "x"][CUSTOMER_ID].tolist() == ["a", "c"]  # d is not at risk
    assert table[table.strategy == "y"][CUSTOMER_ID].tolist() == ["c", "b"]
    assert table["value_at_risk"].isna().all() and (table["reason_3"] == "").all()


def test_playbook_rejects_unknown_strategies(catalog) -> None:
    coverage = pd.DataFrame(
        {
            "strategy": ["no_such"],
            "customers_at_risk": [1],
            "share_of_at_risk": [1.0],
            "first_choice": [1],
            "value_at_risk": [1.0],
        }
    )
    with pytest.raises(ValueError, match="not in the catalog"):
        playbook_table(coverage, catalog)


def test_inputs_validate_columns_and_thresholds(inputs) -> None:
    fields = {f: getattr(inputs, f) for f in inputs.__dataclass_fields__}
    with pytest.raises(ValueError, match="risk lacks"):
        ReportInputs(**(fields | {"risk": inputs.risk.drop(columns=[TIER])}))
    with pytest.raises(ValueError, match="watch_threshold"):
        ReportInputs(**(fields | {"watch_threshold": 0.7}))


def test_report_has_every_section_and_chart(report) -> None:
    parsed = _parse(report)
    for key in SECTION_IDS:
        assert key in parsed.ids
        assert any(t == "a" and a.get("href") == f"#{key}" for t, a in parsed.tags)
    charts = [a["data-chart"] for t, a in parsed.tags if t == "svg" and "data-chart" in a]
    assert sorted(charts) == sorted(CHARTS)
    assert any(t == "img" and a["src"].startswith("data:image/png;base64,") for t, a in parsed.tags)
    assert len(parsed.ids) == len(set(parsed.ids)), "ids must be unique across the inline SVGs"
    assert report.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in report


def test_report_escapes_text_and_shows_chinese_names(report, catalog) -> None:
    assert "<script" not in report.lower() and "<b>c" not in report
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in report
    assert "&lt;b&gt;c&quot;0&lt;/b&gt;" in report and "0123abcd&lt;run&gt;" in report
    text = "".join(_parse(report).text)
    assert EVIL_REASON in text
    assert catalog.by_id("dormant_wake_up").name_zh in text
    assert "Noto Sans CJK SC" in report


def test_report_formats_numbers_with_thousands_separators(report, inputs) -> None:
    clv = inputs.kpis.loc["portfolio", "clv_total"]
    assert f"CNY {clv:,.0f}" in report and re.search(r">(CNY )?\d{1,3}(,\d{3})+<", report)


def test_report_loads_nothing_from_the_network(report) -> None:
    assert not re.search(r"https?://", report), "no absolute URL may appear"
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*//""", report)
    assert not re.search(r"<script[^>]*\bsrc", report, re.I)
    assert not re.search(r"<link\b", report, re.I) and "@import" not in report
    assert not re.search(r"url\((?!#|data:)", report)
    for tag, attributes in _parse(report).tags:
        for name in ("src", "href"):
            value = attributes.get(name) or ""
            assert value == "" or value.startswith(("#", "data:")), (tag, name, value)


def test_render_is_deterministic(inputs, report) -> None:
    assert render_report(inputs) == report


def test_run_info_from_reads_the_registry_record() -> None:
    record = RegistryRecord(
        "r9", "sqlite:///x.db", {"tier": VersionRecord("tierwise-tier", "7", False, "kept")}
    )
    assert run_info_from(record, "fp", "2024-01-01", "EUR") == RunInfo(
        "r9", {"tier": "7"}, "fp", "2024-01-01", champions={"tier": False}, currency="EUR"
    )


def test_the_report_names_its_model_versions_their_role_and_the_currency(report) -> None:
    text = " ".join(_parse(report).text)
    assert "churn model v3 (champion)" in text
    assert "tier model v2 (challenger, not the champion)" in text
    assert "Amounts in CNY" in text
    amounts = re.findall(r"value at risk ([^<]*)</span>", report)
    assert amounts and all(a.startswith("CNY ") for a in amounts)
    assert re.search(r"<td class=num>CNY [\d,]+</td>", report)  # CLV and value-at-risk cells


def test_the_playbook_chart_axis_labels_do_not_overlap() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from pipelines.reporting import charts

    book = pd.DataFrame({"name_en": [f"A strategy with a long English name {i}" for i in range(12)],
                         "customers_at_risk": np.arange(12) + 5,
                         "value_at_risk": np.linspace(3.2e9, 4.1e7, 12)})  # fmt: skip
    fig = charts.playbook_chart(book, currency="CNY")
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    assert len(boxes) >= 3
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert ax.get_xlabel() == "value at risk (CNY)"


# --- headless Chromium ---------------------------------------------------------------------------
LAYOUT_PROBE = """<script>window.addEventListener('load', () => {
  const boxes = [...document.querySelectorAll('section[id], svg[data-chart], img')].map(e => {
    const r = e.getBoundingClientRect();
    return {tag: e.tagName.toLowerCase(), id: e.id || e.dataset.chart || '', w: r.width,
            h: r.height, ok: e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0)};
  });
  const out = document.createElement('pre');
  out.id = 'layout-probe';
  out.textContent = JSON.stringify(boxes);
  document.body.appendChild(out);
});</script>"""


def _run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [binary, *flags, *args], capture_output=True, text=True, timeout=90, check=True
    )


@pytest.mark.slow
def test_report_renders_in_headless_chromium(chromium, cjk_font, report, tmp_path) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(report.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    dom = _run_chromium(chromium, tmp_path / "profile-a", "--dump-dom", probe.as_uri()).stdout
    match = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.S)
    assert match, "the page did not finish loading in Chromium"
    boxes = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    shown = {b["id"]: b for b in boxes if b["tag"] in ("section", "svg")}
    for key in (*SECTION_IDS, *CHARTS):
        assert shown[key]["w"] > 300 and shown[key]["h"] > 100, shown[key]
    images = [b for b in boxes if b["tag"] == "img"]
    assert images and all(b["ok"] and b["w"] > 0 for b in images)
    page = tmp_path / "report.html"
    page.write_text(report, encoding="utf-8")
    shot = tmp_path / "report.png"
    _run_chromium(
        chromium,
        tmp_path / "profile-b",
        f"--screenshot={shot}",
        "--window-size=1280,3000",
        page.as_uri(),
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (3000, 1280) and pixels[..., :3].std() > 0.05


def test_report_from_a_training_run(
    trained, small_table, small_world, model_features, catalog, params_cfg
):
    """The colleagues' real frames (predictions, explain_frame, strategy_coverage,
    group_importance, compute_kpis) fit report_inputs_from as they are."""
    predictions = trained.predictions
    last = predictions[AS_OF].max()
    scored = predictions.loc[
        (predictions[AS_OF] == last) & predictions[CHURN_PROBABILITY].notna(),
        [CUSTOMER_ID, AS_OF, CHURN_PROBABILITY],
    ]
    rows = small_table.merge(scored, on=[CUSTOMER_ID, AS_OF]).reset_index(drop=True)
    churn = trained.models.churn
    contribs = feature_contributions(churn.booster, churn.matrix(rows))
    explained = explain_frame(
        churn.booster,
        rows,
        churn.features,
        model_features,
        catalog,
        contributions=contribs,
        link=churn.calibrator.predict,
    )
    value = value_feature(params_cfg.features.value_window_days)
    explained = explained.assign(
        **{
            CHURN_PROBABILITY: rows[CHURN_PROBABILITY],
            "value_at_risk": rows[CHURN_PROBABILITY] * rows[value].fillna(0.0),
        }
    )
    threshold = float(explained[CHURN_PROBABILITY].quantile(0.8))  # some at-risk customers
    coverage = strategy_coverage(
        explained, CHURN_PROBABILITY, "value_at_risk", threshold=threshold, catalog=catalog
    )
    kpis = compute_kpis(
        kpi_rows(
            predictions,
            small_table,
            small_world.customers,
            small_world.surveys,
            params_cfg.kpis,
            180,
        )
    )
    run = run_info_from(
        RegistryRecord("r1", "sqlite:///x.db", {}), trained.summary.data_fingerprint, "2024-01-01"
    )
    inputs = report_inputs_from(
        predictions,
        explained,
        kpis,
        coverage,
        group_importance(contribs, model_features),
        catalog,
        run,
        threshold=threshold,
        watch=threshold / 2,
    )
    assert not inputs.examples.empty and inputs.examples["reason_1"].str.len().gt(0).all()
    assert inputs.run.data_fingerprint == trained.summary.data_fingerprint
    parsed = _parse(render_report(inputs))
    assert set(SECTION_IDS) <= set(parsed.ids)
    assert any(i.startswith("strategy-") for i in parsed.ids)


# --- fonts: Chinese names without tofu where a CJK font exists, English names everywhere -------
FONT_PROBE = r"""<script>window.addEventListener('load', () => {
  const bitmap = (ch, font) => {
    const c = document.createElement('canvas'); c.width = 56; c.height = 56;
    const g = c.getContext('2d'); g.font = font; g.textBaseline = 'top'; g.fillText(ch, 4, 4);
    const d = g.getImageData(0, 0, 56, 56).data; let s = '';
    for (let i = 3; i < d.length; i += 4) s += d[i] > 127 ? '1' : '0';
    return s;
  };
  const zh = [...document.querySelectorAll('.zh')];
  const en = zh.map(e => (e.closest('td, h3, li') || e.parentElement).querySelector('.en'));
  const font = `40px ${getComputedStyle(zh[0]).fontFamily}`;
  const han = [...new Set(zh.map(e => e.textContent).join('').match(/[\u4e00-\u9fff]/g))];
  const latin = [...new Set(en.map(e => e ? e.textContent : '').join('').match(/[a-z]/g))];
  const out = document.createElement('pre'); out.id = 'font-probe';
  out.textContent = JSON.stringify({
    names: zh.length, han: han.length, latin: latin.length,
    han_shapes: new Set(han.slice(0, 40).map(ch => bitmap(ch, font))).size,
    latin_shapes: new Set(latin.map(ch => bitmap(ch, font))).size,
    without_english: en.filter(e => !e || !/^[\x20-\x7e]+$/.test(e.textContent.trim())).length,
  });
  document.body.appendChild(out);
});</script>"""
NO_CJK_FONTS = """<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>{cache}</cachedir></fontconfig>
"""


def _font_probe(chromium: str, report: str, folder: Path, env: dict | None = None) -> dict:
    folder.mkdir()
    page = folder / "probe.html"
    page.write_text(report.replace("</body>", FONT_PROBE + "</body>"), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             f"--user-data-dir={folder / 'profile'}", "--dump-dom", page.as_uri()]  # fmt: skip
    done = subprocess.run(
        [chromium, *flags], capture_output=True, text=True, timeout=90, check=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    match = re.search(r'<pre id="font-probe">(.*?)</pre>', done.stdout, re.S)
    assert match, "the font probe did not run"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_the_font_stack_names_cjk_fallbacks(report) -> None:
    stack = re.search(r"body \{[^}]*font-family: ([^;]+);", report).group(1)
    for family in ('"Noto Sans CJK SC"', '"PingFang SC"', '"Microsoft YaHei"', "sans-serif"):
        assert family in stack


@pytest.mark.slow
def test_chinese_names_render_with_a_cjk_font_and_english_names_everywhere(
    chromium, cjk_font, report, tmp_path
) -> None:
    """Drawn in headless Chromium with the page's font stack: with the machine's fonts (a CJK
    font installed, fixture ``cjk_font``) every Chinese character has its own shape; with
    DejaVu only (a machine without CJK fonts) they collapse into one tofu box, and every
    Chinese name still comes with a readable English one."""
    with_cjk = _font_probe(chromium, report, tmp_path / "with")
    assert with_cjk["names"] > 10 and with_cjk["han"] > 20
    assert with_cjk["han_shapes"] == min(with_cjk["han"], 40), f"tofu with {cjk_font}"
    conf = tmp_path / "fonts.conf"
    conf.write_text(NO_CJK_FONTS.format(cache=tmp_path / "fc-cache"))
    without = _font_probe(chromium, report, tmp_path / "without", {"FONTCONFIG_FILE": str(conf)})
    assert without["han_shapes"] <= 2, "the probe cannot tell tofu from glyphs"
    for probe in (with_cjk, without):
        assert probe["without_english"] == 0
        assert probe["latin_shapes"] == probe["latin"] > 15


def test_when_and_why_appears_only_with_the_survival_stage(inputs, report) -> None:
    import dataclasses

    from pipelines.reporting.report import survival_view

    assert 'href="#when"' not in report and 'id="when"' not in report
    causes = ("runoff", "refinanced", "credit_exit", "lapsed")
    incidence = pd.DataFrame(
        [
            {"tier": t, "month": m, **{c: 0.01 * m for c in causes}}
            for t in ("*", "core")
            for m in range(1, 13)
        ]  # fmt: skip
    )
    predictions = pd.DataFrame({
        "as_of": pd.to_datetime(["2024-06-30"] * 3 + ["2024-05-31"]),
        "churn_cause": ["runoff", "runoff", "lapsed", "credit_exit"],
        "act_by": pd.to_datetime(["2024-06-30", "2024-09-14", "2024-06-30", "2024-05-31"]),
        **{f"p_{c}_12m": [0.1, 0.2, 0.3, 0.4] for c in causes},
    })  # fmt: skip
    view = survival_view(predictions, incidence)
    assert view["mix"].set_index("cause")["customers"].to_dict() == {
        "runoff": 2, "refinanced": 0, "credit_exit": 0, "lapsed": 1}  # fmt: skip
    assert view["calendar"].to_dict("list") == {
        "month": ["2024-06", "2024-09"],
        "customers": [2, 1],
    }
    html = render_report(dataclasses.replace(inputs, survival=view))
    parsed = _parse(html)
    assert "when" in parsed.ids and 'href="#when"' in html and "When and why" in html
    assert 'data-chart="incidence"' in html  # the curves as a chart, not only a table


def test_the_maturity_calendar_counts_the_at_risk_books_open_loans_by_month() -> None:
    """Hand-made book at 2024-06-30: loans open then, maturing within 12 months, of at-risk
    customers only; a loan closed before the snapshot, one maturing after 12 months and one of a
    customer not at risk are left out."""
    from pipelines.reporting.report import maturity_calendar, survival_view

    D = pd.Timestamp
    loans = pd.DataFrame({
        "loan_id": ["a1", "a2", "b1", "b2", "c1", "a3"],
        "customer_id": ["A", "A", "B", "B", "C", "A"],
        "origination_date": [D("2023-09-15"), D("2022-06-30"), D("2024-01-10"), D("2021-01-05"),
                             D("2024-02-01"), D("2024-03-01")],
        "term_months": [12, 24, 6, 36, 6, 24],
        "principal": [100.0, 50.0, 70.0, 30.0, 999.0, 10.0],
        "closed_date": [pd.NaT, pd.NaT, pd.NaT, D("2024-01-05"), pd.NaT, pd.NaT],
    })  # fmt: skip
    at_risk = pd.DataFrame({"customer_id": ["A", "B"], "as_of": [D("2024-06-30")] * 2,
                            "churn_cause": ["runoff", "refinanced"]})  # fmt: skip
    table = maturity_calendar(loans, at_risk, D("2024-06-30"))
    assert table.to_dict("list") == {
        "month": ["2024-07", "2024-09"],  # b1 on 2024-07-10, a1 on 2024-09-15
        "loans": [1, 1], "principal": [70.0, 100.0], "customers": [1, 1],
        "runoff_customers": [0, 1],
    }  # fmt: skip
    # a2 matures on the snapshot day itself (already due), a3 in 2026, b2 closed, c1 not at risk
    assert maturity_calendar(loans, at_risk.iloc[:0], D("2024-06-30")).empty
    causes = ("runoff", "refinanced", "credit_exit", "lapsed")
    incidence = pd.DataFrame([{"tier": "*", "month": m, **dict.fromkeys(causes, 0.01 * m)}
                              for m in range(1, 13)])  # fmt: skip
    book = at_risk.assign(act_by=D("2024-06-30"), **{f"p_{c}_12m": 0.2 for c in causes})
    view = survival_view(book, incidence, book, loans)
    assert view["maturities"].equals(table)
    assert view["mix"].set_index("cause")["customers"].to_dict() == {
        "runoff": 1, "refinanced": 1, "credit_exit": 0, "lapsed": 0}  # fmt: skip
