"""The monitor's report (docs/monitoring.md, "The JSON"): drift, data quality, estimated and
realised performance, and the verdict with its reasons. Pure: counts and settings in, a
JSON-ready dict out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.monitoring.drift import category_drift, compare, feature_drift, group_drift
from models.monitoring.estimate import estimate_metrics
from models.monitoring.quality import volume_checks
from models.monitoring.spec import MonitorSpec

OK, WARN, RETRAIN = "ok", "warn", "retrain"
VERDICTS = (OK, WARN, RETRAIN)
SCHEMA_VERSION = 1


def weighted_drift_share(features: list[dict[str, Any]]) -> float | None:
    """The churn model's gain share of the drifted features (None: no importances stored)."""
    weights = [f.get("importance") for f in features]
    if not features or any(w is None for w in weights):
        return None
    total = sum(weights) or 1.0
    return round(sum(w for w, f in zip(weights, features, strict=True) if f["drifted"]) / total, 6)


def _half_width(interval: Mapping[str, Any] | None) -> float:
    if not interval or interval.get("low") is None or interval.get("high") is None:
        return 0.0
    return (interval["high"] - interval["low"]) / 2


def _drop(reference: float | None, now: float | None) -> float | None:
    return None if reference is None or now is None else round(reference - now, 6)


