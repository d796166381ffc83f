"""The monitor's pure core (models/monitoring/): metrics from group counts equal scikit-learn's,
CBPE intervals cover the realised metric when the model is calibrated and miss it when it is
not, PSI and its noise level, drift flags on the features that moved, chunked counts equal
one-piece counts, and the verdict rules."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from models.evaluation.metrics import expected_calibration_error
from models.monitoring.book import BookMonitor
from models.monitoring.drift import current_counts, feature_drift, noise_psi, psi
from models.monitoring.estimate import Groups, _draw_churners, estimate_metrics, realised_metrics
from models.monitoring.profile import build_profile
from models.monitoring.report import OK, RETRAIN, WARN, calibration_check, decide


@pytest.fixture(scope="module")
def mspec(params_cfg):
    return params_cfg.monitor


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.05, 0.1, 0.2, 0.5, 0.7, 0.93]), st.booleans()),
        min_size=4,
        max_size=60,
    )  # fmt: skip
)
def test_realised_metrics_equal_scikit_learn_with_ties(rows) -> None:
    p = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows], dtype=float)
    got = realised_metrics(p, y, 10)
    if len(np.unique(y)) < 2:
        assert got["roc_auc"] is None
        return
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
    assert got["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-6)
    assert got["ece"] == pytest.approx(expected_calibration_error(y, p, 10), abs=1e-6)


def _book(n: int, seed: int, calibrated: bool = True):
    rng = np.random.default_rng(seed)
    p = np.round(rng.beta(1.2, 5.0, n), 3)  # few distinct values, like isotonic calibration
    truth = p if calibrated else np.clip(p * 0.4 + 0.1, 0, 1)  # a flatter truth than the model
    return p, (rng.random(n) < truth).astype(float)


def test_cbpe_interval_covers_the_realised_auc_when_calibrated(mspec) -> None:
    covered = []
    for seed in range(40):
        p, y = _book(2000, seed)
        est = estimate_metrics(p, 10, 200, 0.9, seed)
        real = realised_metrics(p, y, 10)
        covered.append(est["roc_auc"]["low"] <= real["roc_auc"] <= est["roc_auc"]["high"])
    assert 0.75 <= np.mean(covered) <= 1.0


def test_cbpe_does_not_cover_a_model_that_is_not_calibrated() -> None:
    p, y = _book(20000, 1, calibrated=False)
    est, real = estimate_metrics(p, 10, 200, 0.9, 0), realised_metrics(p, y, 10)
    assert real["roc_auc"] < est["roc_auc"]["low"]  # the estimate is optimistic: honest failure
    assert real["ece"] > est["ece"]["high"]  # and the realised ECE says why


@pytest.mark.parametrize("calibrated", [True, False])
def test_the_report_says_whether_cbpe_s_assumption_held(calibrated) -> None:
    """The latest backtest's realised ECE against the chance ECE of a calibrated model."""
    p, y = _book(5000, 3, calibrated=calibrated)
    entry = {"as_of": "2022-12-31", "estimated": estimate_metrics(p, 10, 200, 0.9, 0),
             "realised": realised_metrics(p, y, 10)}  # fmt: skip
    check = calibration_check(entry)
    assert check["holds"] is calibrated and check["as_of"] == "2022-12-31"
    assert check["realised_ece"] == entry["realised"]["ece"]
    assert calibration_check(None) is None


def test_psi_and_its_noise_level() -> None:
    assert psi([10, 20, 30], [10, 20, 30]) == 0.0
    assert psi([50, 50], [90, 10]) == pytest.approx(
        0.4 * np.log(0.5 / 0.1) - 0.4 * np.log(0.5 / 0.9)
    )
    rng = np.random.default_rng(0)
    over = 0
    for _ in range(200):
        a, b = rng.multinomial(500, [0.1] * 10), rng.multinomial(800, [0.1] * 10)
        over += psi(a, b) > noise_psi(10, 500, 800, 0.01)
    assert over <= 8  # about 1 % of 200 by construction
    assert noise_psi(10, 1000, 1000, 0.01) > noise_psi(10, 100_000, 100_000, 0.01) * 50


