"""Drift of the monitored book against the reference profile: PSI on the reference's bins, a
chi-square two-sample test on the same bins, and the noise level of PSI at the two sizes.

PSI = Σ_b (a_b - e_b) ln(a_b / e_b) over the shares e (reference) and a (monitored) of each bin,
missing values being a bin of their own; shares are floored at ``EPS``. The credit industry's
reading (params ``monitor.psi_warn`` / ``psi_drift``, 0.1 / 0.25): below 0.1 stable, 0.1–0.25
shifting, above 0.25 drifted. Two samples from one distribution give PSI ≈ (1/n + 1/m) χ²_(k-1)
for n and m rows and k bins, so at small sizes noise alone can pass 0.1; with
``size_aware`` a feature counts as shifting or drifted only when its PSI also exceeds that noise
level at the Bonferroni-corrected ``alpha`` (``noise_psi``; benchmarks/README.md shows the
false-alarm rates with and without it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from models.monitoring.profile import bin_counts, category_counts
from models.monitoring.spec import MonitorSpec

EPS = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI between two count vectors over the same bins."""
    e, a = np.asarray(expected, float), np.asarray(actual, float)
    if e.sum() == 0 or a.sum() == 0:
        return float("nan")
    e, a = np.maximum(e / e.sum(), EPS), np.maximum(a / a.sum(), EPS)
    return float(((a - e) * np.log(a / e)).sum())


def chi2_pvalue(expected: np.ndarray, actual: np.ndarray) -> float:
    """p-value of the chi-square test that both count vectors come from one distribution."""
    table = np.vstack([expected, actual]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    expect = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    stat = float(((table - expect) ** 2 / expect).sum())
    return float(chi2.sf(stat, table.shape[1] - 1))


def noise_psi(bins: int, n: int, m: int, level: float) -> float:
    """The PSI that two samples of one distribution exceed with probability ``level``."""
    if n == 0 or m == 0:
        return float("inf")
    return float(chi2.isf(level, max(bins - 1, 1)) * (1 / n + 1 / m))


def current_counts(
    profile: Mapping[str, Any], rows: pd.DataFrame, p: np.ndarray, bands: pd.Series
) -> dict[str, Any]:
    """The monitored rows counted on the profile's bins (add chunks with ``add_counts``)."""
    out: dict[str, Any] = {"rows": len(rows), "features": {}, "below": {}, "above": {}}
    for name, entry in profile["features"].items():
        values = rows[name].to_numpy(dtype=float) if name in rows else np.full(len(rows), np.nan)
        out["features"][name] = bin_counts(values, np.asarray(entry["edges"], float))
        lo, hi = entry["min"], entry["max"]
        out["below"][name] = int((values < lo).sum()) if lo is not None else 0
        out["above"][name] = int((values > hi).sum()) if hi is not None else 0
    out["states"] = {c: category_counts(rows[c]) for c in profile["states"] if c in rows}
    scored = ~np.isnan(p)
    out["score"] = bin_counts(p[scored], np.asarray(profile["score"]["edges"], float))
    out["bands"] = category_counts(bands[scored])
    return out


def add_counts(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """The counts of two chunks together (``a`` None: the first chunk)."""
    if a is None:
        return b
    out: dict[str, Any] = {"rows": a["rows"] + b["rows"]}
    for key in ("features", "below", "above"):
        out[key] = {k: a[key][k] + b[key][k] for k in a[key]}
    out["states"] = {c: _add(a["states"].get(c, {}), v) for c, v in b["states"].items()}
    out["score"] = a["score"] + b["score"]
    out["bands"] = _add(a["bands"], b["bands"])
    return out


def _add(x: Mapping[str, int], y: Mapping[str, int]) -> dict[str, int]:
    return {k: int(x.get(k, 0)) + int(y.get(k, 0)) for k in sorted(set(x) | set(y))}


def _status(value: float, noise: float, spec: MonitorSpec) -> tuple[bool, bool]:
    """(shifting, drifted) for a PSI and its noise level."""
    floor = noise if spec.size_aware else 0.0
    return value >= max(spec.psi_warn, floor), value >= max(spec.psi_drift, floor)


def compare(
    expected: Sequence[int], actual: Sequence[int], spec: MonitorSpec, tests: int
) -> dict[str, Any]:
    """PSI, test p-value, noise level and flags of one count vector against the reference's."""
    e, a = np.asarray(expected, float), np.asarray(actual, float)
    value = psi(e, a)
    noise = noise_psi(int((e > 0).sum() or len(e)), int(a.sum()), int(e.sum()), spec.alpha / tests)
    shifting, drifted = _status(value, noise, spec) if value == value else (False, False)
    return {
        "psi": round(value, 6) if value == value else None,
        "p_value": chi2_pvalue(e, a),
        "psi_noise": round(noise, 6) if np.isfinite(noise) else None,
        "shifting": bool(shifting),
        "drifted": bool(drifted),
    }


def _dict_vectors(ref: Mapping[str, int], cur: Mapping[str, int]) -> tuple[list, list, list]:
    keys = sorted(set(ref) | set(cur))
    return keys, [ref.get(k, 0) for k in keys], [cur.get(k, 0) for k in keys]


def feature_drift(
    profile: Mapping[str, Any], current: Mapping[str, Any], spec: MonitorSpec
) -> list[dict[str, Any]]:
    """One object per model feature: name, group, psi, p_value, drifted, missing shares, …"""
    tests = max(len(profile["features"]), 1)
    out = []
    for name, entry in profile["features"].items():
        ref, cur = np.asarray(entry["counts"]), np.asarray(current["features"][name])
        n = max(int(cur.sum()), 1)
        row = {"name": name, "group": entry["group"], "importance": entry.get("importance")}
        row |= compare(ref, cur, spec, tests)
        row |= {
            "missing_reference": round(ref[-1] / max(ref.sum(), 1), 6),
            "missing": round(cur[-1] / n, 6),
            "out_of_range": round((current["below"][name] + current["above"][name]) / n, 6),
        }
        out.append(row)
    return out


def group_drift(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per feature group: the largest and mean PSI, and the share of its features drifted."""
    frame = pd.DataFrame(features)
    out = []
    for group, rows in frame.groupby("group", sort=False):
        out.append({
            "group": str(group), "features": len(rows),
            "psi_max": round(float(rows["psi"].max()), 6),
            "psi_mean": round(float(rows["psi"].mean()), 6),
            "drift_share": round(float(rows["drifted"].mean()), 6),
            "drifted": bool(rows["drifted"].any()),
        })  # fmt: skip
    return out


def category_drift(
    name: str, ref: Mapping[str, int], cur: Mapping[str, int], spec: MonitorSpec
) -> dict[str, Any]:
    """PSI and test of one categorical column, its shares, and categories new to the reference."""
    keys, e, a = _dict_vectors(ref, cur)
    total_a, total_e = max(sum(a), 1), max(sum(e), 1)
    new = {k: v for k, v in cur.items() if k not in ref and v > 0}
    return {
        "name": name,
        **compare(e, a, spec, 1),
        "reference_shares": {k: round(v / total_e, 6) for k, v in zip(keys, e, strict=True)},
        "shares": {k: round(v / total_a, 6) for k, v in zip(keys, a, strict=True)},
        "new_categories": sorted(new),
        "new_share": round(sum(new.values()) / total_a, 6),
    }