def reference_auc(profile: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(estimated, realised) ROC AUC on the reference (realised None when it had no labels)."""
    perf = profile.get("performance") or {}
    est = (perf.get("estimated") or {}).get("roc_auc") or {}
    return est.get("value"), (perf.get("realised") or {}).get("roc_auc")


def quality_section(
    profile: Mapping[str, Any],
    features: list[dict[str, Any]],
    tables_now: Mapping[str, Any],
    spec: MonitorSpec,
) -> dict[str, Any]:
    tables_ref = profile.get("tables") or {}
    categories = []
    for table, ref in tables_ref.items():
        cur = (tables_now.get(table) or {}).get("categories", {})
        for column, counts in ref["categories"].items():
            entry = category_drift(f"{table}.{column}", counts, cur.get(column, {}), spec)
            categories.append(entry | {"flagged": entry["new_share"] > spec.new_category_share})
    missing = [
        {"name": f["name"], "reference": f["missing_reference"], "now": f["missing"]}
        for f in features
        if abs(f["missing"] - f["missing_reference"]) > spec.missing_change
    ]
    # reported, not a rule: a tenure past the reference's maximum is the book ageing
    out_of_range = [
        {"name": f["name"], "share": f["out_of_range"]}
        for f in features
        if f["out_of_range"] > spec.out_of_range_share
    ]
    return {
        "categories": categories,
        "volumes": volume_checks(tables_ref, tables_now, spec.volume_tolerance),
        "missing_changed": missing,
        "out_of_range": out_of_range,
    }


def decide(
    drift_share: float,
    estimated_drop: float | None,
    realised_drop: float | None,
    score: Mapping[str, Any],
    quality: Mapping[str, Any],
    spec: MonitorSpec,
    noise: tuple[float, float] = (0.0, 0.0),
) -> tuple[str, list[str]]:
    """The verdict and the rules that fired (docs/monitoring.md, "The verdict").

    ``drift_share``: the larger of the count and importance-weighted shares. ``noise``: the
    half-widths of the estimated and the backtest's intervals; with ``size_aware`` an AUC drop
    counts only beyond it (a drop that sampling noise explains at this size is no signal)."""
    retrain, warn = [], []
    if drift_share >= spec.drift_share_retrain:
        retrain.append(f"drift share {drift_share:.2f} >= {spec.drift_share_retrain}")
    elif drift_share >= spec.drift_share_warn:
        warn.append(f"drift share {drift_share:.2f} >= {spec.drift_share_warn}")
    pairs = (("estimated", estimated_drop, noise[0]), ("realised", realised_drop, noise[1]))
    for what, drop, floor in pairs:
        if drop is None or (spec.size_aware and drop <= floor):
            continue
        if drop >= spec.auc_drop_retrain:
            retrain.append(f"{what} ROC AUC drop {drop:.3f} >= {spec.auc_drop_retrain}")
        elif drop >= spec.auc_drop_warn:
            warn.append(f"{what} ROC AUC drop {drop:.3f} >= {spec.auc_drop_warn}")
    if score.get("drifted"):
        warn.append(f"churn score PSI {score['psi']:.3f}")
    new = [c["name"] for c in quality["categories"] if c["flagged"]]
    if new:
        warn.append(f"new categories in {', '.join(new)}")
    moved = [c["name"] for c in quality["categories"] if c.get("drifted")]
    if moved:
        warn.append(f"category mix drifted: {', '.join(moved)}")
    volumes = [v["table"] for v in quality["volumes"] if v["flagged"]]
    if volumes:
        warn.append(f"volume off the reference: {', '.join(volumes)}")
    if quality["missing_changed"]:
        warn.append(f"missing share changed: {len(quality['missing_changed'])} feature(s)")
    verdict = RETRAIN if retrain else WARN if warn else OK
    return verdict, retrain + warn


def monitor_report(
    profile: Mapping[str, Any],
    counts: Mapping[str, Any],
    probabilities: np.ndarray,
    tables_now: Mapping[str, Any],
    spec: MonitorSpec,
    as_of: str,
    ece_bins: int,
    realised: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The report for the book at ``as_of``; ``realised``: the backtest rows, oldest first."""
    features = feature_drift(profile, counts, spec)
    drift_share = float(np.mean([f["drifted"] for f in features])) if features else 0.0
    weighted = weighted_drift_share(features)
    score_ref = profile["score"]
    score = {"name": "churn_probability"} | compare(score_ref["counts"], counts["score"], spec, 1)
    bands = category_drift("risk_band", score_ref["bands"], counts["bands"], spec)
    states = [category_drift(c, ref, counts["states"].get(c, {}), spec)
              for c, ref in profile["states"].items()]  # fmt: skip
    estimated = estimate_metrics(probabilities, ece_bins, spec.draws, spec.interval, spec.seed)
    ref_est, ref_real = reference_auc(profile)
    est_drop = _drop(ref_est, estimated["roc_auc"]["value"])
    matured = [r for r in realised if r.get("realised", {}).get("roc_auc") is not None]
    real_drop = _drop(ref_real if ref_real is not None else ref_est,
                      matured[-1]["realised"]["roc_auc"] if matured else None)  # fmt: skip
    quality = quality_section(profile, features, tables_now, spec)
    noise = _half_width(estimated["roc_auc"]), _half_width(matured[-1]["estimated"]["roc_auc"]
                                                           if matured else None)  # fmt: skip
    verdict, reasons = decide(max(drift_share, weighted or 0.0), est_drop, real_drop, score,
                              quality, spec, noise)  # fmt: skip
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict,
        "reasons": reasons,
        "as_of": as_of,
        "reference": profile["reference"],
        "rows": int(counts["rows"]),
        "drift_share": round(drift_share, 6),
        "weighted_drift_share": weighted,
        "estimated": estimated | {"reference_roc_auc": ref_est, "roc_auc_drop": est_drop},
        "realised": list(realised),
        "realised_roc_auc_drop": real_drop,
        "reference_realised_roc_auc": ref_real,
        "calibration": calibration_check(matured[-1] if matured else None),
        "score": score,
        "risk_bands": bands,
        "states": states,
        "tier_mix": next((s for s in states if s["name"] == "tier"), None),
        "groups": group_drift(features) if features else [],
        "features": features,
        "quality": quality,
    }


def calibration_check(latest: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Does CBPE's assumption hold? On the latest matured backtest date, the realised ECE against
    the high end of the ECE a calibrated model would show by chance at that size. ``holds``
    False: the estimates (``estimated``) overstate or understate the model; trust the backtest.
    Reported, not a verdict rule: it describes the model, not drift of the book."""
    if latest is None:
        return None
    real, high = latest["realised"].get("ece"), latest["estimated"]["ece"].get("high")
    if real is None or high is None:
        return None
    return {"as_of": latest["as_of"], "realised_ece": real, "interval_high": high,
            "holds": bool(real <= high)}  # fmt: skip


def summary_line(report: Mapping[str, Any]) -> str:
    """One line for `tierwise score`'s log and lineage."""
    auc = report["estimated"]["roc_auc"]
    return (
        f"monitor {report['verdict']}: drift share {report['drift_share']:.2f}, estimated ROC AUC "
        f"{auc['value']} [{auc['low']}, {auc['high']}]"
    )