def _frame(n: int, seed: int, shift: float = 0.0, missing: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    moved = rng.normal(shift, 1.0, n)
    moved[rng.random(n) < missing] = np.nan
    return pd.DataFrame({
        "a_moved": moved, "b_still": rng.exponential(1.0, n),
        "tier": rng.choice(["potential", "ordinary", "core"], n),
    })  # fmt: skip


def _scores(n: int, seed: int) -> pd.DataFrame:
    p = np.random.default_rng(seed).beta(1.2, 5.0, n)
    return pd.DataFrame({"churn_probability": p, "risk_band": np.where(p > 0.3, "high", "low")})


GROUPS = {"a_moved": "value", "b_still": "pricing"}


def _profile(bins: int = 10) -> dict:
    return build_profile(_frame(5000, 1), GROUPS, ["tier"], _scores(5000, 1), bins,
                         {"kind": "test", "start": "2022-01-31", "end": "2022-01-31"})  # fmt: skip


def test_drift_flags_the_feature_that_moved_only(mspec) -> None:
    now = _frame(4000, 2, shift=0.8)
    counts = current_counts(_profile(), now, _scores(4000, 2)["churn_probability"].to_numpy(),
                            _scores(4000, 2)["risk_band"])  # fmt: skip
    flags = {f["name"]: f for f in feature_drift(_profile(), counts, mspec)}
    assert flags["a_moved"]["drifted"] and flags["a_moved"]["psi"] > 0.25
    assert not flags["b_still"]["drifted"] and flags["b_still"]["psi"] < 0.02


def test_missing_values_are_a_bin_of_their_own(mspec) -> None:
    now = _frame(4000, 3, missing=0.3)
    s = _scores(4000, 3)
    counts = current_counts(_profile(), now, s["churn_probability"].to_numpy(), s["risk_band"])
    a = next(f for f in feature_drift(_profile(), counts, mspec) if f["name"] == "a_moved")
    assert a["missing"] == pytest.approx(0.3, abs=0.03) and a["drifted"]


def test_chunked_counts_equal_one_piece(mspec) -> None:
    now, s = _frame(3000, 4), _scores(3000, 4)
    whole, parts = BookMonitor(_profile()), BookMonitor(_profile())
    whole.add(now, s)
    for idx in np.array_split(np.arange(3000), 4):
        parts.add(now.iloc[idx].reset_index(drop=True), s.iloc[idx].reset_index(drop=True))
    a = whole.report({}, mspec, pd.Timestamp("2022-06-30"), 10)
    b = parts.report({}, mspec, pd.Timestamp("2022-06-30"), 10)
    assert a == b


@pytest.mark.slow
def test_counts_taken_on_spark_executors_equal_the_pandas_book(spark, mspec) -> None:
    """The Spark engine's monitor: each partition counted on the executors, added up on the
    driver; the report equals the pandas book's (missing values and NaN scores included)."""
    from models.monitoring.spark import spark_book

    now, s = _frame(3000, 5, missing=0.1), _scores(3000, 5)
    s.loc[s.index[::7], "churn_probability"] = np.nan  # customers not scored (not active)
    pandas_book = BookMonitor(_profile())
    pandas_book.add(now, s)
    frame = spark.createDataFrame(pd.concat([now, s], axis=1)).repartition(4)
    on_spark = spark_book(_profile(), frame)
    day = pd.Timestamp("2022-06-30")
    a, b = pandas_book.report({}, mspec, day, 10), on_spark.report({}, mspec, day, 10)
    assert a["rows"] == b["rows"] == 3000
    assert a["features"] == b["features"] and a["score"] == b["score"]
    assert a["estimated"] == b["estimated"]  # the same probabilities, in another order
    assert a == b


def test_size_aware_psi_silences_noise_at_small_sizes(mspec) -> None:
    profile = build_profile(_frame(150, 5), GROUPS, ["tier"], _scores(150, 5), 10,
                            {"kind": "test", "start": "x", "end": "x"})  # fmt: skip
    now, s = _frame(150, 6), _scores(150, 6)
    counts = current_counts(profile, now, s["churn_probability"].to_numpy(), s["risk_band"])
    raw = feature_drift(profile, counts, replace(mspec, size_aware=False, psi_warn=0.05,
                                                 psi_drift=0.05))  # fmt: skip
    aware = feature_drift(profile, counts, replace(mspec, psi_warn=0.05, psi_drift=0.05))
    assert any(f["drifted"] for f in raw)  # 150 vs 150 rows: noise alone passes 0.05
    assert not any(f["drifted"] for f in aware)


QUIET = {"categories": [], "volumes": [], "out_of_range": [], "missing_changed": []}
CALM = {"psi": 0.01, "shifting": False, "drifted": False}


@pytest.mark.parametrize(
    ("share", "est", "real", "score", "quality", "verdict"),
    [
        (0.0, 0.0, None, CALM, QUIET, OK),
        (0.25, 0.0, None, CALM, QUIET, WARN),
        (0.45, 0.0, None, CALM, QUIET, RETRAIN),
        (0.0, 0.03, None, CALM, QUIET, WARN),
        (0.0, 0.06, None, CALM, QUIET, RETRAIN),
        (0.0, 0.0, 0.06, CALM, QUIET, RETRAIN),
        (0.0, -0.1, -0.1, CALM, QUIET, OK),  # better than the reference is no reason
        (0.0, 0.0, None, {"psi": 0.3, "shifting": True, "drifted": True}, QUIET, WARN),
        (0.0, 0.0, None, CALM, QUIET | {"volumes": [{"table": "loans", "flagged": True}]}, WARN),
        (0.0, 0.0, None, CALM,
         QUIET | {"categories": [{"name": "interactions.channel", "flagged": True}]}, WARN),
    ],
)  # fmt: skip
def test_verdict_rules(mspec, share, est, real, score, quality, verdict) -> None:
    got, reasons = decide(share, est, real, score, quality, mspec)
    assert got == verdict
    assert bool(reasons) == (verdict != OK)


# --- the HTML page in headless Chromium -----------------------------------------------------------
PROBE = """<script>window.addEventListener('load', () => {
  const boxes = [...document.querySelectorAll('section[id], table, svg')].map(e => {
    const r = e.getBoundingClientRect(); return {tag: e.tagName, id: e.id, w: r.width, h: r.height};
  });
  const out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify(boxes); document.body.appendChild(out);
});</script>"""


def _page_report(mspec) -> dict:
    now, s = _frame(4000, 7, shift=0.8), _scores(4000, 7)
    book = BookMonitor(_profile() | {"tables": {}})
    book.add(now, s)
    est = estimate_metrics(s["churn_probability"], 10, 50, 0.9, 0)
    back = {"as_of": "2022-01-31", "estimated": est,
            "realised": {"roc_auc": 0.71, "pr_auc": 0.3, "ece": 0.02}}  # fmt: skip
    return book.report({}, mspec, pd.Timestamp("2022-06-30"), 10, realised=[back])


def test_monitor_page_escapes_and_needs_no_network(mspec) -> None:
    from pipelines.reporting.monitor_page import monitor_page

    report = _page_report(mspec)
    report["reasons"].append("<script>alert(1)</script>")
    page = monitor_page(report)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page


@pytest.mark.slow
def test_monitor_page_renders_in_headless_chromium(chromium, mspec, tmp_path) -> None:
    import json
    import re
    import subprocess

    from pipelines.reporting.monitor_page import SECTIONS, monitor_page

    page = tmp_path / "monitor.html"
    page.write_text(monitor_page(_page_report(mspec)).replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=90, check=True).stdout  # fmt: skip
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, "the page did not finish loading"
    boxes = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    sections = {b["id"]: b for b in boxes if b["tag"] == "SECTION"}
    assert set(sections) == set(SECTIONS)
    assert all(b["w"] > 300 and b["h"] > 80 for b in sections.values())
    bars = [b for b in boxes if b["tag"] == "svg"]
    assert any(b["w"] > 100 for b in bars)  # the PSI bars are drawn
    shot = tmp_path / "monitor.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1280,2400",
                    page.as_uri()], capture_output=True, timeout=90, check=True)  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("TIERWISE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["TIERWISE_KEEP_SCREENSHOT"])


def test_churner_draws_are_binomial_for_groups_of_one_and_of_many() -> None:
    """Groups of one row are drawn as uniforms below u, larger ones by numpy's binomial: both
    give s ~ Binomial(n, u) (mean n u, variance n u (1 - u)), each draw within 0..n."""
    u, n = np.array([0.05, 0.5, 0.9, 0.3]), np.array([1.0, 1.0, 1.0, 40.0])
    g = Groups(u, n, np.zeros(4, dtype=int))
    s = _draw_churners(np.random.default_rng(0), g, 40_000)
    assert ((s >= 0) & (s <= n)).all() and (s == np.round(s)).all()
    np.testing.assert_allclose(s.mean(axis=0), n * u, rtol=0.03)
    np.testing.assert_allclose(s.var(axis=0), n * u * (1 - u), rtol=0.05)
